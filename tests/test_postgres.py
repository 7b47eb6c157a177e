"""The same call core on PostgreSQL: migrations, the one-open-call index, settlement,
and a live gunicorn server (gevent + psycopg) carrying a whole call's signaling."""
import asyncio

import pytest
import requests

from callme import create_app
from callme.calls.lifecycle import CallError
from callme.config import TestConfig
from callme.extensions import db
from callme.money.ledger import mark_payment_due
from callme.models import Call, LedgerEntry

from .conftest import Clock, hold_for, make_active, new_expert, seed_expert
from .scenarios.peers import active_call, close_all

pytestmark = pytest.mark.postgres


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


def test_call_lifecycle_and_settlement_on_postgres(pg_app, emulator):
    app, clock = pg_app
    assert db.engine.dialect.name == "postgresql"
    service = app.extensions["callme.calls"]
    expert = new_expert(emulator, "pg", price=250, currency="EUR", free_seconds=60, cap_minutes=30, origins=(),
                        online=True)
    call = service.create(expert, "instant", None, payment=hold_for(expert, emulator))
    # The partial unique index holds on PostgreSQL too: one open call per expert.
    with pytest.raises(CallError) as busy:
        service.create(expert, "instant", None)
    assert busy.value.code == "expert_busy"
    make_active(service, call.id, expert.id)
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
    assert service.create(expert, "instant", None, payment=hold_for(expert, emulator)).state == "created"


def test_live_server_on_postgres(pg_url, live_factory, emulator):
    server = live_factory(env={"DATABASE_URL": pg_url}, emulator=emulator)
    seed_expert(server, handle="pglive", price=150, free_seconds=2)

    async def scenario():
        console, visitor, expert, created, _ = await active_call(server, "pglive")
        await visitor.wait("meter", where=lambda meter: meter["elapsed_ms"] >= 2_200)  # past the free 2 s
        await expert.send("hangup")
        ended = await visitor.wait("ended")
        await close_all(console, visitor, expert)
        return ended

    ended = asyncio.run(scenario())
    assert (ended["minutes"], ended["amount"]) == (1, 150)
    r = requests.get(f"{server.url}/api/v1/calls/{ended['call_id']}", params={"receipt": ended["receipt"]})
    assert r.json()["amount"] == 150
