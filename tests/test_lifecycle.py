"""The call lifecycle through CallService with the injected clock: restarts (defects 1 and
14), calls nobody joins (defect 4), the signaling order (defect 11) and the events it publishes."""
import pytest

from callme.calls.frames import FrameError
from callme.calls.lifecycle import CallError, CallService
from callme.errors import CallmeError
from callme.extensions import db
from callme.models import Call


def stored(call_id):
    db.session.expire_all()
    return db.session.get(Call, call_id)


def restart(app):
    """A new process on the same database and bus: nothing of the old one's memory survives."""
    return CallService(app, app.extensions["callme.bus"])


@pytest.fixture
def accepted_call(service, make_expert, make_call, clock):
    """A call rung, accepted and joined by both sides; returns its id."""
    def run(**expert_kw):
        expert = make_expert(online=True, **expert_kw)
        call_id, expert_id = make_call(expert).id, expert.id
        service.join(call_id, "visitor")
        clock.advance(2)
        service.accept(expert_id, call_id)
        service.join(call_id, "expert")
        clock.advance(1)
        return call_id
    return run


@pytest.fixture
def active_call(service, accepted_call, clock):
    def run(**expert_kw):
        call_id = accepted_call(**expert_kw)
        service.report(call_id, "visitor", "connected")
        service.report(call_id, "expert", "connected")
        call = stored(call_id)
        assert call.state == "active"
        return call_id, call.active_ms
    return run


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
    assert stored(call_id).state == "accepted"  # the expert has not said so yet
    clock.advance(1)
    restarted.report(call_id, "expert", "connected")
    call = stored(call_id)
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
    call = stored(call_id)
    assert (call.state, call.active_ms) == ("active", both_at)


def test_the_clock_makes_a_call_both_sides_reported_active_without_a_re_report(app, service, accepted_call, clock):
    call_id = accepted_call()
    service.report(call_id, "visitor", "connected")
    both_at = clock.now
    db.session.execute(db.update(Call).where(Call.id == call_id).values(expert_connected_ms=both_at))
    db.session.commit()
    clock.advance(app.config["CONNECT_TIMEOUT"] + 5)
    restart(app).tick()
    call = stored(call_id)
    assert (call.state, call.active_ms) == ("active", both_at)


def test_a_restart_past_the_connect_time_out_gives_the_peers_time_to_re_report(app, service, accepted_call, clock):
    call_id = accepted_call()
    service.report(call_id, "visitor", "connected")
    service.flush_heartbeats()
    # Down for longer than CONNECT_TIMEOUT (60 s): the expert's report was lost.
    clock.advance(app.config["CONNECT_TIMEOUT"] + 10)
    restarted = restart(app)
    restarted.tick()
    assert stored(call_id).state == "accepted"  # not "failed" before the peers could say connected
    restarted.join(call_id, "visitor")
    restarted.join(call_id, "expert")
    clock.advance(1)
    restarted.report(call_id, "visitor", "connected")
    restarted.report(call_id, "expert", "connected")
    restarted.tick()
    call = stored(call_id)
    assert (call.state, call.active_ms) == ("active", clock.now)
    # While both keep talking, nothing ends the call.
    for _ in range(20):
        clock.advance(5)
        restarted.heartbeat(call_id, "visitor")
        restarted.heartbeat(call_id, "expert")
        restarted.tick()
    assert stored(call_id).state == "active"


def test_without_any_report_the_connect_time_out_still_fails_the_call(app, service, accepted_call, clock):
    call_id = accepted_call()
    for _ in range(app.config["CONNECT_TIMEOUT"] // 5):
        clock.advance(5)
        service.heartbeat(call_id, "visitor")
        service.heartbeat(call_id, "expert")
        service.tick()
    call = stored(call_id)
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
    call = stored(call_id)
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
    assert stored(call_id).state == "ringing"


# ---- defect 14: a hang-up sent while the server was down -------------------------------------

HB = 5_000  # HEARTBEAT_INTERVAL, ms


def talk(service, clock, call_id, seconds):
    """Heartbeats from both sides every 5 s; returns the last ack the visitor got."""
    ack = None
    for _ in range(seconds // 5):
        clock.advance(5)
        ack = service.heartbeat(call_id, "visitor")
        service.heartbeat(call_id, "expert")
        service.tick()
    return ack


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
    call_id, started = active_call()
    ack = talk(service, clock, call_id, 60)
    service.flush_heartbeats()
    assert ack == clock.now
    # The server dies; the hang-up waits in the client's queue until the socket is back.
    clock.now += down_ms
    restarted = restart(app)
    restarted.join(call_id, "visitor")
    restarted.hangup(call_id, "visitor", ack_ms=ack, since_ack_ms=since_ack_ms)
    call = stored(call_id)
    assert (call.state, call.end_reason, call.ended_by) == ("ended", "hangup", "visitor")
    assert call.ended_ms == ack + billed_after_ack
    assert call.billed_ms == ack + billed_after_ack - started


def test_a_hangup_without_ack_fields_bills_to_its_arrival(app, service, active_call, clock):
    call_id, started = active_call()
    talk(service, clock, call_id, 60)
    clock.advance(7)
    service.hangup(call_id, "visitor")
    assert stored(call_id).ended_ms == clock.now


@pytest.mark.parametrize("claim, since_ack_ms, billed_to", [
    # An ack older than the stored heartbeat: clamped up to it.
    ("ancient", 0, "stored"),
    ("ancient", 1_000, "stored+1000"),
    # An ack from the future: clamped down to now.
    ("future", 0, "now"),
])
def test_a_lying_ack_gains_at_most_what_is_not_persisted(service, active_call, clock, claim, since_ack_ms,
                                                          billed_to):
    call_id, started = active_call()
    talk(service, clock, call_id, 60)
    service.flush_heartbeats()
    stored_seen = stored(call_id).visitor_seen_ms
    clock.advance(3)
    now = clock.now
    ack = {"ancient": started - 600_000, "future": now + 600_000}[claim]
    service.hangup(call_id, "visitor", ack_ms=ack, since_ack_ms=since_ack_ms)
    expected = {"stored": stored_seen, "stored+1000": stored_seen + 1_000, "now": now}[billed_to]
    assert stored(call_id).ended_ms == expected


def test_ack_fields_do_not_change_a_call_that_is_not_active(service, make_expert, make_call, clock):
    expert = make_expert(online=True)
    call_id = make_call(expert).id
    service.join(call_id, "visitor")
    clock.advance(4)
    service.hangup(call_id, "visitor", ack_ms=clock.now - 3_000, since_ack_ms=0)
    call = stored(call_id)
    assert (call.end_reason, call.ended_ms, call.amount_minor) == ("cancelled", clock.now, 0)


def test_heartbeat_and_state_return_the_recorded_time(service, active_call, clock):
    call_id, _ = active_call()
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
    call_id, started = active_call(cap_minutes=3, free_seconds=60, price=150)
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
    service.join(call_id, "visitor")
    service.accept(expert_id, call_id)
    service.join(call_id, "expert")
    service.report(call_id, "visitor", "connected")
    service.report(call_id, "expert", "connected")
    service.hangup(call_id, "expert")
    assert heard == [
        (str(expert_id), "ring"), (str(expert_id), "presence"),
        ("visitor", "accepted"), (str(expert_id), "ring_ended"),
        ("visitor", "active"), ("expert", "active"),
        ("visitor", "ended"), ("expert", "ended"), (str(expert_id), "call_ended"), (str(expert_id), "presence"),
    ]
