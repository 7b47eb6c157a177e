"""Self-service accounts (``callme.web.signup``, ``callme.experts.accounts``): sign-up to a verified
login through a real SMTP server, the password reset, the email change; every bad input refused
with a clear answer and nothing changed; no answer tells which addresses have accounts."""
import re
from urllib.parse import urlsplit

import pytest

from callme.experts.accounts import create_expert
from callme.extensions import db
from callme.models import HANDLE_RE, RESERVED_HANDLES, Expert, ExpertSession
from callme.notify.outbox import OutboxMail
from callme.web.signup import served_segments

from .mailsink import body, running_mail_server

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

PASSWORD = "a good long password"
LOOSE = {"RATE_LIMIT_SIGNUP": "1000/60", "RATE_LIMIT_MAIL": "1000/60", "RATE_LIMIT_MAIL_TO": "1000/60"}


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (tests/mailsink.py)."""
    yield from running_mail_server()


@pytest.fixture
def site(make_app, smtp, tmp_path):
    """An app mailing through the test's SMTP server (inline after each commit)."""
    return make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/signup.sqlite", MAIL_SEND_ASYNC=False,
                    **smtp.config(), **LOOSE)


@pytest.fixture
def web(site):
    return site.test_client()


def csrf_of(client):
    with client.session_transaction() as s:
        return s.setdefault("csrf", "csrf-for-tests")


def post(client, path, **form):
    return client.post(path, data={"csrf": csrf_of(client), **form})


def sign_up(client, email="ann@example.com", handle="ann", name="Ann Lee", password=PASSWORD):
    return post(client, "/signup", email=email, handle=handle, name=name, password=password)


def link_in(smtp, address, path):
    """The path and query of the newest link to ``path`` mailed to ``address``."""
    messages = smtp.to(address)
    assert messages, f"no mail to {address}"
    links = re.findall(r"http://localhost(/\S+)", body(messages[-1]))
    found = [link for link in links if urlsplit(link).path == path]
    assert found, body(messages[-1])
    return found[-1]


def log_in(client, email="ann@example.com", password=PASSWORD):
    return post(client, "/login", email=email, password=password)


def expert(handle="ann"):
    db.session.expire_all()
    return db.session.scalar(db.select(Expert).filter_by(handle=handle))


def text(r):
    return r.get_data(as_text=True)


# ---- sign-up to a verified login, end to end -------------------------------------------------------

def test_sign_up_verify_and_log_in_through_real_mail(web, smtp):
    page = web.get("/signup")
    assert page.status_code == 200 and 'name="csrf"' in text(page)
    r = sign_up(web, email="Ann@Example.com", handle="Ann")
    assert r.status_code == 200 and "Check your inbox" in text(r)
    ann = expert()
    assert ann.email == "ann@example.com" and ann.display_name == "Ann Lee" and ann.email_verified_at is None
    (message,) = smtp.to("ann@example.com")
    assert message["Subject"] == "Confirm your email address for callme"
    assert "http://localhost/ann" in body(message)

    # Not verified yet: the password is right, the login is refused, with a way to get the link again.
    r = log_in(web)
    assert r.status_code == 403 and "Confirm your email address first" in text(r)
    assert 'action="/signup/resend"' in text(r)
    r = web.post("/api/v1/session", json={"email": "ann@example.com", "password": PASSWORD})
    assert r.status_code == 403 and r.get_json()["error"] == "email_not_verified"
    assert log_in(web, password="wrong password!").status_code == 401  # a wrong one says nothing more

    r = web.get(link_in(smtp, "ann@example.com", "/verify"))
    assert r.status_code == 200 and "confirmed" in text(r)
    assert expert().email_verified_at is not None
    r = log_in(web)
    assert r.status_code == 302 and r.headers["Location"].endswith("/console")
    assert web.get("/api/v1/session").get_json()["handle"] == "ann"


def test_the_link_can_be_sent_again_and_both_work_once(web, smtp):
    sign_up(web)
    first = link_in(smtp, "ann@example.com", "/verify")
    r = post(web, "/signup/resend", email="ann@example.com")
    assert r.status_code == 200 and len(smtp.to("ann@example.com")) == 2
    second = link_in(smtp, "ann@example.com", "/verify")
    assert web.get(second).status_code == 200
    r = web.get(first)
    assert r.status_code == 400 and 'data-code="link_used"' in text(r)


