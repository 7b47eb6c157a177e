"""An expert's books as the dashboard shows them: the rows read from the database, handed to
the pure functions of ``earnings``."""
import sqlalchemy as sa

from ..extensions import db
from ..models import Call, LedgerEntry, Payment
from . import earnings, payments


def calls_page(expert_id, requested):
    """(the page, its calls): the expert's calls, newest first, one page of them."""
    base = sa.select(Call).where(Call.expert_id == expert_id)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(base.subquery()))
    page = earnings.page_of(total, requested)
    calls = db.session.scalars(base.order_by(Call.created_ms.desc(), Call.id.desc())
                               .offset(page.offset).limit(page.per_page)).all()
    return page, calls


def all_calls(expert_id):
    """Every call of the expert, oldest first."""
    return db.session.scalars(sa.select(Call).where(Call.expert_id == expert_id)
                              .order_by(Call.created_ms, Call.id)).all()


def _ledger_by_call(expert_id, call_ids):
    """The ledger rows of these calls, {call_id: [rows]} (a payment's rows count for its call)."""
    if not call_ids:
        return {}
    rows = db.session.execute(
        sa.select(LedgerEntry, Payment.call_id)
        .outerjoin(Payment, Payment.id == LedgerEntry.payment_id)
        .where(LedgerEntry.expert_id == expert_id,
               sa.or_(LedgerEntry.call_id.in_(call_ids), Payment.call_id.in_(call_ids)))
        .order_by(LedgerEntry.id)).all()
    grouped = {}
    for entry, paid_call in rows:
        grouped.setdefault(entry.call_id or paid_call, []).append(entry)
    return grouped


def _payment_states(expert_id, call_ids):
    if not call_ids:
        return {}
    return dict(db.session.execute(sa.select(Payment.call_id, Payment.state).where(
        Payment.expert_id == expert_id, Payment.call_id.in_(call_ids))).all())


def call_rows(expert_id, calls):
    """The calls table's rows (``earnings.call_row``) of these calls, with their ledger rows."""
    ids = [call.id for call in calls]
    ledger = _ledger_by_call(expert_id, ids)
    states = _payment_states(expert_id, ids)
    return [earnings.call_row(call, ledger.get(call.id, []), states.get(call.id)) for call in calls]


def unsettled(expert):
    """What the expert is owed but has not got: unsettled PayPal payments, and ended paid calls
    with no payment and no money taken (rows from before payments existed, or made around the API)."""
    items = []
    seen = set()
    for payment in payments.unsettled(expert.id):
        call = payment.call
        seen.add(payment.call_id)
        items.append({
            "call_id": payment.call_id, "when": earnings.human_utc(earnings.from_ms(
                earnings.started_ms(call))) if call else earnings.human_utc(payment.created_at),
            "amount": earnings.format_money(payment.due_minor or 0, payment.currency),
            "state": payment.state.replace("_", " "), "attempts": payment.attempts,
            "error": payment.last_error or "",
            "next_attempt": earnings.human_utc(earnings.from_ms(payment.next_attempt_ms))
            if payment.next_attempt_ms else "",
        })
    taken = sa.select(LedgerEntry.id).where(LedgerEntry.call_id == Call.id,
                                            LedgerEntry.kind.in_(earnings.TAKEN_KINDS)).exists()
    paid = sa.select(Payment.id).where(Payment.call_id == Call.id).exists()
    for call in db.session.scalars(sa.select(Call).where(
            Call.expert_id == expert.id, Call.state == "ended", Call.amount_minor > 0, ~taken, ~paid)
            .order_by(Call.created_ms)).all():
        if call.id in seen:
            continue
        items.append({
            "call_id": call.id, "when": earnings.human_utc(earnings.from_ms(earnings.started_ms(call))),
            "amount": earnings.format_money(call.amount_minor, call.currency), "state": "no payment",
            "attempts": 0, "error": "No PayPal hold was recorded for this call; nothing can be captured.",
            "next_attempt": "",
        })
    return items


def earning_rows(expert_id):
    """(kind, amount, currency, created_at) of the expert's ledger rows that count as earnings."""
    return db.session.execute(sa.select(LedgerEntry.kind, LedgerEntry.amount_minor, LedgerEntry.currency,
                                        LedgerEntry.created_at).where(
        LedgerEntry.expert_id == expert_id, LedgerEntry.kind.in_(earnings.EARNING_KINDS))).all()
