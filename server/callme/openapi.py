"""The OpenAPI document, generated from the marshmallow schemas."""
from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import schemas

ERRORS = {
    "400": "The body is not JSON.", "401": "A token or login is missing or wrong.",
    "403": "Origin not allowed or token of another call.", "404": "No such expert or call.",
    "409": "Expert offline or busy, or the price shown is stale.", "422": "A field is not valid.",
    "429": "Too many attempts.",
}


def _responses(ok_code, ok_schema, *errors):
    out = {ok_code: {"description": "OK", "content": {"application/json": {"schema": ok_schema}}}}
    for code in errors:
        out[code] = {"description": ERRORS[code], "content": {"application/json": {"schema": "Error"}}}
    return out


@lru_cache(maxsize=1)
def openapi_document():
    spec = APISpec(title="callme", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    for name in ("Price", "CreateCall", "CallCreated", "CallState", "Status", "Login", "Expert", "Error"):
        spec.components.schema(name, schema=getattr(schemas, f"{name}Schema"))
    json_body = lambda name: {"required": True, "content": {"application/json": {"schema": name}}}  # noqa: E731
    spec.path("/api/v1/experts/{handle}/status", operations={"get": {
        "summary": "An expert's public status, price and rating (CORS for allowed origins).",
        "parameters": [{"name": "handle", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": _responses("200", "Status", "403", "404")}})
    spec.path("/api/v1/calls", operations={"post": {
        "summary": "Create a call; returns the visitor's token, WebSocket URL and ICE servers.",
        "requestBody": json_body("CreateCall"),
        "responses": _responses("201", "CallCreated", "400", "403", "404", "409", "422", "429")}})
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
