"""Sessions that end when the expert says so, logins that reveal nothing, the headers every
response carries, and a production app that never loads the dev tools."""
import os
import subprocess
import sys
import textwrap

import pytest

from callme import models
from callme.extensions import db

from .conftest import API, new_expert
PASSWORD = "correct horse battery"
SAFE_REFERRER = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


@pytest.fixture
def ray(make_expert):
    return make_expert(handle="ray", price=0, password=PASSWORD)


def api_login(client, email="ray@example.com", password=PASSWORD):
    r = client.post(f"{API}/session", json={"email": email, "password": password})
    assert r.status_code == 200, r.get_json()
    return client.get_cookie("session").value


def form_login(client, email="ray@example.com", password=PASSWORD):
    with client.session_transaction() as s:
        s["csrf"] = "csrf-for-tests"
    return client.post("/login", data={"csrf": "csrf-for-tests", "email": email, "password": password})


def csrf_of(client):
    with client.session_transaction() as s:
        return s.setdefault("csrf", "csrf-for-tests")


def with_cookie(app, cookie):
    """A new browser holding a copy of someone's session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def logged_in(client):
    return client.get(f"{API}/session").status_code == 200


# ---- #6: sessions end ------------------------------------------------------------------

def test_the_cookie_of_a_session_logged_out_by_the_api_no_longer_works(app, client, ray):
    cookie = api_login(client)
    copy = with_cookie(app, cookie)
    assert logged_in(copy)
    assert client.delete(f"{API}/session").status_code == 204
    assert copy.get(f"{API}/session").status_code == 401
    r = copy.get("/console")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")


def test_the_cookie_of_a_session_logged_out_by_the_form_no_longer_works(app, client, ray):
    assert form_login(client).status_code == 302
    copy = with_cookie(app, client.get_cookie("session").value)
    assert copy.get("/console").status_code == 200
    r = client.post("/logout", data={"csrf": csrf_of(client)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert copy.get("/console").status_code == 302
    assert not logged_in(copy)


def test_logging_out_ends_only_this_session(app, ray):
    here, there = app.test_client(), app.test_client()
    api_login(here)
    api_login(there)
    here.delete(f"{API}/session")
    assert not logged_in(here) and logged_in(there)


@pytest.mark.parametrize("how", ["api", "form"])
def test_log_out_everywhere_ends_every_session_of_the_expert(app, ray, make_expert, how):
    make_expert(handle="ann", price=0, password=PASSWORD)
    here, there, ann = app.test_client(), app.test_client(), app.test_client()
    api_login(here)
    api_login(there)
    api_login(ann, "ann@example.com")
    if how == "api":
        assert here.delete(f"{API}/session?everywhere=1").status_code == 204
    else:
        r = here.post("/logout", data={"csrf": csrf_of(here), "everywhere": "1"})
        assert r.status_code == 302
    assert not logged_in(here) and not logged_in(there)
    assert logged_in(ann)


def test_the_expert_pages_offer_log_out_everywhere(client, ray):
    form_login(client)
    page = client.get("/console").get_data(as_text=True)
    assert 'action="/logout"' in page and 'name="everywhere"' in page


def test_a_password_change_ends_every_session(app, ray):
    here, there = app.test_client(), app.test_client()
    api_login(here)
    api_login(there)
    from callme.experts.accounts import change_password

    change_password(ray, "a-brand-new-password")
    assert not logged_in(here) and not logged_in(there)
    api_login(here, password="a-brand-new-password")
    assert logged_in(here)


def test_a_password_change_by_command_ends_every_session(app, client, runner, ray):
    api_login(client)
    result = runner.invoke(args=["expert", "password", "--handle", "ray", "--password", "another-good-one"])
    assert result.exit_code == 0, result.output
    assert not logged_in(client)
    api_login(client, password="another-good-one")


def test_the_password_form_changes_it_and_ends_the_other_sessions(app, client, ray):
    other = app.test_client()
    api_login(other)
    form_login(client)
    assert client.get("/dashboard/password").status_code == 200
    r = client.post("/dashboard/password", data={"csrf": csrf_of(client), "current": "wrong one",
                                                 "password": "new-password-1", "confirm": "new-password-1"})
    assert r.status_code == 400
    assert logged_in(other)
    r = client.post("/dashboard/password", data={"csrf": csrf_of(client), "current": PASSWORD,
                                                 "password": "new-password-1", "confirm": "new-password-1"})
    assert r.status_code in (200, 302)
    assert logged_in(client) and not logged_in(other)
    db.session.expire_all()
    assert db.session.get(models.Expert, ray.id).check_password("new-password-1")


def test_a_session_of_a_deleted_row_or_a_forged_sid_is_no_login(app, client, ray):
    with client.session_transaction() as s:
        s["expert_id"], s["sid"] = ray.id, "made-up"
    assert not logged_in(client)
    with client.session_transaction() as s:
        s.pop("sid")
    assert not logged_in(client)


def test_an_expired_session_is_no_login(app, client, ray):
    api_login(client)
    db.session.execute(db.update(models.ExpertSession).values(expires_at=models.utcnow()))
    db.session.commit()
    assert not logged_in(client)


@pytest.mark.live
def test_the_console_socket_refuses_a_logged_out_cookie(live_server):
    import asyncio

    import requests

    from .conftest import seed_expert
    from .scenarios.peers import Socket, login

    seed_expert(live_server, handle="solo", price=0)
    cookie = login(live_server.url, "solo@example.com", "password123")

    async def first(kind):
        s = await Socket.open(live_server.ws + "/ws/console", cookie=cookie)
        try:
            return await s.wait(kind)
        finally:
            await s.close()

    assert asyncio.run(first("hello"))["expert"]["handle"] == "solo"
    r = requests.delete(live_server.url + f"{API}/session", headers={"Cookie": cookie}, timeout=5)
    assert r.status_code == 204
    assert asyncio.run(first("error"))["code"] == "not_logged_in"


# ---- #5: login time says nothing about which emails exist --------------------------------

@pytest.fixture
def checks(monkeypatch):
    """Every password hash check the login makes."""
    made = []
    real = models.check_password_hash

    def counted(password_hash, password):
        made.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(models, "check_password_hash", counted)
    return made


@pytest.mark.parametrize("email, password, status", [
    ("ray@example.com", PASSWORD, 200),
    ("ray@example.com", "wrong password", 401),
    ("nobody@example.com", PASSWORD, 401),
    ("NOBODY@example.com", "wrong password", 401),
])
def test_the_api_login_checks_one_password_hash_whether_the_email_exists_or_not(client, ray, checks, email,
                                                                                password, status):
    assert client.post(f"{API}/session", json={"email": email, "password": password}).status_code == status
    assert len(checks) == 1
    # The stand-in hash costs what a real one does: the same method and parameters.
    assert checks[0].split("$")[0] == ray.password_hash.split("$")[0]


@pytest.mark.parametrize("email, password, status", [
    ("ray@example.com", PASSWORD, 302),
    ("ray@example.com", "wrong password", 401),
    ("nobody@example.com", PASSWORD, 401),
    ("", PASSWORD, 401),
])
def test_the_login_form_checks_one_password_hash_whether_the_email_exists_or_not(client, ray, checks, email,
                                                                                 password, status):
    assert form_login(client, email, password).status_code == status
    assert len(checks) == 1


# ---- #7, #8: headers -----------------------------------------------------------------------

@pytest.fixture
def boom(app):
    """A page that fails, to see the 500 page's headers."""
    def fail():
        raise RuntimeError("boom")
    app.add_url_rule("/boom-for-tests", "boom", fail)


