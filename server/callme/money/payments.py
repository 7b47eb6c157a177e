"""Payments: PayPal holds for instant calls, captures after them, prepaid orders, refunds.

Every payment is a ``Payment`` row whose state changes only through ``transition``,
which refuses what ``TRANSITIONS`` does not allow, and does it as a compare-and-set so
that of two workers racing on one payment only one moves it. Money moves are ledger rows
with stable keys (``payment:<id>:capture``, ``refund:<paypal refund id>``...), so writing
one twice is impossible.

No PayPal call ever happens inside the transaction that ends a call: ``ledger.mark_payment_due``
only marks the payment ``capture_pending`` (or ``void_pending``), and ``settle_payment``
talks to PayPal afterwards, right after the call ended and again from the clock with
backoff or from ``callme payments retry``. It is safe to repeat: the capture carries the
stable ``PayPal-Request-Id`` ``capture-<call id>``, so a retry after a lost answer (or a
crash before our commit) gets the same capture back, never a second one.
"""
import logging
import threading
import time
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa

from ..errors import CallmeError
from ..extensions import db
from ..models import LedgerEntry, Payment, PayPalEvent, utcnow
from .currency import CurrencyError, paypal_payable
from .paypal import PayPalError, amount_of, gateway_for, order_payments

log = logging.getLogger(__name__)

TRANSITIONS = {
    "created": {"authorized", "captured"},
    "authorized": {"capture_pending", "void_pending"},
    "capture_pending": {"captured", "capture_pending", "capture_failed"},
    "capture_failed": {"captured", "capture_pending", "capture_failed", "void_pending"},
    "void_pending": {"voided", "void_pending"},
    "captured": {"partially_refunded", "refunded", "reversed", "denied"},
    "partially_refunded": {"partially_refunded", "refunded", "reversed"},
    "voided": set(), "refunded": set(), "reversed": set(), "denied": set(),
}
UNSETTLED = ("capture_pending", "capture_failed", "void_pending")
# An authorization PayPal still holds in full, untouched.
FRESH_AUTHORIZATION = ("CREATED",)


class IllegalTransition(ValueError):
    pass


class PaymentRefused(CallmeError):
    """A payment that cannot pay for what was asked: answered 402 (or the given status)."""

    def __init__(self, code, message, status=402):
        super().__init__(code, message, status=status)


def now_ms():
    return int(time.time() * 1000)


def transition(payment, to, **values):
    """Move a payment to ``to`` if the machine allows it and nobody moved it first.

    Raises IllegalTransition for a move the machine forbids; returns False when another
    worker changed the state meanwhile (the caller's view is stale), True when done.
    """
    was = payment.state
    if to not in TRANSITIONS[was]:
        raise IllegalTransition(f"payment {payment.id}: {was} -> {to} is not allowed")
    done = db.session.execute(
        sa.update(Payment).where(Payment.id == payment.id, Payment.state == was)
        .values(state=to, updated_at=utcnow(), **values)
    )
    db.session.expire(payment)
    return done.rowcount == 1


def keep_raw(payment, name, payload):
    """The raw answers, by name; a JSON column is replaced, never mutated in place."""
    raw = dict(payment.raw or {})
    raw[name] = payload
    return raw


def ledger_row(payment, kind, amount, key, **detail):
    return LedgerEntry(key=key, kind=kind, expert_id=payment.expert_id, call_id=payment.call_id,
                       payment_id=payment.id, amount_minor=amount, currency=payment.currency, detail=detail)


# ---- orders ---------------------------------------------------------------------------------

def create_order(expert, amount_minor, currency, config, *, intent="AUTHORIZE", return_url=None,
                 cancel_url=None, description=None):
    """Create a PayPal order on the expert's own app and record it; returns (payment, order)."""
    if not expert.paypal_connected:
        raise PaymentRefused("payments_not_set_up", f"{expert.display_name} has not connected PayPal yet.", 409)
    if not paypal_payable(amount_minor, currency):
        raise PaymentRefused("currency_not_supported", f"PayPal cannot take {amount_minor} minor units of "
                             f"{currency}.", 409)
    try:
        order = gateway_for(expert, config).create_order(intent, amount_minor, currency, request_id=f"order-{uuid.uuid4()}",
                                     return_url=return_url, cancel_url=cancel_url, description=description,
                                     custom_id=f"callme:{expert.handle}", brand_name=expert.display_name)
    except PayPalError as e:
        raise _refusal(e) from None
    except CurrencyError as e:
        raise PaymentRefused("currency_not_supported", str(e), 409) from None
    payment = Payment(expert_id=expert.id, intent=intent, state="created", currency=currency,
                      amount_minor=amount_minor, paypal_client_id=expert.paypal_client_id,
                      order_id=order["id"], raw={"order": order})
    db.session.add(payment)
    db.session.commit()
    return payment, order


