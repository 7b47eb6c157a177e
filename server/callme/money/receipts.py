"""A call's receipt: what was billed and taken, read from the call and its ledger rows.

The receipt is reached by a signed link (``receipt_token``), valid RECEIPT_MAX_AGE; the
visitor gets it in the ``ended`` frame, the expert on the dashboard.
"""
import sqlalchemy as sa

from ..calls.tokens import TokenError
from ..errors import CallmeError
from ..extensions import db
from ..models import Call, Payment
from .currency import decimal_string
from .earnings import format_duration, format_money, from_ms, human_utc, iso_utc, money_of_call, started_ms
from .ledger import rows_of_call

RECEIPT_MAX_AGE = 90 * 24 * 3600

# A receipt link is read by people: say what is wrong with it in their words.
LINK_MESSAGES = {"token_expired": "This receipt link has expired.",
                 "token_wrong_call": "This receipt link is for another call."}


class ReceiptRefused(CallmeError):
    """A receipt link that opens nothing: 403 (a bad link) or 404 (no such call)."""


def receipt(call, expert_name, rows, capture_id=None):
    """A call's receipt as plain data (the JSON, and what the page shows)."""
    money = money_of_call(rows)
    start = from_ms(started_ms(call))
    amount = call.amount_minor or 0
    return {
        "call_id": call.id,
        "expert": expert_name,
        "state": call.state,
        "started_utc": iso_utc(start),
        "started": human_utc(start),
        "ended_utc": iso_utc(from_ms(call.ended_ms)) or None,
        "end_reason": call.end_reason,
        "billed_duration_ms": call.billed_ms or 0,
        "billed_duration": format_duration(call.billed_ms or 0),
        "billed_minutes": call.billed_minutes or 0,
        "free_seconds": call.free_seconds,
        "price_minor": call.price_minor,
        "price": format_money(call.price_minor, call.currency),
        "amount_minor": amount,
        "amount": format_money(amount, call.currency),
        "amount_decimal": decimal_string(amount, call.currency),
        "currency": call.currency,
        "refunded_minor": money["given_back"],
        "refunded": format_money(money["given_back"], call.currency) if money["given_back"] else None,
        "paypal_capture_id": capture_id or money["capture_id"],
        "commission_minor": 0,
        "note": f"No commission: the whole amount goes to {expert_name}.",
    }


def receipt_by_link(tokens, call_id, token):
    """The receipt a link opens, or ReceiptRefused saying why not."""
    try:
        tokens.check_receipt_token(token, call_id, RECEIPT_MAX_AGE)
    except TokenError as e:
        raise ReceiptRefused(e.code, LINK_MESSAGES.get(e.code, "This receipt link is not valid."),
                             status=403) from None
    call = db.session.get(Call, call_id)
    if call is None:
        raise ReceiptRefused("call_not_found", "This call does not exist.", status=404)
    payment = db.session.scalar(sa.select(Payment).where(Payment.call_id == call.id))
    return receipt(call, call.expert.display_name, rows_of_call(call.id),
                   capture_id=payment.capture_id if payment is not None else None)
