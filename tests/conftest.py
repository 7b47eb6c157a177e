"""Fixtures: ``app``, ``client``, factories, and a live server for end-to-end tests."""
import itertools

import pytest

from callme import create_app
from callme.experts.accounts import create_expert
from callme.config import TestConfig
from callme.extensions import db
from callme.money.ledger import rows_of_call
from callme.models import Call, Payment

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


def start_emulator():
    """A PayPal emulator on loopback (a real HTTP server), started in this network namespace."""
    from callme.dev.paypal_emulator import PayPalEmulator

    return PayPalEmulator().start(host="127.0.0.1", port=0)


@pytest.fixture
def isolated():
    """The test runs in a network namespace holding only loopback (WebRTC, browsers); skipped
    where none can be made, never run on the machine's own networks."""
    from .live import loopback_only

    try:
        with loopback_only():
            yield
    except OSError as e:
        pytest.skip(f"no loopback-only network namespace here ({e}); WebRTC tests never use other networks")


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
    from flask import current_app

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
def app(clock, tmp_path, emulator):
    app = create_app({**{k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()},
                      "CLOCK_MS": clock, "CALLME_TMP": str(tmp_path), "PAYPAL_BASE_URL": emulator.url})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.drop_all()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def service(app):
    return app.extensions["callme.calls"]


@pytest.fixture
def make_expert(app, emulator):
    """An expert; one with a price connects their own PayPal app at the emulator (``paypal``
    says otherwise)."""
    def make(handle=None, price=150, currency="USD", free_seconds=60, cap_minutes=60,
             origins=("https://ray.example",), password="password123", online=False, paypal=None):
        n = next(_seq)
        handle = handle or f"expert{n}"
        expert = create_expert(f"{handle}@example.com", password, handle, handle.title(), price, currency,
                               free_seconds, cap_minutes, origins)
        if paypal if paypal is not None else price > 0:
            connect_paypal(expert, emulator)
        if online:
            app.extensions["callme.calls"].set_presence(expert.id, True)
        return expert
    return make


@pytest.fixture
def make_hold(app, emulator):
    """An approved and authorized PayPal hold for a call with ``expert`` (cap x price)."""
    from callme.money import payments

    def make(expert, approve=True):
        amount = expert.cap_minutes * expert.price_minor
        payment, _ = payments.create_order(expert, amount, expert.currency, app.config,
                                           return_url="http://localhost/paypal/return",
                                           cancel_url="http://localhost/paypal/cancel")
        if not approve:
            return payment
        emulator.approve(payment.order_id)
        return payments.authorize_hold(expert, payment.order_id, amount, expert.currency, app.config)
    return make


@pytest.fixture
def make_call(app, make_expert, make_hold):
    """A created call; a paid one holds its PayPal authorization, as POST /calls makes it."""
    def make(expert=None, **kw):
        expert = expert or make_expert(**kw)
        payment = make_hold(expert) if expert.price_minor > 0 else None
        return app.extensions["callme.calls"].create(expert, "instant", None, payment=payment)
    return make


@pytest.fixture
def approved_order(client, emulator):
    """POST /payments/orders as the widget does, approved by the payer: returns the order id."""
    def make(handle, amount, currency="USD", origin=None, approve=True):
        r = client.post("/api/v1/payments/orders", json={"expert": handle, "origin": origin,
                                                         "price": {"amount": amount, "currency": currency}})
        assert r.status_code == 201, r.get_json()
        order_id = r.get_json()["order_id"]
        if approve:
            emulator.approve(order_id)
        return order_id
    return make


def live_order(server_url, emulator, handle, amount, currency="USD", approve=True):
    """The same against a live server: create and approve the hold; returns the order id."""
    import requests

    r = requests.post(server_url + "/api/v1/payments/orders",
                      json={"expert": handle, "price": {"amount": amount, "currency": currency}}, timeout=10)
    assert r.status_code == 201, r.text
    order_id = r.json()["order_id"]
    if approve:
        emulator.approve(order_id)
    return order_id


def pytest_collection_modifyitems(items):
    # Real-time tests last, so the quick ones report first.
    items.sort(key=lambda item: 1 if item.get_closest_marker("live") or item.get_closest_marker("webrtc") else 0)


@pytest.fixture
def db_call(app):
    def get(call_id):
        db.session.expire_all()
        return db.session.get(Call, call_id)
    return get


LIVE_ENV = {
    "DEFAULT_FREE_SECONDS": "2", "RING_TIMEOUT": "3", "SILENCE_GRACE": "3", "HEARTBEAT_PERSIST": "1",
    "HEARTBEAT_INTERVAL": "1",
    "METER_INTERVAL": "0.25", "CAP_WARNINGS": "60,30", "RATE_LIMIT_CALLS": "1000/60",
    "RATE_LIMIT_RINGS": "1000/60", "RATE_LIMIT_LOGIN": "1000/60", "CONNECT_TIMEOUT": "20",
}


def _live_factory(workdir, default_emulator=None):
    from .live import LiveServer

    servers = []

    def start(env=None, port=None, seed=True, workdir=workdir, healthy=True, emulator=default_emulator):
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
    """An expert in a live server's database; one with a price is connected to PayPal at the
    server's emulator (or ``emulator``), when it has one."""
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
    import time

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
