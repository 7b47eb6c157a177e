"""Custom domains: the names callme accepts, the records it shows, the DNS check against a real
DNS server (dnslib), the state machine, the background re-check, the page, and the ask endpoint."""
from datetime import timedelta

import pytest

from callme.experts import domains
from callme.experts.domains import CustomDomain, DomainError
from callme.extensions import db
from callme.models import utcnow

from .conftest import CSRF, login, new_expert
from .dns_zone import serving_zone

CONFIG = {"PUBLIC_URL": "https://callme.example"}


@pytest.fixture
def dns_zone():
    """A real DNS server on loopback whose records the test edits."""
    with serving_zone() as zone:
        yield zone




def https_client(app):
    """A browser on callme's host (the test client's plain http keeps the session cookie: an https
    PUBLIC_URL would make it secure-only)."""
    app.config["SESSION_COOKIE_SECURE"] = False
    return app.test_client()


@pytest.fixture
def app(make_app, dns_zone):
    """This file's app: its checks ask the test's DNS server, callme being callme.example."""
    return make_app(DNS_RESOLVER=dns_zone.resolver, DNS_TIMEOUT=0.5, PUBLIC_URL="https://callme.example")


@pytest.fixture
def dns_app(app):
    return app


# ---- names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, stored", [
    ("call.ann-law.example", "call.ann-law.example"),
    ("  Call.Ann-Law.Example.  ", "call.ann-law.example"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("ANN.example", "ann.example"),
    ("a" * 63 + ".example", "a" * 63 + ".example"),
])
def test_names_are_normalised(raw, stored):
    assert domains.normalise(raw, CONFIG) == stored


@pytest.mark.parametrize("raw", [
    "", "   ", None, 42, "localhost", "example", "1.2.3.4", "[::1]", "::1", "10.0.0.1", "1.2.3.4.5",
    "http://ann.example", "ann.example/path", "ann.example:8443", "user@ann.example", "ann example.com",
    "-ann.example", "ann-.example", "ann..example", "_callme.example", "ann_law.example",
    "a" * 64 + ".example", ("abcdefghi." * 26) + "example", "x" * 400,
    "callme.example", "CALLME.EXAMPLE.", "www.callme.example", "a.b.callme.example",
])
def test_bad_names_are_refused(raw):
    with pytest.raises(DomainError) as e:
        domains.normalise(raw, CONFIG)
    assert e.value.status == 400 and e.value.code == "domain_invalid" and e.value.message


def test_own_host_unset_refuses_nothing_of_its_own():
    assert domains.normalise("callme.example", {}) == "callme.example"
    assert domains.own_host({}) is None and domains.own_host(CONFIG) == "callme.example"


def test_add_shows_two_records_and_is_unique_across_experts(dns_app, make_expert):
    ann, bob = make_expert("ann", price=0), make_expert("bob", price=0)
    domain = domains.add_domain(ann, "Call.Ann-Law.example", dns_app.config)
    assert (domain.domain, domain.state, domain.expert_id) == ("call.ann-law.example", "pending", ann.id)
    assert len(domain.token) >= 30
    assert domains.records(domain, dns_app.config) == [
        ("CNAME", "call.ann-law.example", "callme.example"),
        ("TXT", "_callme-challenge.call.ann-law.example", domain.token)]
    for expert, name in ((bob, "call.ann-law.example"), (ann, "CALL.ANN-LAW.EXAMPLE.")):
        with pytest.raises(DomainError) as e:
            domains.add_domain(expert, name, dns_app.config)
        assert (e.value.status, e.value.code) == (409, "domain_taken")
    other = domains.add_domain(ann, "ann.example", dns_app.config)
    assert other.token != domain.token
    assert [d.domain for d in domains.domains_of(ann.id)] == ["call.ann-law.example", "ann.example"]


def test_at_most_five_domains(dns_app, make_expert):
    ann = make_expert("ann", price=0)
    for n in range(domains.MAX_PER_EXPERT):
        domains.add_domain(ann, f"d{n}.example", dns_app.config)
    with pytest.raises(DomainError) as e:
        domains.add_domain(ann, "one-more.example", dns_app.config)
    assert e.value.code == "too_many_domains"
    assert db.session.query(CustomDomain).count() == domains.MAX_PER_EXPERT


