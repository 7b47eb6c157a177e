"""The call lifecycle through CallService with the injected clock: restarts (defects 1 and 14),
calls nobody joins (defect 4), the signaling order (defect 11), the events it publishes, and what
each way of ending a call bills, to the cent."""
import pytest

from callme.calls.frames import FrameError
from callme.calls.lifecycle import CallError, CallService
from callme.calls.metering import MINUTE_MS
from callme.errors import CallmeError
from callme.extensions import db
from callme.models import Call, LedgerEntry

from .conftest import answer, keep_alive, make_active

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")  # experts are made by the dozen here


def restart(app):
    """A new process on the same database and bus: nothing of the old one's memory survives."""
    return CallService(app, app.extensions["callme.bus"])


# ---- defect 1: a restart between "connected" and "active" -----------------------------------

def test_restart_after_one_report_persisted_becomes_active_when_the_other_re_reports(app, service, accepted_call,
                                                                                    clock):
    call_id = accepted_call()
    service.report(call_id, "visitor", "connected")
    visitor_at = clock.now
    # The expert's report is lost with the process; both re-report after their welcome.
    clock.advance(2)
    restarted = restart(app)
    restarted.join(call_id, "visitor")
    restarted.join(call_id, "expert")
    restarted.report(call_id, "visitor", "connected")
    assert service.get(call_id).state == "accepted"  # the expert has not said so yet
    clock.advance(1)
    restarted.report(call_id, "expert", "connected")
    call = service.get(call_id)
    assert (call.state, call.visitor_connected_ms, call.active_ms) == ("active", visitor_at, clock.now)


def test_restart_after_both_reports_persisted_is_active_from_the_stored_time(app, service, accepted_call, clock):
    call_id = accepted_call()
    service.report(call_id, "visitor", "connected")
    clock.advance(0.2)
    both_at = clock.now
    # The process dies after storing the second report, before the call became active.
    db.session.execute(db.update(Call).where(Call.id == call_id).values(expert_connected_ms=both_at))
    db.session.commit()
    clock.advance(3)
    restarted = restart(app)
    restarted.report(call_id, "expert", "connected")
    call = service.get(call_id)
    assert (call.state, call.active_ms) == ("active", both_at)


def test_the_clock_makes_a_call_both_sides_reported_active_without_a_re_report(app, service, accepted_call, clock):
    call_id = accepted_call()
    service.report(call_id, "visitor", "connected")
    both_at = clock.now
    db.session.execute(db.update(Call).where(Call.id == call_id).values(expert_connected_ms=both_at))
    db.session.commit()
    clock.advance(app.config["CONNECT_TIMEOUT"] + 5)
    restart(app).tick()
    call = service.get(call_id)
    assert (call.state, call.active_ms) == ("active", both_at)


def test_a_restart_past_the_connect_time_out_gives_the_peers_time_to_re_report(app, service, accepted_call, clock):
    call_id = accepted_call()
    service.report(call_id, "visitor", "connected")
    service.flush_heartbeats()
    # Down for longer than CONNECT_TIMEOUT (60 s): the expert's report was lost.
    clock.advance(app.config["CONNECT_TIMEOUT"] + 10)
    restarted = restart(app)
    restarted.tick()
    assert service.get(call_id).state == "accepted"  # not "failed" before the peers could say connected
    restarted.join(call_id, "visitor")
    restarted.join(call_id, "expert")
    clock.advance(1)
    restarted.report(call_id, "visitor", "connected")
    restarted.report(call_id, "expert", "connected")
    restarted.tick()
    call = service.get(call_id)
    assert (call.state, call.active_ms) == ("active", clock.now)
    # While both keep talking, nothing ends the call.
    keep_alive(restarted, clock, call_id, 100_000)
    assert service.get(call_id).state == "active"


def test_without_any_report_the_connect_time_out_still_fails_the_call(app, service, accepted_call, clock):
    call_id = accepted_call()
    keep_alive(service, clock, call_id, app.config["CONNECT_TIMEOUT"] // 5 * 5_000)
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.amount_minor) == ("ended", "failed", 0)


# ---- defect 4: a created call nobody joins --------------------------------------------------

def test_a_created_call_nobody_joins_stops_counting_as_busy(app, service, make_expert, make_call, clock):
    expert = make_expert(online=True)
    expert_id = expert.id
    call_id = make_call(expert).id
    assert service.status(expert_id) == "busy"
    wait = app.config["JOIN_TIMEOUT"]
    assert wait <= 10
    clock.advance(wait - 0.001)
    service.tick()
    assert service.status(expert_id) == "busy"
    clock.advance(0.001)
    service.tick()
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.amount_minor) == ("ended", "expired", 0)
    assert service.status(expert_id) == "online"


