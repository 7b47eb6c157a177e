"""Fixtures: ``app``, ``client``, factories, and a live server for end-to-end tests."""
import itertools

import pytest

from callme import create_app
from callme.cli import create_expert
from callme.config import TestConfig
from callme.extensions import db
from callme.models import Call, LedgerEntry

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


@pytest.fixture
def app(clock, tmp_path):
    app = create_app({**{k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()},
                      "CLOCK_MS": clock, "CALLME_TMP": str(tmp_path)})
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
def make_expert(app):
    def make(handle=None, price=150, currency="USD", free_seconds=60, cap_minutes=60,
             origins=("https://ray.example",), password="password123", online=False):
        n = next(_seq)
        handle = handle or f"expert{n}"
        expert = create_expert(f"{handle}@example.com", password, handle, handle.title(), price, currency,
                               free_seconds, cap_minutes, origins)
        if online:
            app.extensions["callme.calls"].set_presence(expert.id, True)
        return expert
    return make


@pytest.fixture
def make_call(app, make_expert):
    def make(expert=None, **kw):
        expert = expert or make_expert(**kw)
        return app.extensions["callme.calls"].create(expert, "instant", None)
    return make


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


def _live_factory(workdir):
    from .live import LiveServer

    servers = []

    def start(env=None, port=None, seed=True, workdir=workdir, healthy=True):
        server = LiveServer(workdir, env={**LIVE_ENV, **(env or {})}, port=port)
        if seed:
            from flask_migrate import upgrade

            with server.db():
                upgrade()
        servers.append(server.start(healthy=healthy))
        return server

    return start, servers


@pytest.fixture
def live_factory(tmp_path):
    """Start live servers (gunicorn, gevent) on loopback; stopped after the test."""
    start, servers = _live_factory(tmp_path)
    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """One live server shared by a module's tests (each test seeds its own expert)."""
    start, servers = _live_factory(tmp_path_factory.mktemp("live"))
    yield start()
    for server in servers:
        server.stop()


def seed_expert(server, handle="ray", price=150, **kw):
    with server.db():
        expert = create_expert(f"{handle}@example.com", "password123", handle, handle.title(), price,
                               kw.pop("currency", "USD"), kw.pop("free_seconds", 2), kw.pop("cap_minutes", None),
                               kw.pop("origins", ("https://ray.example",)))
        return expert.id


def stored_call(server, call_id):
    """The call's row and its ledger rows, read from a live server's database."""
    with server.db():
        call = db.session.get(Call, call_id)
        rows = db.session.scalars(db.select(LedgerEntry).filter_by(call_id=call_id)).all()
        db.session.expunge_all()
        return call, rows