def test_remove_only_ones_own(dns_app, make_expert):
    ann, bob = make_expert("ann", price=0), make_expert("bob", price=0)
    domain = domains.add_domain(ann, "ann.example", dns_app.config)
    for expert, domain_id in ((bob, domain.id), (ann, "x"), (ann, 10 ** 30), (ann, -1)):
        with pytest.raises(DomainError) as e:
            domains.remove_domain(expert, domain_id)
        assert e.value.status == 404
    domains.remove_domain(ann, domain.id)
    assert domains.domains_of(ann.id) == []


# ---- the DNS check -------------------------------------------------------------------------------

def test_pending_becomes_verified_when_the_txt_record_holds_the_token(dns_app, dns_zone, make_expert):
    domain = domains.add_domain(make_expert("ann", price=0), "ann.example", dns_app.config)
    dns_zone.txt[domain.challenge_name] = ["some-other-text", domain.token]
    domain = domains.check(domain, dns_app.config)
    assert (domain.state, domain.failure) == ("verified", None)
    assert domain.verified_at and domain.last_checked_at
    assert ("_callme-challenge.ann.example", "TXT") in dns_zone.queries
    assert domains.is_verified("ann.example")


@pytest.mark.parametrize("setup, reason", [
    (lambda zone, d: None, "nxdomain"),
    (lambda zone, d: zone.names.add(d.challenge_name), "no_txt"),
    (lambda zone, d: zone.txt.__setitem__(d.challenge_name, ["not-the-token"]), "wrong_token"),
    (lambda zone, d: zone.txt.__setitem__(d.challenge_name, [d.token[:-1]]), "wrong_token"),
    (lambda zone, d: zone.silent.add(d.challenge_name), "timeout"),
])
def test_a_failed_check_says_why(dns_app, dns_zone, make_expert, setup, reason):
    domain = domains.add_domain(make_expert("ann", price=0), "ann.example", dns_app.config)
    setup(dns_zone, domain)
    domain = domains.check(domain, dns_app.config)
    assert (domain.state, domain.failure) == ("failed", reason)
    assert domain.failure_text and domain.verified_at is None
    assert not domains.is_verified("ann.example")


def test_a_resolver_nobody_answers_on_is_a_timeout(make_app):
    from .dns_zone import free_udp_port

    app = make_app(DNS_RESOLVER=f"127.0.0.1:{free_udp_port()}", DNS_TIMEOUT=0.3)
    domain = domains.add_domain(new_expert(None, "ann", price=0), "ann.example", app.config)
    assert domains.check(domain, app.config).state == "failed"


def test_resolver_setting():
    r = domains.resolver({"DNS_RESOLVER": "127.0.0.1:5353", "DNS_TIMEOUT": 2})
    assert (r.nameservers, r.port, r.lifetime) == (["127.0.0.1"], 5353, 2.0)
    r = domains.resolver({"DNS_RESOLVER": "[::1]:5300"})
    assert (r.nameservers, r.port) == (["::1"], 5300)
    r = domains.resolver({"DNS_RESOLVER": "127.0.0.2"})
    assert (r.nameservers, r.port) == (["127.0.0.2"], 53)


def test_transitions_are_a_table_and_compare_and_set(dns_app, make_expert):
    import sqlalchemy as sa

    domain = domains.add_domain(make_expert("ann", price=0), "ann.example", dns_app.config)
    assert domain.state == "pending"
    # Another check verified it meanwhile; this one, which read it pending, loses the race.
    db.session.execute(sa.update(CustomDomain).where(CustomDomain.id == domain.id).values(state="verified")
                       .execution_options(synchronize_session=False))
    assert domain.state == "pending"
    assert domains.transition(domain, "failed", failure="nxdomain") is False
    domain = db.session.get(CustomDomain, domain.id)
    assert (domain.state, domain.failure) == ("verified", None)
    assert domains.transition(domain, "failed", failure="nxdomain") is True
    assert domains.TRANSITIONS["pending"] == {"verified", "failed"}
    with pytest.raises(domains.IllegalTransition):
        domains.transition(domain, "pending")