def _refusal(e, default_code="payment_failed"):
    """A PayPalError as the 4xx/5xx the API answers."""
    if e.code == "payments_not_set_up":
        return PaymentRefused(e.code, e.message, 409)
    if e.code in ("invalid_client", "secret_unreadable"):
        return PaymentRefused("paypal_misconfigured", "The expert's PayPal connection does not work right now; "
                              "nothing was charged.", 502)
    if e.transient:
        return PaymentRefused("paypal_unavailable", "PayPal could not be reached; nothing was charged. "
                              "Try again in a moment.", 503)
    return PaymentRefused(default_code, e.message)


# ---- the hold for an instant call -------------------------------------------------------------

def find_order(expert, order_id):
    """The expert's recorded order, or PaymentRefused: unknown, another expert's, another app's."""
    payment = db.session.scalar(sa.select(Payment).where(Payment.order_id == order_id))
    if payment is None or payment.expert_id != expert.id:
        raise PaymentRefused("payment_invalid", "This PayPal order was not made for a call with "
                             f"{expert.display_name}.")
    if payment.paypal_client_id != expert.paypal_client_id:
        raise PaymentRefused("payment_invalid", "This PayPal order belongs to a PayPal app the expert no "
                             "longer uses; approve a new one.")
    if payment.intent != "AUTHORIZE":
        raise PaymentRefused("payment_invalid", "This PayPal order is not a hold for an instant call.")
    return payment


def authorize_hold(expert, order_id, need_minor, currency, config):
    """Authorize the visitor's approved order (idempotently) and check it covers ``need_minor``.

    Returns the Payment in state ``authorized``, with its hold in the ledger, not yet bound
    to a call. Raises PaymentRefused (402 unless said otherwise) and changes nothing then.
    """
    payment = find_order(expert, order_id)
    if payment.call_id is not None:
        raise PaymentRefused("payment_used", "This PayPal approval was already used for a call.")
    if payment.state not in ("created", "authorized"):
        raise PaymentRefused("payment_invalid", f"This PayPal order is {payment.state.replace('_', ' ')}.")
    if payment.currency != currency or payment.amount_minor < need_minor:
        raise PaymentRefused("payment_insufficient", "The PayPal approval does not cover the longest call "
                             "at this price; approve a new one.")
    order = None
    try:
        gateway = gateway_for(expert, config)
        if payment.state == "created":
            try:
                order = gateway.authorize_order(order_id, request_id=f"authorize-{order_id}")
            except PayPalError as e:
                if e.code != "ORDER_ALREADY_AUTHORIZED":
                    raise
                order = gateway.get_order(order_id)
            authorizations = order_payments(order, "authorizations")
            if not authorizations:
                raise PaymentRefused("payment_not_approved", "PayPal has not authorized this order.")
            authorization_id = authorizations[0]["id"]
        else:
            authorization_id = payment.authorization_id
        # Always PayPal's current view: an idempotent replay answers with the old one.
        authorization = gateway.get_authorization(authorization_id)
    except PayPalError as e:
        if e.code in ("ORDER_NOT_APPROVED", "PAYER_ACTION_REQUIRED"):
            raise PaymentRefused("payment_not_approved", "The visitor has not approved the PayPal payment "
                                 "yet.") from None
        if e.paypal_status == 404 or e.code in ("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"):
            raise PaymentRefused("payment_invalid", "PayPal does not know this order for the expert's "
                                 "PayPal account.") from None
        raise _refusal(e, "payment_declined") from None
    check_authorization(authorization, need_minor, currency)
    if payment.state == "created":
        if not transition(payment, "authorized", authorization_id=authorization_id,
                          raw=keep_raw(payment, "authorize", order)):
            db.session.rollback()
            raise PaymentRefused("payment_used", "This PayPal approval is being used for another call.", 409)
        db.session.add(ledger_row(payment, "hold", payment.amount_minor, f"payment:{payment.id}:hold",
                                  authorization_id=authorization_id))
        db.session.commit()
    return payment


