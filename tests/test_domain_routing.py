"""Routing by Host: a verified domain serves its expert's page at / and the button, widget and
API they need, nothing else; unverified and unknown names get a plain 404."""
import pytest

from callme.experts import domains
from callme.extensions import db

from .conftest import API, new_expert

ANN = "call.ann-law.example"


def verify(expert, name):
    from flask import current_app

    domain = domains.add_domain(expert, name, current_app.config)
    assert domains.transition(domain, "verified")
    return domain


@pytest.fixture
def site(app):
    """Ann (verified ANN), Bob (another expert, with a pending domain); PUBLIC_URL is callme.example."""
    ann = new_expert(None, "ann", price=0, origins=["https://ann-law.example"])
    bob = new_expert(None, "bob", price=0)
    verify(ann, ANN)
    domains.add_domain(bob, "bob.example", app.config)
    return ann, bob


@pytest.fixture
def app(make_app):
    return make_app(PUBLIC_URL="https://callme.example")


def get(client, host, path, **kw):
    r = client.get(path, headers={"Host": host, **kw.pop("headers", {})}, **kw)
    r.get_data()
    r.close()  # file responses (the widget's assets) hold their file until closed
    return r


def is_plain_404(r):
    return r.status_code == 404 and r.mimetype == "text/plain" and b"Ann" not in r.data


def test_root_of_a_verified_domain_is_the_experts_page(client, site):
    r = get(client, ANN, "/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "Ann" in r.get_data(as_text=True)
    assert get(client, ANN + ":8443", "/").status_code == 200
    assert get(client, ANN.upper() + ".", "/").status_code == 200
    assert get(client, ANN, "/ann").status_code == 200


@pytest.mark.parametrize("path", ["/embed.js", "/widget/widget.js", "/widget/page.css", "/w/ann", "/paypal/wait",
                                  f"{API}/currencies"])
def test_the_button_and_widget_work_on_it(client, site, path):
    r = get(client, ANN, path)
    assert r.status_code == 200, path


def test_the_widget_may_be_framed_by_the_domain(client, site):
    r = get(client, ANN, "/w/ann")
    csp = r.headers["Content-Security-Policy"]
    assert f"https://{ANN}" in csp and "https://ann-law.example" in csp
    r = get(client, "callme.example", "/w/ann")
    assert f"https://{ANN}" in r.headers["Content-Security-Policy"]


def test_the_domain_is_an_allowed_origin_of_its_expert_only(client, site):
    origin = {"Origin": f"https://{ANN}"}
    assert get(client, ANN, f"{API}/experts/ann/status", headers=origin).status_code == 200
    assert get(client, "callme.example", f"{API}/experts/ann/status", headers=origin).status_code == 200
    r = get(client, "callme.example", f"{API}/experts/bob/status", headers=origin)
    assert r.status_code == 403 and r.get_json()["error"] == "origin_not_allowed"
    # Creating a call from the domain passes the origin check (Ann is offline: refused for that).
    r = client.post(f"{API}/calls", headers={"Host": ANN, **origin},
                    json={"expert": "ann", "origin": f"https://{ANN}", "price": {"amount": 0, "currency": "USD"}})
    assert r.status_code not in (403, 404), r.get_json()
    assert r.get_json()["error"] != "origin_not_allowed"
    r = client.post(f"{API}/calls", headers={"Host": "callme.example", **origin},
                    json={"expert": "bob", "origin": f"https://{ANN}", "price": {"amount": 0, "currency": "USD"}})
    assert r.status_code == 403


@pytest.mark.parametrize("path", ["/bob", "/w/bob", f"{API}/experts/bob/status", "/dashboard", "/dashboard/domains",
                                  "/console", "/login", "/signup", "/logout", "/healthz", "/_internal/tls-ask",
                                  f"{API}/openapi.json", f"{API}/session", "/nobody", "/ann/../bob"])
def test_nothing_else_is_served_on_the_domain(client, site, path):
    assert is_plain_404(get(client, ANN, path)), path


def test_posts_to_other_pages_are_refused_too(client, site):
    assert is_plain_404(client.post("/login", headers={"Host": ANN}, data={"email": "x", "password": "y"}))
    assert is_plain_404(client.post("/dashboard/domains", headers={"Host": ANN}))


@pytest.mark.parametrize("host", ["bob.example", "unknown.example", "callme.example.evil.example", "10.0.0.1"])
def test_unverified_and_unknown_hosts_get_a_plain_404(client, site, host):
    for path in ("/", "/ann", "/bob", "/login", "/embed.js"):
        assert is_plain_404(get(client, host, path)), (host, path)


@pytest.mark.parametrize("host", ["callme.example", "localhost", "127.0.0.1:5000", "[::1]:8000"])
def test_callmes_own_hosts_serve_everything(client, site, host):
    assert get(client, host, "/login").status_code == 200
    assert get(client, host, "/bob").status_code == 200


def test_a_domain_that_fails_stops_being_served(client, site):
    domain = db.session.scalar(db.select(domains.CustomDomain).filter_by(domain=ANN))
    assert get(client, ANN, "/").status_code == 200
    assert domains.transition(domain, "failed", failure="nxdomain")
    assert is_plain_404(get(client, ANN, "/"))
    domain = db.session.scalar(db.select(domains.CustomDomain).filter_by(domain=ANN))
    assert domains.transition(domain, "verified")
    assert get(client, ANN, "/").status_code == 200
    domains.remove_domain(site[0], domain.id)
    assert is_plain_404(get(client, ANN, "/"))


def test_without_public_url_any_other_host_is_callme(make_app):
    app = make_app()
    client = app.test_client()
    ann = new_expert(None, "ann", price=0)
    new_expert(None, "bob", price=0)
    verify(ann, ANN)
    domains.add_domain(ann, "pending.example", app.config)
    assert get(client, "callme.test:8080", "/bob").status_code == 200
    assert get(client, "callme.test:8080", "/login").status_code == 200
    assert is_plain_404(get(client, ANN, "/bob"))
    assert "Ann" in get(client, ANN, "/").get_data(as_text=True)
    assert is_plain_404(get(client, "pending.example", "/bob"))
