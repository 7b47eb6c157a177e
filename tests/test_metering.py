"""Billing arithmetic as tables (``callme.calls.metering``): every amount is checked to the cent
against the money rules. The lifecycle that applies them is in test_lifecycle.py."""
import pytest

from callme.calls.metering import Bill, Terms, bill, billed_minutes, due_warnings, hangup_end, meter

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
