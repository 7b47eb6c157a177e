"""Signaling frames: every bad input is a row with the exact error code; every valid frame parses."""
import json

import pytest

from callme.calls.frames import CALL_FRAMES, CONSOLE_FRAMES, PC_STATES, Frame, FrameError, build, error, parse

MAX = 64 * 1024


def frame(**obj):
    return json.dumps(obj)


def code_of(raw, spec=CALL_FRAMES, max_bytes=MAX):
    with pytest.raises(FrameError) as e:
        parse(raw, spec, max_bytes)
    assert e.value.message and str(e.value) == e.value.message
    return e.value.code


# ---- shape of the frame ---------------------------------------------------------------

SHAPE = [
    ("binary", b'{"type":"heartbeat"}', "bad_frame"),
    ("binary bytearray", bytearray(b'{"type":"heartbeat"}'), "bad_frame"),
    ("empty", "", "bad_json"),
    ("not json", "hello", "bad_json"),
    ("truncated json", '{"type":"heartbeat"', "bad_json"),
    ("single quotes", "{'type':'heartbeat'}", "bad_json"),
    ("json array", '[{"type":"heartbeat"}]', "bad_frame"),
    ("json string", '"heartbeat"', "bad_frame"),
    ("json number", "42", "bad_frame"),
    ("json null", "null", "bad_frame"),
    ("json true", "true", "bad_frame"),
    ("NaN", "NaN", "bad_frame"),
    ("empty object", "{}", "unknown_type"),
    ("missing type", frame(sdp="v=0"), "unknown_type"),
    ("null type", frame(type=None), "unknown_type"),
    ("number type", frame(type=1), "unknown_type"),
    ("list type", frame(type=["heartbeat"]), "unknown_type"),
    ("object type", frame(type={"heartbeat": 1}), "unknown_type"),
    ("unknown type", frame(type="dance"), "unknown_type"),
    ("type in other case", frame(type="Heartbeat"), "unknown_type"),
    ("type with space", frame(type="heartbeat "), "unknown_type"),
    ("console type on the call socket", frame(type="accept", call_id="abc"), "unknown_type"),
    ("server type from a client", frame(type="welcome"), "unknown_type"),
    ("error type from a client", frame(type="error", code="x", message="y"), "unknown_type"),
    ("oversized", frame(type="offer", sdp="v" * MAX), "frame_too_large"),
    ("oversized by one", '{"type":"heartbeat"}' + " " * (MAX - 19), "frame_too_large"),
    ("oversized garbage", "x" * (MAX + 1), "frame_too_large"),
]


@pytest.mark.parametrize("raw, code", [r[1:] for r in SHAPE], ids=[r[0] for r in SHAPE])
def test_bad_shape(raw, code):
    assert code_of(raw) == code


def test_deep_nesting_is_bad_json_not_a_crash():
    raw = '{"type":"heartbeat","x":' + "[" * 100_000 + "]" * 100_000 + "}"
    assert code_of(raw, max_bytes=10 ** 6) == "bad_json"


def test_size_limit_is_inclusive():
    raw = '{"type":"heartbeat"}'
    assert parse(raw, CALL_FRAMES, len(raw)) == Frame("heartbeat", {})
    assert code_of(raw, max_bytes=len(raw) - 1) == "frame_too_large"


def test_size_limit_counts_bytes_not_characters():
    # 40,000 two-byte characters: 80 KB on the wire, over the 64 KiB limit, but only 40,000 characters.
    raw = json.dumps({"type": "offer", "sdp": "é" * 40_000}, ensure_ascii=False)  # as browsers send it
    assert len(raw.encode()) > MAX > len(raw)
    assert code_of(raw) == "frame_too_large"


# ---- fields of every call frame -------------------------------------------------------