def check_authorization(authorization, need_minor, currency):
    status = authorization.get("status")
    if status == "EXPIRED" or _expired(authorization.get("expiration_time")):
        raise PaymentRefused("payment_expired", "The PayPal authorization has expired; approve a new one.")
    if status not in FRESH_AUTHORIZATION:
        reason = {"PARTIALLY_CAPTURED": "was partly captured already", "CAPTURED": "was captured already",
                  "VOIDED": "was voided", "DENIED": "was denied", "PENDING": "is pending at PayPal"}
        raise PaymentRefused("payment_invalid", "The PayPal authorization "
                             f"{reason.get(status, f'is {status}')}; approve a new one.")
    try:
        minor, cur = amount_of(authorization)
    except (PayPalError, CurrencyError):
        raise PaymentRefused("payment_invalid", "PayPal's authorization has no readable amount.") from None
    if cur != currency or minor < need_minor:
        raise PaymentRefused("payment_insufficient", "The PayPal authorization does not cover the longest "
                             "call at this price; approve a new one.")


def _expired(expiration_time):
    if not expiration_time:
        return False
    try:
        when = datetime.fromisoformat(expiration_time.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when <= datetime.now(timezone.utc)


# ---- settlement --------------------------------------------------------------------------------

def mark_due(session, call):
    """Inside the call's ending transaction: what its payment owes, no PayPal call.

    Returns the payment whose settlement is now due, or None.
    """
    payment = session.scalar(sa.select(Payment).where(Payment.call_id == call.id))
    if payment is None or payment.state != "authorized":
        return None
    due = call.amount_minor or 0
    if due > payment.amount_minor:  # cannot happen: the call ends at the cap the hold covers
        log.error("call %s: %s due exceeds the hold of %s; capturing the hold", call.id, due, payment.amount_minor)
        due = payment.amount_minor
    if due:
        transition(payment, "capture_pending", due_minor=due, next_attempt_ms=0)
    else:
        transition(payment, "void_pending", due_minor=0, next_attempt_ms=0)
    return payment


def backoff_ms(attempts, config):
    base = config.get("PAYMENTS_RETRY_BASE", 10) * 1000
    return min(base * 2 ** max(0, attempts - 1), config.get("PAYMENTS_RETRY_MAX", 3600) * 1000)


def settle_payment(payment_id, config, now=None):
    """Capture or void one due payment at PayPal and record the outcome. Safe to repeat.

    Returns the payment's state afterwards.
    """
    now = now_ms() if now is None else now
    db.session.expire_all()
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.state not in UNSETTLED:
        return payment.state if payment else None
    state, authorization_id, due, currency = payment.state, payment.authorization_id, payment.due_minor, \
        payment.currency
    key = payment.call_id or payment.id
    try:
        gateway = gateway_for(payment.expert, config)
    except PayPalError as e:
        return _failed(payment, state, e, config, now)
    db.session.rollback()  # no transaction stays open while PayPal answers
    try:
        if state == "void_pending":
            answer = _void(gateway, authorization_id, key)
        else:
            answer = gateway.capture_authorization(authorization_id, due, currency, request_id=f"capture-{key}",
                                                   final=True)
    except PayPalError as e:
        return _failed(payment, state, e, config, now)
    try:
        if state == "void_pending":
            return _record_void(payment, answer)
        return _record_capture(payment, answer, config, now)
    except sa.exc.IntegrityError:
        db.session.rollback()  # another worker recorded the same answer first
        db.session.expire_all()
        return db.session.get(Payment, payment_id).state


def _void(gateway, authorization_id, key):
    try:
        return gateway.void_authorization(authorization_id, request_id=f"void-{key}")
    except PayPalError as e:
        # A hold that is gone already (voided, expired) is released all the same.
        if e.code in ("AUTHORIZATION_ALREADY_VOIDED", "PREVIOUSLY_VOIDED", "AUTHORIZATION_VOIDED",
                      "AUTHORIZATION_EXPIRED"):
            return {"status": "VOIDED", "note": e.code}
        raise


def _record_void(payment, answer):
    if not transition(payment, "voided", next_attempt_ms=None, last_error=None,
                      raw=keep_raw(payment, "void", answer)):
        db.session.rollback()
        return db.session.get(Payment, payment.id).state
    db.session.add(ledger_row(payment, "void", payment.amount_minor, f"payment:{payment.id}:void",
                              released_by="void"))
    db.session.commit()
    return "voided"


def _record_capture(payment, capture, config, now):
    status = capture.get("status")
    if status in ("DECLINED", "FAILED"):
        reason = (capture.get("status_details") or {}).get("reason") or status
        return _failed(payment, payment.state, PayPalError(reason, f"PayPal declined the capture ({reason}).",
                                                           422, payload=capture), config, now)
    try:
        minor, currency = amount_of(capture)
    except (PayPalError, CurrencyError):
        minor, currency = None, None
    if (minor, currency) != (payment.due_minor, payment.currency):
        log.error("payment %s: PayPal captured %s %s, %s %s was due", payment.id, minor, currency,
                  payment.due_minor, payment.currency)
        minor = minor if currency == payment.currency and minor else payment.due_minor
    amount = payment.amount_minor
    if not transition(payment, "captured", capture_id=capture["id"], captured_minor=minor, next_attempt_ms=None,
                      last_error=None, raw=keep_raw(payment, "capture", capture)):
        db.session.rollback()
        return db.session.get(Payment, payment.id).state
    call = payment.call
    bill = {"minutes": call.billed_minutes, "price": call.price_minor, "duration_ms": call.billed_ms} if call else {}
    rows = [ledger_row(payment, "capture", minor, f"payment:{payment.id}:capture", capture_id=capture["id"],
                       status=status, **bill)]
    if amount > minor:  # final_capture: PayPal releases the rest of the hold itself
        rows.append(ledger_row(payment, "void", amount - minor, f"payment:{payment.id}:void",
                               released_by="final_capture"))
    db.session.add_all(rows)
    db.session.commit()
    return "captured"


def _failed(payment, state, error, config, now):
    db.session.rollback()
    if payment.state != state:  # settled by another worker meanwhile
        return payment.state
    attempts = payment.attempts + 1
    stop = attempts >= config.get("PAYMENTS_MAX_ATTEMPTS", 12)
    to = state if error.transient or state == "void_pending" else "capture_failed"
    log.warning("payment %s: %s failed (attempt %s): %s %s", payment.id, state, attempts, error.code, error.message)
    transition(payment, to, attempts=attempts, last_error=f"{error.code}: {error.message}"[:255],
               next_attempt_ms=None if stop else now + backoff_ms(attempts, config))
    db.session.commit()
    return to


def retry_due(config, now=None, everything=False):
    """Settle every payment whose next attempt is due (all unsettled ones with ``everything``).

    Also voids holds that never became a call, PAYMENTS_ORPHAN_HOLD seconds after they were
    authorized (the visitor went away). Returns {payment id: state after}.
    """
    now = now_ms() if now is None else now
    orphan_before = utcnow().timestamp() - config.get("PAYMENTS_ORPHAN_HOLD", 3600)
    for payment in db.session.scalars(sa.select(Payment).where(
            Payment.state == "authorized", Payment.call_id.is_(None))).all():
        if payment.updated_at.timestamp() <= orphan_before:
            transition(payment, "void_pending", due_minor=0, next_attempt_ms=0)
    db.session.commit()
    due = sa.select(Payment.id).where(Payment.state.in_(UNSETTLED))
    if not everything:
        due = due.where(Payment.next_attempt_ms <= now)
    results = {}
    for payment_id in db.session.scalars(due.order_by(Payment.id)).all():
        try:
            results[payment_id] = settle_payment(payment_id, config, now)
        except Exception:
            db.session.rollback()
            log.exception("settling payment %s failed", payment_id)
    return results


def unsettled(expert_id):
    """Payments of the expert that are not settled yet (for the dashboard), oldest first."""
    return db.session.scalars(sa.select(Payment).where(Payment.expert_id == expert_id,
                                                       Payment.state.in_(UNSETTLED)).order_by(Payment.id)).all()


# ---- prepaid (appointments) ---------------------------------------------------------------------

def capture_prepaid(payment, config):
    """Capture an approved intent-CAPTURE order up front; idempotent. Returns the payment."""
    if payment.intent != "CAPTURE":
        raise PaymentRefused("payment_invalid", "Only a prepaid order is captured up front.")
    if payment.state != "created":
        return payment
    try:
        order = gateway_for(payment.expert, config).capture_order(payment.order_id,
                                                                  request_id=f"capture-order-{payment.order_id}")
    except PayPalError as e:
        if e.code in ("ORDER_NOT_APPROVED", "PAYER_ACTION_REQUIRED"):
            raise PaymentRefused("payment_not_approved", "The payer has not approved the PayPal payment yet.") \
                from None
        raise _refusal(e, "payment_declined") from None
    captures = order_payments(order, "captures")
    if not captures or captures[0].get("status") not in ("COMPLETED", "PENDING"):
        raise PaymentRefused("payment_declined", "PayPal did not capture the payment.")
    capture = captures[0]
    minor, _ = amount_of(capture)
    try:
        if transition(payment, "captured", capture_id=capture["id"], captured_minor=minor,
                      raw=keep_raw(payment, "capture", order)):
            db.session.add(ledger_row(payment, "capture", minor, f"payment:{payment.id}:capture",
                                      capture_id=capture["id"], status=capture.get("status")))
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
    db.session.expire_all()
    return db.session.get(Payment, payment.id)


def money_back(payment_id):
    """Refunds and reversals already in the ledger for one payment."""
    return int(db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount_minor), 0)).where(
        LedgerEntry.payment_id == payment_id, LedgerEntry.kind.in_(("refund", "reversal")))))


