"""Billing arithmetic. Pure functions on integer milliseconds and minor units."""
from dataclasses import dataclass

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Terms:
    """What a call costs, locked when the call is created."""

    price_minor: int
    currency: str
    free_seconds: int
    cap_minutes: int

    @property
    def cap_ms(self):
        return self.cap_minutes * MINUTE_MS

    @property
    def free_ms(self):
        return self.free_seconds * 1000


@dataclass(frozen=True)
class Bill:
    duration_ms: int
    minutes: int
    amount_minor: int
    currency: str


def billed_minutes(duration_ms, free_seconds):
    """Nothing under the free threshold; otherwise every started minute, the first included."""
    if duration_ms <= 0 or duration_ms < free_seconds * 1000:
        return 0
    return -(-duration_ms // MINUTE_MS)


def bill(terms, active_ms, end_ms):
    """The bill for a call active from ``active_ms`` to ``end_ms`` (None: never active)."""
    if active_ms is None or end_ms is None:
        duration = 0
    else:
        duration = max(0, min(end_ms - active_ms, terms.cap_ms))
    minutes = billed_minutes(duration, terms.free_seconds)
    return Bill(duration, minutes, minutes * terms.price_minor, terms.currency)


def meter(terms, active_ms, now_ms):
    """What the peers are shown while the call runs."""
    elapsed = max(0, min(now_ms - active_ms, terms.cap_ms))
    minutes = billed_minutes(elapsed, terms.free_seconds)
    return {
        "elapsed_ms": elapsed,
        "free_left_ms": max(0, terms.free_ms - elapsed),
        "cap_left_ms": terms.cap_ms - elapsed,
        "minutes": minutes,
        "amount": minutes * terms.price_minor,
        "currency": terms.currency,
        "price": terms.price_minor,
    }


def due_warnings(terms, active_ms, now_ms, warnings, sent):
    """The warning (seconds before the cap) to send now, as a list of at most one.

    After a late tick only the warning that is still true is due: with 25 s left the
    peers hear "30 seconds", never "120 seconds". The caller marks every larger
    warning as sent too.
    """
    left_s = (terms.cap_ms - (now_ms - active_ms)) / 1000
    due = [w for w in warnings if w not in sent and 0 < left_s <= w and w * 1000 < terms.cap_ms]
    return [min(due)] if due else []


def silent_since(seen, now_ms, grace_ms, floor_ms=0):
    """The earliest last-heartbeat of a side that has been silent past the grace period.

    ``seen`` maps role to last heartbeat (ms). ``floor_ms`` (for example the moment this
    server started) postpones the deadline, never the billing end.
    """
    silent = [
        last for last in seen.values()
        if last is not None and max(last, floor_ms) + grace_ms <= now_ms
    ]
    return min(silent) if silent else None