CALL_BAD = [
    # hello
    ("hello without token", frame(type="hello"), "bad_frame"),
    ("hello null token", frame(type="hello", token=None), "bad_frame"),
    ("hello empty token", frame(type="hello", token=""), "bad_frame"),
    ("hello number token", frame(type="hello", token=123), "bad_frame"),
    ("hello list token", frame(type="hello", token=["t"]), "bad_frame"),
    ("hello bool token", frame(type="hello", token=True), "bad_frame"),
    ("hello token too long", frame(type="hello", token="t" * 1025), "bad_frame"),
    ("hello extra field", frame(type="hello", token="t", role="expert"), "bad_frame"),
    # offer / answer
    ("offer without sdp", frame(type="offer"), "bad_frame"),
    ("offer empty sdp", frame(type="offer", sdp=""), "bad_frame"),
    ("offer object sdp", frame(type="offer", sdp={"type": "offer", "sdp": "v=0"}), "bad_frame"),
    ("offer sdp too long", frame(type="offer", sdp="v" * 60_001), "bad_frame"),
    ("offer extra field", frame(type="offer", sdp="v=0", to="expert"), "bad_frame"),
    ("answer without sdp", frame(type="answer"), "bad_frame"),
    ("answer null sdp", frame(type="answer", sdp=None), "bad_frame"),
    ("answer number sdp", frame(type="answer", sdp=0), "bad_frame"),
    ("answer extra field", frame(type="answer", sdp="v=0", sdpType="answer"), "bad_frame"),
    # candidate
    ("candidate without candidate", frame(type="candidate", sdpMid="0"), "bad_frame"),
    ("candidate null candidate", frame(type="candidate", candidate=None), "bad_frame"),
    ("candidate object candidate", frame(type="candidate", candidate={"candidate": "c"}), "bad_frame"),
    ("candidate too long", frame(type="candidate", candidate="c" * 2049), "bad_frame"),
    ("candidate number sdpMid", frame(type="candidate", candidate="c", sdpMid=0), "bad_frame"),
    ("candidate sdpMid too long", frame(type="candidate", candidate="c", sdpMid="m" * 65), "bad_frame"),
    ("candidate string index", frame(type="candidate", candidate="c", sdpMLineIndex="0"), "bad_frame"),
    ("candidate bool index", frame(type="candidate", candidate="c", sdpMLineIndex=True), "bad_frame"),
    ("candidate false index", frame(type="candidate", candidate="c", sdpMLineIndex=False), "bad_frame"),
    ("candidate float index", frame(type="candidate", candidate="c", sdpMLineIndex=1.0), "bad_frame"),
    ("candidate negative index", frame(type="candidate", candidate="c", sdpMLineIndex=-1), "bad_frame"),
    ("candidate index too big", frame(type="candidate", candidate="c", sdpMLineIndex=65), "bad_frame"),
    ("candidate huge index", frame(type="candidate", candidate="c", sdpMLineIndex=10 ** 30), "bad_frame"),
    ("candidate number ufrag", frame(type="candidate", candidate="c", usernameFragment=1), "bad_frame"),
    ("candidate ufrag too long", frame(type="candidate", candidate="c", usernameFragment="u" * 257),
     "bad_frame"),
    ("candidate extra field", frame(type="candidate", candidate="c", foundation="1"), "bad_frame"),
    # state
    ("state without connection", frame(type="state"), "bad_frame"),
    ("state null connection", frame(type="state", connection=None), "bad_frame"),
    ("state unknown connection", frame(type="state", connection="online"), "bad_frame"),
    ("state upper-case connection", frame(type="state", connection="CONNECTED"), "bad_frame"),
    ("state number connection", frame(type="state", connection=1), "bad_frame"),
    ("state list connection", frame(type="state", connection=["connected"]), "bad_frame"),
    ("state extra field", frame(type="state", connection="connected", ice="connected"), "bad_frame"),
    # heartbeat / hangup
    ("heartbeat extra field", frame(type="heartbeat", t=1), "bad_frame"),
    ("heartbeat null extra", frame(type="heartbeat", seq=None), "bad_frame"),
    ("hangup extra field", frame(type="hangup", reason="bye"), "bad_frame"),
    # hangup with the offset since its last ack (defect 14): integers, bounded, both or neither
    ("hangup string ack_ms", frame(type="hangup", ack_ms="1700000000000", since_ack_ms=5), "bad_frame"),
    ("hangup float ack_ms", frame(type="hangup", ack_ms=1.7e12, since_ack_ms=5), "bad_frame"),
    ("hangup bool ack_ms", frame(type="hangup", ack_ms=True, since_ack_ms=5), "bad_frame"),
    ("hangup negative ack_ms", frame(type="hangup", ack_ms=-1, since_ack_ms=5), "bad_frame"),
    ("hangup huge ack_ms", frame(type="hangup", ack_ms=10 ** 16, since_ack_ms=5), "bad_frame"),
    ("hangup null ack_ms", frame(type="hangup", ack_ms=None, since_ack_ms=5), "bad_frame"),
    ("hangup negative since_ack_ms", frame(type="hangup", ack_ms=1_700_000_000_000, since_ack_ms=-1),
     "bad_frame"),
    ("hangup float since_ack_ms", frame(type="hangup", ack_ms=1_700_000_000_000, since_ack_ms=0.5),
     "bad_frame"),
    ("hangup huge since_ack_ms", frame(type="hangup", ack_ms=1_700_000_000_000, since_ack_ms=10 ** 12),
     "bad_frame"),
    ("hangup ack_ms alone", frame(type="hangup", ack_ms=1_700_000_000_000), "bad_frame"),
    ("hangup since_ack_ms alone", frame(type="hangup", since_ack_ms=5), "bad_frame"),
]