HTML = "text/html"
URLS = [
    # path, logged in, expected status, content type
    ("/login", False, 200, HTML),
    ("/console", True, 200, HTML),
    ("/dashboard", True, 200, HTML),
    ("/dashboard/paypal", True, 200, HTML),
    ("/ray", False, 200, HTML),
    ("/w/ray", False, 200, HTML),
    ("/paypal/wait", False, 200, HTML),
    ("/receipts/nope?t=bad", False, 403, HTML),
    ("/nobody-by-that-name", False, 404, HTML),
    ("/boom-for-tests", False, 500, HTML),
    ("/console", False, 302, None),
    ("/embed.js", False, 200, "text/javascript"),
    ("/widget/page.css", False, 200, "text/css"),
    ("/healthz", False, 200, "application/json"),
    (f"{API}/session", True, 200, "application/json"),
    (f"{API}/session", False, 401, "application/json"),
    (f"{API}/experts/ray/status", False, 200, "application/json"),
    (f"{API}/nothing-here", False, 404, "application/json"),
]


@pytest.mark.parametrize("path, login, status, content_type", URLS)
def test_every_response_carries_the_security_headers(client, ray, boom, path, login, status, content_type):
    if login:
        api_login(client)
    r = client.get(path, headers={"Origin": "https://ray.example"})
    r.close()  # file responses hold their file open until closed
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    if content_type:
        assert r.mimetype == content_type
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers.get("Referrer-Policy") in SAFE_REFERRER
    if r.mimetype == HTML:
        csp = r.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors" in csp and "script-src 'self'" in csp
    assert "Strict-Transport-Security" not in r.headers  # served over http: no HSTS