def test_resend_answers_alike_for_unknown_and_verified_addresses(web, smtp, site):
    create_expert("bob@example.com", PASSWORD, "bob", "Bob", 0)  # verified (the operator's)
    answers = [post(web, "/signup/resend", email=email) for email in ("bob@example.com", "nobody@example.com", "x")]
    assert {r.status_code for r in answers} == {200}
    assert smtp.messages == []


# ---- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("handle", "api", "taken by a callme page"),
    ("handle", "Signup", "taken by a callme page"),
    ("handle", "dev", "taken by a callme page"),
    ("handle", "RAY", "is taken"),
    ("handle", "bad handle", "lowercase letters, digits"),
    ("handle", "-ann", "lowercase letters, digits"),
    ("handle", "a" * 33, "lowercase letters, digits"),
    ("handle", "", "lowercase letters, digits"),
    ("password", "short", "at least 8 characters"),
    ("password", "p" * 257, "at most 256 characters"),
    ("email", "not-an-email", "email address is not valid"),
    ("email", "ann@localhost", "email address is not valid"),
    ("email", "ann@exa mple.com", "email address is not valid"),
    ("email", "", "email address is not valid"),
    ("name", "", "Say what your name is"),
    ("name", "   ", "Say what your name is"),
    ("name", "n" * 121, "at most 120 characters"),
])
def test_bad_sign_ups_are_refused_and_change_nothing(web, smtp, field, value, message):
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0)
    before = db.session.scalar(db.select(db.func.count(Expert.id)))
    form = {"email": "ann@example.com", "handle": "ann", "name": "Ann", "password": PASSWORD, field: value}
    r = post(web, "/signup", **form)
    assert r.status_code == 400, text(r)
    assert message in text(r)
    assert 'role="alert"' in text(r)
    assert db.session.scalar(db.select(db.func.count(Expert.id))) == before
    assert db.session.scalar(db.select(db.func.count(OutboxMail.id))) == 0 and smtp.messages == []


def test_a_taken_address_gets_the_same_answer_and_its_owner_a_mail(web, smtp):
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0)
    fresh = sign_up(web, email="new@example.com", handle="newone")
    taken = sign_up(web, email="RAY@example.com", handle="ray2")
    assert taken.status_code == fresh.status_code == 200
    assert text(taken).replace("ray@example.com", "X") == text(fresh).replace("new@example.com", "X")
    assert expert("ray2") is None  # nothing made
    (message,) = smtp.to("ray@example.com")
    assert "has an account" in body(message) and "/password/forgot" in body(message)


def test_missing_or_wrong_csrf_is_refused(web, smtp):
    form = {"email": "ann@example.com", "handle": "ann", "name": "Ann", "password": PASSWORD}
    for data in (form, {**form, "csrf": "forged"}):
        r = web.post("/signup", data=data)
        assert r.status_code == 400 and "form expired" in text(r)
    for path in ("/signup/resend", "/password/forgot", "/password/reset"):
        assert web.post(path, data={"email": "ann@example.com"}).status_code == 400
    assert expert() is None and smtp.messages == []


def test_sign_up_is_rate_limited_per_client(make_app, smtp, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/rl.sqlite", MAIL_SEND_ASYNC=False,
                   **smtp.config(), **{**LOOSE, "RATE_LIMIT_SIGNUP": "2/3600"})
    client = app.test_client()
    assert sign_up(client, "a1@example.com", "a1").status_code == 200
    assert sign_up(client, "a2@example.com", "a2").status_code == 200
    r = sign_up(client, "a3@example.com", "a3")
    assert r.status_code == 429 and "Too many attempts" in text(r)
    assert expert("a3") is None


def test_mail_forms_are_rate_limited_per_address(make_app, smtp, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/rl2.sqlite", MAIL_SEND_ASYNC=False,
                   **smtp.config(), **{**LOOSE, "RATE_LIMIT_MAIL_TO": "2/3600"})
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0)
    client = app.test_client()
    for _ in range(2):
        assert post(client, "/password/forgot", email="ray@example.com").status_code == 200
    assert post(client, "/password/forgot", email="RAY@example.com").status_code == 429
    assert len(smtp.to("ray@example.com")) == 2


def test_sign_up_can_be_closed(make_app):
    client = make_app(SIGNUP_OPEN=False).test_client()
    assert client.get("/signup").status_code == 403
    assert sign_up(client).status_code == 403
    assert 'href="/signup"' not in text(client.get("/"))


