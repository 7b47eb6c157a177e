"""Signaling frames: JSON objects with a ``type``, parsed and built by pure functions.

The socket handlers only receive, dispatch and send; every rule about what a frame may
hold lives here.
"""
import json
from dataclasses import dataclass, field

PC_STATES = ("new", "connecting", "connected", "disconnected", "failed", "closed")


class FrameError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


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
    "hangup": {},
}

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
    return Frame(kind, data)


def build(kind, **data):
    """Serialise a server frame."""
    return json.dumps({"type": kind, **data}, separators=(",", ":"))


def error(code, message, ref=None):
    payload = {"code": code, "message": message}
    if ref:
        payload["ref"] = ref
    return build("error", **payload)
