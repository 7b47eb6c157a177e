"""Billing arithmetic as tables, then the call lifecycle driven through CallService with
the injected clock: every amount is checked to the cent against the money rules."""
import pytest
from werkzeug.security import generate_password_hash

from callme import models
from callme.calls.lifecycle import CallService
from callme.extensions import db
from callme.calls.metering import (MINUTE_MS, Bill, Terms, bill, billed_minutes, due_warnings, hangup_end,
                                   meter)
from callme.models import Call, LedgerEntry

USD = Terms(price_minor=150, currency="USD", free_seconds=60, cap_minutes=60)


# ---- billed_minutes -------------------------------------------------------------------

@pytest.mark.parametrize("duration_ms, free_seconds, minutes", [
    # Never active or nothing measured.
    (0, 60, 0),
    (-5, 60, 0),
    (0, 0, 0),
    # Under, exactly at and over the default free threshold (60 s).
    (1, 60, 0),
    (59_999, 60, 0),
    (60_000, 60, 1),
    (60_001, 60, 2),
    (119_999, 60, 2),
    (120_000, 60, 2),
    (120_001, 60, 3),
    (179_999, 60, 3),
    (180_000, 60, 3),
    (180_001, 60, 4),
    (3_600_000, 60, 60),
    # No free time: every started minute, from the first millisecond.
    (1, 0, 1),
    (59_999, 0, 1),
    (60_000, 0, 1),
    (60_001, 0, 2),
    (120_000, 0, 2),
    (120_001, 0, 3),
    # A short free threshold: once past it, the first minute is billed too.
    (29_999, 30, 0),
    (30_000, 30, 1),
    (59_999, 30, 1),
    (60_001, 30, 2),
    # A free threshold longer than a minute: past it, every started minute counts.
    (89_999, 90, 0),
    (90_000, 90, 2),
    (119_999, 90, 2),
    (120_001, 90, 3),
    # One second of free time.
    (999, 1, 0),
    (1_000, 1, 1),
])
def test_billed_minutes(duration_ms, free_seconds, minutes):
    assert billed_minutes(duration_ms, free_seconds) == minutes


# ---- bill -----------------------------------------------------------------------------

T0 = 1_700_000_000_000


@pytest.mark.parametrize("terms, active_ms, end_ms, expected", [
    # Never active: nothing, whatever the end.
    (USD, None, T0 + 600_000, Bill(0, 0, 0, "USD")),
    (USD, T0, None, Bill(0, 0, 0, "USD")),
    (USD, None, None, Bill(0, 0, 0, "USD")),
    # Ended before it became active (clock skew): nothing.
    (USD, T0, T0 - 1, Bill(0, 0, 0, "USD")),
    (USD, T0, T0, Bill(0, 0, 0, "USD")),
    # Around the free threshold and the minute boundaries.
    (USD, T0, T0 + 59_999, Bill(59_999, 0, 0, "USD")),
    (USD, T0, T0 + 60_000, Bill(60_000, 1, 150, "USD")),
    (USD, T0, T0 + 60_001, Bill(60_001, 2, 300, "USD")),
    (USD, T0, T0 + 119_999, Bill(119_999, 2, 300, "USD")),
    (USD, T0, T0 + 120_000, Bill(120_000, 2, 300, "USD")),
    (USD, T0, T0 + 120_001, Bill(120_001, 3, 450, "USD")),
    # The cap clamps the duration: 60 minutes at most, however long it ran.
    (USD, T0, T0 + 3_599_999, Bill(3_599_999, 60, 9_000, "USD")),
    (USD, T0, T0 + 3_600_000, Bill(3_600_000, 60, 9_000, "USD")),
    (USD, T0, T0 + 3_600_001, Bill(3_600_000, 60, 9_000, "USD")),
    (USD, T0, T0 + 10 * 3_600_000, Bill(3_600_000, 60, 9_000, "USD")),
    (Terms(150, "USD", 60, 1), T0, T0 + 61_000, Bill(60_000, 1, 150, "USD")),
    (Terms(150, "USD", 60, 5), T0, T0 + 301_000, Bill(300_000, 5, 750, "USD")),
    (Terms(150, "USD", 0, 2), T0, T0 + 10_000_000, Bill(120_000, 2, 300, "USD")),
    # A free threshold longer than the cap: a capped call is free.
    (Terms(150, "USD", 120, 1), T0, T0 + 600_000, Bill(60_000, 0, 0, "USD")),
    # Free price: minutes are counted, nothing is charged.
    (Terms(0, "USD", 60, 60), T0, T0 + 125_000, Bill(125_000, 3, 0, "USD")),
    # No free time.
    (Terms(150, "USD", 0, 60), T0, T0 + 1, Bill(1, 1, 150, "USD")),
    # Zero-decimal currencies: minor units are whole yen, still integers.
    (Terms(100, "JPY", 60, 60), T0, T0 + 150_000, Bill(150_000, 3, 300, "JPY")),
    (Terms(1, "JPY", 60, 60), T0, T0 + 60_000, Bill(60_000, 1, 1, "JPY")),
    (Terms(9_999, "KRW", 0, 10), T0, T0 + 599_000, Bill(599_000, 10, 99_990, "KRW")),
    # Three-decimal currencies are integers too.
    (Terms(1_250, "KWD", 60, 60), T0, T0 + 61_000, Bill(61_000, 2, 2_500, "KWD")),
])
def test_bill(terms, active_ms, end_ms, expected):
    result = bill(terms, active_ms, end_ms)
    assert result == expected
    assert type(result.amount_minor) is int and type(result.minutes) is int and type(result.duration_ms) is int