@pytest.mark.parametrize("raw, code", [r[1:] for r in CALL_BAD], ids=[r[0] for r in CALL_BAD])
def test_bad_call_frames(raw, code):
    assert code_of(raw, CALL_FRAMES) == code


def test_every_call_frame_type_has_a_bad_row():
    assert {r[0].split()[0] for r in CALL_BAD} == set(CALL_FRAMES)


CALL_OK = [
    (frame(type="hello", token="abc.def.ghi"), Frame("hello", {"token": "abc.def.ghi"})),
    (frame(type="hello", token="t" * 1024), Frame("hello", {"token": "t" * 1024})),
    (frame(type="offer", sdp="v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"),
     Frame("offer", {"sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"})),
    (frame(type="offer", sdp="v" * 60_000), Frame("offer", {"sdp": "v" * 60_000})),
    (frame(type="answer", sdp="v=0"), Frame("answer", {"sdp": "v=0"})),
    (frame(type="candidate", candidate="candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
           sdpMid="0", sdpMLineIndex=0, usernameFragment="abcd"),
     Frame("candidate", {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
                         "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"})),
    # End of candidates: an empty candidate, nulls for the optional fields.
    (frame(type="candidate", candidate="", sdpMid=None, sdpMLineIndex=None, usernameFragment=None),
     Frame("candidate", {"candidate": "", "sdpMid": None, "sdpMLineIndex": None, "usernameFragment": None})),
    (frame(type="candidate", candidate="c", sdpMid="", sdpMLineIndex=64),
     Frame("candidate", {"candidate": "c", "sdpMid": "", "sdpMLineIndex": 64})),
    (frame(type="candidate", candidate="c"), Frame("candidate", {"candidate": "c"})),
    *[(frame(type="state", connection=s), Frame("state", {"connection": s})) for s in PC_STATES],
    (frame(type="heartbeat"), Frame("heartbeat", {})),
    (frame(type="hangup"), Frame("hangup", {})),
    (frame(type="hangup", ack_ms=1_700_000_000_000, since_ack_ms=1_200),
     Frame("hangup", {"ack_ms": 1_700_000_000_000, "since_ack_ms": 1_200})),
    (frame(type="hangup", ack_ms=0, since_ack_ms=0), Frame("hangup", {"ack_ms": 0, "since_ack_ms": 0})),
    ('  {"type" : "heartbeat"}\n', Frame("heartbeat", {})),
]


