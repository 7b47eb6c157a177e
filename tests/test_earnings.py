"""Earnings, the chart and the calls table, as pure functions over ledger rows."""
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from callme.money import earnings
from callme.extensions import db
from callme.models import Call, LedgerEntry

from .conftest import entry, fake_call

NOW = datetime(2026, 11, 22, 15, 30)  # naive UTC
MIDNIGHT = datetime(2026, 11, 22)


def row(kind, amount, currency="USD", at=NOW - timedelta(hours=1)):
    return (kind, amount, currency, at)


@pytest.mark.parametrize("kind, amount, expected", [
    ("charge", 150, 150), ("capture", 150, 150), ("refund", 150, -150), ("reversal", 150, -150),
    ("hold", 9000, 0), ("void", 8850, 0), ("something-new", 10, 0),
])
def test_each_kind_counts_by_the_sign_table(kind, amount, expected):
    assert earnings.signed(kind, amount) == expected


def test_totals_per_period_and_currency_with_refunds_and_reversals():
    rows = [
        row("capture", 300),                                            # today
        row("hold", 9000), row("void", 8700),                           # never earnings
        row("refund", 100),                                             # today
        row("charge", 450, at=MIDNIGHT - timedelta(days=3)),            # this week
        row("reversal", 50, at=MIDNIGHT - timedelta(days=6)),           # still the 7 days (today + 6)
        row("capture", 1000, at=MIDNIGHT - timedelta(days=7)),          # 30 days, not 7
        row("capture", 2000, at=MIDNIGHT - timedelta(days=30)),         # before the 30 days
        row("capture", 1500, "JPY", at=MIDNIGHT - timedelta(days=29)),  # 30 days, in yen
        row("refund", 500, "JPY", at=NOW - timedelta(minutes=1)),
        row("capture", 777, at=NOW + timedelta(seconds=1)),             # after now: not yet
    ]
    assert earnings.totals(rows, NOW) == {
        "JPY": {"today": -500, "7d": -500, "30d": 1000, "all": 1000},
        "USD": {"today": 200, "7d": 600, "30d": 1600, "all": 3600},
    }


@pytest.mark.parametrize("at, today, week", [
    (MIDNIGHT - timedelta(microseconds=1), 0, 100),   # 23:59:59.999999 yesterday
    (MIDNIGHT, 100, 100),                             # 00:00:00 today
    (MIDNIGHT - timedelta(days=6), 0, 100),           # first moment of the 7 days
    (MIDNIGHT - timedelta(days=6, microseconds=1), 0, 0),
])
def test_periods_turn_at_midnight_utc(at, today, week):
    sums = earnings.totals([row("capture", 100, at=at)], NOW)["USD"]
    assert (sums["today"], sums["7d"], sums["all"]) == (today, week, 100)


def test_an_aware_now_in_another_timezone_is_read_in_utc():
    # 00:30 on the 23rd in Paris is 23:30 on the 22nd in UTC: still the 22nd's "today".
    paris = timezone(timedelta(hours=1))
    now = datetime(2026, 11, 23, 0, 30, tzinfo=paris)
    rows = [row("capture", 100, at=datetime(2026, 11, 22, 0, 0)), row("capture", 7, at=datetime(2026, 11, 21, 23, 59))]
    assert earnings.totals(rows, now)["USD"]["today"] == 100
    assert earnings.period_starts(now)["today"] == datetime(2026, 11, 22)


def test_daily_series_has_every_day_oldest_first_in_one_currency():
    rows = [row("capture", 300), row("refund", 100), row("capture", 999, "JPY"),
            row("charge", 450, at=MIDNIGHT - timedelta(days=29, hours=-1)),
            row("capture", 5, at=MIDNIGHT - timedelta(days=30))]
    series = earnings.daily_series(rows, NOW, "USD")
    assert len(series) == 30
    assert series[0] == (date(2026, 10, 24), 450)
    assert series[-1] == (date(2026, 11, 22), 200)
    assert sum(amount for _, amount in series) == 650
    assert [d for d, _ in series] == [date(2026, 10, 24) + timedelta(days=i) for i in range(30)]


def test_chart_has_one_bar_per_day_and_a_refund_day_hangs_below_the_baseline():
    series = [(date(2026, 11, 1) + timedelta(days=i), 0) for i in range(30)]
    series[3] = (series[3][0], 1000)
    series[4] = (series[4][0], -250)
    c = earnings.chart(series, "USD", width=600, height=160)
    assert len(c.bars) == 30
    tall, low = c.bars[3], c.bars[4]
    assert tall.y + tall.height == c.baseline and tall.height > low.height > 0
    assert low.y == c.baseline and low.negative
    assert all(b.height == 0 for i, b in enumerate(c.bars) if i not in (3, 4))
    assert all(0 <= b.y and b.y + b.height <= c.height for b in c.bars)
    assert [b.x for b in c.bars] == sorted(b.x for b in c.bars)
    assert c.top_label == "$10.00" and c.total_label == "$7.50" and not c.empty


