"""The OpenAPI document, generated from the marshmallow schemas."""
from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import schemas

ERRORS = {
    "400": "The body is not JSON (bad_request, bad_json).", "401": "A token or login is missing or wrong.",
    "403": "Origin not allowed or token of another call.", "404": "No such expert or call.",
    "402": "A paid call without a valid PayPal hold: payment_required, payment_not_approved, "
           "payment_insufficient, payment_expired, payment_invalid, payment_used, payment_declined.",
    "408": "The body was not sent within BODY_TIMEOUT seconds (request_timeout).",
    "409": "Expert offline or busy (with status), the price shown is stale (price_changed, with price), or "
           "PayPal not set up (payments_not_set_up).",
    "413": "The body is larger than MAX_CONTENT_LENGTH (too_large); it was not read.",
    "422": "A field is not valid.", "429": "Too many attempts (Retry-After says how long to wait).",
    "502": "The expert's PayPal connection failed.", "503": "PayPal could not be reached; nothing was charged.",
}
BODY_ERRORS = ("400", "408", "413", "422")

SECURITY_SCHEMES = {
    "callToken": {"type": "http", "scheme": "bearer",
                  "description": "A call token: the visitor's from POST /calls, or either peer's from the socket's "
                                 "welcome frame. Valid CALL_TOKEN_TTL seconds."},
    "receiptToken": {"type": "apiKey", "in": "query", "name": "receipt",
                     "description": "The receipt token of the ended frame (also the t= of /receipts/<call>)."},
    "session": {"type": "apiKey", "in": "cookie", "name": "session",
                "description": "The expert's session cookie, set by POST /session."},
}


def _responses(ok_code, ok_schema, *errors):
    ok = {"description": "OK"}
    if ok_schema:
        ok["content"] = {"application/json": {"schema": ok_schema}}
    out = {ok_code: ok}
    for code in errors:
        out[code] = {"description": ERRORS[code], "content": {"application/json": {"schema": "Error"}}}
    return out


def _handle(name):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _null_only(node):
    """apispec writes an ``allow_none`` Nested as ``anyOf: [ref, {type: object, nullable}]``, which
    admits any object; the second branch means null only."""
    if isinstance(node, dict):
        for branch in node.get("anyOf", ()):
            if branch == {"type": "object", "nullable": True}:
                branch["enum"] = [None]
        for value in node.values():
            _null_only(value)
    elif isinstance(node, list):
        for value in node:
            _null_only(value)
    return node


@lru_cache(maxsize=1)
def openapi_document():
    """The document of /api/v1, as /api/v1/openapi.json serves it."""
    spec = APISpec(title="callme", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    for name in ("Price", "CreateCall", "CallCreated", "CallState", "Status", "Login", "Expert", "Error",
                 "CreateOrder", "OrderCreated"):
        spec.components.schema(name, schema=getattr(schemas, f"{name}Schema"))
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    json_body = lambda name: {"required": True, "content": {"application/json": {"schema": name}}}  # noqa: E731
    spec.path("/api/v1/experts/{handle}/status", operations={"get": {
        "summary": "An expert's public status, price and rating (CORS for allowed origins).",
        "parameters": [_handle("handle")],
        "responses": _responses("200", "Status", "403", "404")}})
    spec.path("/api/v1/calls", operations={"post": {
        "summary": "Create a call; returns the visitor's token, WebSocket URL and ICE servers.",
        "requestBody": json_body("CreateCall"),
        "responses": _responses("201", "CallCreated", *BODY_ERRORS, "402", "403", "404", "409", "429", "502",
                                "503")}})
    spec.path("/api/v1/payments/orders", operations={"post": {
        "summary": "Create the PayPal order (intent AUTHORIZE) holding cap_minutes x price on the expert's own "
                   "PayPal; the visitor approves it at approve_url, then POST /calls with payment.order_id.",
        "requestBody": json_body("CreateOrder"),
        "responses": _responses("201", "OrderCreated", *BODY_ERRORS, "403", "404", "409", "429", "502", "503")}})
    webhook = _responses("200", None, "404", "408")
    webhook.update({
        "200": {"description": "Applied, or already applied (outcome says which)"},
        "400": {"description": "Not JSON (bad_json) or not a webhook event (bad_event)",
                "content": {"application/json": {"schema": "Error"}}},
        "401": {"description": "Not verified by PayPal, or the expert has no webhook id; nothing changed",
                "content": {"application/json": {"schema": "Error"}}},
        "413": {"description": "Larger than 256 KiB; it was not read",
                "content": {"application/json": {"schema": "Error"}}},
        "503": {"description": "PayPal could not verify the event now; PayPal delivers it again",
                "content": {"application/json": {"schema": "Error"}}},
    })
    spec.path("/api/v1/paypal/webhooks/{handle}", operations={"post": {
        "summary": "PayPal webhook events for one expert (refunds, reversals, denials), verified with PayPal.",
        "parameters": [_handle("handle")],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": webhook}})
    spec.path("/api/v1/currencies", operations={"get": {
        "summary": "Minor-unit exponents (ISO 4217) and the currencies PayPal takes.",
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}})
    spec.path("/api/v1/calls/{call_id}", operations={"get": {
        "summary": "A call's state and result, with its call token (Bearer) or its receipt token (?receipt=).",
        "parameters": [_handle("call_id")],
        "security": [{"callToken": []}, {"receiptToken": []}],
        "responses": _responses("200", "CallState", "401", "403", "404")}})
    spec.path("/api/v1/session", operations={
        "post": {"summary": "Log an expert in (session cookie); 403 email_not_verified until a self-service "
                            "account's address is confirmed.", "requestBody": json_body("Login"),
                 "responses": _responses("200", "Expert", *BODY_ERRORS, "401", "403", "429")},
        "get": {"summary": "The logged-in expert.", "security": [{"session": []}],
                "responses": _responses("200", "Expert", "401")},
        "delete": {"summary": "Log out: this session, or with everywhere=1 every session of the expert.",
                   "security": [{"session": []}],
                   "parameters": [{"name": "everywhere", "in": "query", "required": False,
                                   "schema": {"type": "string", "enum": ["1", "true", "yes", "on"]}}],
                   "responses": {"204": {"description": "Logged out"}}}})
    spec.path("/api/v1/openapi.json", operations={"get": {
        "summary": "This document.",
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}})
    return _null_only(spec.to_dict())
