"""The expert's session API (``callme.web.account``): log in, who am I, log out; every bad body and
wrong password refused alike. Sessions ending and login timing: test_security.py."""
import pytest

from .conftest import API, ORIGIN, assert_error, new_expert

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


# ---- the expert session ---------------------------------------------------------------

@pytest.fixture
def ray(make_expert):
    return make_expert(handle="ray", password="correct horse battery")


def test_login_sets_an_httponly_samesite_cookie(client, ray):
    r = client.post(f"{API}/session", json={"email": "RAY@example.com", "password": "correct horse battery"})
    assert r.status_code == 200
    assert r.get_json() == {
        "id": ray.id, "handle": "ray", "display_name": "Ray", "email": "ray@example.com",
        "price": {"amount": 150, "currency": "USD"}, "free_seconds": 60, "cap_minutes": 60,
        "allowed_origins": [ORIGIN],
    }
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "password" not in r.get_data(as_text=True)
    me = client.get(f"{API}/session")
    assert me.status_code == 200 and me.get_json()["handle"] == "ray"


@pytest.mark.parametrize("email, password", [
    ("ray@example.com", "wrong password"),
    ("ray@example.com", "Correct horse battery"),
    ("nobody@example.com", "correct horse battery"),
])
def test_login_with_wrong_credentials(client, ray, email, password):
    r = client.post(f"{API}/session", json={"email": email, "password": password})
    data = assert_error(r, 401, "bad_credentials")
    # The same answer whether the email exists or not.
    assert data["message"] == "The email or password is wrong."
    assert "Set-Cookie" not in r.headers
    assert client.get(f"{API}/session").status_code == 401


@pytest.mark.parametrize("raw, content_type, status, fields", [
    ("email=ray@example.com&password=x", "application/x-www-form-urlencoded", 400, None),
    ("{not json", "application/json", 400, None),
    ("[]", "application/json", 400, None),
    ({}, None, 422, {"email", "password"}),
    ({"email": "ray@example.com"}, None, 422, {"password"}),
    ({"email": "not-an-email", "password": "x"}, None, 422, {"email"}),
    ({"email": 5, "password": "x"}, None, 422, {"email"}),
    ({"email": "ray@example.com", "password": ""}, None, 422, {"password"}),
    ({"email": "ray@example.com", "password": 12345678}, None, 422, {"password"}),
    ({"email": "ray@example.com", "password": "p" * 257}, None, 422, {"password"}),
    ({"email": "ray@example.com", "password": "x", "remember": True}, None, 422, {"remember"}),
])
def test_login_bad_body(client, ray, raw, content_type, status, fields):
    if isinstance(raw, dict):
        r = client.post(f"{API}/session", json=raw)
    else:
        r = client.post(f"{API}/session", data=raw, headers={"Content-Type": content_type})
    data = assert_error(r, status, "invalid" if status == 422 else ("bad_json" if "json" in content_type
                                                                     else "bad_request"))
    if fields:
        assert set(data["fields"]) == fields
    assert "Set-Cookie" not in r.headers


def test_session_when_logged_out(client):
    assert_error(client.get(f"{API}/session"), 401, "not_logged_in")


def test_logout(client, ray):
    client.post(f"{API}/session", json={"email": "ray@example.com", "password": "correct horse battery"})
    assert client.get(f"{API}/session").status_code == 200
    r = client.delete(f"{API}/session")
    assert r.status_code == 204 and r.get_data() == b""
    assert client.get(f"{API}/session").status_code == 401


def test_login_rate_limit(make_app):
    app = make_app(RATE_LIMIT_LOGIN="3/60")
    app.extensions["callme.limiter"].clock = lambda: 0.0
    new_expert(None, "ray", password="correct horse battery", paypal=False)
    client = app.test_client()
    for _ in range(3):
        assert client.post(f"{API}/session", json={"email": "ray@example.com", "password": "guess"}).status_code == 401
    r = client.post(f"{API}/session", json={"email": "ray@example.com", "password": "correct horse battery"})
    assert_error(r, 429, "rate_limited")
    assert r.headers["Retry-After"] == "60"


def test_a_forged_session_cookie_is_not_a_login(client, ray):
    client.set_cookie("session", "eyJleHBlcnRfaWQiOjF9.forged.signature")
    assert client.get(f"{API}/session").status_code == 401
