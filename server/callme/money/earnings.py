"""Earnings and the calls table, derived from ledger rows: pure functions.

Nothing here touches Flask or the database: ``books`` loads the rows and hands them in,
with ``now``, so every figure is testable to the minor unit without a request.

How a ledger kind counts is decided in one place, ``SIGN``: captures (and the ``charge``
rows written before PayPal payments existed) are earned, refunds and reversals are given
back; holds and voids are nobody's money and do not count. Earnings fall on the UTC day
the money moved (the ledger row's ``created_at``), so a refund lowers the day it was made.
Amounts are integers of minor units throughout; formatting turns them into text last.
"""
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from .currency import decimal_string

SIGN = {"charge": 1, "capture": 1, "refund": -1, "reversal": -1}
EARNING_KINDS = tuple(SIGN)
TAKEN_KINDS = tuple(kind for kind, sign in SIGN.items() if sign > 0)
PERIODS = (("today", 1), ("7d", 7), ("30d", 30), ("all", None))
PERIOD_LABELS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "all": "All time"}
PER_PAGE = 20

CSV_COLUMNS = ("call_id", "started_utc", "duration_seconds", "billed_minutes", "price_minor", "amount_minor",
               "currency", "end_reason", "settled")

# Symbols that read unambiguously in English (as Intl.NumberFormat("en-US") writes them);
# any other currency is written with its code.
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


# ---- time ----------------------------------------------------------------------------------

def as_utc(moment):
    """A naive UTC datetime from a naive (taken as UTC) or aware datetime."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def from_ms(ms):
    """Epoch milliseconds as a naive UTC datetime (None stays None)."""
    if ms is None:
        return None
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms)


def iso_utc(moment):
    """``2026-11-22T07:05:03Z``: whole seconds, always UTC."""
    return as_utc(moment).replace(microsecond=0).isoformat() + "Z" if moment else ""


def human_utc(moment):
    """``Sun 22 Nov 2026, 07:05 UTC``."""
    return as_utc(moment).strftime("%a %d %b %Y, %H:%M UTC") if moment else ""


# ---- money ---------------------------------------------------------------------------------

def format_money(minor, currency):
    """For people: (123456, "USD") -> "$1,234.56", (1500, "JPY") -> "¥1,500", (150, "CHF") -> "CHF 1.50"."""
    if minor is None:
        return "–"
    text = decimal_string(abs(minor), currency)
    whole, _, fraction = text.partition(".")
    text = f"{int(whole):,}" + (f".{fraction}" if fraction else "")
    symbol = SYMBOLS.get(currency)
    text = f"{symbol}{text}" if symbol else f"{currency} {text}"
    return f"−{text}" if minor < 0 else text


def format_duration(ms):
    """Milliseconds as ``m:ss`` or ``h:mm:ss`` (whole seconds, cut down)."""
    if ms is None:
        return "–"
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


# ---- earnings ------------------------------------------------------------------------------

def signed(kind, amount_minor):
    """What one ledger row adds to earnings: + earned, - given back, 0 for holds and voids."""
    return SIGN.get(kind, 0) * amount_minor


def _fields(row):
    """(kind, amount_minor, currency, created_at) of a LedgerEntry, a result row or such a tuple."""
    if isinstance(row, tuple):
        return row
    return row.kind, row.amount_minor, row.currency, row.created_at


def period_starts(now):
    """The first moment (naive UTC) of each period: today and the last 7 / 30 UTC days, today included."""
    midnight = datetime.combine(as_utc(now).date(), datetime.min.time())
    return {name: (midnight - timedelta(days=days - 1) if days else None) for name, days in PERIODS}


def totals(rows, now):
    """Earnings per currency and period: ``{"USD": {"today": n, "7d": n, "30d": n, "all": n}}``.

    A period runs from its first UTC midnight up to ``now``; later rows (clock skew) are left out.
    """
    now = as_utc(now)
    starts = period_starts(now)
    result = {}
    for row in rows:
        kind, amount, currency, created_at = _fields(row)
        if kind not in SIGN or created_at is None or as_utc(created_at) > now:
            continue
        sums = result.setdefault(currency, dict.fromkeys(starts, 0))
        created_at = as_utc(created_at)
        for name, start in starts.items():
            if start is None or created_at >= start:
                sums[name] += signed(kind, amount)
    return dict(sorted(result.items()))


def daily_series(rows, now, currency, days=30):
    """Earnings in one currency per UTC day, the last ``days`` days oldest first: [(date, n)]."""
    today = as_utc(now).date()
    first = today - timedelta(days=days - 1)
    sums = {first + timedelta(days=i): 0 for i in range(days)}
    for row in rows:
        kind, amount, cur, created_at = _fields(row)
        if cur != currency or kind not in SIGN or created_at is None:
            continue
        day = as_utc(created_at).date()
        if day in sums and as_utc(created_at) <= as_utc(now):
            sums[day] += signed(kind, amount)
    return list(sums.items())


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    day: date
    amount: int
    label: str
    negative: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: int
    bars: tuple
    top_label: str
    first_label: str
    last_label: str
    total_label: str
    empty: bool


def chart(series, currency, width=600, height=160, gap=4):
    """Bars for an SVG of ``series`` (from ``daily_series``), one per day, in integer pixels.

    The baseline is at zero: earnings rise above it, a day whose refunds outweigh its earnings
    hangs below it. A day with a non-zero amount always gets a bar at least 2 px tall.
    """
    days = len(series)
    high = max([amount for _, amount in series] + [0])
    low = min([amount for _, amount in series] + [0])
    span = high - low
    plot = height - 2  # a pixel of air above and below
    baseline = 1 + (plot if span == 0 else plot * high // span)
    slot = width // max(days, 1)
    bars = []
    for i, (day, amount) in enumerate(series):
        pixels = 0 if span == 0 or amount == 0 else max(2, math.ceil(plot * abs(amount) / span))
        pixels = min(pixels, baseline - 1) if amount > 0 else min(pixels, height - 1 - baseline)
        pixels = max(pixels, 2 if amount else 0)
        y = baseline - pixels if amount > 0 else baseline
        bars.append(Bar(x=i * slot + gap // 2, y=y, width=max(slot - gap, 1), height=pixels, day=day,
                        amount=amount, label=f"{day.strftime('%a %d %b')}: {format_money(amount, currency)}",
                        negative=amount < 0))
    return Chart(width=slot * days, height=height, baseline=baseline, bars=tuple(bars),
                 top_label=format_money(high, currency),
                 first_label=series[0][0].strftime("%d %b") if series else "",
                 last_label=series[-1][0].strftime("%d %b") if series else "",
                 total_label=format_money(sum(amount for _, amount in series), currency),
                 empty=high == 0 and low == 0)


# ---- calls ---------------------------------------------------------------------------------

def started_ms(call):
    """When the call started: when both peers were connected, else when it was asked for."""
    return call.active_ms if call.active_ms is not None else call.created_ms


def money_of_call(rows):
    """{"taken": n, "given_back": n, "capture_id": str|None} from a call's ledger rows."""
    taken = given_back = 0
    capture_id = None
    for row in rows:
        value = signed(row.kind, row.amount_minor)
        if value > 0:
            taken += value
            capture_id = capture_id or (row.detail or {}).get("capture_id")
        elif value < 0:
            given_back -= value
    return {"taken": taken, "given_back": given_back, "capture_id": capture_id}