def test_mail_links_need_public_url_when_mail_goes_out(make_app, smtp):
    client = make_app(**{**smtp.config(), "PUBLIC_URL": None}, **LOOSE).test_client()
    r = sign_up(client)
    assert r.status_code == 503 and "PUBLIC_URL" in text(r)
    assert expert() is None


def test_every_first_path_segment_the_app_serves_is_a_reserved_handle(site):
    """A handle is a first path segment (/<handle>): one that a route serves would never be reachable."""
    served = served_segments(site)
    assert {"login", "signup", "dev", "password", "verify", "email", "api", "embed.js"} <= served
    could_be_handles = {segment for segment in served if HANDLE_RE.match(segment)}  # not embed.js
    assert could_be_handles - RESERVED_HANDLES == set(), "add these to models.RESERVED_HANDLES"


# ---- the verification link -------------------------------------------------------------------------

def test_an_expired_link_is_refused_with_a_way_to_a_new_one(make_app, smtp, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/x.sqlite", MAIL_SEND_ASYNC=False,
                   VERIFY_LINK_TTL=-1, **smtp.config(), **LOOSE)
    client = app.test_client()
    sign_up(client)
    r = client.get(link_in(smtp, "ann@example.com", "/verify"))
    assert r.status_code == 400 and 'data-code="link_expired"' in text(r) and "expired" in text(r)
    assert 'action="/signup/resend"' in text(r)
    assert expert().email_verified_at is None


@pytest.mark.parametrize("mangle", [
    lambda t: "", lambda t: "garbage", lambda t: t[:-3] + "AAA", lambda t: t + "x", lambda t: "x" * 2000,
])
def test_bad_tokens_are_refused(web, smtp, mangle):
    sign_up(web)
    token = link_in(smtp, "ann@example.com", "/verify").split("t=", 1)[1]
    r = web.get("/verify", query_string={"t": mangle(token)})
    assert r.status_code == 400 and 'data-code="link_invalid"' in text(r)
    assert expert().email_verified_at is None


def test_a_link_of_one_kind_does_not_open_another(web, smtp):
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0, verified=False)
    post(web, "/password/forgot", email="ray@example.com")
    reset_token = link_in(smtp, "ray@example.com", "/password/reset").split("t=", 1)[1]
    assert web.get("/verify", query_string={"t": reset_token}).status_code == 400
    assert web.get("/email/confirm", query_string={"t": reset_token}).status_code == 400
    assert expert("ray").email_verified_at is None


# ---- password reset --------------------------------------------------------------------------------

def test_password_reset_through_mail_ends_every_session_and_works_once(site, web, smtp):
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0)
    other = site.test_client()
    assert log_in(other, "ray@example.com").status_code == 302
    assert web.get("/password/forgot").status_code == 200
    r = post(web, "/password/forgot", email="Ray@example.com")
    assert r.status_code == 200 and "on its way" in text(r)
    link = link_in(smtp, "ray@example.com", "/password/reset")
    token = link.split("t=", 1)[1]
    form = web.get(link)
    assert form.status_code == 200 and 'name="t"' in text(form)

    r = post(web, "/password/reset", t=token, password="short", confirm="short")
    assert r.status_code == 400 and "at least 8" in text(r)
    r = post(web, "/password/reset", t=token, password="new password 1", confirm="new password 2")
    assert r.status_code == 400 and "differ" in text(r)
    r = post(web, "/password/reset", t=token, password="new password 1", confirm="new password 1")
    assert r.status_code == 200 and "Password changed" in text(r)

    assert other.get("/api/v1/session").status_code == 401  # every session ended
    assert db.session.scalar(db.select(db.func.count(ExpertSession.id))) == 0
    assert log_in(web, "ray@example.com").status_code == 401
    assert log_in(web, "ray@example.com", "new password 1").status_code == 302
    # Spent: the link names the password it replaced.
    r = web.get(link)
    assert r.status_code == 400 and 'data-code="link_used"' in text(r)
    r = post(web, "/password/reset", t=token, password="third password", confirm="third password")
    assert r.status_code == 400 and log_in(web, "ray@example.com", "third password").status_code == 401


def test_reset_answers_alike_whether_or_not_the_address_has_an_account(web, smtp):
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0)
    known = post(web, "/password/forgot", email="ray@example.com")
    unknown = post(web, "/password/forgot", email="nobody@example.com")
    bad = post(web, "/password/forgot", email="not an address")
    assert known.status_code == unknown.status_code == bad.status_code == 200
    assert text(known).replace("ray@example.com", "X") == text(unknown).replace("nobody@example.com", "X")
    assert len(smtp.messages) == 1


