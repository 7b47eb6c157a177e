"""callme's landing page at ``/`` (``callme.web.signup.landing``): what callme is, sign up, log in;
server-rendered, under the strict CSP, and it says what the product promises."""
import pytest

from .test_widget import Markup

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def test_the_landing_page_says_what_callme_is_and_where_to_go(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    for promise in ("Sell your time over live browser calls", "first minute is free", "your own PayPal",
                    "no commission", "nothing to install"):
        assert promise in page, promise
    assert 'href="/signup"' in page and 'href="/login"' in page
    assert '<html lang="en">' in page and "<h1" in page and "<main>" in page
    markup = Markup(page)
    assert markup.inline == [] and len(markup.ids) == len(set(markup.ids))
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_the_landing_page_css_is_served(client):
    with client.get("/widget/landing.css") as r:
        assert r.status_code == 200 and ".landing-nav" in r.get_data(as_text=True)


def test_a_logged_in_expert_is_offered_the_console(client, make_expert):
    make_expert(handle="ray", password="password123")
    with client.session_transaction() as s:
        s["csrf"] = "t"
    assert client.post("/login", data={"csrf": "t", "email": "ray@example.com", "password": "password123"}).status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert 'href="/console"' in page and 'href="/signup"' not in page


def test_the_login_page_leads_to_sign_up_and_the_password_reset(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/signup"' in page and 'href="/password/forgot"' in page


@pytest.mark.parametrize("path", ["/signup", "/password/forgot", "/login"])
def test_account_pages_are_not_cached_and_carry_csrf(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert 'name="csrf"' in r.get_data(as_text=True)
