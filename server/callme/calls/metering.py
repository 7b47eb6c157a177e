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

    @classmethod
    def of(cls, call):
        """The terms a call (or an expert, for a call not made yet) carries."""
        return cls(call.price_minor, call.currency, call.free_seconds, call.cap_minutes)

    def as_json(self):
        """The terms as the API and the ``welcome`` frame show them."""
        return {"price": self.price_minor, "currency": self.currency, "free_seconds": self.free_seconds,
                "cap_minutes": self.cap_minutes}

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


def hangup_end(now_ms, stored_seen_ms, ack_ms, since_ack_ms, interval_ms):
    """When a hang-up that carries its last ack (``ack_ms``) and the client's time since then
    (``since_ack_ms``) counts: the earliest of its arrival, the ack plus that offset, and the
    ack plus one heartbeat interval (the client would have beaten again by then).

    The ack is clamped to [the side's stored last heartbeat, now], so a lying client gains at
    most what was not persisted yet. A hang-up that waited in the client while the server was
    down is billed to the click, not to its arrival after the restart.
    """
    ack = min(max(ack_ms, stored_seen_ms), now_ms)
    return min(now_ms, ack + since_ack_ms, ack + interval_ms)