def refund(payment, config, amount_minor=None, key="full", note=None):
    """Refund all or part of a captured payment. ``key`` names this refund: the same key
    never refunds twice. Returns the payment."""
    if payment.state not in ("captured", "partially_refunded"):
        raise PaymentRefused("not_refundable", f"A {payment.state.replace('_', ' ')} payment cannot be refunded.",
                             409)
    left = payment.captured_minor - money_back(payment.id)
    amount = left if amount_minor is None else amount_minor
    if type(amount) is not int or amount <= 0 or amount > left:
        raise PaymentRefused("refund_too_large", f"At most {left} minor units are left to refund.", 422)
    try:
        answer = gateway_for(payment.expert, config).refund_capture(
            payment.capture_id, amount, payment.currency, request_id=f"refund-{payment.id}-{key}", note=note)
    except PayPalError as e:
        raise _refusal(e, "refund_failed") from None
    apply_refund(payment, answer, "refund")
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Payment, payment.id)


def apply_refund(payment, refund_obj, kind):
    """Record a refund (or reversal) PayPal made, once per PayPal refund id; no commit."""
    refund_id = refund_obj.get("id")
    if not refund_id:
        raise PaymentRefused("bad_event", "The refund has no id.", 400)
    key = f"{kind}:{refund_id}"
    if db.session.scalar(sa.select(LedgerEntry.id).where(LedgerEntry.key == key)):
        return False
    if kind == "refund" and db.session.scalar(sa.select(LedgerEntry.id).where(
            LedgerEntry.key == f"reversal:{refund_id}")):
        return False
    try:
        minor, currency = amount_of(refund_obj)
    except (PayPalError, CurrencyError):
        raise PaymentRefused("bad_event", "The refund has no readable amount.", 400) from None
    if currency != payment.currency:
        raise PaymentRefused("bad_event", "The refund is in another currency than the payment.", 400)
    left = (payment.captured_minor or 0) - money_back(payment.id)
    minor = min(minor, left)
    if minor <= 0:
        return False
    to = "reversed" if kind == "reversal" else ("refunded" if minor == left else "partially_refunded")
    transition(payment, to, raw=keep_raw(payment, f"{kind}:{refund_id}", refund_obj))
    db.session.add(ledger_row(payment, kind, minor, key, refund_id=refund_id, status=refund_obj.get("status")))
    db.session.flush()
    return True