def test_chart_of_nothing_is_flat_and_says_so():
    c = earnings.chart([(date(2026, 11, 1) + timedelta(days=i), 0) for i in range(30)], "JPY")
    assert len(c.bars) == 30 and c.empty and {b.height for b in c.bars} == {0}


@pytest.mark.parametrize("minor, currency, text, plain", [
    (150, "USD", "$1.50", "1.50"),
    (5, "USD", "$0.05", "0.05"),
    (123456789, "USD", "$1,234,567.89", "1234567.89"),
    (1500, "JPY", "¥1,500", "1500"),
    (1234, "KWD", "KWD 1.234", "1.234"),
    (150, "CHF", "CHF 1.50", "1.50"),
    (-250, "EUR", "−€2.50", "-2.50"),
    (0, "GBP", "£0.00", "0.00"),
])
def test_money_is_formatted_from_integers_with_the_currencys_digits(minor, currency, text, plain):
    assert earnings.format_money(minor, currency) == text
    assert earnings.decimal_string(minor, currency) == plain


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        earnings.decimal_string(1.5, "USD")


@pytest.mark.parametrize("total, requested, number, pages", [
    (0, 1, 1, 1), (20, 1, 1, 1), (21, 2, 2, 2), (45, 3, 3, 3), (45, 99, 3, 3), (45, 0, 1, 3),
    (45, -4, 1, 3), (45, "abc", 1, 3), (45, None, 1, 3), (45, "2", 2, 3),
])
def test_page_is_clamped(total, requested, number, pages):
    page = earnings.page_of(total, requested)
    assert (page.number, page.pages, page.offset) == (number, pages, (number - 1) * 20)
    assert page.has_prev == (number > 1) and page.has_next == (number < pages)


@pytest.mark.parametrize("call, rows, payment_state, settled, status", [
    (fake_call(), [entry("hold", 9000), entry("capture", 450, capture_id="CAP1"), entry("void", 8550)], "captured",
     True, "paid"),
    (fake_call(), [entry("charge", 450)], None, True, "paid"),
    (fake_call(), [entry("hold", 9000)], "capture_failed", False, "unsettled"),
    (fake_call(), [], None, False, "unsettled"),
    (fake_call(amount_minor=0, billed_minutes=0), [entry("hold", 9000)], "void_pending", False, "free"),
    (fake_call(amount_minor=0, billed_minutes=0), [entry("hold", 9000), entry("void", 9000)], "voided", True, "free"),
    (fake_call(amount_minor=None, billed_minutes=None, billed_ms=None, active_ms=None, end_reason="missed"), [],
     None, True, "missed"),
    (fake_call(state="active", amount_minor=None, ended_ms=None), [], None, False, "in progress"),
])
def test_settled_and_status(call, rows, payment_state, settled, status):
    r = earnings.call_row(call, rows, payment_state)
    assert (r["settled"], r["status"]) == (settled, status)


def test_call_row_and_csv_row():
    r = earnings.call_row(fake_call(), [entry("capture", 450, capture_id="CAP1"), entry("refund", 100)], "captured")
    assert r["started_utc"] == "2025-11-22T08:26:40Z"
    assert (r["duration"], r["duration_seconds"], r["amount"], r["capture_id"], r["refunded_minor"]) == \
        ("2:05", 125, "$4.50", "CAP1", 100)
    assert earnings.csv_row(r) == ["c1", "2025-11-22T08:26:40Z", 125, 3, 150, 450, "USD", "hangup", "true"]


def test_totals_from_rows_stored_in_the_ledger(app, make_expert):
    """The same sums from LedgerEntry rows read back from the database (created_at as stored)."""
    expert = make_expert(paypal=False)
    other = make_expert(paypal=False)
    stored = [("capture", 400, "USD", NOW - timedelta(hours=2)), ("refund", 150, "USD", NOW - timedelta(minutes=5)),
              ("reversal", 50, "USD", MIDNIGHT - timedelta(days=2)), ("hold", 9000, "USD", NOW),
              ("capture", 3000, "JPY", MIDNIGHT - timedelta(days=10))]
    for i, (kind, amount, currency, at) in enumerate(stored):
        db.session.add(LedgerEntry(key=f"t:{i}", kind=kind, expert_id=expert.id, amount_minor=amount,
                                   currency=currency, created_at=at, detail={}))
    db.session.add(LedgerEntry(key="t:other", kind="capture", expert_id=other.id, amount_minor=99999,
                               currency="USD", created_at=NOW, detail={}))
    db.session.commit()
    rows = db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.expert_id == expert.id)).all()
    assert earnings.totals(rows, NOW) == {
        "JPY": {"today": 0, "7d": 0, "30d": 3000, "all": 3000},
        "USD": {"today": 250, "7d": 200, "30d": 200, "all": 200},
    }
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Call)) == 0