def test_a_visitor_who_joins_in_time_rings(app, service, make_expert, make_call, clock):
    expert = make_expert(online=True)
    call_id = make_call(expert).id
    clock.advance(app.config["JOIN_TIMEOUT"] - 1)
    assert service.join(call_id, "visitor").state == "ringing"
    clock.advance(2)
    service.heartbeat(call_id, "visitor")
    service.tick()
    assert service.get(call_id).state == "ringing"


# ---- defect 14: a hang-up sent while the server was down -------------------------------------

HB = 5_000  # HEARTBEAT_INTERVAL, ms


@pytest.mark.parametrize("since_ack_ms, down_ms, billed_after_ack", [
    (1_200, 30_000, 1_200),         # the click 1.2 s after the last ack
    (0, 30_000, 0),
    (4_999, 30_000, 4_999),
    (9_000, 30_000, HB),            # never past the last ack plus one heartbeat interval
    (600_000, 30_000, HB),
    (3_000, 2_000, 2_000),          # the frame arrived before the offset ran out: its arrival wins
])
def test_a_hangup_sent_while_the_server_was_down_bills_to_the_click(app, service, active_call, clock,
                                                                     since_ack_ms, down_ms, billed_after_ack):
    call = active_call()
    call_id, started = call.id, call.active_ms
    ack = keep_alive(service, clock, call_id, 60_000)["visitor"]
    service.flush_heartbeats()
    assert ack == clock.now
    # The server dies; the hang-up waits in the client's queue until the socket is back.
    clock.now += down_ms
    restarted = restart(app)
    restarted.join(call_id, "visitor")
    restarted.hangup(call_id, "visitor", ack_ms=ack, since_ack_ms=since_ack_ms)
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.ended_by) == ("ended", "hangup", "visitor")
    assert call.ended_ms == ack + billed_after_ack
    assert call.billed_ms == ack + billed_after_ack - started


def test_a_hangup_without_ack_fields_bills_to_its_arrival(app, service, active_call, clock):
    call_id = active_call().id
    keep_alive(service, clock, call_id, 60_000)
    clock.advance(7)
    service.hangup(call_id, "visitor")
    assert service.get(call_id).ended_ms == clock.now


@pytest.mark.parametrize("claim, since_ack_ms, billed_to", [
    # An ack older than the stored heartbeat: clamped up to it.
    ("ancient", 0, "stored"),
    ("ancient", 1_000, "stored+1000"),
    # An ack from the future: clamped down to now.
    ("future", 0, "now"),
])
def test_a_lying_ack_gains_at_most_what_is_not_persisted(service, active_call, clock, claim, since_ack_ms,
                                                          billed_to):
    call = active_call()
    call_id, started = call.id, call.active_ms
    keep_alive(service, clock, call_id, 60_000)
    service.flush_heartbeats()
    stored_seen = service.get(call_id).visitor_seen_ms
    clock.advance(3)
    now = clock.now
    ack = {"ancient": started - 600_000, "future": now + 600_000}[claim]
    service.hangup(call_id, "visitor", ack_ms=ack, since_ack_ms=since_ack_ms)
    expected = {"stored": stored_seen, "stored+1000": stored_seen + 1_000, "now": now}[billed_to]
    assert service.get(call_id).ended_ms == expected


def test_ack_fields_do_not_change_a_call_that_is_not_active(service, make_expert, make_call, clock):
    expert = make_expert(online=True)
    call_id = make_call(expert).id
    service.join(call_id, "visitor")
    clock.advance(4)
    service.hangup(call_id, "visitor", ack_ms=clock.now - 3_000, since_ack_ms=0)
    call = service.get(call_id)
    assert (call.end_reason, call.ended_ms, call.amount_minor) == ("cancelled", clock.now, 0)


def test_heartbeat_and_state_return_the_recorded_time(service, active_call, clock):
    call_id = active_call().id
    clock.advance(1)
    assert service.heartbeat(call_id, "expert") == clock.now
    clock.advance(1)
    assert service.report(call_id, "expert", "connected") == clock.now


# ---- defect 11: the signaling order ----------------------------------------------------------

