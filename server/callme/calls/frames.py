"""Signaling frames: JSON objects with a ``type``, parsed and built by pure functions.

The socket handlers only receive, dispatch and send; every rule about what a frame may
hold, and in which order the relayed ones may come, lives here.
"""
import json
from dataclasses import dataclass, field

from ..errors import CallmeError
from .metering import Terms, meter

PC_STATES = ("new", "connecting", "connected", "disconnected", "failed", "closed")
# A hang-up's offset since its last ack: at most a day (a longer one bills the same, see lifecycle).
MAX_SINCE_ACK_MS = 24 * 3600 * 1000
MAX_MS = 10 ** 13  # milliseconds since the epoch, up to the year 2286


class FrameError(CallmeError):
    """A frame refused: answered with an ``error`` frame (400 where HTTP would answer)."""

    def __init__(self, code, message):
        super().__init__(code, message, status=400)


@dataclass(frozen=True)
class Frame:
    type: str
    data: dict = field(default_factory=dict)


def _str(max_len, *, optional=False, allow_empty=False):
    def check(name, value):
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise FrameError("bad_frame", f"'{name}' must be a string.")
        if len(value) > max_len:
            raise FrameError("bad_frame", f"'{name}' is longer than {max_len} characters.")
        if not value and not allow_empty:
            raise FrameError("bad_frame", f"'{name}' must not be empty.")
        return value
    return check


def _int(lo, hi, *, optional=False):
    def check(name, value):
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise FrameError("bad_frame", f"'{name}' must be an integer from {lo} to {hi}.")
        return value
    return check


def _choice(*options):
    def check(name, value):
        if value not in options:
            raise FrameError("bad_frame", f"'{name}' must be one of {', '.join(options)}.")
        return value
    return check


SDP = _str(60_000)
CALL_ID = _str(32)

# Frames a call participant may send: type -> {field: (checker, required)}.
CALL_FRAMES = {
    "hello": {"token": (_str(1024), True)},
    "offer": {"sdp": (SDP, True)},
    "answer": {"sdp": (SDP, True)},
    "candidate": {
        "candidate": (_str(2048, allow_empty=True), True),
        "sdpMid": (_str(64, optional=True, allow_empty=True), False),
        "sdpMLineIndex": (_int(0, 64, optional=True), False),
        "usernameFragment": (_str(256, optional=True, allow_empty=True), False),
    },
    "state": {"connection": (_choice(*PC_STATES), True)},
    "heartbeat": {},
    # ack_ms: the seen_ms of the last ack the client got; since_ack_ms: its monotonic time from
    # that ack to the hang-up. Both or neither.
    "hangup": {"ack_ms": (_int(0, MAX_MS), False), "since_ack_ms": (_int(0, MAX_SINCE_ACK_MS), False)},
}
TOGETHER = {"hangup": ("ack_ms", "since_ack_ms")}

# Frames the expert console may send.
CONSOLE_FRAMES = {
    "presence": {"status": (_choice("online", "offline"), True)},
    "accept": {"call_id": (CALL_ID, True)},
    "decline": {"call_id": (CALL_ID, True)},
    "heartbeat": {},
}

RELAYED = ("offer", "answer", "candidate")


def parse(raw, spec, max_bytes):
    """Parse one text frame against ``spec``; raise FrameError for anything else."""
    if isinstance(raw, (bytes, bytearray)):
        raise FrameError("bad_frame", "Frames must be text, not binary.")
    if len(raw) > max_bytes or len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
        raise FrameError("frame_too_large", f"Frames may be at most {max_bytes} bytes.")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError("bad_json", "The frame is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise FrameError("bad_frame", "A frame must be a JSON object.")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in spec:
        raise FrameError("unknown_type", f"Unknown frame type {kind!r}." if isinstance(kind, str)
                         else "A frame needs a string 'type'.")
    fields = spec[kind]
    unknown = set(obj) - set(fields) - {"type"}
    if unknown:
        raise FrameError("bad_frame", f"Unexpected field(s) in '{kind}': {', '.join(sorted(unknown))}.")
    data = {}
    for name, (check, required) in fields.items():
        if name not in obj:
            if required:
                raise FrameError("bad_frame", f"'{kind}' needs '{name}'.")
            continue
        data[name] = check(name, obj[name])
    together = TOGETHER.get(kind, ())
    if together and 0 < sum(name in data for name in together) < len(together):
        raise FrameError("bad_frame", f"'{kind}' needs {' and '.join(together)} together, or neither.")
    return Frame(kind, data)


def check_order(kind, role, offered_by):
    """Refuse a relayed frame out of the documented order: an ``answer`` answers the other
    participant's ``offer``, a ``candidate`` follows an offer. ``offered_by``: who made this
    call's latest offer (None: nobody yet). A new offer (a renegotiation) is always in turn."""
    if kind == "answer" and (offered_by is None or offered_by == role):
        raise FrameError("out_of_turn", "An answer needs the other participant's offer first.")
    if kind == "candidate" and offered_by is None:
        raise FrameError("out_of_turn", "Candidates follow an offer.")


def build(kind, **data):
    """Serialise a server frame."""
    return json.dumps({"type": kind, **data}, separators=(",", ":"))


def error(code, message, ref=None):
    payload = {"code": code, "message": message}
    if ref:
        payload["ref"] = ref
    return build("error", **payload)


# ---- server frames, as bus messages (dicts): the sockets serialise them -----------------------

def welcome(call, role, token, expires_in, heartbeat_ms):
    """The first server frame on a call socket: who you are, the call's state and terms."""
    return {"type": "welcome", "call_id": call.id, "role": role, "state": call.state,
            "terms": Terms.of(call).as_json(), "token": token, "expires_in": expires_in,
            "heartbeat_ms": heartbeat_ms}


def token(value, expires_in):
    """A fresh call token, handed out before the current one expires."""
    return {"type": "token", "token": value, "expires_in": expires_in}


def ack(seen_ms):
    """The answer to a heartbeat or state frame: the time recorded as that side's last heartbeat."""
    return {"type": "ack", "seen_ms": seen_ms}


def ring(call, now, ring_timeout_s):
    return {
        "type": "ring", "call_id": call.id, "kind": call.kind, "origin": call.origin,
        "price": call.price_minor, "currency": call.currency, "free_seconds": call.free_seconds,
        "timeout_ms": max(0, call.rung_ms + ring_timeout_s * 1000 - now),
    }


def ended(call, receipt, rating=None):
    """The end of a call; ``rating`` (a rating link's token) only for a call with an amount due."""
    frame = {
        "type": "ended", "call_id": call.id, "reason": call.end_reason, "by": call.ended_by,
        "duration_ms": call.billed_ms, "minutes": call.billed_minutes, "amount": call.amount_minor,
        "currency": call.currency, "receipt": receipt,
    }
    if rating:
        frame["rating"] = rating
    return frame


def active(terms, started_ms):
    return {"type": "active", "started_ms": started_ms, **meter(terms, started_ms, started_ms)}


def metered(terms, active_ms, now):
    return {"type": "meter", **meter(terms, active_ms, now)}


def cap_warning(seconds, cap_minutes):
    return {"type": "warning", "code": "cap", "seconds_left": seconds,
            "message": f"The call ends in {seconds} seconds (the cap of {cap_minutes} minutes)."}


def presence(status):
    return {"type": "presence", "status": status}
