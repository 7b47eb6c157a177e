"""The JSON API for the widget and the expert console: /api/v1."""
import json
import logging

from flask import Blueprint, current_app, jsonify, request

from ..money import payments
from ..calls.lifecycle import CallError
from ..money.currency import EXPONENTS, PAYPAL_CURRENCIES, PAYPAL_WHOLE_UNITS
from ..errors import ApiError
from ..extensions import db
from ..models import Call, Expert
from .openapi import openapi_document
from ..money.paypal import PayPalError, approve_url, gateway_for
from .limits import limit
from .schemas import (CallCreatedSchema, CallStateSchema, CreateCallSchema, CreateOrderSchema, OrderCreatedSchema,
                      StatusSchema, load_json)
from ..calls.tokens import TokenError
from ..urls import own_origin, ws_url

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

RECEIPT_MAX_AGE = 90 * 24 * 3600


def service():
    return current_app.extensions["callme.calls"]


def origin_allowed(expert, origin):
    return origin == own_origin() or origin in (expert.allowed_origins or [])


def expert_or_404(handle):
    expert = db.session.scalar(db.select(Expert).filter_by(handle=handle))
    if expert is None:
        raise ApiError(404, "expert_not_found", f"Expert {handle!r} does not exist.")
    return expert


def terms(obj):
    return {"price": obj.price_minor, "currency": obj.currency,
            "free_seconds": obj.free_seconds, "cap_minutes": obj.cap_minutes}


@bp.get("/experts/<handle>/status")
def expert_status(handle):
    """The expert's public status, readable cross-origin by the sites allowed to embed them."""
    expert = expert_or_404(handle)
    origin = request.headers.get("Origin")
    if origin and not origin_allowed(expert, origin):
        raise ApiError(403, "origin_not_allowed", f"{origin} may not embed {expert.display_name}'s button.")
    body = StatusSchema().dump({
        "handle": expert.handle, "display_name": expert.display_name,
        "status": service().status(expert.id),
        "price": {"amount": expert.price_minor, "currency": expert.currency},
        "free_seconds": expert.free_seconds, "cap_minutes": expert.cap_minutes,
        "rating": None, "next_available": None,
    })
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=5"
    response.headers["Vary"] = "Origin"
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def check_origin(expert, claimed):
    """403 unless the page (the browser's Origin, and the origin the widget says) may embed the expert."""
    for origin in (request.headers.get("Origin"), claimed):
        if origin and not origin_allowed(expert, origin):
            raise ApiError(403, "origin_not_allowed", f"{origin} may not embed {expert.display_name}'s button.")


def check_price(expert, shown):
    """409 price_changed (with the current price) unless the price the visitor saw is still the price."""
    if (shown["amount"], shown["currency"]) != (expert.price_minor, expert.currency):
        raise ApiError(409, "price_changed", "The price has changed since it was shown.",
                       extra={"price": {"amount": expert.price_minor, "currency": expert.currency}})


@bp.post("/calls")
def create_call():
    """Create a call on the expert's current terms; returns the visitor's token."""
    data = load_json(CreateCallSchema())
    limit("RATE_LIMIT_CALLS", f"calls:{request.remote_addr}")
    expert = expert_or_404(data["expert"])
    check_origin(expert, data["origin"])
    if data["kind"] != "instant":
        raise ApiError(409, "booking_required", f"A {data['kind']} call needs a booking first.")
    check_price(expert, data["price"])
    status = service().status(expert.id)
    if status != "online":
        raise ApiError(409, f"expert_{status}", f"{expert.display_name} is {status}.", extra={"status": status})
    limit("RATE_LIMIT_RINGS", f"rings:{expert.id}")
    payment = hold_for_call(expert, data["payment"]) if expert.price_minor > 0 else None
    try:
        call = service().create(expert, data["kind"], data["origin"], payment=payment)
    except CallError as e:
        raise ApiError(409, e.code, e.message, extra={"status": "busy"}) from None
    body = CallCreatedSchema().dump({
        "call_id": call.id, "role": "visitor", **service().grant(call, "visitor"),
        "ws_url": ws_url(call.id), "terms": terms(call),
    })
    return jsonify(body), 201


def hold_for_call(expert, ref):
    """The authorized PayPal hold a paid call needs, or 402/409 with nothing rung."""
    if not expert.paypal_connected:
        raise ApiError(409, "payments_not_set_up", f"{expert.display_name} has not connected PayPal yet, "
                       "so paid calls are not possible right now.")
    if not ref:
        raise ApiError(402, "payment_required", "A paid call needs an approved PayPal hold: create one with "
                       "POST /api/v1/payments/orders.")
    try:
        return payments.authorize_hold(expert, ref["order_id"], expert.hold_minor, expert.currency,
                                       current_app.config)
    except payments.PaymentRefused as e:
        db.session.rollback()
        raise ApiError(e.status, e.code, e.message) from None