@pytest.mark.parametrize("raw, expected", CALL_OK)
def test_valid_call_frames(raw, expected):
    assert parse(raw, CALL_FRAMES, MAX) == expected


def test_every_call_frame_type_has_a_valid_row():
    assert {expected.type for _, expected in CALL_OK} == set(CALL_FRAMES)


# ---- console frames -------------------------------------------------------------------

CONSOLE_BAD = [
    ("presence without status", frame(type="presence"), "bad_frame"),
    ("presence unknown status", frame(type="presence", status="away"), "bad_frame"),
    ("presence busy status", frame(type="presence", status="busy"), "bad_frame"),
    ("presence bool status", frame(type="presence", status=True), "bad_frame"),
    ("presence null status", frame(type="presence", status=None), "bad_frame"),
    ("presence extra field", frame(type="presence", status="online", until=5), "bad_frame"),
    ("accept without call_id", frame(type="accept"), "bad_frame"),
    ("accept empty call_id", frame(type="accept", call_id=""), "bad_frame"),
    ("accept number call_id", frame(type="accept", call_id=12), "bad_frame"),
    ("accept call_id too long", frame(type="accept", call_id="c" * 33), "bad_frame"),
    ("accept extra field", frame(type="accept", call_id="abc", price=0), "bad_frame"),
    ("decline without call_id", frame(type="decline"), "bad_frame"),
    ("decline null call_id", frame(type="decline", call_id=None), "bad_frame"),
    ("decline list call_id", frame(type="decline", call_id=["abc"]), "bad_frame"),
    ("decline extra field", frame(type="decline", call_id="abc", reason="busy"), "bad_frame"),
    ("heartbeat extra field", frame(type="heartbeat", status="online"), "bad_frame"),
    ("hello is not a console frame", frame(type="hello", token="t"), "unknown_type"),
    ("hangup is not a console frame", frame(type="hangup"), "unknown_type"),
    ("offer is not a console frame", frame(type="offer", sdp="v=0"), "unknown_type"),
    ("ring is not a console frame", frame(type="ring", call_id="abc"), "unknown_type"),
    ("binary", b'{"type":"heartbeat"}', "bad_frame"),
    ("not json", "{", "bad_json"),
    ("json array", "[]", "bad_frame"),
    ("oversized", frame(type="accept", call_id="c" * MAX), "frame_too_large"),
]


@pytest.mark.parametrize("raw, code", [r[1:] for r in CONSOLE_BAD], ids=[r[0] for r in CONSOLE_BAD])
def test_bad_console_frames(raw, code):
    assert code_of(raw, CONSOLE_FRAMES) == code


def test_every_console_frame_type_has_a_bad_row():
    assert set(CONSOLE_FRAMES) <= {r[0].split()[0] for r in CONSOLE_BAD}


CONSOLE_OK = [
    (frame(type="presence", status="online"), Frame("presence", {"status": "online"})),
    (frame(type="presence", status="offline"), Frame("presence", {"status": "offline"})),
    (frame(type="accept", call_id="AbC-123_xyz"), Frame("accept", {"call_id": "AbC-123_xyz"})),
    (frame(type="accept", call_id="c" * 32), Frame("accept", {"call_id": "c" * 32})),
    (frame(type="decline", call_id="abc"), Frame("decline", {"call_id": "abc"})),
    (frame(type="heartbeat"), Frame("heartbeat", {})),
]


@pytest.mark.parametrize("raw, expected", CONSOLE_OK)
def test_valid_console_frames(raw, expected):
    assert parse(raw, CONSOLE_FRAMES, MAX) == expected


def test_every_console_frame_type_has_a_valid_row():
    assert {expected.type for _, expected in CONSOLE_OK} == set(CONSOLE_FRAMES)