def test_a_reset_link_verifies_an_unverified_address(web, smtp):
    sign_up(web)
    post(web, "/password/forgot", email="ann@example.com")
    token = link_in(smtp, "ann@example.com", "/password/reset").split("t=", 1)[1]
    post(web, "/password/reset", t=token, password="new password 1", confirm="new password 1")
    assert expert().email_verified_at is not None
    assert log_in(web, password="new password 1").status_code == 302


# ---- email change ----------------------------------------------------------------------------------

@pytest.fixture
def ray(site, web):
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0)
    assert log_in(web, "ray@example.com").status_code == 302
    return expert("ray")


def test_email_change_happens_when_the_new_address_opens_the_link(web, smtp, ray):
    page = web.get("/dashboard/email")
    assert page.status_code == 200 and "ray@example.com" in text(page)
    r = post(web, "/dashboard/email", email="Ray@New.example", password=PASSWORD)
    assert r.status_code == 200 and "We sent a link to ray@new.example" in text(r)
    assert expert("ray").email == "ray@example.com"  # not yet
    link = link_in(smtp, "ray@new.example", "/email/confirm")
    r = web.get(link)
    assert r.status_code == 200 and "ray@new.example" in text(r)
    assert expert("ray").email == "ray@new.example"
    (notice,) = smtp.to("ray@example.com")
    assert "now ray@new.example" in body(notice)
    r = web.get(link)
    assert r.status_code == 400 and 'data-code="link_used"' in text(r)
    assert log_in(web, "ray@new.example").status_code == 302


@pytest.mark.parametrize("form, message", [
    ({"email": "ray@new.example", "password": "wrong password"}, "password is wrong"),
    ({"email": "not an address", "password": PASSWORD}, "not valid"),
    ({"email": "RAY@example.com", "password": PASSWORD}, "your address already"),
])
def test_bad_email_changes_are_refused(web, smtp, ray, form, message):
    r = post(web, "/dashboard/email", **form)
    assert r.status_code == 400 and message in text(r)
    assert smtp.messages == [] and expert("ray").email == "ray@example.com"


def test_email_change_to_a_taken_address_says_nothing_here_and_tells_its_owner(web, smtp, ray):
    create_expert("ann@example.com", PASSWORD, "ann", "Ann", 0)
    r = post(web, "/dashboard/email", email="ann@example.com", password=PASSWORD)
    assert r.status_code == 200 and "We sent a link to ann@example.com" in text(r)
    (message,) = smtp.to("ann@example.com")
    assert "Nothing was changed" in body(message) and "/email/confirm" not in body(message)
    assert expert("ray").email == "ray@example.com"


def test_an_address_taken_between_the_mail_and_the_click_is_refused(web, smtp, ray):
    post(web, "/dashboard/email", email="ray@new.example", password=PASSWORD)
    link = link_in(smtp, "ray@new.example", "/email/confirm")
    create_expert("ray@new.example", PASSWORD, "someone", "Someone", 0)
    r = web.get(link)
    assert r.status_code == 400 and expert("ray").email == "ray@example.com"


def test_email_change_needs_a_login_and_csrf(site, web, smtp):
    assert web.get("/dashboard/email").status_code == 302
    create_expert("ray@example.com", PASSWORD, "ray", "Ray", 0)
    log_in(web, "ray@example.com")
    r = web.post("/dashboard/email", data={"email": "ray@new.example", "password": PASSWORD})
    assert r.status_code == 400 and smtp.messages == []


def test_an_unconfirmed_experts_page_button_and_calls_are_not_published(make_app):
    """Until the address is confirmed, the public finds nothing under the handle."""
    from callme.experts.accounts import create_expert

    app = make_app()
    with app.app_context():
        create_expert("sam@example.com", "password123", "sam", "Sam", 0, verified=False)
        create_expert("tom@example.com", "password123", "tom", "Tom", 0)
    client = app.test_client()

    def status(path):
        with client.get(path) as response:  # closed: /w/ answers with a file
            return response.status_code
    for path in ("/sam", "/w/sam", "/api/v1/experts/sam/status"):
        assert status(path) == 404, path
    body = {"expert": "sam", "price": {"amount": 0, "currency": "USD"}}
    assert client.post("/api/v1/calls", json=body).status_code == 404
    for path in ("/tom", "/w/tom", "/api/v1/experts/tom/status"):
        assert status(path) == 200, path