# ---- meter ----------------------------------------------------------------------------

@pytest.mark.parametrize("terms, elapsed_ms, expected", [
    (USD, 0, {"elapsed_ms": 0, "free_left_ms": 60_000, "cap_left_ms": 3_600_000, "minutes": 0, "amount": 0}),
    (USD, -500, {"elapsed_ms": 0, "free_left_ms": 60_000, "cap_left_ms": 3_600_000, "minutes": 0, "amount": 0}),
    (USD, 59_999, {"elapsed_ms": 59_999, "free_left_ms": 1, "cap_left_ms": 3_540_001, "minutes": 0, "amount": 0}),
    (USD, 60_000, {"elapsed_ms": 60_000, "free_left_ms": 0, "cap_left_ms": 3_540_000, "minutes": 1,
                   "amount": 150}),
    (USD, 60_001, {"elapsed_ms": 60_001, "free_left_ms": 0, "cap_left_ms": 3_539_999, "minutes": 2,
                   "amount": 300}),
    (USD, 3_600_000, {"elapsed_ms": 3_600_000, "free_left_ms": 0, "cap_left_ms": 0, "minutes": 60,
                      "amount": 9_000}),
    (USD, 4_000_000, {"elapsed_ms": 3_600_000, "free_left_ms": 0, "cap_left_ms": 0, "minutes": 60,
                      "amount": 9_000}),
    (Terms(100, "JPY", 0, 3), 61_000, {"elapsed_ms": 61_000, "free_left_ms": 0, "cap_left_ms": 119_000,
                                       "minutes": 2, "amount": 200}),
])
def test_meter(terms, elapsed_ms, expected):
    shown = meter(terms, T0, T0 + elapsed_ms)
    assert shown == {**expected, "currency": terms.currency, "price": terms.price_minor}
    # What the peers are shown while the call runs equals what is billed at that moment.
    assert (shown["minutes"], shown["amount"]) == (bill(terms, T0, T0 + elapsed_ms).minutes,
                                                   bill(terms, T0, T0 + elapsed_ms).amount_minor)


# ---- due_warnings ---------------------------------------------------------------------

WARNINGS = [120, 60, 30]


