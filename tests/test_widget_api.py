"""The widget's JSON API (``callme.web.widget_api``) through Flask's test client: the expert's
status, call creation and its refusals, call state by token; errors outside any route."""
import base64
import hashlib
import hmac
import re

import pytest

from callme.extensions import db
from callme.models import Call, LedgerEntry

from .conftest import API, ORIGIN, assert_error, keep_alive, make_active, new_expert, order_through_api

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def seed(emulator):
    """Ray, online, in an app made by ``make_app`` (``make_expert`` serves the default app)."""
    return new_expert(emulator, "ray", online=True)


@pytest.fixture
def pay(emulator):
    """The ``payment`` of a paid call's body: an order made through the API and approved."""
    def make(client, handle="ray", amount=150, currency="USD", remote="127.0.0.1"):
        return {"order_id": order_through_api(client, emulator, handle, amount, currency, remote=remote)}
    return make


def body(expert="ray", amount=150, currency="USD", origin=ORIGIN, **extra):
    return {"expert": expert, "kind": "instant", "price": {"amount": amount, "currency": currency},
            "origin": origin, **extra}


def calls_in_db():
    db.session.expire_all()
    return db.session.scalar(db.select(db.func.count()).select_from(Call))


# ---- GET /experts/<handle>/status -----------------------------------------------------

def test_status_of_unknown_expert(client):
    data = assert_error(client.get(f"{API}/experts/nobody/status"), 404, "expert_not_found")
    assert "nobody" in data["message"]


@pytest.mark.parametrize("online, open_call, status", [
    (False, False, "offline"),
    (True, False, "online"),
    (True, True, "busy"),
    (False, True, "offline"),  # an expert who went offline mid-call is offline to new visitors
])
def test_status(client, make_expert, make_call, service, online, open_call, status):
    expert = make_expert(handle="ray", price=250, currency="EUR", free_seconds=30, cap_minutes=20, online=online)
    if open_call:
        make_call(expert)
    r = client.get(f"{API}/experts/ray/status")
    assert r.status_code == 200
    assert r.get_json() == {
        "handle": "ray", "display_name": "Ray", "status": status,
        "price": {"amount": 250, "currency": "EUR"}, "free_seconds": 30, "cap_minutes": 20,
        "rating": None, "rating_count": 0, "next_available": None,
    }
    assert r.headers["Cache-Control"] == "public, max-age=5"
    assert "Origin" in r.headers.get("Vary", "")
    assert "Access-Control-Allow-Origin" not in r.headers


def test_status_follows_presence(client, make_expert, service):
    expert = make_expert(handle="ray")
    assert client.get(f"{API}/experts/ray/status").get_json()["status"] == "offline"
    service.set_presence(expert.id, True)
    assert client.get(f"{API}/experts/ray/status").get_json()["status"] == "online"
    service.set_presence(expert.id, False)
    assert client.get(f"{API}/experts/ray/status").get_json()["status"] == "offline"


@pytest.mark.parametrize("origin", [ORIGIN, "https://second.example", "http://localhost"])
def test_status_cors_for_allowed_origins(client, make_expert, origin):
    make_expert(handle="ray", origins=(ORIGIN, "https://second.example/"))
    r = client.get(f"{API}/experts/ray/status", headers={"Origin": origin})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert r.headers["Access-Control-Allow-Origin"] != "*"
    assert "Origin" in r.headers["Vary"]