def test_a_verified_domain_that_loses_its_record_fails_at_the_recheck(dns_app, dns_zone, make_expert):
    domain = domains.add_domain(make_expert("ann", price=0), "ann.example", dns_app.config)
    dns_zone.txt[domain.challenge_name] = [domain.token]
    checked_at = utcnow()
    domains.check(domain, dns_app.config, checked_at)
    assert domains.recheck_due(dns_app.config, checked_at + timedelta(seconds=10)) == 0  # not due yet
    del dns_zone.txt[domain.challenge_name]
    later = checked_at + timedelta(seconds=dns_app.config["DOMAIN_RECHECK"] + 1)
    assert domains.recheck_due(dns_app.config, later) == 1
    domain = db.session.get(CustomDomain, domain.id)
    assert (domain.state, domain.failure, domain.last_checked_at) == ("failed", "nxdomain", later)
    assert not domains.is_verified("ann.example")
    # Put back, the next re-check serves it again.
    dns_zone.txt[domain.challenge_name] = [domain.token]
    domains.recheck_due(dns_app.config, later + timedelta(seconds=dns_app.config["DOMAIN_RECHECK"] + 1))
    assert db.session.get(CustomDomain, domain.id).state == "verified"


def test_the_background_rechecker_runs_off_the_request(make_app, dns_zone):
    from .conftest import eventually

    app = make_app(DNS_RESOLVER=dns_zone.resolver, DNS_TIMEOUT=0.5, DOMAIN_RECHECK=1)
    domain = domains.add_domain(new_expert(None, "ann", price=0), "ann.example", app.config)
    dns_zone.txt[domain.challenge_name] = [domain.token]
    rechecker = app.extensions["callme.domains"]
    try:
        rechecker.ensure_started()

        def verified():
            db.session.expire_all()
            return db.session.get(CustomDomain, domain.id).state == "verified"
        eventually(verified, timeout=10, what="the background check")
    finally:
        rechecker.stop()


# ---- the page ------------------------------------------------------------------------------------

def test_the_page_adds_checks_and_removes(dns_app, dns_zone, make_expert):
    client = https_client(dns_app)
    ann = make_expert("ann", price=0)
    assert client.get("/dashboard/domains").status_code == 302  # to the login
    login(client, ann)
    html = client.get("/dashboard/domains").get_data(as_text=True)
    assert 'action="/dashboard/domains"' in html and 'aria-current="page">Domains' in html

    r = client.post("/dashboard/domains", data={"csrf": CSRF, "domain": "Ann.Example"})
    assert r.status_code == 303
    domain = domains.domains_of(ann.id)[0]
    html = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "ann.example" in html and "_callme-challenge.ann.example" in html and domain.token in html
    assert "callme.example" in html and 'data-state="pending"' in html

    dns_zone.txt[domain.challenge_name] = [domain.token]
    r = client.post(f"/dashboard/domains/{domain.id}/check", data={"csrf": CSRF})
    assert r.status_code == 303
    assert 'data-state="verified"' in client.get("/dashboard/domains").get_data(as_text=True)

    r = client.post(f"/dashboard/domains/{domain.id}/delete", data={"csrf": CSRF})
    assert r.status_code == 303 and domains.domains_of(ann.id) == []


@pytest.mark.parametrize("data, status, text", [
    ({"csrf": CSRF, "domain": "1.2.3.4"}, 400, "not an IP address"),
    ({"csrf": CSRF, "domain": "www.callme.example"}, 400, "callme&#39;s own name"),
    ({"csrf": CSRF, "domain": "x" * 5000}, 400, "too long"),
    ({"csrf": CSRF}, 400, "Enter a domain name"),
    ({"csrf": "forged", "domain": "ann.example"}, 400, "The form expired"),
    ({"domain": "ann.example"}, 400, "The form expired"),
])
def test_bad_forms_change_nothing(dns_app, make_expert, data, status, text):
    client = https_client(dns_app)
    ann = make_expert("ann", price=0)
    login(client, ann)
    r = client.post("/dashboard/domains", data=data)
    assert r.status_code == status and text in r.get_data(as_text=True)
    assert db.session.query(CustomDomain).count() == 0