@pytest.mark.parametrize("frames, refused", [
    # (role, kind) in order; the index of each frame that must be refused
    ([("expert", "answer")], [0]),
    ([("visitor", "candidate")], [0]),
    ([("expert", "candidate")], [0]),
    ([("visitor", "offer"), ("visitor", "answer")], [1]),       # nobody answers their own offer
    ([("visitor", "offer"), ("visitor", "candidate"), ("expert", "answer"), ("expert", "candidate")], []),
    ([("visitor", "offer"), ("expert", "answer"), ("expert", "answer")], []),  # a repeat is the peer's business
    # A renegotiation (an ICE restart after a reconnect) starts with a new offer.
    ([("visitor", "offer"), ("expert", "answer"), ("visitor", "offer"), ("expert", "answer")], []),
])
def test_relay_enforces_the_documented_order(app, service, accepted_call, frames, refused):
    call_id = accepted_call()
    got = {"visitor": [], "expert": []}
    bus = app.extensions["callme.bus"]
    for role in got:
        bus.subscribe(f"call:{call_id}:{role}", got[role].append)
    errors = []
    for i, (role, kind) in enumerate(frames):
        data = {"sdp": "v=0"} if kind != "candidate" else {"candidate": "c"}
        try:
            service.relay(call_id, role, kind, data)
        except FrameError as e:
            assert e.code == "out_of_turn"
            errors.append(i)
    assert errors == refused
    relayed = [(role, kind) for i, (role, kind) in enumerate(frames) if i not in refused]
    for role, kind in relayed:
        other = "expert" if role == "visitor" else "visitor"
        assert kind in [m["type"] for m in got[other]]
    assert sum(len(v) for v in got.values()) == len(relayed)


def test_an_ended_call_forgets_its_offer(service, accepted_call):
    call_id = accepted_call()
    service.relay(call_id, "visitor", "offer", {"sdp": "v=0"})
    service.hangup(call_id, "visitor")
    assert service.bus.get_key(f"offer:{call_id}") is None


# ---- errors ------------------------------------------------------------------------------------

def test_domain_errors_are_callme_errors_with_a_status():
    from callme.calls.tokens import TokenError

    assert issubclass(CallError, CallmeError) and CallError("expert_busy", "Busy.").status == 409
    assert issubclass(FrameError, CallmeError) and FrameError("bad_frame", "Bad.").status == 400
    assert issubclass(TokenError, CallmeError) and TokenError("token_invalid", "Bad.").status in (401, 403)


# ---- the clock: meters and cap warnings as events, the payment-retry job ---------------------

def test_the_clock_publishes_meters_and_each_cap_warning_once(app, service, active_call, clock):
    call = active_call(cap_minutes=3, free_seconds=60, price=150)
    call_id, started = call.id, call.active_ms
    heard = {"visitor": [], "expert": []}
    for role in heard:
        app.extensions["callme.bus"].subscribe(f"call:{call_id}:{role}", heard[role].append)
    server_clock = app.extensions["callme.clock"]
    clock.now = started + 30_000
    server_clock.publish_meters(clock.now)
    assert heard["visitor"] == heard["expert"] == [
        {"type": "meter", "elapsed_ms": 30_000, "free_left_ms": 30_000, "cap_left_ms": 150_000, "minutes": 0,
         "amount": 0, "currency": "USD", "price": 150}]
    # 25 s before the cap (a late tick): only the warning that is still true, once.
    for now in (started + 155_000, started + 156_000):
        server_clock.publish_meters(now)
    warnings = [m for m in heard["visitor"] if m["type"] == "warning"]
    assert warnings == [{"type": "warning", "code": "cap", "seconds_left": 30,
                         "message": "The call ends in 30 seconds (the cap of 3 minutes)."}]
    assert [m["type"] for m in heard["expert"]] == ["meter", "meter", "warning", "meter"]


def test_the_lifecycle_publishes_and_never_writes_to_a_socket(app, service, make_expert, make_call, clock):
    """Every frame a participant or the console gets comes through the bus."""
    expert = make_expert(online=True)
    expert_id, call_id = expert.id, make_call(expert).id
    bus = app.extensions["callme.bus"]
    heard = []
    for channel in (f"call:{call_id}:visitor", f"call:{call_id}:expert", f"expert:{expert_id}"):
        bus.subscribe(channel, lambda m, channel=channel: heard.append((channel.split(":")[-1], m["type"])))
    make_active(service, call_id, expert_id)
    service.hangup(call_id, "expert")
    assert heard == [
        (str(expert_id), "ring"), (str(expert_id), "presence"),
        ("visitor", "accepted"), (str(expert_id), "ring_ended"),
        ("visitor", "active"), ("expert", "active"),
        ("visitor", "ended"), ("expert", "ended"), (str(expert_id), "call_ended"), (str(expert_id), "presence"),
    ]