@pytest.mark.parametrize("cap_minutes, left_ms, sent, due", [
    (60, 3_600_000, set(), []),           # just started
    (60, 120_001, set(), []),             # not yet
    (60, 120_000, set(), [120]),          # exactly 120 s left
    (60, 119_000, {120}, []),             # already sent
    (60, 60_000, {120}, [60]),
    (60, 45_000, {120, 60}, []),
    (60, 30_000, {120, 60}, [30]),
    (60, 1, {120, 60, 30}, []),
    (60, 0, set(), []),                   # at the cap: too late to warn
    (60, -1_000, set(), []),              # past the cap
    # A late tick (a restart, a stalled worker) 25 s before the cap: only the warning that is
    # still true is due; "the call ends in 120 seconds" with 25 s left would be wrong.
    (60, 25_000, set(), [30]),
    (60, 25_000, {120, 60}, [30]),
    (60, 50_000, {120}, [60]),
    # Warnings not shorter than the cap itself are never sent.
    (1, 60_000, set(), []),
    (1, 59_000, set(), []),
    (1, 30_000, set(), [30]),
    (2, 120_000, set(), []),              # 120 s is the whole cap: never warned
    (2, 60_000, {120}, [60]),
])
def test_due_warnings(cap_minutes, left_ms, sent, due):
    terms = Terms(150, "USD", 60, cap_minutes)
    now = T0 + terms.cap_ms - left_ms
    assert due_warnings(terms, T0, now, WARNINGS, sent) == due


# ---- hangup_end -----------------------------------------------------------------------

@pytest.mark.parametrize("now, stored, ack, since, end", [
    # arrival, the side's stored last heartbeat, the client's ack and offset; interval 5 s
    (T0 + 30_000, T0, T0, 1_200, T0 + 1_200),            # queued while the server was down
    (T0 + 30_000, T0, T0, 0, T0),
    (T0 + 30_000, T0, T0, 9_000, T0 + 5_000),            # never past ack + one interval
    (T0 + 2_000, T0, T0, 3_000, T0 + 2_000),             # arrived first: its arrival
    (T0 + 30_000, T0 - 4_000, T0, 1_000, T0 + 1_000),    # the stored one lags (not persisted yet)
    (T0 + 30_000, T0, T0 - 60_000, 1_000, T0 + 1_000),   # an ack older than the stored one: clamped up
    (T0 + 30_000, T0, T0 + 10 ** 9, 0, T0 + 30_000),     # from the future: clamped to now
    (T0 + 30_000, T0 + 40_000, T0, 0, T0 + 30_000),      # a stored heartbeat past now: now
])
def test_hangup_end(now, stored, ack, since, end):
    assert hangup_end(now, stored, ack, since, 5_000) == end


# ---- the call lifecycle through CallService ------------------------------------------