@pytest.mark.parametrize("method, body", [("get", None), ("post", {"email": "ray@example.com", "password": PASSWORD})])
def test_the_session_api_is_never_cached(client, ray, method, body):
    if method == "get":
        api_login(client)
    r = getattr(client, method)(f"{API}/session", json=body)
    assert r.status_code == 200 and r.get_json()["email"] == "ray@example.com"
    assert "no-store" in r.headers["Cache-Control"]


def test_a_view_keeps_its_own_referrer_policy(client, ray):
    assert client.get("/paypal/wait").headers["Referrer-Policy"] == "no-referrer"


@pytest.fixture
def https_app(make_app):
    return make_app(PUBLIC_URL="https://callme.example")


@pytest.mark.parametrize("path", ["/login", "/ray", "/embed.js", "/healthz", f"{API}/session",
                                  f"{API}/experts/ray/status", "/nobody-by-that-name"])
def test_https_public_url_sends_hsts_everywhere(https_app, path):
    new_expert(None, "ray", price=0, password=PASSWORD)
    r = https_app.test_client().get(path, base_url="https://callme.example")
    r.close()
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(r.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 31536000


def test_https_public_url_makes_the_session_cookie_secure(https_app):
    new_expert(None, "ray", price=0, password=PASSWORD)
    client = https_app.test_client()
    r = client.post(f"{API}/session", json={"email": "ray@example.com", "password": PASSWORD},
                    base_url="https://callme.example")
    assert r.status_code == 200
    cookie = r.headers["Set-Cookie"]
    assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_http_public_url_keeps_the_cookie_usable_on_http(client, ray):
    r = client.post(f"{API}/session", json={"email": "ray@example.com", "password": PASSWORD})
    assert "Secure" not in r.headers["Set-Cookie"]


# ---- production never loads callme.dev -------------------------------------------------------

def test_a_production_app_never_imports_the_dev_tools(tmp_path):
    script = textwrap.dedent("""
        import sys
        from callme import create_app
        app = create_app({"START_CLOCK": False})
        client = app.test_client()
        for path in ("/healthz", "/login", "/embed.js", "/nobody", "/api/v1/session", "/api/v1/openapi.json"):
            client.get(path)
        app.test_cli_runner().invoke(args=["--help"])
        app.test_cli_runner().invoke(args=["demo", "--help"])
        loaded = sorted(m for m in sys.modules if m == "callme.dev" or m.startswith("callme.dev."))
        print("LOADED", loaded)
        assert not loaded, loaded
    """)
    env = {**os.environ, "CALLME_INSTANCE": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite"}
    env.pop("PAYPAL_BASE_URL", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOADED []" in result.stdout
