"""The suite's shared fixtures and helpers, each defined once: the in-process app and its
factories (experts, PayPal holds, calls, the steps that make a call active), and live servers
for the scenario suites (``tests/scenarios/``)."""
import itertools
import json
import os
import secrets
import socket
import time

import pytest
from flask import current_app
from werkzeug.security import generate_password_hash

from callme import create_app, models
from callme.experts.accounts import create_expert
from callme.config import TestConfig
from callme.extensions import db
from callme.money.ledger import rows_of_call
from callme.models import Call, LedgerEntry, Payment
from callme.money.earnings import from_ms

API = "/api/v1"
ORIGIN = "https://ray.example"

_seq = itertools.count(1)


class Clock:
    """An injectable clock in milliseconds."""

    def __init__(self, start=1_700_000_000_000):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += int(seconds * 1000)
        return self.now


@pytest.fixture
def clock():
    return Clock()


class Seconds:
    """An injectable monotonic clock in seconds (the bus's keys, the rate limiter)."""

    def __init__(self, now=1_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def cheap_password_hashing(monkeypatch):
    """Experts are made by the dozen in some files; scrypt would cost 0.1 s each. Files that make
    many experts (and test nothing about the hash itself) ask for it with ``usefixtures``."""
    monkeypatch.setattr(models, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1"))


def eventually(predicate, timeout=10, what="the condition", pause=lambda: time.sleep(0.05)):
    """Poll ``predicate`` until it holds (returning its value), or fail after ``timeout`` seconds.
    ``pause`` waits between tries (a Playwright page's ``wait_for_timeout`` lets its events in)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause()
    return value


def assert_node_suite_passes(directory):
    """Run node's own test runner on ``directory`` (skipped without node): every test passes, and
    there are some."""
    import re
    import shutil
    import subprocess

    if not shutil.which("node"):
        pytest.skip("node is not installed")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(["node", "--test", directory], check=False, cwd=root, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, re.MULTILINE)
    assert not re.search(r"^# pass 0$", result.stdout, re.MULTILINE)


# ---- PayPal (the emulator), the app and its factories -------------------------------------------

def start_emulator():
    """A PayPal emulator on loopback (a real HTTP server), started in this network namespace."""
    from callme.dev.paypal_emulator import PayPalEmulator

    return PayPalEmulator().start(host="127.0.0.1", port=0)


def loopback_namespace():
    """For a fixture: yield inside a network namespace holding only loopback; skip where none
    can be made (tests that carry media never run on the machine's own networks)."""
    from .scenarios.live import loopback_only

    try:
        with loopback_only():
            yield
    except OSError as e:
        pytest.skip(f"no loopback-only network namespace here ({e}); WebRTC tests never use other networks")


@pytest.fixture
def isolated():
    """The test runs in a network namespace holding only loopback (WebRTC, browsers)."""
    yield from loopback_namespace()


@pytest.fixture
def paypal(isolated):
    """A PayPal emulator inside the test's namespace, where its live server can reach it."""
    emulator = start_emulator()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def emulator():
    """The PayPal emulator the in-process apps talk to (through the real SDK)."""
    emu = start_emulator()
    yield emu
    emu.stop()


def connect_paypal(expert, emulator, config=None, webhook=True):
    """Give an expert their own PayPal app at the emulator and connect it. Returns the client id."""
    from callme.money.paypal import set_paypal_credentials

    n = next(_seq)
    client_id, secret = f"app-{expert.handle}-{n}", f"secret-{expert.handle}-{n}"
    emulator.add_app(client_id, secret, merchant_name=expert.display_name)
    webhook_id = f"WH-{expert.handle.upper()}-{n}" if webhook else None
    if webhook_id:
        emulator.add_webhook(client_id, webhook_id)
    set_paypal_credentials(expert, client_id, secret, "sandbox", webhook_id, config or current_app.config,
                           check=False)
    return client_id


@pytest.fixture
def make_app(clock, tmp_path, emulator):
    """An app with TestConfig plus overrides, its tables created, inside its app context."""
    made = []

    def make(**overrides):
        config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
        app = create_app({**config, "CLOCK_MS": clock, "CALLME_TMP": str(tmp_path), "PAYPAL_BASE_URL": emulator.url,
                          **overrides})
        ctx = app.app_context()
        ctx.push()
        db.create_all()
        made.append(ctx)
        return app
    yield make
    for ctx in reversed(made):
        db.session.remove()
        db.drop_all()
        ctx.pop()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def service(app):
    return app.extensions["callme.calls"]


def new_expert(emulator, handle=None, price=150, currency="USD", free_seconds=60, cap_minutes=60,
               origins=(ORIGIN,), password="password123", online=False, paypal=None):
    """An expert in the current app (``make_expert`` for the ``app`` fixture's; call this directly
    in an app made by ``make_app``); one with a price connects their own PayPal app at ``emulator``
    (``paypal`` says otherwise)."""
    handle = handle or f"expert{next(_seq)}"
    expert = create_expert(f"{handle}@example.com", password, handle, handle.title(), price, currency,
                           free_seconds, cap_minutes, origins)
    if paypal if paypal is not None else price > 0:
        connect_paypal(expert, emulator)
    if online:
        current_app.extensions["callme.calls"].set_presence(expert.id, True)
    return expert


@pytest.fixture
def make_expert(app, emulator):
    """The in-process expert factory: ``new_expert`` in the ``app`` fixture's app."""
    def make(handle=None, **kw):
        return new_expert(emulator, handle, **kw)
    return make


def hold_for(expert, emulator, approve=True):
    """An approved and authorized PayPal hold for a call with ``expert`` (cap x price), in the
    current app (``approve=False``: the order only)."""
    from callme.money import payments

    config = current_app.config
    amount = expert.cap_minutes * expert.price_minor
    payment, _ = payments.create_order(expert, amount, expert.currency, config,
                                       return_url="http://localhost/paypal/return",
                                       cancel_url="http://localhost/paypal/cancel")
    if not approve:
        return payment
    emulator.approve(payment.order_id)
    return payments.authorize_hold(expert, payment.order_id, amount, expert.currency, config)


@pytest.fixture
def make_hold(app, emulator):
    """``hold_for`` in the ``app`` fixture's app."""
    def make(expert, approve=True):
        return hold_for(expert, emulator, approve)
    return make


@pytest.fixture
def make_call(app, make_expert, make_hold):
    """A created call; a paid one holds its PayPal authorization, as POST /calls makes it."""
    def make(expert=None, **kw):
        expert = expert or make_expert(**kw)
        payment = make_hold(expert) if expert.price_minor > 0 else None
        return app.extensions["callme.calls"].create(expert, "instant", None, payment=payment)
    return make


# ---- making a call active, through CallService and the injected clock -------------------------

def connect(service, call_id, clock=None):
    """Both peers report their connection "connected" (the visitor first, then the expert, a
    second later when ``clock`` is given): an accepted call becomes active."""
    service.report(call_id, "visitor", "connected")
    assert service.get(call_id).state == "accepted"  # one side is not enough
    if clock is not None:
        clock.advance(1)
    service.report(call_id, "expert", "connected")
    call = service.get(call_id)
    assert call.state == "active", call.state
    return call


def answer(service, call_id, expert_id):
    """The visitor's socket joins (the expert is rung), the expert accepts and joins."""
    assert service.join(call_id, "visitor").state == "ringing"
    assert service.accept(expert_id, call_id).state == "accepted"
    service.join(call_id, "expert")


def make_active(service, call_id, expert_id):
    """Ring, accept, join and connect a created call at once (the clock standing still)."""
    answer(service, call_id, expert_id)
    return connect(service, call_id)


def keep_alive(service, clock, call_id, ms, step_ms=5_000, roles=("visitor", "expert")):
    """Advance ``ms`` with heartbeats from ``roles`` every ``step_ms``, ticking as the server does.
    Returns the last time recorded for each role's heartbeat (its ack)."""
    acks = {}
    end = clock.now + ms
    while clock.now < end:
        clock.now = min(end, clock.now + step_ms)
        for role in roles:
            acks[role] = service.heartbeat(call_id, role)
        service.tick()
    return acks


@pytest.fixture
def accepted_call(service, make_expert, make_call, clock):
    """A call rung, accepted and joined by both sides, the clock moving between the steps;
    returns its id. Takes ``make_expert``'s arguments (the expert is online)."""
    def run(**expert_kw):
        expert = make_expert(online=True, **expert_kw)
        call_id, expert_id = make_call(expert).id, expert.id
        assert service.join(call_id, "visitor").state == "ringing"
        clock.advance(2)
        assert service.accept(expert_id, call_id).state == "accepted"
        service.join(call_id, "expert")
        clock.advance(1)
        return call_id
    return run


@pytest.fixture
def active_call(service, accepted_call, clock):
    """``accepted_call`` connected: active from the moment the second side reported. Returns the
    call's row (``.id``, ``.expert_id``, ``.active_ms``)."""
    def run(**expert_kw):
        call = connect(service, accepted_call(**expert_kw), clock)
        assert call.active_ms == clock.now
        return call
    return run


@pytest.fixture
def talk(service, active_call, clock):
    """A paid call active for ``active_ms`` with both sides beating, then hung up by ``by`` (unless
    the cap ended it first). Returns the expert and the call, fresh from the database."""
    def run(active_ms, price=150, currency="USD", free_seconds=60, cap_minutes=10, by="visitor"):
        call = active_call(price=price, currency=currency, free_seconds=free_seconds, cap_minutes=cap_minutes)
        call_id, expert_id = call.id, call.expert_id
        keep_alive(service, clock, call_id, active_ms)
        if service.get(call_id).state != "ended":
            service.hangup(call_id, by)
        return db.session.get(models.Expert, expert_id), service.get(call_id)
    return run


def add_call(expert, clock, *, ago_ms=0, billed_ms=125_000, minutes=3, amount=None, reason="hangup",
             taken="capture", capture_id=None, state="ended", call_id=None):
    """A call row of ``expert`` (ended unless ``state`` says otherwise) that started ``ago_ms`` before
    the clock's now, with the ledger row that took its money (``taken``: that row's kind, or None)."""
    start = clock.now - ago_ms
    amount = expert.price_minor * minutes if amount is None else amount
    call = Call(id=call_id or None, expert_id=expert.id, kind="instant", state=state, price_minor=expert.price_minor,
                currency=expert.currency, free_seconds=60, cap_minutes=60, origin="https://ray.example",
                created_ms=start - 5000, active_ms=start, ended_ms=start + billed_ms if state == "ended" else None,
                end_reason=reason if state == "ended" else None, billed_ms=billed_ms, billed_minutes=minutes,
                amount_minor=amount)
    db.session.add(call)
    db.session.flush()
    if taken and amount:
        db.session.add(LedgerEntry(key=f"{taken}:{call.id}", kind=taken, expert_id=expert.id, call_id=call.id,
                                   amount_minor=amount, currency=expert.currency,
                                   detail={"capture_id": capture_id} if capture_id else {},
                                   created_at=from_ms(start + billed_ms)))
    db.session.commit()
    return call


def receipt_token(app, call_id):
    """The signed link token that opens the receipt of ``call_id``."""
    from callme.calls.tokens import tokens_for

    return tokens_for(app.config).receipt_token(call_id)


# ---- rows without a database (earnings and receipts are pure functions of them) ----------------

def fake_call(**kw):
    """An ended call as the pure functions read it: 125.5 s, 3 minutes at 1.50 USD."""
    from types import SimpleNamespace

    base = dict(id="c1", kind="instant", origin="https://ray.example", state="ended", active_ms=1_763_800_000_000,
                created_ms=1_763_799_990_000, ended_ms=1_763_800_125_500, billed_ms=125_500, billed_minutes=3,
                price_minor=150, amount_minor=450, currency="USD", end_reason="hangup", free_seconds=60)
    base.update(kw)
    return SimpleNamespace(**base)


def entry(kind, amount, **detail):
    """A ledger row as the pure functions read it."""
    from types import SimpleNamespace

    return SimpleNamespace(kind=kind, amount_minor=amount, detail=detail)


# ---- the HTTP API --------------------------------------------------------------------------------

def assert_error(response, status, code):
    """A refusal in callme's one error shape: JSON ``{"error", "message"}`` with that status."""
    assert response.status_code == status, response.get_json()
    data = response.get_json()
    assert response.mimetype == "application/json"
    assert data["error"] == code
    assert isinstance(data["message"], str) and data["message"]
    return data


def post_webhook(client, emulator, expert, event_type, resource, times=1):
    """PayPal's webhook for ``expert``, genuinely signed by the emulator, posted ``times`` times;
    returns callme's outcome for each."""
    headers, body = emulator.webhook(expert.paypal_client_id, event_type, resource)
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    outcomes = []
    for _ in range(times):
        r = client.post(f"{API}/paypal/webhooks/{expert.handle}", data=raw,
                        headers={**dict(headers), "Content-Type": "application/json"})
        assert r.status_code == 200, r.get_json()
        outcomes.append(r.get_json()["outcome"])
    return outcomes


def order_through_api(client, emulator, handle, amount=150, currency="USD", origin=None, approve=True,
                      remote="127.0.0.1"):
    """POST /payments/orders as the widget does (from ``remote``), approved by the payer unless
    ``approve`` is False: returns the order id. ``client`` is any app's test client."""
    r = client.post(f"{API}/payments/orders", environ_base={"REMOTE_ADDR": remote},
                    json={"expert": handle, "origin": origin, "price": {"amount": amount, "currency": currency}})
    assert r.status_code == 201, r.get_json()
    order_id = r.get_json()["order_id"]
    if approve:
        emulator.approve(order_id)
    return order_id


@pytest.fixture
def approved_order(client, emulator):
    """``order_through_api`` with the ``app`` fixture's client."""
    def make(handle, amount, currency="USD", origin=None, approve=True):
        return order_through_api(client, emulator, handle, amount, currency, origin, approve)
    return make


# ---- live servers (tests/scenarios/, and the live tests of other files) ---------------------------

def pytest_collection_modifyitems(items):
    # Real-time tests last, so the quick ones report first.
    items.sort(key=lambda item: 1 if item.get_closest_marker("live") or item.get_closest_marker("webrtc") else 0)


LIVE_ENV = {
    "DEFAULT_FREE_SECONDS": "2", "RING_TIMEOUT": "3", "SILENCE_GRACE": "3", "HEARTBEAT_PERSIST": "1",
    "HEARTBEAT_INTERVAL": "1",
    "METER_INTERVAL": "0.25", "CAP_WARNINGS": "60,30", "RATE_LIMIT_CALLS": "1000/60",
    "RATE_LIMIT_RINGS": "1000/60", "RATE_LIMIT_LOGIN": "1000/60", "CONNECT_TIMEOUT": "20",
}


def _live_factory(workdir, default_emulator=None):
    from .scenarios.live import LiveServer

    servers = []

    def start(env=None, port=None, seed=True, workdir=workdir, healthy=True, emulator=default_emulator):
        """A live server on loopback (``seed``: its database migrated first)."""
        paypal = {"PAYPAL_BASE_URL": emulator.url} if emulator is not None else {}
        server = LiveServer(workdir, env={**LIVE_ENV, **paypal, **(env or {})}, port=port)
        server.emulator = emulator  # seed_expert connects the experts it makes to it
        if seed:
            from flask_migrate import upgrade

            with server.db():
                upgrade()
        servers.append(server.start(healthy=healthy))
        return server

    return start, servers


@pytest.fixture
def live_factory(tmp_path):
    """Start live servers (gunicorn, gevent) on loopback; stopped after the test. They reach
    no PayPal unless started with ``emulator=`` (see ``start_emulator``)."""
    start, servers = _live_factory(tmp_path)
    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, emulator):
    """One live server shared by a module's tests (each test seeds its own expert), talking
    to the session's PayPal emulator."""
    start, servers = _live_factory(tmp_path_factory.mktemp("live"), emulator)
    yield start()
    for server in servers:
        server.stop()


def seed_expert(server, handle="ray", price=150, emulator=None, **kw):
    """The live-server expert factory: an expert in a live server's database; one with a price is
    connected to PayPal at the server's emulator (or ``emulator``), when it has one."""
    emulator = emulator or getattr(server, "emulator", None)
    with server.db() as app:
        expert = create_expert(f"{handle}@example.com", "password123", handle, handle.title(), price,
                               kw.pop("currency", "USD"), kw.pop("free_seconds", 2), kw.pop("cap_minutes", None),
                               kw.pop("origins", ("https://ray.example",)))
        if emulator is not None and price > 0:
            connect_paypal(expert, emulator, app.config)
        return expert.id


SETTLING = ("authorized", "capture_pending", "void_pending")


def stored_call(server, call_id, timeout=10):
    """The call's row and its ledger rows, read from a live server's database, once the
    server has settled the call's payment with PayPal (it does so just after the end)."""
    deadline = time.monotonic() + timeout
    while True:
        with server.db():
            call = db.session.get(Call, call_id)
            payment = db.session.scalar(db.select(Payment).filter_by(call_id=call_id))
            rows = rows_of_call(call_id)
            settling = call.state == "ended" and payment is not None and payment.state in SETTLING
            db.session.expunge_all()
        if not settling or time.monotonic() > deadline:
            return call, rows
        time.sleep(0.1)


def stored_payment(server, call_id):
    with server.db():
        payment = db.session.scalar(db.select(Payment).filter_by(call_id=call_id))
        db.session.expunge_all()
        return payment


def paypal_app_of(server, handle):
    """The client id of the PayPal app a live server's expert connected."""
    from callme.models import Expert

    with server.db():
        return db.session.scalar(db.select(Expert.paypal_client_id).filter_by(handle=handle))


def money_rows(rows, kinds=("capture", "refund", "reversal", "charge")):
    """(kind, amount, currency) of the rows that move money (holds and releases left out)."""
    return [(r.kind, r.amount_minor, r.currency) for r in rows if r.kind in kinds]


# ---- PostgreSQL ----------------------------------------------------------------------------------

PG_ADMIN_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


def _pg_admin_url():
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        return None, "PostgreSQL is not reachable on 127.0.0.1:5432"
    import psycopg

    errors = []
    for url in PG_ADMIN_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3, autocommit=True):
                return url, None
        except psycopg.Error as e:
            errors.append(f"{url}: {e}".strip())
    return None, "PostgreSQL answers on 127.0.0.1:5432 but refuses us: " + "; ".join(errors)


@pytest.fixture
def pg_url():
    """The URL of a freshly created throw-away PostgreSQL database, dropped afterwards (skipped
    where no PostgreSQL on 127.0.0.1:5432 lets us in)."""
    admin, reason = _pg_admin_url()
    if admin is None:
        pytest.skip(reason)
    import psycopg

    name = f"callme_test_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


CSRF = "csrf-for-tests"


def login(client, expert, csrf=CSRF):
    """Log ``expert`` in on the test ``client`` as the login form would, with a known CSRF token."""
    from callme.models import ExpertSession

    sid = ExpertSession.open(expert.id, 3600)
    db.session.commit()
    with client.session_transaction() as s:
        s["expert_id"], s["sid"] = expert.id, sid
        s["csrf"] = csrf