def test_parse_does_not_hand_back_fields_it_did_not_check():
    parsed = parse(frame(type="candidate", candidate="c", sdpMid="0"), CALL_FRAMES, MAX)
    assert parsed.data == {"candidate": "c", "sdpMid": "0"} and "type" not in parsed.data


# ---- building server frames -----------------------------------------------------------

@pytest.mark.parametrize("kind, data, expected", [
    ("welcome", {"call_id": "abc", "role": "visitor"}, '{"type":"welcome","call_id":"abc","role":"visitor"}'),
    ("heartbeat", {}, '{"type":"heartbeat"}'),
    ("peer", {"present": True}, '{"type":"peer","present":true}'),
    ("meter", {"amount": 150, "free_left_ms": 0}, '{"type":"meter","amount":150,"free_left_ms":0}'),
    ("ended", {"reason": "hangup", "by": None}, '{"type":"ended","reason":"hangup","by":null}'),
    ("ring", {"origin": "https://ray.example/é"}, '{"type":"ring","origin":"https://ray.example/\\u00e9"}'),
    ("ack", {"seen_ms": 1_700_000_000_000}, '{"type":"ack","seen_ms":1700000000000}'),
])
def test_build(kind, data, expected):
    built = build(kind, **data)
    assert built == expected
    assert json.loads(built) == {"type": kind, **data}


@pytest.mark.parametrize("code, message, ref, expected", [
    ("bad_frame", "Nope.", None, {"type": "error", "code": "bad_frame", "message": "Nope."}),
    ("bad_frame", "Nope.", "", {"type": "error", "code": "bad_frame", "message": "Nope."}),
    ("token_expired", "Old.", "r-1", {"type": "error", "code": "token_expired", "message": "Old.", "ref": "r-1"}),
])
def test_error(code, message, ref, expected):
    assert json.loads(error(code, message, ref)) == expected


def test_built_frames_are_not_accepted_back_as_client_frames():
    """The server's own frames, echoed by a confused client, are refused, not acted on."""
    for raw in (build("welcome", call_id="abc"), error("bad_frame", "x"), build("ended", reason="hangup")):
        assert code_of(raw) == "unknown_type"


def test_server_frames_carry_the_documented_fields():
    """The frames the README lists, as the lifecycle and the clock publish them."""
    from types import SimpleNamespace

    from callme.calls import frames
    from callme.calls.metering import Terms

    call = SimpleNamespace(id="abc", state="ringing", price_minor=150, currency="USD", free_seconds=60,
                           cap_minutes=60, kind="instant", origin=None, rung_ms=1_000, end_reason="hangup",
                           ended_by="visitor", billed_ms=61_000, billed_minutes=2, amount_minor=300)
    assert frames.welcome(call, "visitor", "t", 120, 5_000) == {
        "type": "welcome", "call_id": "abc", "role": "visitor", "state": "ringing",
        "terms": {"price": 150, "currency": "USD", "free_seconds": 60, "cap_minutes": 60},
        "token": "t", "expires_in": 120, "heartbeat_ms": 5_000}
    assert frames.token("t", 120) == {"type": "token", "token": "t", "expires_in": 120}
    assert frames.ack(1_700_000_000_000) == {"type": "ack", "seen_ms": 1_700_000_000_000}
    assert frames.ring(call, 11_000, 30)["timeout_ms"] == 20_000
    assert frames.ring(call, 40_000, 30)["timeout_ms"] == 0
    assert set(frames.ended(call, "r")) == {"type", "call_id", "reason", "by", "duration_ms", "minutes", "amount",
                                            "currency", "receipt"}
    terms = Terms(150, "USD", 60, 60)
    assert frames.active(terms, 5)["started_ms"] == 5 and frames.metered(terms, 0, 61_000)["amount"] == 300
    assert frames.cap_warning(30, 3)["seconds_left"] == 30
