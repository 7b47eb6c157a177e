"""The same call core on PostgreSQL: migrations, the one-open-call index, settlement,
and a live gunicorn server (gevent + psycopg) carrying a whole call's signaling."""
import asyncio
import secrets
import socket

import pytest
import requests

from callme import create_app
from callme.calls.lifecycle import CallError
from callme.cli import create_expert
from callme.config import TestConfig
from callme.extensions import db
from callme.money.ledger import mark_payment_due
from callme.models import Call, LedgerEntry

from .conftest import Clock, connect_paypal, seed_expert

pytestmark = pytest.mark.postgres
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable():
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url():
    """A throw-away database, dropped afterwards."""
    if not _reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    import psycopg

    name = f"callme_test_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def pg_app(pg_url, emulator):
    from flask_migrate import upgrade

    clock = Clock()
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    app = create_app({**config, "SQLALCHEMY_DATABASE_URI": pg_url, "CLOCK_MS": clock,
                      "PAYPAL_BASE_URL": emulator.url})
    with app.app_context():
        upgrade()
        yield app, clock
        db.session.remove()
        db.engine.dispose()


def hold(app, emulator, expert):
    from callme.money import payments

    payment, _ = payments.create_order(expert, expert.cap_minutes * expert.price_minor, expert.currency, app.config)
    emulator.approve(payment.order_id)
    return payments.authorize_hold(expert, payment.order_id, expert.cap_minutes * expert.price_minor,
                                   expert.currency, app.config)


def test_call_lifecycle_and_settlement_on_postgres(pg_app, emulator):
    app, clock = pg_app
    assert db.engine.dialect.name == "postgresql"
    service = app.extensions["callme.calls"]
    expert = create_expert("pg@example.com", "password123", "pg", "Pg", 250, "EUR", 60, 30, ())
    connect_paypal(expert, emulator, app.config)
    service.set_presence(expert.id, True)
    call = service.create(expert, "instant", None, payment=hold(app, emulator, expert))
    # The partial unique index holds on PostgreSQL too: one open call per expert.
    with pytest.raises(CallError) as busy:
        service.create(expert, "instant", None)
    assert busy.value.code == "expert_busy"
    service.join(call.id, "visitor")
    service.accept(expert.id, call.id)
    service.join(call.id, "expert")
    service.report(call.id, "visitor", "connected")
    service.report(call.id, "expert", "connected")
    clock.advance(61)
    service.hangup(call.id, "expert")
    call = db.session.get(Call, call.id)
    assert (call.state, call.billed_minutes, call.amount_minor, call.currency) == ("ended", 2, 500, "EUR")
    assert mark_payment_due(db.session, call) is None  # already settled: nothing twice
    db.session.commit()
    rows = db.session.scalars(db.select(LedgerEntry).order_by(LedgerEntry.id)).all()
    assert [(r.kind, r.amount_minor, r.currency) for r in rows] == [
        ("hold", 7500, "EUR"), ("capture", 500, "EUR"), ("void", 7000, "EUR")]
    assert db.session.get(Call, call.id).payment.state == "captured"
    # Ended, the expert can take the next call.
    assert service.create(expert, "instant", None, payment=hold(app, emulator, expert)).state == "created"


def test_live_server_on_postgres(pg_url, live_factory, emulator):
    from .test_live_signaling import close_all, connected_call

    server = live_factory(env={"DATABASE_URL": pg_url}, emulator=emulator)
    seed_expert(server, handle="pglive", price=150, free_seconds=2)

    async def scenario():
        console, visitor, expert, created, _ = await connected_call(server, "pglive")
        await visitor.send("state", connection="connected")
        await expert.send("state", connection="connected")
        await visitor.wait("active")
        await asyncio.sleep(2.2)
        await expert.send("hangup")
        ended = await visitor.wait("ended")
        await close_all(console, visitor, expert)
        return ended

    ended = asyncio.run(scenario())
    assert (ended["minutes"], ended["amount"]) == (1, 150)
    r = requests.get(f"{server.url}/api/v1/calls/{ended['call_id']}", params={"receipt": ended["receipt"]})
    assert r.json()["amount"] == 150