# ---- webhooks --------------------------------------------------------------------------------------

HANDLED_EVENTS = ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED", "PAYMENT.CAPTURE.DENIED")


def _capture_id_of(resource, event_type):
    if event_type == "PAYMENT.CAPTURE.DENIED":
        return resource.get("id")
    related = ((resource.get("supplementary_data") or {}).get("related_ids") or {}).get("capture_id")
    if related:
        return related
    for link in resource.get("links") or []:
        href = link.get("href") or ""
        if link.get("rel") == "up" and "/captures/" in href:
            return href.rstrip("/").rsplit("/", 1)[-1]
    return None


class WebhookRefused(CallmeError):
    """A webhook delivery that changes nothing: 400 not an event, 401 not verified, 503 try again."""


def receive_event(expert, event, headers, config, sender=None):
    """Check a delivered webhook event's shape, verify it with PayPal, apply it once. Returns the outcome."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or \
            not isinstance(event.get("event_type"), str) or not isinstance(event.get("resource"), dict) or \
            not event["id"] or len(event["id"]) > 64 or len(event["event_type"]) > 64:
        log.warning("malformed PayPal webhook for %s from %s", expert.handle, sender)
        raise WebhookRefused("bad_event", "Not a PayPal webhook event.")
    if not expert.paypal_connected or not expert.paypal_webhook_id:
        log.warning("PayPal webhook %s for %s, who has no webhook id set", event["id"], expert.handle)
        raise WebhookRefused("webhook_unverified", "This expert has no PayPal webhook configured.", status=401)
    try:
        verified = gateway_for(expert, config).verify_webhook(headers, event, expert.paypal_webhook_id)
    except PayPalError as e:
        log.warning("PayPal webhook %s for %s not verified: %s", event["id"], expert.handle, e.message)
        if e.transient:  # PayPal retries the delivery when we answer 5xx
            raise WebhookRefused("paypal_unavailable", "PayPal could not verify the event now.", status=503) \
                from None
        raise WebhookRefused("webhook_unverified", "The event could not be verified with PayPal.", status=401) \
            from None
    if not verified:
        log.warning("PayPal webhook %s (%s) for %s failed verification; refused", event["id"],
                    event["event_type"], expert.handle)
        raise WebhookRefused("webhook_unverified", "PayPal did not confirm this event's signature.", status=401)
    try:
        return apply_event(expert, event)
    except (PaymentRefused, IllegalTransition) as e:
        db.session.rollback()
        log.warning("PayPal webhook %s for %s not applied: %s", event["id"], expert.handle, e)
        raise WebhookRefused("bad_event", str(getattr(e, "message", e))) from None


def apply_event(expert, event):
    """Apply one verified webhook event, once per event id. Returns the outcome."""
    event_id, event_type, resource = event["id"], event["event_type"], event.get("resource") or {}
    if db.session.scalar(sa.select(PayPalEvent.id).where(PayPalEvent.event_id == event_id)):
        return "duplicate"
    payment = None
    outcome = "ignored"
    if event_type in HANDLED_EVENTS:
        capture_id = _capture_id_of(resource, event_type)
        payment = capture_id and db.session.scalar(sa.select(Payment).where(Payment.capture_id == capture_id,
                                                                            Payment.expert_id == expert.id))
        if not payment:
            known = db.session.scalar(sa.select(LedgerEntry.id).where(LedgerEntry.key.in_(
                (f"refund:{resource.get('id')}", f"reversal:{resource.get('id')}")), LedgerEntry.expert_id == expert.id))
            outcome = "already_applied" if known else "unknown_capture"
        elif event_type == "PAYMENT.CAPTURE.DENIED":
            if payment.state == "captured":
                transition(payment, "denied", raw=keep_raw(payment, "denied", resource))
                db.session.add(ledger_row(payment, "reversal", payment.captured_minor,
                                          f"reversal:denied:{payment.capture_id}", reason="denied"))
                outcome = "applied"
            else:
                outcome = "ignored"
        else:
            kind = "reversal" if event_type == "PAYMENT.CAPTURE.REVERSED" else "refund"
            outcome = "applied" if apply_refund(payment, resource, kind) else "already_applied"
    db.session.add(PayPalEvent(event_id=event_id, expert_id=expert.id, event_type=event_type,
                               payment_id=payment.id if payment else None, outcome=outcome, payload=event))
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()  # the same event, delivered twice at once
        return "duplicate"
    return outcome


class Settler:
    """Settles a due payment right after its call ended: in the background on a server
    (a greenlet under gevent), inline when ``PAYMENTS_SETTLE_ASYNC`` is off (tests)."""

    def __init__(self, app):
        self.app = app
        self._retrying = threading.Lock()

    def __call__(self, payment_id):
        return self._spawn(settle_payment, payment_id, self.app.config)

    def retry_due(self):
        """One pass of ``retry_due``, unless the previous one is still running."""
        if not self._retrying.acquire(blocking=False):
            return None

        def run():
            try:
                return retry_due(self.app.config)
            finally:
                self._retrying.release()
        return self._spawn(run)

    def _spawn(self, fn, *args):
        if not self.app.config["PAYMENTS_SETTLE_ASYNC"]:
            try:
                return fn(*args)
            except Exception:
                db.session.rollback()
                log.exception("settling payments failed; the retry loop takes over")
                return None
        threading.Thread(target=self._run, args=(fn, args), name="callme-settle", daemon=True).start()
        return None

    def _run(self, fn, args):
        with self.app.app_context():
            try:
                fn(*args)
            except Exception:
                log.exception("settling payments failed; the retry loop takes over")
            finally:
                db.session.remove()