@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Experts are made by the dozen here; scrypt would cost 0.1 s each."""
    monkeypatch.setattr(models, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1"))


def ledger_rows(call_id=None):
    """The rows that move money to the expert: captures. (Holds and their release are not charges.)"""
    db.session.expire_all()
    q = db.select(LedgerEntry).filter(LedgerEntry.kind == "capture").order_by(LedgerEntry.id)
    if call_id is not None:
        q = q.filter_by(call_id=call_id)
    return db.session.scalars(q).all()


def stored(call_id):
    db.session.expire_all()
    return db.session.get(Call, call_id)


@pytest.fixture
def active_call(service, make_expert, make_call, clock):
    """Drive a call to active: join visitor, accept, join expert, both report connected."""
    def run(**expert_kw):
        expert = make_expert(online=True, **expert_kw)
        call = make_call(expert)
        call_id, expert_id = call.id, expert.id
        assert service.join(call_id, "visitor").state == "ringing"
        clock.advance(3)
        assert service.accept(expert_id, call_id).state == "accepted"
        service.join(call_id, "expert")
        clock.advance(2)
        service.report(call_id, "visitor", "connected")
        assert stored(call_id).state == "accepted"  # one side is not enough
        clock.advance(1)
        service.report(call_id, "expert", "connected")
        call = stored(call_id)
        assert call.state == "active" and call.active_ms == clock.now
        return expert_id, call_id, call.active_ms
    return run


def keep_alive(service, clock, call_id, ms, step_ms=5_000, roles=("visitor", "expert")):
    """Advance ``ms`` with heartbeats from ``roles`` every ``step_ms``, ticking as the server does."""
    end = clock.now + ms
    while clock.now < end:
        clock.now = min(end, clock.now + step_ms)
        for role in roles:
            service.heartbeat(call_id, role)
        service.tick()


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
    expert_id, call_id, started = active_call(free_seconds=free_seconds, price=price, currency=currency)
    keep_alive(service, clock, call_id, active_ms)
    assert stored(call_id).state == "active"
    service.hangup(call_id, by)
    call = stored(call_id)
    assert (call.state, call.end_reason, call.ended_by) == ("ended", "hangup", by)
    assert call.ended_ms == started + active_ms
    assert (call.billed_ms, call.billed_minutes, call.amount_minor, call.currency) == (
        active_ms, minutes, amount, currency)
    assert call.settled_at is not None
    rows = ledger_rows(call_id)
    if amount:
        payment = stored(call_id).payment
        assert [(r.key, r.kind, r.expert_id, r.amount_minor, r.currency) for r in rows] == [
            (f"payment:{payment.id}:capture", "capture", expert_id, amount, currency)]
        assert rows[0].detail["minutes"] == minutes and rows[0].detail["price"] == price
        assert rows[0].detail["duration_ms"] == active_ms
        assert rows[0].detail["capture_id"] == payment.capture_id
    else:
        assert rows == []
    # A second hang-up (the other side, a retry) changes nothing.
    service.hangup(call_id, "expert" if by == "visitor" else "visitor")
    assert (stored(call_id).end_reason, stored(call_id).ended_by) == ("hangup", by)
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
    rung = stored(call_id).rung_ms
    assert rung == clock.now
    clock.now += wait_ms
    service.heartbeat(call_id, "visitor")  # the visitor is still there, waiting
    service.tick()
    call = stored(call_id)
    assert call.state == state
    if state == "ended":
        assert (call.end_reason, call.ended_by, call.ended_ms) == ("missed", None, rung + 30_000)
        assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (0, 0, 0)
        assert call.settled_at is not None
    assert ledger_rows() == []


def test_visitor_cancel_while_ringing(service, make_expert, make_call, clock):
    expert = make_expert(online=True)
    call_id = make_call(expert).id
    service.join(call_id, "visitor")
    clock.advance(10)
    service.hangup(call_id, "visitor")
    call = stored(call_id)
    assert (call.state, call.end_reason, call.ended_by, call.amount_minor) == ("ended", "cancelled", "visitor", 0)
    assert ledger_rows() == []


def test_decline_is_free(service, make_expert, make_call, clock):
    expert = make_expert(online=True)
    call_id = make_call(expert).id
    service.join(call_id, "visitor")
    clock.advance(5)
    service.decline(expert.id, call_id)
    call = stored(call_id)
    assert (call.state, call.end_reason, call.ended_by, call.amount_minor) == ("ended", "declined", "expert", 0)
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
    _, call_id, started = active_call(cap_minutes=cap_minutes, free_seconds=free_seconds, price=150)
    cap_ms = cap_minutes * MINUTE_MS
    keep_alive(service, clock, call_id, cap_ms - 1)
    assert stored(call_id).state == "active"
    keep_alive(service, clock, call_id, 1 + overshoot_ms, step_ms=1 + overshoot_ms)
    call = stored(call_id)
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
    _, call_id, started = active_call(price=150)
    keep_alive(service, clock, call_id, talk_ms)
    last = clock.now
    assert last == started + talk_ms
    speaking = "expert" if silent == "visitor" else "visitor"
    # Only the other side heartbeats from now on; the grace (30 s) runs out.
    keep_alive(service, clock, call_id, 29_999, step_ms=1_000, roles=(speaking,))
    assert stored(call_id).state == "active"
    keep_alive(service, clock, call_id, 1, step_ms=1, roles=(speaking,))
    call = stored(call_id)
    assert (call.state, call.end_reason, call.ended_by) == ("ended", "silence", silent)
    assert call.ended_ms == last
    assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (talk_ms, minutes, minutes * 150)
    assert len(ledger_rows(call_id)) == (1 if minutes else 0)


def test_reconnect_before_the_grace_keeps_the_call(service, clock, active_call):
    _, call_id, started = active_call(price=150)
    keep_alive(service, clock, call_id, 10_000)
    # The visitor's socket drops: no heartbeats for 29 s, then it joins again.
    keep_alive(service, clock, call_id, 29_000, step_ms=1_000, roles=("expert",))
    assert stored(call_id).state == "active"
    assert service.join(call_id, "visitor").state == "active"
    reconnected = clock.now
    keep_alive(service, clock, call_id, 29_000, step_ms=1_000, roles=("expert",))
    assert stored(call_id).state == "active"  # 29 s after the reconnect: still inside the grace
    keep_alive(service, clock, call_id, 1_000, step_ms=1_000, roles=("expert",))
    call = stored(call_id)
    assert (call.state, call.end_reason, call.ended_by, call.ended_ms) == ("ended", "silence", "visitor",
                                                                          reconnected)
    assert call.billed_ms == reconnected - started == 39_000
    assert call.amount_minor == 0


def test_restart_postpones_the_silence_deadline_not_the_billing_end(app, service, clock, active_call):
    _, call_id, _ = active_call(price=150)
    keep_alive(service, clock, call_id, 90_000)
    service.flush_heartbeats()
    last = clock.now
    # The server is down for 40 s (past the grace), then a new process starts.
    clock.advance(40)
    restarted = CallService(app, app.extensions["callme.bus"])
    assert restarted.started_ms == clock.now
    clock.now += 29_999
    restarted.tick()
    assert stored(call_id).state == "active"  # the peers get the grace to reconnect
    clock.now += 1
    restarted.tick()
    call = stored(call_id)
    assert (call.state, call.end_reason, call.ended_ms) == ("ended", "silence", last)
    assert (call.billed_ms, call.billed_minutes, call.amount_minor) == (90_000, 2, 300)


def test_late_tick_past_both_silence_and_cap_bills_to_the_last_heartbeat(service, clock, active_call):
    _, call_id, started = active_call(price=150, cap_minutes=3)
    keep_alive(service, clock, call_id, 70_000)
    last = clock.now
    # Nobody heartbeats; the next tick comes late (a stalled worker), after the silence
    # deadline (last + 30 s = 100 s) and after the cap (180 s).
    clock.now = started + 185_000
    service.tick()
    call = stored(call_id)
    # Silent since 70 s: 2 minutes, not the 3 minutes of the cap.
    assert (call.end_reason, call.ended_ms, call.billed_minutes, call.amount_minor) == (
        "silence", last, 2, 300)


def test_price_change_after_creation_does_not_touch_the_call(service, clock, make_expert, make_call):
    expert = make_expert(online=True, price=150, currency="USD")
    call_id, expert_id = make_call(expert).id, expert.id
    expert.price_minor, expert.currency, expert.free_seconds, expert.cap_minutes = 500, "EUR", 0, 1
    db.session.commit()
    service.join(call_id, "visitor")
    service.accept(expert_id, call_id)
    service.join(call_id, "expert")
    service.report(call_id, "visitor", "connected")
    service.report(call_id, "expert", "connected")
    keep_alive(service, clock, call_id, 90_000)
    service.hangup(call_id, "visitor")
    call = stored(call_id)
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
        service.join(call_id, "visitor")
        service.accept(expert_id, call_id)
        service.join(call_id, "expert")
        service.report(call_id, "visitor", "connected")
    keep_alive(service, clock, call_id, limit - 1_000, step_ms=1_000, roles=() if step == "created" else
               ("visitor", "expert"))
    assert stored(call_id).state == step
    keep_alive(service, clock, call_id, 1_000, step_ms=1_000, roles=() if step == "created" else
               ("visitor", "expert"))
    call = stored(call_id)
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
    assert console == [service.ring_frame(stored(call_id)) | {"timeout_ms": console[0]["timeout_ms"]},
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
    call = stored(call_id)
    assert (call.state, call.amount_minor, call.ended_by) == ("ended", 0, None if end == "timeout" else
                                                              "expert" if end == "decline" else "visitor")
    if end != "silence":  # what a silent ring should be called is for the fix to decide
        assert call.end_reason == reason
    assert {"type": "ring_ended", "call_id": call_id, "reason": call.end_reason} in console
    assert not any(f["type"] == "call_ended" for f in console)
    assert console[-1] == {"type": "presence", "status": "online"}
