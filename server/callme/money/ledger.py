"""The ledger: where a finished call's bill is handed to payments, and the sums derived from
the append-only ledger rows.

"Settled" is said of payments only: a payment is settled when PayPal captured or voided it
(``payments.settle_payment``; ``payments.UNSETTLED`` are those still waiting). Two earlier
steps have their own names:

- ``mark_payment_due`` runs inside the transaction that ends the call: it stamps the call's
  ``settled_at`` (the moment its bill was handed to payments, once, compare-and-set; the
  column keeps its old name) and marks its PayPal hold due: ``capture_pending`` with the
  metered amount, or ``void_pending`` when nothing is owed. It never calls PayPal.
- ``payments.settle_payment`` then captures or voids after the commit, and the ledger gets its
  ``capture`` (or ``void``) row when PayPal has answered. For a paid call the capture *is* the
  movement of money; no separate ``charge`` row is written any more (rows of that kind from
  before payments existed still count as earnings).
"""
import logging

import sqlalchemy as sa

from . import payments
from .earnings import SIGN
from ..extensions import db
from ..models import Call, LedgerEntry, Payment, utcnow

log = logging.getLogger(__name__)

# How each kind counts is decided once, in earnings.SIGN.
EARNED = tuple(kind for kind, sign in SIGN.items() if sign > 0)
GIVEN_BACK = tuple(kind for kind, sign in SIGN.items() if sign < 0)


def mark_payment_due(session, call):
    """Hand an ended call's bill to payments, once: stamp ``settled_at`` and mark its payment
    due (no PayPal call, no commit). Return that payment, or None (done before, or no hold)."""
    if call.state != "ended":
        raise ValueError(f"call {call.id} is not ended")
    if call.settled_at is not None:
        return None
    # Compare-and-set first: of two settlers only the winner goes on.
    done = session.execute(
        sa.update(Call).where(Call.id == call.id, Call.settled_at.is_(None)).values(settled_at=utcnow())
    )
    if done.rowcount != 1:
        return None
    payment = payments.mark_due(session, call)
    if payment is None and call.amount_minor:
        # Only a call made around the API (a script, an old row) can get here: POST /calls
        # does not create a paid call without a hold.
        log.error("call %s owes %s %s but has no PayPal hold; nothing can be captured",
                  call.id, call.amount_minor, call.currency)
    session.flush()
    return payment


def rows_of_call(call_id):
    """A call's ledger rows, oldest first: its payment's too (the hold predates the call)."""
    paid_by = sa.select(Payment.id).where(Payment.call_id == call_id).scalar_subquery()
    return db.session.scalars(sa.select(LedgerEntry).where(
        (LedgerEntry.call_id == call_id) | (LedgerEntry.payment_id == paid_by)).order_by(LedgerEntry.id)).all()


def earnings(expert_id, currency=None):
    """What an expert earned, per currency: captures - refunds - reversals. No commission."""
    sign = sa.case((LedgerEntry.kind.in_(GIVEN_BACK), -LedgerEntry.amount_minor), else_=LedgerEntry.amount_minor)
    q = db.session.query(LedgerEntry.currency, sa.func.sum(sign)).filter(
        LedgerEntry.expert_id == expert_id, LedgerEntry.kind.in_(EARNED + GIVEN_BACK))
    if currency:
        q = q.filter(LedgerEntry.currency == currency)
    return {cur: int(total) for cur, total in q.group_by(LedgerEntry.currency)}


def holds_open(expert_id):
    """Holds not yet captured or released, per currency (0 once everything is settled)."""
    sign = sa.case((LedgerEntry.kind == "hold", LedgerEntry.amount_minor), else_=-LedgerEntry.amount_minor)
    q = db.session.query(LedgerEntry.currency, sa.func.sum(sign)).join(
        Payment, Payment.id == LedgerEntry.payment_id).filter(
        LedgerEntry.expert_id == expert_id, LedgerEntry.kind.in_(("hold", "capture", "void")),
        Payment.intent == "AUTHORIZE")
    return {cur: int(total) for cur, total in q.group_by(LedgerEntry.currency)}