def is_settled(call, rows, payment_state=None, unsettled_states=("capture_pending", "capture_failed", "void_pending")):
    """True when nothing is left to do about a call's money.

    An open call is not settled; an ended one is once it owes nothing (free, missed...) or its
    amount has been taken (a ``capture`` or ``charge`` row), and no PayPal work is pending.
    """
    if call.state != "ended":
        return False
    if payment_state in unsettled_states:
        return False
    if not call.amount_minor:
        return True
    return any(row.kind in TAKEN_KINDS for row in rows)


def status_of(call, settled):
    """A short word for the calls table."""
    if call.state != "ended":
        return "in progress"
    if not call.amount_minor:
        return "free" if call.active_ms is not None else (call.end_reason or "ended")
    return "paid" if settled else "unsettled"


def call_row(call, rows, payment_state=None):
    """One line of the calls table (and of the CSV) for a call and its ledger rows."""
    money = money_of_call(rows)
    settled = is_settled(call, rows, payment_state)
    start = from_ms(started_ms(call))
    return {
        "call_id": call.id, "kind": call.kind, "origin": call.origin or "",
        "started": start, "started_utc": iso_utc(start), "started_human": human_utc(start),
        "started_short": start.strftime("%d %b, %H:%M") if start else "",
        "duration_ms": call.billed_ms, "duration_seconds": (call.billed_ms or 0) // 1000,
        "duration": format_duration(call.billed_ms or 0),
        "billed_minutes": call.billed_minutes or 0, "price_minor": call.price_minor,
        "amount_minor": call.amount_minor or 0, "currency": call.currency,
        "amount": format_money(call.amount_minor or 0, call.currency),
        "refunded_minor": money["given_back"], "capture_id": money["capture_id"],
        "state": call.state, "end_reason": call.end_reason or "", "settled": settled,
        "talked": call.active_ms is not None,
        "status": status_of(call, settled),
    }


def csv_row(row):
    """A ``call_row`` as the CSV's values, in ``CSV_COLUMNS`` order."""
    values = dict(row, settled="true" if row["settled"] else "false")
    return [values[name] for name in CSV_COLUMNS]


@dataclass(frozen=True)
class Page:
    number: int
    pages: int
    total: int
    per_page: int

    @property
    def offset(self):
        return (self.number - 1) * self.per_page

    @property
    def has_prev(self):
        return self.number > 1

    @property
    def has_next(self):
        return self.number < self.pages


def page_of(total, requested, per_page=PER_PAGE):
    """The page to show: ``requested`` clamped to 1..pages (one empty page when there is nothing)."""
    pages = max(1, -(-total // per_page))
    try:
        number = int(requested)
    except (TypeError, ValueError):
        number = 1
    return Page(number=min(max(number, 1), pages), pages=pages, total=total, per_page=per_page)
