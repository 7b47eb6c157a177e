"""The OpenAPI document, generated from the marshmallow schemas."""
from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import schemas

ERRORS = {
    "400": "The body is not JSON.", "401": "A token or login is missing or wrong.",
    "403": "Origin not allowed or token of another call.", "404": "No such expert or call.",
    "402": "A paid call without a valid PayPal hold: payment_required, payment_not_approved, "
           "payment_insufficient, payment_expired, payment_invalid, payment_used, payment_declined.",
    "409": "Expert offline or busy, the price shown is stale, or PayPal not set up (payments_not_set_up).",
    "422": "A field is not valid.", "429": "Too many attempts.",
    "502": "The expert's PayPal connection failed.", "503": "PayPal could not be reached; nothing was charged.",
}


def _responses(ok_code, ok_schema, *errors):
    out = {ok_code: {"description": "OK", "content": {"application/json": {"schema": ok_schema}}}}
    for code in errors:
        out[code] = {"description": ERRORS[code], "content": {"application/json": {"schema": "Error"}}}
    return out


@lru_cache(maxsize=1)
def openapi_document():
    spec = APISpec(title="callme", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    for name in ("Price", "CreateCall", "CallCreated", "CallState", "Status", "Login", "Expert", "Error",
                 "CreateOrder", "OrderCreated"):
        spec.components.schema(name, schema=getattr(schemas, f"{name}Schema"))
    json_body = lambda name: {"required": True, "content": {"application/json": {"schema": name}}}  # noqa: E731
    spec.path("/api/v1/experts/{handle}/status", operations={"get": {
        "summary": "An expert's public status, price and rating (CORS for allowed origins).",
        "parameters": [{"name": "handle", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": _responses("200", "Status", "403", "404")}})
    spec.path("/api/v1/calls", operations={"post": {
        "summary": "Create a call; returns the visitor's token, WebSocket URL and ICE servers.",
        "requestBody": json_body("CreateCall"),
        "responses": _responses("201", "CallCreated", "400", "402", "403", "404", "409", "422", "429", "502",
                                "503")}})
    spec.path("/api/v1/payments/orders", operations={"post": {
        "summary": "Create the PayPal order (intent AUTHORIZE) holding cap_minutes x price on the expert's own "
                   "PayPal; the visitor approves it at approve_url, then POST /calls with payment.order_id.",
        "requestBody": json_body("CreateOrder"),
        "responses": _responses("201", "OrderCreated", "400", "403", "404", "409", "422", "429", "502", "503")}})
    spec.path("/api/v1/paypal/webhooks/{handle}", operations={"post": {
        "summary": "PayPal webhook events for one expert (refunds, reversals, denials), verified with PayPal.",
        "parameters": [{"name": "handle", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "Applied, or already applied"},
                      "400": {"description": "Not a webhook event"},
                      "401": {"description": "Not verified by PayPal; nothing changed"}}}})
    spec.path("/api/v1/currencies", operations={"get": {
        "summary": "Minor-unit exponents (ISO 4217) and the currencies PayPal takes.",
        "responses": {"200": {"description": "OK"}}}})
    spec.path("/api/v1/calls/{call_id}", operations={"get": {
        "summary": "A call's state and result (Bearer call token, or ?receipt=).",
        "parameters": [{"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}},
                       {"name": "receipt", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": _responses("200", "CallState", "401", "403", "404")}})
    spec.path("/api/v1/session", operations={
        "post": {"summary": "Log an expert in (session cookie).", "requestBody": json_body("Login"),
                 "responses": _responses("200", "Expert", "400", "401", "422", "429")},
        "get": {"summary": "The logged-in expert.", "responses": _responses("200", "Expert", "401")},
        "delete": {"summary": "Log out.", "responses": {"204": {"description": "Logged out"}}}})
    return spec.to_dict()
