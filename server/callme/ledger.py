"""Settlement: the one place where a finished call turns into ledger rows.

The payment issue extends ``settle``; its contract stays: it runs inside the caller's
transaction, writes rows with stable keys, and running it twice changes nothing.
"""
import sqlalchemy as sa

from .extensions import db
from .models import Call, LedgerEntry, utcnow


def settle(session, call):
    """Write the ledger rows for an ended call, once. Return the rows written now."""
    if call.state != "ended":
        raise ValueError(f"call {call.id} is not ended")
    if call.settled_at is not None:
        return []
    # Compare-and-set first: of two settlers only the winner writes rows.
    done = session.execute(
        sa.update(Call).where(Call.id == call.id, Call.settled_at.is_(None)).values(settled_at=utcnow())
    )
    if done.rowcount != 1:
        return []
    rows = []
    if call.amount_minor:
        rows.append(LedgerEntry(
            key=f"call:{call.id}:charge", kind="charge", expert_id=call.expert_id, call_id=call.id,
            amount_minor=call.amount_minor, currency=call.currency,
            detail={"minutes": call.billed_minutes, "price": call.price_minor, "duration_ms": call.billed_ms},
        ))
    session.add_all(rows)
    session.flush()
    return rows


def balance(expert_id, currency=None):
    """Total charged to an expert's benefit, per currency, derived from the ledger."""
    q = db.session.query(LedgerEntry.currency, sa.func.sum(LedgerEntry.amount_minor)).filter(
        LedgerEntry.expert_id == expert_id, LedgerEntry.kind == "charge")
    if currency:
        q = q.filter(LedgerEntry.currency == currency)
    return {cur: int(total) for cur, total in q.group_by(LedgerEntry.currency)}
