"""The JSON API for the widget and the expert console: /api/v1."""
from flask import Blueprint, current_app, jsonify, request

from .. import reviews
from ..calls import instant
from ..calls.metering import Terms
from ..errors import ApiError
from ..extensions import db
from ..models import Call
from ..money.currency import EXPONENTS, PAYPAL_CURRENCIES, PAYPAL_WHOLE_UNITS
from ..money.receipts import RECEIPT_MAX_AGE
from ..urls import own_origin, ws_url
from .openapi import openapi_document
from .schemas import (CallCreatedSchema, CallStateSchema, CreateCallSchema, CreateOrderSchema, OrderCreatedSchema,
                      StatusSchema, load_json)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def service():
    return current_app.extensions["callme.calls"]


def services():
    return instant.Services(service(), current_app.extensions["callme.limiter"], current_app.config)


def visit():
    return instant.Visit(request.headers.get("Origin"), request.remote_addr, own_origin())


@bp.get("/experts/<handle>/status")
def expert_status(handle):
    """The expert's public status, readable cross-origin by the sites allowed to embed them."""
    expert = instant.expert_by_handle(handle)
    origin = request.headers.get("Origin")
    instant.check_origins(expert, [origin], own_origin())
    ratings = reviews.summary(expert.id, recent=0)
    body = StatusSchema().dump({
        "handle": expert.handle, "display_name": expert.display_name,
        "status": service().status(expert.id),
        "price": {"amount": expert.price_minor, "currency": expert.currency},
        "free_seconds": expert.free_seconds, "cap_minutes": expert.cap_minutes,
        "rating": ratings["average"], "rating_count": ratings["count"], "next_available": None,
    })
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=5"
    response.headers["Vary"] = "Origin"
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


@bp.post("/calls")
def create_call():
    """Create a call on the expert's current terms; returns the visitor's token."""
    call, grant = instant.start_instant_call(services(), visit(), **load_json(CreateCallSchema()))
    body = CallCreatedSchema().dump({"call_id": call.id, "role": "visitor", **grant, "ws_url": ws_url(call.id),
                                     "terms": Terms.of(call).as_json()})
    return jsonify(body), 201


@bp.post("/payments/orders")
def create_order():
    """Create the PayPal order (intent AUTHORIZE) for a paid call: cap_minutes x price."""
    payment, approve_url, amount = instant.open_hold_order(services(), visit(), **load_json(CreateOrderSchema()))
    body = OrderCreatedSchema().dump({"order_id": payment.order_id, "approve_url": approve_url,
                                      "amount": {"amount": amount, "currency": payment.currency}})
    return jsonify(body), 201


@bp.get("/currencies")
def currencies():
    """The minor-unit exponents callme uses (ISO 4217), and what PayPal takes."""
    response = jsonify({"exponents": EXPONENTS, "default_exponent": 2, "paypal": sorted(PAYPAL_CURRENCIES),
                        "paypal_whole_units": sorted(PAYPAL_WHOLE_UNITS)})
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.get("/calls/<call_id>")
def call_state(call_id):
    """A call's state and, once ended, its result. Needs a call or receipt token."""
    receipt = request.args.get("receipt")
    token = receipt or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise ApiError(401, "token_required", "Send the call's token as 'Authorization: Bearer <token>'.")
    if receipt:
        service().tokens.check_receipt_token(token, call_id, RECEIPT_MAX_AGE)
    else:
        service().tokens.check_call_token(token, current_app.config["CALL_TOKEN_TTL"], call_id=call_id)
    call = db.session.get(Call, call_id)
    if call is None:
        raise ApiError(404, "call_not_found", "This call does not exist.")
    return jsonify(CallStateSchema().dump({
        "call_id": call.id, "expert": call.expert.handle, "kind": call.kind, "state": call.state,
        "terms": Terms.of(call).as_json(), "end_reason": call.end_reason, "ended_by": call.ended_by,
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
    """This API's OpenAPI document."""
    return jsonify(openapi_document())
