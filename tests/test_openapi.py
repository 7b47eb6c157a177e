"""The OpenAPI document says what the API does: its routes, its errors, its auth; and a bounded
schemathesis run keeps the two agreeing (scripts/fuzz-api runs a bigger one)."""
import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from callme.web.openapi import openapi_document

API = "/api/v1"
DOC = openapi_document()
OPERATIONS = [(path, method) for path, item in DOC["paths"].items() for method in item]
# Per operation and mode: seconds in all, the same cases every run. scripts/fuzz-api sets
# CALLME_FUZZ_EXAMPLES to run many more, and random ones.
FUZZ = os.environ.get("CALLME_FUZZ_EXAMPLES")
EXAMPLES = int(FUZZ or 25)


def test_openapi_document(client):
    r = client.get(f"{API}/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc == DOC and doc["openapi"].startswith("3.") and doc["info"]["title"] == "callme"
    schemas = doc["components"]["schemas"]
    assert {"Price", "CreateCall", "CallCreated", "CallState", "Status", "Login", "Expert", "Error",
            "CreateOrder", "OrderCreated"} <= set(schemas)
    assert set(schemas["CreateOrder"]["required"]) == {"expert", "price"}
    assert set(schemas["OrderCreated"]["properties"]) == {"order_id", "approve_url", "amount"}
    assert set(schemas["CreateCall"]["required"]) == {"expert", "price"}
    assert set(schemas["Price"]["properties"]) == {"amount", "currency"}
    assert schemas["Price"]["properties"]["amount"]["type"] == "integer"
    assert schemas["Price"]["properties"]["amount"]["minimum"] == 0
    assert schemas["CreateCall"]["properties"]["kind"]["enum"] == ["instant", "consultation", "appointment"]


def _api_routes(app):
    """{(OpenAPI path, method)} of every route the app serves under /api/v1."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_the_document_has_every_api_route_and_no_other(app):
    assert set(OPERATIONS) == _api_routes(app)


def test_error_bodies_may_carry_the_price_and_status_the_widget_reads():
    error = DOC["components"]["schemas"]["Error"]
    assert {"error", "message", "fields", "price", "status"} == set(error["properties"])
    assert error["properties"]["status"]["enum"] == ["online", "busy", "offline"]
    assert set(error["required"]) == {"error", "message"}


def test_the_webhook_documents_every_answer_it_gives():
    responses = DOC["paths"][f"{API}/paypal/webhooks/{{handle}}"]["post"]["responses"]
    assert {"200", "400", "401", "404", "408", "413", "503"} <= set(responses)


def test_json_bodies_document_413():
    for path, method in OPERATIONS:
        if "requestBody" in DOC["paths"][path][method]:
            assert "413" in DOC["paths"][path][method]["responses"], (path, method)


def test_an_empty_payment_object_is_refused_by_both_the_document_and_the_api(client, make_expert):
    payment = DOC["components"]["schemas"]["CreateCall"]["properties"]["payment"]
    for branch in payment["anyOf"]:
        assert "$ref" in branch or branch.get("enum") == [None], "only the PaymentRef object or null"
    assert DOC["components"]["schemas"]["PaymentRef"]["required"] == ["order_id"]
    make_expert(handle="ray", online=True)
    r = client.post(f"{API}/calls", json={"expert": "ray", "price": {"amount": 150, "currency": "USD"},
                                          "payment": {}})
    assert r.status_code == 422 and "payment" in r.get_json()["fields"]


def test_call_state_describes_its_bearer_and_receipt_tokens():
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["callToken"] == {**schemes["callToken"], "type": "http", "scheme": "bearer"}
    assert schemes["receiptToken"]["in"] == "query" and schemes["receiptToken"]["name"] == "receipt"
    operation = DOC["paths"][f"{API}/calls/{{call_id}}"]["get"]
    assert operation["security"] == [{"callToken": []}, {"receiptToken": []}]


# ---- schemathesis: generated requests, checked against the document --------------------------

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# Negative cases need something to break: the operations with a body.
RUNS = [(path, method, mode) for path, method in OPERATIONS for mode in ("positive", "negative")
        if mode == "positive" or "requestBody" in DOC["paths"][path][method]]


@pytest.mark.parametrize("path, method, mode", RUNS, ids=[f"{m.upper()} {p} {mode}" for p, m, mode in RUNS])
def test_generated_requests_get_documented_answers(app, make_expert, path, method, mode):
    make_expert(handle="ray", online=True)
    make_expert(handle="free", price=0, online=True)
    operation = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)[path][method.upper()]
    checks = CHECKS + ([negative_data_rejection] if mode == "negative" else [])
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @settings(max_examples=EXAMPLES, derandomize=not FUZZ, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def conforms(case):
        case.validate_response(case.call(), checks=checks)

    conforms()


def _ask(app, path, method, **case):
    """Send one request through schemathesis and check its answer against the document."""
    operation = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)[path][method]
    case = operation.Case(media_type="application/json" if "body" in case else None, **case)
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    return response


PRICE = {"amount": 150, "currency": "USD"}


@pytest.mark.parametrize("refusal, status, code", [
    ("offline", 409, "expert_offline"),
    ("busy", 409, "expert_busy"),
    ("stale price", 409, "price_changed"),
    ("empty payment", 422, "invalid"),
])
def test_the_refusals_the_widget_reads_match_the_document(app, make_expert, make_call, refusal, status, code):
    ray = make_expert(handle="ray", online=refusal != "offline")
    if refusal == "busy":
        make_call(ray)
    body = {"expert": "ray", "price": {"amount": 149, "currency": "USD"} if refusal == "stale price" else PRICE}
    if refusal == "empty payment":
        body["payment"] = {}
    r = _ask(app, f"{API}/calls", "POST", body=body)
    assert (r.status_code, r.json()["error"]) == (status, code)


@pytest.mark.parametrize("handle, body, status", [
    ("nobody", {"id": "WH-1", "event_type": "X", "resource": {}}, 404),
    ("ray", {"padding": "x" * (300 * 1024)}, 413),
    ("ray", {"id": "WH-1"}, 400),
    ("ray", {"id": "WH-1", "event_type": "PAYMENT.CAPTURE.REFUNDED", "resource": {}}, 401),
])
def test_the_webhooks_answers_match_the_document(app, make_expert, handle, body, status):
    make_expert(handle="ray")
    r = _ask(app, f"{API}/paypal/webhooks/{{handle}}", "POST", path_parameters={"handle": handle}, body=body)
    assert r.status_code == status
