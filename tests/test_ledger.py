"""Handing an ended call's bill to payments (``mark_payment_due``), the append-only ledger, and
balances derived from it."""
import logging

import pytest
import sqlalchemy as sa

from callme import models
from callme.money import payments
from callme.extensions import db
from callme.money.ledger import earnings, holds_open, mark_payment_due
from callme.models import AppendOnlyError, Call, LedgerEntry

from .conftest import make_active

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def ended_call(make_expert, make_hold):
    """An ended, not yet settled call row with the given bill, holding its PayPal authorization."""
    def make(amount=300, minutes=2, currency="USD", expert=None, price=150, paid=True):
        expert = expert or make_expert(currency=currency, price=price, cap_minutes=60)
        payment = make_hold(expert) if paid else None
        call = Call(expert_id=expert.id, kind="instant", state="ended", price_minor=price, currency=currency,
                    free_seconds=60, cap_minutes=60, created_ms=0, active_ms=1_000, ended_ms=1_000 + 61_000,
                    end_reason="hangup", ended_by="visitor", billed_ms=61_000, billed_minutes=minutes,
                    amount_minor=amount)
        db.session.add(call)
        db.session.flush()
        if payment is not None:
            payment.call_id = call.id
        db.session.commit()
        return call
    return make


def rows(kinds=None):
    db.session.expire_all()
    q = sa.select(LedgerEntry).order_by(LedgerEntry.id)
    if kinds:
        q = q.where(LedgerEntry.kind.in_(kinds))
    return db.session.scalars(q).all()


def test_mark_payment_due_marks_the_hold_due_and_the_capture_writes_the_row(app, ended_call):
    call = ended_call(amount=300, minutes=2)
    payment = mark_payment_due(db.session, call)
    db.session.commit()
    assert (payment.state, payment.due_minor, payment.call_id) == ("capture_pending", 300, call.id)
    assert db.session.get(Call, call.id).settled_at is not None
    assert [r.kind for r in rows()] == ["hold"]  # nothing captured inside the ending transaction
    assert payments.settle_payment(payment.id, app.config) == "captured"
    written = rows(("capture",))
    assert [(r.key, r.kind, r.expert_id, r.call_id, r.amount_minor, r.currency) for r in written] == [
        (f"payment:{payment.id}:capture", "capture", call.expert_id, call.id, 300, "USD")]
    assert {k: written[0].detail[k] for k in ("minutes", "price", "duration_ms")} == {
        "minutes": 2, "price": 150, "duration_ms": 61_000}
    assert [(r.kind, r.amount_minor) for r in rows()] == [("hold", 9000), ("capture", 300), ("void", 8700)]


def test_mark_payment_due_is_idempotent(app, ended_call):
    call = ended_call(amount=300)
    payment = mark_payment_due(db.session, call)
    db.session.commit()
    assert mark_payment_due(db.session, call) is None
    db.session.commit()
    assert mark_payment_due(db.session, db.session.get(Call, call.id)) is None
    db.session.commit()
    for _ in range(2):
        payments.settle_payment(payment.id, app.config)
    assert [(r.kind, r.amount_minor) for r in rows(("capture",))] == [("capture", 300)]


def test_the_loser_of_a_race_returns_nothing_instead_of_raising(app, ended_call):
    call = ended_call(amount=300)
    call_id = call.id
    # The winner: another connection settles and commits.
    with db.engine.begin() as other:
        other.execute(sa.update(Call).where(Call.id == call_id).values(settled_at=models.utcnow()))
    # The loser still holds the row as it read it, unsettled.
    assert call.settled_at is None
    assert mark_payment_due(db.session, call) is None
    db.session.commit()
    assert db.session.get(Call, call_id).payment.state == "authorized"  # the winner's business, not ours


def test_free_call_voids_the_hold(app, ended_call):
    call = ended_call(amount=0, minutes=0)
    payment = mark_payment_due(db.session, call)
    db.session.commit()
    assert payment.state == "void_pending"
    assert payments.settle_payment(payment.id, app.config) == "voided"
    assert [(r.kind, r.amount_minor) for r in rows()] == [("hold", 9000), ("void", 9000)]
    assert db.session.get(Call, call.id).settled_at is not None  # settled all the same
    assert mark_payment_due(db.session, call) is None


def test_a_call_without_a_hold_writes_nothing(ended_call, caplog, monkeypatch):
    # Alembic's fileConfig (migrations run in this process by other tests) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("callme.money.ledger"), "disabled", False)
    call = ended_call(amount=300, paid=False)
    assert mark_payment_due(db.session, call) is None
    db.session.commit()
    assert rows() == []
    assert "no PayPal hold" in caplog.text


@pytest.mark.parametrize("state", ["created", "ringing", "accepted", "active"])
def test_only_ended_calls_have_a_payment_due(make_expert, state):
    expert = make_expert()
    call = Call(expert_id=expert.id, state=state, price_minor=150, currency="USD", free_seconds=60,
                cap_minutes=60, created_ms=0, amount_minor=300)
    db.session.add(call)
    db.session.commit()
    with pytest.raises(ValueError):
        mark_payment_due(db.session, call)
    db.session.rollback()
    assert rows() == []
    assert db.session.get(Call, call.id).settled_at is None