# ---- billing: what each way of ending a call costs, to the cent --------------------------------

def ledger_rows(call_id=None):
    """The rows that move money to the expert: captures. (Holds and their release are not charges.)"""
    db.session.expire_all()
    q = db.select(LedgerEntry).filter(LedgerEntry.kind == "capture").order_by(LedgerEntry.id)
    if call_id is not None:
        q = q.filter_by(call_id=call_id)
    return db.session.scalars(q).all()


@pytest.mark.parametrize("free_seconds, price, currency, active_ms, by, minutes, amount", [
    (60, 150, "USD", 59_999, "visitor", 0, 0),
    (60, 150, "USD", 60_000, "visitor", 1, 150),
    (60, 150, "USD", 60_001, "expert", 2, 300),
    (60, 150, "USD", 119_999, "visitor", 2, 300),
    (60, 150, "USD", 120_000, "expert", 2, 300),
    (60, 150, "USD", 120_001, "visitor", 3, 450),
    (60, 150, "USD", 1, "visitor", 0, 0),
    (0, 150, "USD", 1, "visitor", 1, 150),
    (0, 150, "USD", 60_001, "expert", 2, 300),
    (30, 99, "EUR", 29_999, "visitor", 0, 0),
    (30, 99, "EUR", 30_000, "visitor", 1, 99),
    (60, 100, "JPY", 150_000, "expert", 3, 300),
    (60, 0, "USD", 600_000, "visitor", 10, 0),
])
def test_hangup_bills_exactly(service, clock, active_call, free_seconds, price, currency, active_ms, by,
                              minutes, amount):
    call = active_call(free_seconds=free_seconds, price=price, currency=currency)
    expert_id, call_id, started = call.expert_id, call.id, call.active_ms
    keep_alive(service, clock, call_id, active_ms)
    assert service.get(call_id).state == "active"
    service.hangup(call_id, by)
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.ended_by) == ("ended", "hangup", by)
    assert call.ended_ms == started + active_ms
    assert (call.billed_ms, call.billed_minutes, call.amount_minor, call.currency) == (
        active_ms, minutes, amount, currency)
    assert call.settled_at is not None
    rows = ledger_rows(call_id)
    if amount:
        payment = service.get(call_id).payment
        assert [(r.key, r.kind, r.expert_id, r.amount_minor, r.currency) for r in rows] == [
            (f"payment:{payment.id}:capture", "capture", expert_id, amount, currency)]
        assert rows[0].detail["minutes"] == minutes and rows[0].detail["price"] == price
        assert rows[0].detail["duration_ms"] == active_ms
        assert rows[0].detail["capture_id"] == payment.capture_id
    else:
        assert rows == []
    # A second hang-up (the other side, a retry) changes nothing.
    service.hangup(call_id, "expert" if by == "visitor" else "visitor")
    assert (service.get(call_id).end_reason, service.get(call_id).ended_by) == ("hangup", by)
    assert len(ledger_rows(call_id)) == len(rows)


@pytest.mark.parametrize("wait_ms, state", [
    (29_999, "ringing"),
    (30_000, "ended"),
    (45_000, "ended"),
])
def test_ring_timeout_is_missed_and_free(service, make_expert, make_call, clock, wait_ms, state):
    expert = make_expert(online=True)
    call = make_call(expert)
    call_id = call.id
    service.join(call_id, "visitor")
    rung = service.get(call_id).rung_ms
    assert rung == clock.now
    clock.now += wait_ms
    service.heartbeat(call_id, "visitor")  # the visitor is still there, waiting
    service.tick()
    call = service.get(call_id)
    assert call.state == state
    if state == "ended":
        assert (call.end_reason, call.ended_by, call.ended_ms) == ("missed", None, rung + 30_000)
        assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (0, 0, 0)
        assert call.settled_at is not None
    assert ledger_rows() == []