def test_a_taken_domain_is_409(dns_app, make_expert):
    client = https_client(dns_app)
    ann, bob = make_expert("ann", price=0), make_expert("bob", price=0)
    domains.add_domain(bob, "ann.example", dns_app.config)
    login(client, ann)
    r = client.post("/dashboard/domains", data={"csrf": CSRF, "domain": "ann.example"})
    assert r.status_code == 409 and "already added" in r.get_data(as_text=True)
    assert domains.domains_of(ann.id) == []


def test_nobody_checks_or_removes_another_experts_domain(dns_app, make_expert):
    client = https_client(dns_app)
    ann, bob = make_expert("ann", price=0), make_expert("bob", price=0)
    domain = domains.add_domain(bob, "bob.example", dns_app.config)
    login(client, ann)
    for action in ("check", "delete"):
        assert client.post(f"/dashboard/domains/{domain.id}/{action}", data={"csrf": CSRF}).status_code == 404
    assert client.post("/dashboard/domains/nope/check", data={"csrf": CSRF}).status_code == 404
    assert db.session.get(CustomDomain, domain.id).state == "pending"


def test_check_now_is_rate_limited(make_app, dns_zone):
    app = make_app(DNS_RESOLVER=dns_zone.resolver, DNS_TIMEOUT=0.5, RATE_LIMIT_DOMAIN_CHECK="2/60",
                   PUBLIC_URL="https://callme.example")
    client = https_client(app)
    ann = new_expert(None, "ann", price=0)
    domain = domains.add_domain(ann, "ann.example", app.config)
    login(client, ann)
    codes = [client.post(f"/dashboard/domains/{domain.id}/check", data={"csrf": CSRF}).status_code for _ in range(3)]
    assert codes == [303, 303, 429]
    assert len([q for q in dns_zone.queries if q[1] == "TXT"]) == 2


# ---- the ask endpoint ----------------------------------------------------------------------------

def test_ask_answers_2xx_only_for_verified_domains(dns_app, dns_zone, make_expert):
    client = https_client(dns_app)
    ann = make_expert("ann", price=0)
    verified = domains.add_domain(ann, "ann.example", dns_app.config)
    domains.add_domain(ann, "pending.example", dns_app.config)
    dns_zone.txt[verified.challenge_name] = [verified.token]
    domains.check(verified, dns_app.config)
    asked = len(dns_zone.queries)

    def ask(domain, **kw):
        return client.get("/_internal/tls-ask", query_string={"domain": domain}, **kw).status_code
    assert ask("ann.example") == 200
    assert ask("ANN.example.") == 200
    for other in ("pending.example", "unknown.example", "", "1.2.3.4", "x" * 1000, "callme.example"):
        assert ask(other) == 404, other
    assert client.get("/_internal/tls-ask").status_code == 404
    assert len(dns_zone.queries) == asked  # answered from the table, never from DNS
    # Not from elsewhere, nor through the proxy (a visitor's request carries X-Forwarded-For).
    assert ask("ann.example", environ_base={"REMOTE_ADDR": "203.0.113.9"}) == 404
    assert ask("ann.example", headers={"X-Forwarded-For": "203.0.113.9"}) == 404
    assert ask("ann.example", environ_base={"REMOTE_ADDR": "::1"}) == 200


def test_ask_from_configured_addresses(make_app):
    app = make_app(TLS_ASK_FROM=["10.1.2.3", "192.0.2.0/24"])
    ann = new_expert(None, "ann", price=0)
    domain = domains.add_domain(ann, "ann.example", app.config)
    domains.transition(domain, "verified")
    client = app.test_client()
    for addr, status in (("10.1.2.3", 200), ("192.0.2.77", 200), ("127.0.0.1", 404), ("10.1.2.4", 404)):
        r = client.get("/_internal/tls-ask?domain=ann.example", environ_base={"REMOTE_ADDR": addr})
        assert r.status_code == status, addr