def test_a_service_ended_call_has_its_payment_marked_due_once(service, make_expert, make_call, clock):
    expert = make_expert(online=True, price=99, currency="EUR")
    call_id, expert_id = make_call(expert).id, expert.id
    make_active(service, call_id, expert_id)
    clock.advance(125)
    service.heartbeat(call_id, "visitor")
    service.heartbeat(call_id, "expert")
    service.hangup(call_id, "visitor")
    service.hangup(call_id, "expert")
    service.tick()
    assert mark_payment_due(db.session, service.get(call_id)) is None
    db.session.commit()
    assert [(r.amount_minor, r.currency, r.detail["minutes"]) for r in rows(("capture",))] == [(297, "EUR", 3)]
    assert earnings(expert_id) == {"EUR": 297}


# ---- append-only ----------------------------------------------------------------------

@pytest.fixture
def charged(make_expert):
    expert = make_expert(price=0)
    db.session.add(LedgerEntry(key="payment:1:capture", kind="capture", expert_id=expert.id, amount_minor=300,
                               currency="USD", detail={"capture_id": "CAP-1"}))
    db.session.commit()
    return rows()[0]


@pytest.mark.parametrize("change", [
    lambda row: setattr(row, "amount_minor", 0),
    lambda row: setattr(row, "currency", "EUR"),
    lambda row: setattr(row, "kind", "refund"),
    lambda row: setattr(row, "detail", {"minutes": 0}),
    lambda row: db.session.delete(row),
], ids=["amount", "currency", "kind", "detail", "delete"])
def test_ledger_rows_cannot_be_changed_or_deleted(charged, change):
    change(charged)
    with pytest.raises(AppendOnlyError):
        db.session.commit()
    db.session.rollback()
    assert [(r.kind, r.amount_minor, r.currency) for r in rows()] == [("capture", 300, "USD")]


def test_the_same_movement_cannot_be_inserted_twice(charged):
    db.session.add(LedgerEntry(key=charged.key, kind="capture", expert_id=charged.expert_id, call_id=charged.call_id,
                               amount_minor=300, currency="USD", detail={}))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert len(rows()) == 1


@pytest.mark.parametrize("amount, currency", [(-1, "USD"), (100, "US"), (100, "USDX")])
def test_ledger_constraints(charged, amount, currency):
    db.session.add(LedgerEntry(key="manual:1", kind="charge", expert_id=charged.expert_id,
                               amount_minor=amount, currency=currency, detail={}))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


@pytest.mark.parametrize("statement", [
    sa.update(LedgerEntry).values(amount_minor=0),
    sa.delete(LedgerEntry),
], ids=["bulk update", "bulk delete"])
def test_bulk_statements_cannot_change_the_ledger(charged, statement):
    try:
        db.session.execute(statement)
        db.session.commit()
    except (AppendOnlyError, sa.exc.SQLAlchemyError):  # refused: by the ORM or by the database
        db.session.rollback()
    assert [(r.kind, r.amount_minor, r.currency) for r in rows()] == [("capture", 300, "USD")]


# ---- balance --------------------------------------------------------------------------

def entry(expert, key, amount, currency, kind="capture"):
    db.session.add(LedgerEntry(key=key, kind=kind, expert_id=expert.id, amount_minor=amount, currency=currency,
                               detail={}))


def test_earnings_sum_per_currency_captures_less_money_given_back(make_expert):
    ray, ann = make_expert(price=0), make_expert(price=0)
    assert earnings(ray.id) == {}
    entry(ray, "a", 150, "USD")
    entry(ray, "b", 300, "USD")
    entry(ray, "c", 99, "EUR")
    entry(ray, "d", 1_000, "JPY")
    entry(ray, "e", 100, "USD", kind="refund")     # given back
    entry(ray, "f", 50, "USD", kind="reversal")    # taken back by PayPal
    entry(ray, "g", 9_000, "USD", kind="hold")     # nobody's money yet
    entry(ray, "h", 9_000, "USD", kind="void")     # and released
    entry(ray, "i", 20, "USD", kind="charge")      # written before payments existed: still earned
    entry(ann, "j", 777, "USD")                    # another expert's money
    db.session.commit()
    assert earnings(ray.id) == {"USD": 320, "EUR": 99, "JPY": 1_000}
    assert earnings(ray.id, "USD") == {"USD": 320}
    assert earnings(ray.id, "GBP") == {}
    assert earnings(ann.id) == {"USD": 777}
    assert all(type(v) is int for v in earnings(ray.id).values())


def test_earnings_from_captured_calls(app, make_expert, ended_call):
    expert = make_expert(currency="USD")
    for amount in (150, 300, 0, 450):
        payment = mark_payment_due(db.session, ended_call(amount=amount, expert=expert))
        db.session.commit()
        payments.settle_payment(payment.id, app.config)
    assert earnings(expert.id) == {"USD": 900}
    assert len(rows(("capture",))) == 3
    assert holds_open(expert.id) == {"USD": 0}