@pytest.mark.parametrize("after, end, reason, by", [
    (10, "cancel", "cancelled", "visitor"),    # the visitor hangs up while it rings
    (5, "decline", "declined", "expert"),
])
def test_a_ring_ended_by_either_side_is_free(service, make_expert, make_call, clock, after, end, reason, by):
    expert = make_expert(online=True)
    call_id = make_call(expert).id
    service.join(call_id, "visitor")
    clock.advance(after)
    if end == "cancel":
        service.hangup(call_id, "visitor")
    else:
        service.decline(expert.id, call_id)
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.ended_by, call.amount_minor) == ("ended", reason, by, 0)
    assert ledger_rows() == []


@pytest.mark.parametrize("cap_minutes, free_seconds, overshoot_ms, minutes", [
    (1, 60, 0, 1),
    (1, 60, 1, 1),
    (1, 60, 30_000, 1),
    (2, 60, 4_999, 2),
    (3, 0, 0, 3),
])
def test_cap_ends_at_active_plus_cap(service, clock, active_call, cap_minutes, free_seconds, overshoot_ms,
                                     minutes):
    call = active_call(cap_minutes=cap_minutes, free_seconds=free_seconds, price=150)
    call_id, started = call.id, call.active_ms
    cap_ms = cap_minutes * MINUTE_MS
    keep_alive(service, clock, call_id, cap_ms - 1)
    assert service.get(call_id).state == "active"
    keep_alive(service, clock, call_id, 1 + overshoot_ms, step_ms=1 + overshoot_ms)
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.ended_by) == ("ended", "cap", None)
    assert call.ended_ms == started + cap_ms
    assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (cap_ms, minutes, minutes * 150)
    assert [(r.amount_minor, r.currency) for r in ledger_rows(call_id)] == [(minutes * 150, "USD")]


@pytest.mark.parametrize("silent, talk_ms, minutes", [
    ("visitor", 45_000, 0),     # silent inside the free minute: nothing to pay
    ("visitor", 100_000, 2),
    ("expert", 100_000, 2),
    ("expert", 60_000, 1),
])
def test_silence_ends_at_the_silent_sides_last_heartbeat(service, clock, active_call, silent, talk_ms, minutes):
    call = active_call(price=150)
    call_id, started = call.id, call.active_ms
    keep_alive(service, clock, call_id, talk_ms)
    last = clock.now
    assert last == started + talk_ms
    speaking = "expert" if silent == "visitor" else "visitor"
    # Only the other side heartbeats from now on; the grace (30 s) runs out.
    keep_alive(service, clock, call_id, 29_999, step_ms=1_000, roles=(speaking,))
    assert service.get(call_id).state == "active"
    keep_alive(service, clock, call_id, 1, step_ms=1, roles=(speaking,))
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.ended_by) == ("ended", "silence", silent)
    assert call.ended_ms == last
    assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (talk_ms, minutes, minutes * 150)
    assert len(ledger_rows(call_id)) == (1 if minutes else 0)


def test_reconnect_before_the_grace_keeps_the_call(service, clock, active_call):
    call = active_call(price=150)
    call_id, started = call.id, call.active_ms
    keep_alive(service, clock, call_id, 10_000)
    # The visitor's socket drops: no heartbeats for 29 s, then it joins again.
    keep_alive(service, clock, call_id, 29_000, step_ms=1_000, roles=("expert",))
    assert service.get(call_id).state == "active"
    assert service.join(call_id, "visitor").state == "active"
    reconnected = clock.now
    keep_alive(service, clock, call_id, 29_000, step_ms=1_000, roles=("expert",))
    assert service.get(call_id).state == "active"  # 29 s after the reconnect: still inside the grace
    keep_alive(service, clock, call_id, 1_000, step_ms=1_000, roles=("expert",))
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.ended_by, call.ended_ms) == ("ended", "silence", "visitor",
                                                                          reconnected)
    assert call.billed_ms == reconnected - started == 39_000
    assert call.amount_minor == 0


def test_restart_postpones_the_silence_deadline_not_the_billing_end(app, service, clock, active_call):
    call_id = active_call(price=150).id
    keep_alive(service, clock, call_id, 90_000)
    service.flush_heartbeats()
    last = clock.now
    # The server is down for 40 s (past the grace), then a new process starts.
    clock.advance(40)
    restarted = CallService(app, app.extensions["callme.bus"])
    assert restarted.started_ms == clock.now
    clock.now += 29_999
    restarted.tick()
    assert service.get(call_id).state == "active"  # the peers get the grace to reconnect
    clock.now += 1
    restarted.tick()
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.ended_ms) == ("ended", "silence", last)
    assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (90_000, 2, 300)