@bp.post("/payments/orders")
def create_order():
    """Create the PayPal order (intent AUTHORIZE) for a paid call: cap_minutes x price."""
    data = load_json(CreateOrderSchema())
    limit("RATE_LIMIT_CALLS", f"orders:{request.remote_addr}")
    expert = expert_or_404(data["expert"])
    check_origin(expert, data["origin"])
    check_price(expert, data["price"])
    if expert.price_minor == 0:
        raise ApiError(409, "payment_not_needed", f"Calls with {expert.display_name} are free.")
    own = own_origin()
    return_url = data["return_url"] or f"{own}/paypal/return"
    if not return_url.startswith(f"{own}/"):
        raise ApiError(422, "invalid", "Some fields are not valid.",
                       fields={"return_url": [f"Must be a page of {own}."]})
    amount = expert.hold_minor
    try:
        payment, order = payments.create_order(
            expert, amount, expert.currency, current_app.config, return_url=return_url,
            cancel_url=f"{own}/paypal/cancel",
            description=f"Call with {expert.display_name}: up to {expert.cap_minutes} min, first "
                        f"{expert.free_seconds} s free; only the minutes talked are charged")
    except payments.PaymentRefused as e:
        raise ApiError(e.status, e.code, e.message) from None
    url = approve_url(order)
    if not url:
        raise ApiError(502, "paypal_bad_answer", "PayPal gave no approval link; nothing was charged.")
    body = OrderCreatedSchema().dump({"order_id": payment.order_id, "approve_url": url,
                                      "amount": {"amount": amount, "currency": expert.currency}})
    return jsonify(body), 201


@bp.get("/currencies")
def currencies():
    """The minor-unit exponents callme uses (ISO 4217), and what PayPal takes."""
    response = jsonify({"exponents": EXPONENTS, "default_exponent": 2, "paypal": sorted(PAYPAL_CURRENCIES),
                        "paypal_whole_units": sorted(PAYPAL_WHOLE_UNITS)})
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.post("/paypal/webhooks/<handle>")
def paypal_webhook(handle):
    """A PayPal webhook event for one expert: verified with PayPal, applied once."""
    expert = expert_or_404(handle)
    raw = request.get_data(cache=False, as_text=False)
    if len(raw) > 256 * 1024:
        raise ApiError(413, "too_large", "The event is too large.")
    try:
        event = json.loads(raw)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or \
            not isinstance(event.get("event_type"), str) or not isinstance(event.get("resource"), dict) or \
            not event["id"] or len(event["id"]) > 64 or len(event["event_type"]) > 64:
        log.warning("malformed PayPal webhook for %s from %s", handle, request.remote_addr)
        raise ApiError(400, "bad_event", "Not a PayPal webhook event.")
    if not expert.paypal_connected or not expert.paypal_webhook_id:
        log.warning("PayPal webhook %s for %s, who has no webhook id set", event["id"], handle)
        raise ApiError(401, "webhook_unverified", "This expert has no PayPal webhook configured.")
    try:
        verified = gateway_for(expert, current_app.config).verify_webhook(
            request.headers, event, expert.paypal_webhook_id)
    except PayPalError as e:
        log.warning("PayPal webhook %s for %s not verified: %s", event["id"], handle, e.message)
        if e.transient:  # PayPal retries the delivery when we answer 5xx
            raise ApiError(503, "paypal_unavailable", "PayPal could not verify the event now.") from None
        raise ApiError(401, "webhook_unverified", "The event could not be verified with PayPal.") from None
    if not verified:
        log.warning("PayPal webhook %s (%s) for %s failed verification; refused", event["id"],
                    event["event_type"], handle)
        raise ApiError(401, "webhook_unverified", "PayPal did not confirm this event's signature.")
    try:
        outcome = payments.apply_event(expert, event)
    except (payments.PaymentRefused, payments.IllegalTransition) as e:
        db.session.rollback()
        log.warning("PayPal webhook %s for %s not applied: %s", event["id"], handle, e)
        raise ApiError(400, "bad_event", str(getattr(e, "message", e))) from None
    return jsonify({"ok": True, "outcome": outcome})


@bp.get("/calls/<call_id>")
def call_state(call_id):
    """A call's state and, once ended, its result. Needs a call or receipt token."""
    token = request.args.get("receipt") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise ApiError(401, "token_required", "Send the call's token as 'Authorization: Bearer <token>'.")
    tokens = service().tokens
    try:
        if request.args.get("receipt"):
            tokens.check_receipt_token(token, call_id, RECEIPT_MAX_AGE)
        else:
            tokens.check_call_token(token, current_app.config["CALL_TOKEN_TTL"], call_id=call_id)
    except TokenError as e:
        raise ApiError(403 if e.code == "token_wrong_call" else 401, e.code, e.message) from None
    call = db.session.get(Call, call_id)
    if call is None:
        raise ApiError(404, "call_not_found", "This call does not exist.")
    return jsonify(CallStateSchema().dump({
        "call_id": call.id, "expert": call.expert.handle, "kind": call.kind, "state": call.state,
        "terms": terms(call), "end_reason": call.end_reason, "ended_by": call.ended_by,
        "duration_ms": call.billed_ms, "minutes": call.billed_minutes, "amount": call.amount_minor,
        "currency": call.currency, "payment": payment_json(call.payment),
    }))


def payment_json(payment):
    if payment is None:
        return None
    return {"state": payment.state, "amount": payment.amount_minor, "captured": payment.captured_minor,
            "capture_id": payment.capture_id, "currency": payment.currency}


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
