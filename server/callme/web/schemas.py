"""Request and response bodies of the JSON API; the OpenAPI document is built from these."""
import json

from flask import request
from marshmallow import Schema, ValidationError, fields, validate

from ..errors import ApiError
from .limits import read_body

from ..models import CALL_KINDS, HANDLE_RE, MAX_PRICE, ORDER_ID_RE

CURRENCY = validate.Regexp(r"^[A-Z]{3}$", error="Use a three-letter ISO 4217 code, e.g. USD.")


class PriceSchema(Schema):
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_PRICE),
                            metadata={"description": "Price per minute in minor units (cents)."})
    currency = fields.String(required=True, validate=CURRENCY)


ORDER_ID = validate.Regexp(ORDER_ID_RE, error="Not a PayPal order id.")


class PaymentRefSchema(Schema):
    order_id = fields.String(required=True, validate=ORDER_ID,
                             metadata={"description": "The PayPal order from POST /payments/orders, approved "
                                                      "by the visitor."})


class VisitSchema(Schema):
    """What every visitor request names: the expert, the price the visitor was shown, the page."""

    expert = fields.String(required=True, validate=validate.Regexp(HANDLE_RE, error="Not an expert handle."))
    price = fields.Nested(PriceSchema, required=True,
                          metadata={"description": "The price the visitor was shown; it must still be current."})
    origin = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255),
                           metadata={"description": "Origin of the page that embeds the button."})


class CreateCallSchema(VisitSchema):
    kind = fields.String(load_default="instant", validate=validate.OneOf(CALL_KINDS))
    payment = fields.Nested(PaymentRefSchema, load_default=None, allow_none=True,
                            metadata={"description": "Required when the price is above 0: the approved PayPal "
                                                     "hold for cap_minutes x price."})


class CreateOrderSchema(VisitSchema):
    return_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=512),
                               metadata={"description": "Where PayPal sends the payer back: a page of callme's own "
                                                        "origin (default /paypal/return)."})


class MoneySchema(Schema):
    amount = fields.Integer(metadata={"description": "Minor units (cents)."})
    currency = fields.String()


class OrderCreatedSchema(Schema):
    order_id = fields.String()
    approve_url = fields.String(metadata={"description": "Open in a popup: the payer approves the hold there."})
    amount = fields.Nested(MoneySchema, metadata={"description": "The hold: cap_minutes x price."})


class PaymentStateSchema(Schema):
    state = fields.String()
    amount = fields.Integer(metadata={"description": "The hold (or the prepaid amount), minor units."})
    captured = fields.Integer(allow_none=True)
    capture_id = fields.String(allow_none=True)
    currency = fields.String()


class IceServerSchema(Schema):
    urls = fields.List(fields.String())
    username = fields.String()
    credential = fields.String()


class TermsSchema(Schema):
    price = fields.Integer()
    currency = fields.String()
    free_seconds = fields.Integer()
    cap_minutes = fields.Integer()


class CallCreatedSchema(Schema):
    call_id = fields.String()
    role = fields.String()
    token = fields.String()
    expires_in = fields.Integer(metadata={"description": "Seconds the token stays valid for joining."})
    ws_url = fields.String()
    ice_servers = fields.List(fields.Nested(IceServerSchema))
    terms = fields.Nested(TermsSchema)


class CallStateSchema(Schema):
    call_id = fields.String()
    expert = fields.String()
    kind = fields.String()
    state = fields.String()
    terms = fields.Nested(TermsSchema)
    end_reason = fields.String(allow_none=True)
    ended_by = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    minutes = fields.Integer(allow_none=True)
    amount = fields.Integer(allow_none=True)
    currency = fields.String()
    payment = fields.Nested(PaymentStateSchema, allow_none=True)


class StatusSchema(Schema):
    handle = fields.String()
    display_name = fields.String()
    status = fields.String(metadata={"enum": ["online", "busy", "offline"]})
    price = fields.Nested(PriceSchema)
    free_seconds = fields.Integer()
    cap_minutes = fields.Integer()
    rating = fields.Float(allow_none=True, metadata={
        "description": "Average stars (1-5, one decimal) of the reviews of paid calls; null when not rated."})
    rating_count = fields.Integer(metadata={"description": "How many reviews the average is of."})
    next_available = fields.String(allow_none=True)


class LoginSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class ExpertSchema(Schema):
    id = fields.Integer()
    handle = fields.String()
    display_name = fields.String()
    email = fields.String()
    price = fields.Nested(PriceSchema)
    free_seconds = fields.Integer()
    cap_minutes = fields.Integer()
    allowed_origins = fields.List(fields.String())


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "A stable code, e.g. expert_busy."})
    message = fields.String(required=True, metadata={"description": "For people."})
    fields_ = fields.Dict(data_key="fields", metadata={"description": "Per field, what is wrong (422)."})
    price = fields.Nested(PriceSchema, metadata={"description": "price_changed only: the current price."})
    status = fields.String(metadata={"enum": ["online", "busy", "offline"],
                                     "description": "expert_busy, expert_offline: the expert's status now."})


def read_json(raw):
    """Parse a JSON body; None when it is not JSON (or nested too deep to parse)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting past the interpreter's limit
        return None


def load_json(schema):
    """Validate the JSON body: 400 when it is not a JSON object, 422 when fields are wrong."""
    if not request.is_json:
        raise ApiError(400, "bad_request", "Send a JSON body with Content-Type: application/json.")
    data = read_json(read_body())
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "The body is not a JSON object.")
    try:
        return schema.load(data)
    except ValidationError as e:
        raise ApiError(422, "invalid", "Some fields are not valid.", fields=e.messages) from None