def test_late_tick_past_both_silence_and_cap_bills_to_the_last_heartbeat(service, clock, active_call):
    call = active_call(price=150, cap_minutes=3)
    call_id, started = call.id, call.active_ms
    keep_alive(service, clock, call_id, 70_000)
    last = clock.now
    # Nobody heartbeats; the next tick comes late (a stalled worker), after the silence
    # deadline (last + 30 s = 100 s) and after the cap (180 s).
    clock.now = started + 185_000
    service.tick()
    call = service.get(call_id)
    # Silent since 70 s: 2 minutes, not the 3 minutes of the cap.
    assert (call.end_reason, call.ended_ms, call.billed_minutes, call.amount_minor) == (
        "silence", last, 2, 300)


def test_price_change_after_creation_does_not_touch_the_call(service, clock, make_expert, make_call):
    expert = make_expert(online=True, price=150, currency="USD")
    call_id, expert_id = make_call(expert).id, expert.id
    expert.price_minor, expert.currency, expert.free_seconds, expert.cap_minutes = 500, "EUR", 0, 1
    db.session.commit()
    make_active(service, call_id, expert_id)
    keep_alive(service, clock, call_id, 90_000)
    service.hangup(call_id, "visitor")
    call = service.get(call_id)
    assert (call.end_reason, call.price_minor, call.currency, call.free_seconds, call.cap_minutes) == (
        "hangup", 150, "USD", 60, 60)
    assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (90_000, 2, 300)
    assert [(r.amount_minor, r.currency) for r in ledger_rows(call_id)] == [(300, "USD")]


@pytest.mark.parametrize("step, reason", [
    ("created", "expired"),    # the visitor's socket never joined within JOIN_TIMEOUT
    ("accepted", "failed"),    # accepted, but the peers never connected
])
def test_never_active_calls_time_out_free(app, service, clock, make_expert, make_call, step, reason):
    expert = make_expert(online=True)
    call_id, expert_id = make_call(expert).id, expert.id
    limit = {"created": app.config["JOIN_TIMEOUT"] * 1000, "accepted": 60_000}[step]
    if step == "accepted":
        answer(service, call_id, expert_id)
        service.report(call_id, "visitor", "connected")
    keep_alive(service, clock, call_id, limit - 1_000, step_ms=1_000, roles=() if step == "created" else
               ("visitor", "expert"))
    assert service.get(call_id).state == step
    keep_alive(service, clock, call_id, 1_000, step_ms=1_000, roles=() if step == "created" else
               ("visitor", "expert"))
    call = service.get(call_id)
    assert (call.state, call.end_reason, call.amount_minor, call.billed_ms) == ("ended", reason, 0, 0)
    assert ledger_rows() == []


@pytest.mark.parametrize("end, reason", [
    ("hangup", "cancelled"),
    ("decline", "declined"),
    ("timeout", "missed"),
    ("silence", "silence"),
])
def test_the_console_hears_every_unanswered_ring_end(app, service, make_expert, make_call, clock, end, reason):
    app.config["SILENCE_GRACE"] = 10  # a valid setting: shorter than the ring time-out (30 s)
    expert = make_expert(online=True)
    call_id, expert_id = make_call(expert).id, expert.id
    console = []
    app.extensions["callme.bus"].subscribe(f"expert:{expert_id}", console.append)
    service.join(call_id, "visitor")
    assert console == [service.ring_frame(service.get(call_id)) | {"timeout_ms": console[0]["timeout_ms"]},
                       {"type": "presence", "status": "busy"}]
    if end == "hangup":
        service.hangup(call_id, "visitor")
    elif end == "decline":
        service.decline(expert_id, call_id)
    elif end == "silence":
        # The visitor's tab is gone: no heartbeats, no hang-up.
        clock.advance(10)
        service.tick()
    else:
        # The visitor waits (heartbeats), nobody answers.
        keep_alive(service, clock, call_id, 30_000, step_ms=5_000, roles=("visitor",))
    call = service.get(call_id)
    assert (call.state, call.amount_minor, call.ended_by) == ("ended", 0, None if end == "timeout" else
                                                              "expert" if end == "decline" else "visitor")
    if end != "silence":  # what a silent ring should be called is for the fix to decide
        assert call.end_reason == reason
    assert {"type": "ring_ended", "call_id": call_id, "reason": call.end_reason} in console
    assert not any(f["type"] == "call_ended" for f in console)
    assert console[-1] == {"type": "presence", "status": "online"}