@pytest.mark.parametrize("origin", [
    "https://evil.example",
    "http://ray.example",             # another scheme
    "https://ray.example:8443",       # another port
    "https://sub.ray.example",        # a subdomain
    "https://ray.example.evil.com",   # a prefix match
    "null",                           # a sandboxed frame
    "HTTPS://RAY.EXAMPLE",
])
def test_status_refuses_other_origins(client, make_expert, origin):
    make_expert(handle="ray")
    r = client.get(f"{API}/experts/ray/status", headers={"Origin": origin})
    assert_error(r, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in r.headers


# ---- POST /calls: success -------------------------------------------------------------

def test_create_call(client, make_expert, clock, app, pay):
    expert = make_expert(handle="ray", online=True)
    r = client.post(f"{API}/calls", json=body(payment=pay(client)), headers={"Origin": ORIGIN})
    assert r.status_code == 201
    data = r.get_json()
    assert set(data) == {"call_id", "role", "token", "expires_in", "ws_url", "ice_servers", "terms"}
    call_id = data["call_id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,32}", call_id)
    assert data["role"] == "visitor"
    assert data["expires_in"] == 120
    assert data["ws_url"] == f"ws://localhost/ws/calls/{call_id}"
    assert data["ice_servers"] == []
    assert data["terms"] == {"price": 150, "currency": "USD", "free_seconds": 60, "cap_minutes": 60}
    grant = app.extensions["callme.calls"].tokens.check_call_token(data["token"], 120, call_id=call_id)
    assert grant.role == "visitor"
    call = db.session.get(Call, call_id)
    assert (call.expert_id, call.state, call.kind, call.origin, call.price_minor, call.currency) == (
        expert.id, "created", "instant", ORIGIN, 150, "USD")
    assert call.created_ms == clock.now


def test_create_call_without_origin_and_kind_defaults(client, make_expert, pay):
    make_expert(handle="ray", online=True)
    r = client.post(f"{API}/calls", json={"expert": "ray", "price": {"amount": 150, "currency": "USD"},
                                          "payment": pay(client)})
    assert r.status_code == 201
    assert db.session.get(Call, r.get_json()["call_id"]).kind == "instant"


def test_create_call_on_https_public_url_hands_out_wss(make_app, emulator, pay):
    app = make_app(PUBLIC_URL="https://callme.example")
    seed(emulator)
    client = app.test_client()
    r = client.post(f"{API}/calls", json=body(payment=pay(client)), headers={"Origin": ORIGIN})
    assert r.status_code == 201
    assert r.get_json()["ws_url"] == f"wss://callme.example/ws/calls/{r.get_json()['call_id']}"


def test_create_call_with_stun_and_turn(make_app, clock, emulator, pay):
    app = make_app(STUN_URLS=["stun:stun.example:3478"], TURN_URLS=["turn:turn.example:3478?transport=udp",
                                                                     "turns:turn.example:5349"],
                   TURN_SECRET="coturn-shared-secret", TURN_TTL=600)
    seed(emulator)
    client = app.test_client()
    r = client.post(f"{API}/calls", json=body(payment=pay(client)))
    assert r.status_code == 201
    data = r.get_json()
    stun, turn = data["ice_servers"]
    assert stun == {"urls": ["stun:stun.example:3478"]}
    assert turn["urls"] == ["turn:turn.example:3478?transport=udp", "turns:turn.example:5349"]
    expiry = clock.now // 1000 + 600
    assert turn["username"] == f"{expiry}:{data['call_id']}-visitor"
    expected = base64.b64encode(hmac.new(b"coturn-shared-secret", turn["username"].encode(), hashlib.sha1).digest())
    assert turn["credential"] == expected.decode()


def test_turn_needs_a_secret(make_app, emulator, pay):
    app = make_app(TURN_URLS=["turn:turn.example:3478"], TURN_SECRET=None)
    seed(emulator)
    client = app.test_client()
    r = client.post(f"{API}/calls", json=body(payment=pay(client)))
    assert r.status_code == 201 and r.get_json()["ice_servers"] == []


# ---- POST /calls: refusals ------------------------------------------------------------

def test_unknown_expert(client):
    assert_error(client.post(f"{API}/calls", json=body(expert="nobody")), 404, "expert_not_found")
    assert calls_in_db() == 0


def test_offline_expert(client, make_expert):
    make_expert(handle="ray", online=False)
    data = assert_error(client.post(f"{API}/calls", json=body()), 409, "expert_offline")
    assert data["status"] == "offline"
    assert calls_in_db() == 0


def test_busy_expert(client, make_expert, make_call):
    expert = make_expert(handle="ray", online=True)
    open_call = make_call(expert)
    data = assert_error(client.post(f"{API}/calls", json=body()), 409, "expert_busy")
    assert data["status"] == "busy"
    assert db.session.scalars(db.select(Call.id)).all() == [open_call.id]


def test_expert_free_again_after_the_call_ended(client, make_expert, make_call, service, pay):
    expert = make_expert(handle="ray", online=True)
    first = make_call(expert)
    service.hangup(first.id, "visitor")
    assert client.post(f"{API}/calls", json=body(payment=pay(client))).status_code == 201
    assert calls_in_db() == 2


@pytest.mark.parametrize("amount, currency", [
    (149, "USD"),     # cheaper than the current price
    (151, "USD"),
    (0, "USD"),
    (150, "EUR"),     # same amount, another currency
    (15_000, "JPY"),
])
def test_stale_price(client, make_expert, amount, currency):
    make_expert(handle="ray", price=150, currency="USD", online=True)
    data = assert_error(client.post(f"{API}/calls", json=body(amount=amount, currency=currency)), 409,
                        "price_changed")
    assert data["price"] == {"amount": 150, "currency": "USD"}
    assert calls_in_db() == 0


def test_price_changed_after_it_was_shown(client, make_expert, pay):
    expert = make_expert(handle="ray", price=150, online=True)
    shown = client.get(f"{API}/experts/ray/status").get_json()["price"]
    old_hold = pay(client)
    expert.price_minor = 200
    db.session.commit()
    assert_error(client.post(f"{API}/calls", json=body(amount=shown["amount"], payment=old_hold)), 409,
                 "price_changed")
    # The hold made at the old price does not cover the new one.
    assert_error(client.post(f"{API}/calls", json=body(amount=200, payment=old_hold)), 402, "payment_insufficient")
    assert client.post(f"{API}/calls", json=body(amount=200, payment=pay(client, amount=200))).status_code == 201


@pytest.mark.parametrize("header, in_body", [
    ("https://evil.example", ORIGIN),     # the page's real origin
    (ORIGIN, "https://evil.example"),     # the origin the widget reports
    (None, "https://evil.example"),
    ("https://evil.example", None),
    ("http://ray.example", ORIGIN),
    (None, "javascript:alert(1)"),
    (None, "null"),
])
def test_origin_not_allowed(client, make_expert, header, in_body):
    make_expert(handle="ray", online=True)
    headers = {"Origin": header} if header else {}
    data = assert_error(client.post(f"{API}/calls", json=body(origin=in_body), headers=headers), 403,
                        "origin_not_allowed")
    refused = header if header not in (None, ORIGIN) else in_body
    assert refused in data["message"]
    assert calls_in_db() == 0


@pytest.mark.parametrize("kind", ["consultation", "appointment"])
def test_booked_kinds_need_a_booking(client, make_expert, kind):
    make_expert(handle="ray", online=True)
    data = assert_error(client.post(f"{API}/calls", json=body(kind=kind)), 409, "booking_required")
    assert kind in data["message"]
    assert calls_in_db() == 0


def test_rate_limit(make_app, emulator, pay):
    app = make_app(RATE_LIMIT_CALLS="2/60")
    # The limiter's own clock, fixed so that no window boundary falls inside the test.
    limiter = app.extensions["callme.limiter"]
    limiter.clock = lambda: 1_000.0
    expert = seed(emulator)
    client = app.test_client()
    holds = [pay(client, remote=f"10.0.1.{n}") for n in range(3)]  # orders have their own budget
    first = client.post(f"{API}/calls", json=body(payment=holds[0]))
    assert first.status_code == 201
    app.extensions["callme.calls"].hangup(first.get_json()["call_id"], "visitor")
    assert client.post(f"{API}/calls", json=body(expert="nobody")).status_code == 404  # counted too
    r = client.post(f"{API}/calls", json=body())
    data = assert_error(r, 429, "rate_limited")
    assert r.headers["Retry-After"] == "20"  # the window of 60 s ends at 1,020 s
    assert "20 seconds" in data["message"]
    assert calls_in_db() == 1
    # Another client address has its own budget.
    other = client.post(f"{API}/calls", json=body(payment=holds[1]), environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 201, other.get_json()
    # The next window admits the first address again.
    app.extensions["callme.calls"].hangup(other.get_json()["call_id"], "visitor")
    limiter.clock = lambda: 1_020.0
    assert client.post(f"{API}/calls", json=body(payment=holds[2])).status_code == 201
    assert db.session.scalars(db.select(Call.expert_id).distinct()).all() == [expert.id]


def test_ring_rate_limit_per_expert(make_app, emulator, pay):
    app = make_app(RATE_LIMIT_RINGS="1/60")
    app.extensions["callme.limiter"].clock = lambda: 30.0
    seed(emulator)
    client = app.test_client()
    first = client.post(f"{API}/calls", json=body(payment=pay(client)))
    app.extensions["callme.calls"].hangup(first.get_json()["call_id"], "visitor")
    r = client.post(f"{API}/calls", json=body(payment=pay(client)), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert_error(r, 429, "rate_limited")
    assert r.headers["Retry-After"] == "30"
    assert calls_in_db() == 1


BAD_BODIES = [
    # (id, raw body, content type, status, code, fields that must be named)
    ("text/plain", '{"expert":"ray"}', "text/plain", 400, "bad_request", None),
    ("form", "expert=ray", "application/x-www-form-urlencoded", 400, "bad_request", None),
    ("no content type", '{"expert":"ray"}', None, 400, "bad_request", None),
    ("invalid json", '{"expert": "ray",', "application/json", 400, "bad_json", None),
    ("empty body", "", "application/json", 400, "bad_json", None),
    ("json array", "[]", "application/json", 400, "bad_json", None),
    ("json string", '"ray"', "application/json", 400, "bad_json", None),
    ("json null", "null", "application/json", 400, "bad_json", None),
    ("missing fields", {}, None, 422, "invalid", {"expert", "price"}),
    ("missing price", {"expert": "ray"}, None, 422, "invalid", {"price"}),
    ("missing amount", body(price={"currency": "USD"}), None, 422, "invalid", {"price"}),
    ("expert not a string", body(expert=7), None, 422, "invalid", {"expert"}),
    ("price not an object", body(price=150), None, 422, "invalid", {"price"}),
    ("price null", body(price=None), None, 422, "invalid", {"price"}),
    ("amount as string", body(price={"amount": "150", "currency": "USD"}), None, 422, "invalid", {"price"}),
    ("amount as float", body(price={"amount": 150.0, "currency": "USD"}), None, 422, "invalid", {"price"}),
    ("amount fractional", body(price={"amount": 1.5, "currency": "USD"}), None, 422, "invalid", {"price"}),
    ("bool as amount", body(price={"amount": True, "currency": "USD"}), None, 422, "invalid", {"price"}),
    ("negative price", body(amount=-150), None, 422, "invalid", {"price"}),
    ("absurd price", body(amount=10 ** 12), None, 422, "invalid", {"price"}),
    ("lowercase currency", body(currency="usd"), None, 422, "invalid", {"price"}),
    ("short currency", body(currency="US"), None, 422, "invalid", {"price"}),
    ("currency number", body(currency=840), None, 422, "invalid", {"price"}),
    ("bad handle uppercase", body(expert="Ray"), None, 422, "invalid", {"expert"}),
    ("bad handle dash", body(expert="-ray"), None, 422, "invalid", {"expert"}),
    ("bad handle slash", body(expert="ray/../admin"), None, 422, "invalid", {"expert"}),
    ("bad handle empty", body(expert=""), None, 422, "invalid", {"expert"}),
    ("bad handle too long", body(expert="r" * 33), None, 422, "invalid", {"expert"}),
    ("unknown kind", body(kind="emergency"), None, 422, "invalid", {"kind"}),
    ("null kind", body(kind=None), None, 422, "invalid", {"kind"}),
    ("origin not a string", body(origin=["https://ray.example"]), None, 422, "invalid", {"origin"}),
    ("origin too long", body(origin="https://" + "r" * 300), None, 422, "invalid", {"origin"}),
    ("unknown field", body(paypal_order="X"), None, 422, "invalid", {"paypal_order"}),
    ("unknown price field", body(price={"amount": 150, "currency": "USD", "tax": 1}), None, 422, "invalid",
     {"price"}),
]


def _post_raw(client, raw, content_type):
    if isinstance(raw, dict):
        return client.post(f"{API}/calls", json=raw)
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(f"{API}/calls", data=raw, headers=headers)


@pytest.mark.parametrize("raw, content_type, status, code, fields", [r[1:] for r in BAD_BODIES],
                         ids=[r[0] for r in BAD_BODIES])
def test_bad_body(client, make_expert, raw, content_type, status, code, fields):
    make_expert(handle="ray", online=True)
    r = _post_raw(client, raw, content_type)
    data = assert_error(r, status, code)
    if fields:
        assert set(data["fields"]) == fields
        assert all(data["fields"][name] for name in fields)
    assert calls_in_db() == 0


@pytest.mark.parametrize("raw, content_type", [
    pytest.param(r[1], r[2], id=r[0])
    for r in BAD_BODIES if r[0] in ("text/plain", "invalid json", "json array", "missing fields", "bool as amount")
])
def test_error_shape_is_always_error_message_fields(client, make_expert, raw, content_type):
    """README: 'Errors are always {"error": code, "message": "...", "fields": {...}}'."""
    make_expert(handle="ray", online=True)
    data = _post_raw(client, raw, content_type).get_json()
    assert {"error", "message", "fields"} <= set(data)
    assert isinstance(data["error"], str) and isinstance(data["message"], str) and isinstance(data["fields"], dict)


def test_refusal_leaves_the_expert_callable(client, make_expert, pay):
    make_expert(handle="ray", online=True)
    hold = pay(client)
    for raw in (body(amount=-1), body(amount=1), body(origin="https://evil.example"), body(kind="appointment"),
                body(), body(payment={"order_id": "NOT-AN-ORDER"})):
        assert client.post(f"{API}/calls", json=raw).status_code >= 400
    assert client.get(f"{API}/experts/ray/status").get_json()["status"] == "online"
    assert client.post(f"{API}/calls", json=body(payment=hold)).status_code == 201


# ---- GET /calls/<id> ------------------------------------------------------------------

@pytest.fixture
def created(client, make_expert, pay):
    make_expert(handle="ray", online=True)
    r = client.post(f"{API}/calls", json=body(payment=pay(client)))
    assert r.status_code == 201
    return r.get_json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_call_state_needs_a_token(client, created):
    assert_error(client.get(f"{API}/calls/{created['call_id']}"), 401, "token_required")
    assert_error(client.get(f"{API}/calls/{created['call_id']}", headers=bearer("")), 401, "token_required")


@pytest.mark.parametrize("token", ["nonsense", "a.b.c", "x" * 2000])
def test_call_state_with_a_bad_token(client, created, token):
    assert_error(client.get(f"{API}/calls/{created['call_id']}", headers=bearer(token)), 401, "token_invalid")


def test_call_state_with_a_tampered_token(client, created):
    token = created["token"]
    bad = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    assert client.get(f"{API}/calls/{created['call_id']}", headers=bearer(bad)).status_code == 401


def test_call_state_with_a_token_of_another_call(client, created, make_expert, service, pay):
    service.hangup(created["call_id"], "visitor")
    make_expert(handle="ann", online=True)
    other = client.post(f"{API}/calls", json=body(expert="ann", payment=pay(client, "ann"))).get_json()
    r = client.get(f"{API}/calls/{created['call_id']}", headers=bearer(other["token"]))
    assert_error(r, 403, "token_wrong_call")
    receipt = service.tokens.receipt_token(other["call_id"])
    assert_error(client.get(f"{API}/calls/{created['call_id']}", query_string={"receipt": receipt}), 403,
                 "token_wrong_call")


def test_call_state_with_the_visitor_token(client, created):
    r = client.get(f"{API}/calls/{created['call_id']}", headers=bearer(created["token"]))
    assert r.status_code == 200
    assert r.get_json() == {
        "call_id": created["call_id"], "expert": "ray", "kind": "instant", "state": "created",
        "terms": {"price": 150, "currency": "USD", "free_seconds": 60, "cap_minutes": 60},
        "end_reason": None, "ended_by": None, "duration_ms": None, "minutes": None, "amount": None,
        "currency": "USD",
        "payment": {"state": "authorized", "amount": 9000, "captured": None, "capture_id": None, "currency": "USD"},
    }


def test_call_state_with_an_expert_token(client, created, service):
    token = service.tokens.call_token(created["call_id"], "expert")
    assert client.get(f"{API}/calls/{created['call_id']}", headers=bearer(token)).get_json()["state"] == "created"


def test_call_state_with_the_receipt_after_a_paid_call(client, created, service, clock):
    call_id = created["call_id"]
    make_active(service, call_id, db.session.get(Call, call_id).expert_id)
    keep_alive(service, clock, call_id, 61_000, step_ms=61_000)
    service.hangup(call_id, "expert")
    receipt = service.ended_frame(service.get(call_id))["receipt"]
    r = client.get(f"{API}/calls/{call_id}", query_string={"receipt": receipt})
    assert r.status_code == 200
    data = r.get_json()
    assert (data["state"], data["end_reason"], data["ended_by"], data["duration_ms"], data["minutes"],
            data["amount"], data["currency"]) == ("ended", "hangup", "expert", 61_000, 2, 300, "USD")
    captures = db.session.scalars(db.select(LedgerEntry).filter_by(kind="capture")).all()
    assert [(row.amount_minor, row.currency) for row in captures] == [(300, "USD")]
    assert data["payment"]["state"] == "captured" and data["payment"]["captured"] == 300
    assert data["payment"]["capture_id"] == captures[0].detail["capture_id"]


def test_receipt_and_call_tokens_are_not_interchangeable(client, created, service):
    call_id = created["call_id"]
    receipt = service.tokens.receipt_token(call_id)
    assert_error(client.get(f"{API}/calls/{call_id}", headers=bearer(receipt)), 401, "token_invalid")
    assert_error(client.get(f"{API}/calls/{call_id}", query_string={"receipt": created["token"]}), 401,
                 "token_invalid")


def test_call_state_of_a_missing_call_with_a_valid_token(client, service):
    token = service.tokens.call_token("doesnotexist", "visitor")
    assert_error(client.get(f"{API}/calls/doesnotexist", headers=bearer(token)), 404, "call_not_found")


# ---- errors outside any route ----------------------------------------------------------

def test_unknown_api_path_answers_json(client):
    r = client.get(f"{API}/nothing-here")
    assert_error(r, 404, "not_found")


def test_wrong_method_answers_json(client):
    r = client.put(f"{API}/calls")
    assert_error(r, 405, "method_not_allowed")
