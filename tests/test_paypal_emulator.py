"""The PayPal emulator, driven through the REAL ``paypal-server-sdk`` pointed at it."""
import html
import itertools
import json
import re

import pytest
import requests
from apimatic_core.exceptions.auth_validation_exception import AuthValidationException
from callme.dev.paypal_emulator import PayPalEmulator, PayPalFault, parse_amount
from paypalserversdk.configuration import Configuration, Environment, Server
from paypalserversdk.exceptions.error_exception import ErrorException
from paypalserversdk.exceptions.o_auth_provider_exception import OAuthProviderException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

PREFER = "return=representation"
_seq = itertools.count(1)


class EmulatorConfiguration(Configuration):
    """The SDK's configuration with another base URL: the SDK asks ``get_base_uri`` for every
    request (the OAuth token included). Pass it as ``PaypalServersdkClient(config=...)``."""

    def __init__(self, base_url, **kwargs):
        self.base_url = base_url.rstrip("/")
        super().__init__(**kwargs)

    def get_base_uri(self, server=Server.DEFAULT):
        return self.base_url


def sdk_by_subclass(url, client_id, secret):
    return PaypalServersdkClient(config=EmulatorConfiguration(
        url, client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
            o_auth_client_id=client_id, o_auth_client_secret=secret),
        environment=Environment.SANDBOX, timeout=10, max_retries=0))


def sdk_by_environments(url, client_id, secret):
    """The other supported way: the client's own copy of the ``environments`` table."""
    client = PaypalServersdkClient(
        client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
            o_auth_client_id=client_id, o_auth_client_secret=secret),
        environment=Environment.SANDBOX, timeout=10, max_retries=0)
    client.config.environments = {Environment.SANDBOX: {Server.DEFAULT: url}}
    return client


@pytest.fixture(scope="module")
def emu():
    emulator = PayPalEmulator().start(host="127.0.0.1", port=0)
    yield emulator
    emulator.stop()


@pytest.fixture
def account(emu):
    """A fresh REST app at the emulator and an SDK client for it: (client_id, sdk)."""
    n = next(_seq)
    client_id, secret = f"app-{n}", f"secret-{n}"
    emu.add_app(client_id, secret, merchant_name=f"Expert <{n}>")
    emu.add_webhook(client_id, f"WH-{n}")
    return client_id, sdk_by_subclass(emu.url, client_id, secret)


def body(response):
    return json.loads(response.text) if response.text else None


def create(sdk, value="90.00", currency="USD", intent="AUTHORIZE", return_url=None, legacy=False, request_id=None):
    order = {"intent": intent, "purchase_units": [{"amount": {"currency_code": currency, "value": value},
                                                   "description": "A call with an expert"}]}
    if return_url:
        context = {"return_url": return_url, "cancel_url": "https://callme.example/paypal/cancel?y=2"}
        if legacy:
            order["application_context"] = context
        else:
            order["payment_source"] = {"paypal": {"experience_context": context}}
    options = {"body": order, "prefer": PREFER}
    if request_id:
        options["paypal_request_id"] = request_id
    return body(sdk.orders.create_order(options))


def authorized(emu, sdk, value="90.00", currency="USD"):
    order = create(sdk, value, currency)
    emu.approve(order["id"])
    done = body(sdk.orders.authorize_order({"id": order["id"], "prefer": PREFER, "paypal_request_id": f"a-{order['id']}"}))
    return done["purchase_units"][0]["payments"]["authorizations"][0]


def capture(sdk, auth_id, value, currency="USD", final=True, request_id=None):
    options = {"authorization_id": auth_id, "prefer": PREFER,
               "body": {"amount": {"currency_code": currency, "value": value}, "final_capture": final}}
    if request_id:
        options["paypal_request_id"] = request_id
    return sdk.payments.capture_authorized_payment(options)


def refusal(call):
    with pytest.raises(ErrorException) as info:
        call()
    e = info.value
    return e.response_code, e.name, (e.details[0].issue if e.details else None)


# ---- OAuth ------------------------------------------------------------------------------------

def test_token_with_good_and_bad_credentials(emu, account):
    client_id, _ = account
    for make in (sdk_by_subclass, sdk_by_environments):
        token = make(emu.url, client_id, f"secret-{client_id.split('-')[1]}").oauth_2.fetch_token()
        assert token.token_type == "Bearer" and token.access_token and token.expires_in > 0
    bad = sdk_by_subclass(emu.url, client_id, "wrong")
    with pytest.raises(OAuthProviderException) as info:
        bad.oauth_2.fetch_token()
    assert info.value.response_code == 401 and info.value.error == "invalid_client"
    assert info.value.error_description == "Client Authentication failed"
    # An API call without a valid token never leaves the SDK.
    with pytest.raises(AuthValidationException):
        bad.orders.get_order({"id": "NOPE"})
    # Without a bearer token of a known app the emulator refuses.
    r = requests.get(f"{emu.url}/v2/checkout/orders/X", headers={"Authorization": "Bearer forged"}, timeout=5)
    assert r.status_code == 401 and r.json()["name"] == "AUTHENTICATION_FAILURE"
    r = requests.post(f"{emu.url}/v1/oauth2/token", auth=(client_id, "wrong"),
                      data={"grant_type": "client_credentials"}, timeout=5)
    assert (r.status_code, r.json()) == (401, {"error": "invalid_client",
                                               "error_description": "Client Authentication failed"})


def test_one_app_cannot_see_another_apps_order(emu, account):
    _, sdk = account
    n = next(_seq)
    emu.add_app(f"other-{n}", "s")
    order = create(sdk_by_subclass(emu.url, f"other-{n}", "s"))
    assert refusal(lambda: sdk.orders.get_order({"id": order["id"]})) == (404, "RESOURCE_NOT_FOUND",
                                                                          "INVALID_RESOURCE_ID")


# ---- orders and the approval page -------------------------------------------------------------

def test_authorize_order_approved_programmatically(emu, account):
    client_id, sdk = account
    order = create(sdk, "90.00", return_url="https://callme.example/paypal/return")
    assert order["status"] == "PAYER_ACTION_REQUIRED" and order["intent"] == "AUTHORIZE"
    assert order["purchase_units"][0]["amount"] == {"currency_code": "USD", "value": "90.00"}
    links = {link["rel"]: link["href"] for link in order["links"]}
    assert links["payer-action"] == f"{emu.url}/checkoutnow?token={order['id']}"
    # Not approved yet: PayPal refuses to authorize.
    assert refusal(lambda: sdk.orders.authorize_order({"id": order["id"], "prefer": PREFER})) == (
        422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
    payer = emu.approve(order["id"])
    got = body(sdk.orders.get_order({"id": order["id"]}))
    assert got["status"] == "APPROVED" and got["payer"]["payer_id"] == payer
    response = sdk.orders.authorize_order({"id": order["id"], "prefer": PREFER, "paypal_request_id": "auth-1"})
    assert response.status_code == 201
    done = body(response)
    assert done["status"] == "COMPLETED"
    auth = done["purchase_units"][0]["payments"]["authorizations"][0]
    assert auth["status"] == "CREATED" and auth["amount"] == {"currency_code": "USD", "value": "90.00"}
    assert auth["expiration_time"].endswith("Z")
    # The SDK's models read it too.
    assert response.body.purchase_units[0].payments.authorizations[0].id == auth["id"]
    # Authorizing again: refused, unless it is the same request id (then the same answer).
    assert refusal(lambda: sdk.orders.authorize_order({"id": order["id"], "prefer": PREFER})) == (
        422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_AUTHORIZED")
    again = sdk.orders.authorize_order({"id": order["id"], "prefer": PREFER, "paypal_request_id": "auth-1"})
    assert (again.status_code, again.text) == (201, response.text)
    books = emu.books(client_id)
    assert [a["id"] for a in books["authorizations"]] == [auth["id"]]
    assert books["totals"]["USD"]["authorized"] == 9000 and books["totals"]["USD"]["held"] == 9000


def test_approval_page_form_redirects_to_the_return_url(emu, account):
    _, sdk = account
    order = create(sdk, "12.50", return_url="https://callme.example/paypal/return?x=1")
    url = next(link["href"] for link in order["links"] if link["rel"] == "payer-action")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert re.search(r"Pay 12\.50 USD to Expert &lt;\d+&gt;", page.text)  # the name escaped
    assert 'id="approve"' in page.text and "Pay with PayPal" in page.text and order["id"] in page.text
    cancel = html.unescape(re.search(r'<a id="cancel" href="([^"]+)"', page.text).group(1))
    assert cancel == f"https://callme.example/paypal/cancel?y=2&token={order['id']}"
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    r = requests.post(emu.url + action, data=fields, allow_redirects=False, timeout=5)
    assert r.status_code == 303
    location = r.headers["Location"]
    assert location.startswith(f"https://callme.example/paypal/return?x=1&token={order['id']}&PayerID=")
    assert body(sdk.orders.get_order({"id": order["id"]}))["status"] == "APPROVED"
    # The page now says so; an unknown token is a 404 page.
    assert 'id="done"' in requests.get(url, timeout=5).text
    assert requests.get(f"{emu.url}/checkoutnow?token=NOPE", timeout=5).status_code == 404


def test_approval_page_without_return_url_says_done(emu, account):
    _, sdk = account
    order = create(sdk, "5.00")
    assert order["status"] == "CREATED"
    url = next(link["href"] for link in order["links"] if link["rel"] == "approve")
    page = requests.get(url, timeout=5).text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    r = requests.post(f"{emu.url}/checkoutnow", data=fields, timeout=5)
    assert r.status_code == 200 and 'id="done"' in r.text and "Payment approved, you can close this window" in r.text
    assert body(sdk.orders.get_order({"id": order["id"]}))["status"] == "APPROVED"


def test_legacy_application_context_gives_an_approve_link(emu, account):
    _, sdk = account
    order = create(sdk, "5.00", return_url="http://127.0.0.1:5000/r", legacy=True)
    assert order["status"] == "CREATED" and any(link["rel"] == "approve" for link in order["links"])


def test_capture_intent_order(emu, account):
    client_id, sdk = account
    order = create(sdk, "40.00", intent="CAPTURE")
    assert refusal(lambda: sdk.orders.authorize_order({"id": order["id"]}))[2] in (
        "ORDER_NOT_APPROVED", "ACTION_DOES_NOT_MATCH_INTENT")
    emu.approve(order["id"])
    assert refusal(lambda: sdk.orders.authorize_order({"id": order["id"]}))[2] == "ACTION_DOES_NOT_MATCH_INTENT"
    done = body(sdk.orders.capture_order({"id": order["id"], "prefer": PREFER, "paypal_request_id": "cap-o"}))
    assert done["status"] == "COMPLETED"
    cap = done["purchase_units"][0]["payments"]["captures"][0]
    assert cap["status"] == "COMPLETED" and cap["amount"]["value"] == "40.00" and cap["final_capture"] is True
    breakdown = cap["seller_receivable_breakdown"]
    assert breakdown["gross_amount"]["value"] == "40.00"
    assert refusal(lambda: sdk.orders.capture_order({"id": order["id"]}))[2] == "ORDER_ALREADY_CAPTURED"
    assert emu.books(client_id)["totals"]["USD"]["captured"] == 4000


def test_minimal_answers_without_prefer(emu, account):
    _, sdk = account
    r = body(sdk.orders.create_order({"body": {"intent": "CAPTURE", "purchase_units": [
        {"amount": {"currency_code": "EUR", "value": "3.00"}}]}}))
    assert set(r) == {"id", "status", "links"}


# ---- amounts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("currency, value, minor", [
    ("USD", "1500.50", 150050), ("USD", "0.01", 1), ("USD", "1.5", 150), ("EUR", "10.00", 1000),
    ("GBP", "7.99", 799), ("JPY", "1500", 1500), ("CAD", "2.00", 200), ("AUD", "3.10", 310), ("HUF", "100", 100),
])
def test_amounts_paypal_takes(currency, value, minor):
    assert parse_amount({"currency_code": currency, "value": value}) == (minor, currency)


@pytest.mark.parametrize("currency, value, status, issue", [
    ("JPY", "1500.5", 422, "DECIMAL_PRECISION"),
    ("JPY", "1500.0", 422, "DECIMAL_PRECISION"),
    ("USD", "1.505", 422, "DECIMAL_PRECISION"),
    ("USD", "0.00", 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
    ("USD", "-1.00", 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
    ("KWD", "1.000", 422, "CURRENCY_NOT_SUPPORTED"),
    ("XYZ", "1.00", 422, "CURRENCY_NOT_SUPPORTED"),
    ("USD", "1e3", 400, "INVALID_PARAMETER_SYNTAX"),
    ("USD", 15, 400, "INVALID_PARAMETER_SYNTAX"),
    ("USD", 1.5, 400, "INVALID_PARAMETER_SYNTAX"),
])
def test_amounts_paypal_refuses(currency, value, status, issue):
    with pytest.raises(PayPalFault) as info:
        parse_amount({"currency_code": currency, "value": value})
    assert (info.value.status, info.value.details[0]["issue"]) == (status, issue)


def test_jpy_orders_through_the_sdk(emu, account):
    client_id, sdk = account
    order = create(sdk, "1500", "JPY")
    assert order["purchase_units"][0]["amount"] == {"currency_code": "JPY", "value": "1500"}
    assert refusal(lambda: create(sdk, "1500.5", "JPY")) == (422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION")
    assert refusal(lambda: create(sdk, "0", "JPY"))[2] == "CANNOT_BE_ZERO_OR_NEGATIVE"
    assert [o["id"] for o in emu.books(client_id)["orders"]] == [order["id"]]  # refusals leave nothing
    auth = authorized(emu, sdk, "1500", "JPY")
    assert body(capture(sdk, auth["id"], "1200", "JPY"))["amount"] == {"currency_code": "JPY", "value": "1200"}
    assert emu.books(client_id)["totals"]["JPY"]["captured"] == 1200


# ---- authorizations: capture, void, the ceiling, expiry ---------------------------------------

def test_partial_final_capture_is_idempotent_and_final(emu, account):
    client_id, sdk = account
    auth = authorized(emu, sdk, "90.00")
    first = capture(sdk, auth["id"], "4.50", request_id="capture-call-1")
    assert first.status_code == 201
    cap = body(first)
    assert cap["status"] == "COMPLETED" and cap["final_capture"] is True
    assert cap["amount"] == {"currency_code": "USD", "value": "4.50"}
    assert cap["seller_receivable_breakdown"]["gross_amount"]["value"] == "4.50"
    assert first.body.id == cap["id"]  # the SDK's model
    books = emu.books(client_id)
    # The same PayPal-Request-Id: the very same answer, nothing new at PayPal.
    again = capture(sdk, auth["id"], "4.50", request_id="capture-call-1")
    assert (again.status_code, again.text) == (201, first.text)
    assert emu.books(client_id) == books
    assert books["totals"]["USD"]["captured"] == 450 and len(books["captures"]) == 1
    # The authorization is done: final capture released the rest.
    got = body(sdk.payments.get_authorized_payment({"authorization_id": auth["id"]}))
    assert got["status"] == "CAPTURED"
    assert books["totals"]["USD"]["held"] == 0
    # A second capture (another request id) is refused, and so is a void.
    assert refusal(lambda: capture(sdk, auth["id"], "1.00", request_id="capture-call-1b")) == (
        422, "UNPROCESSABLE_ENTITY", "AUTHORIZATION_ALREADY_CAPTURED")
    assert refusal(lambda: sdk.payments.void_payment({"authorization_id": auth["id"]}))[2] == "PREVIOUSLY_CAPTURED"
    assert emu.books(client_id) == books


def test_non_final_captures_up_to_115_percent(emu, account):
    client_id, sdk = account
    auth = authorized(emu, sdk, "10.00")
    body(capture(sdk, auth["id"], "6.00", final=False))
    got = body(sdk.payments.get_authorized_payment({"authorization_id": auth["id"]}))
    assert got["status"] == "PARTIALLY_CAPTURED"
    # 6.00 + 5.51 = 11.51 > 11.50
    assert refusal(lambda: capture(sdk, auth["id"], "5.51", final=False)) == (
        422, "UNPROCESSABLE_ENTITY", "MAX_CAPTURE_AMOUNT_EXCEEDED")
    body(capture(sdk, auth["id"], "5.50", final=False))  # exactly 115%
    assert emu.books(client_id)["totals"]["USD"]["captured"] == 1150
    assert body(sdk.payments.get_authorized_payment({"authorization_id": auth["id"]}))["status"] == "CAPTURED"


def test_a_single_capture_above_115_percent_is_refused(emu, account):
    _, sdk = account
    auth = authorized(emu, sdk, "100.00")
    assert refusal(lambda: capture(sdk, auth["id"], "115.01"))[2] == "MAX_CAPTURE_AMOUNT_EXCEEDED"
    assert body(capture(sdk, auth["id"], "115.00"))["status"] == "COMPLETED"


def test_capture_in_another_currency_is_refused(emu, account):
    _, sdk = account
    auth = authorized(emu, sdk, "10.00")
    assert refusal(lambda: capture(sdk, auth["id"], "5.00", "EUR"))[2] == "CURRENCY_MISMATCH"


def test_void(emu, account):
    client_id, sdk = account
    auth = authorized(emu, sdk, "20.00")
    r = sdk.payments.void_payment({"authorization_id": auth["id"], "paypal_request_id": "void-1"})
    assert r.status_code == 204 and r.body is None
    again = sdk.payments.void_payment({"authorization_id": auth["id"], "paypal_request_id": "void-1"})
    assert again.status_code == 204  # replayed
    assert refusal(lambda: sdk.payments.void_payment({"authorization_id": auth["id"]}))[2] == "PREVIOUSLY_VOIDED"
    assert refusal(lambda: capture(sdk, auth["id"], "1.00"))[2] == "AUTHORIZATION_VOIDED"
    books = emu.books(client_id)
    assert books["authorizations"][0]["status"] == "VOIDED" and books["totals"]["USD"]["held"] == 0
    # With return=representation PayPal answers 200 and the authorization.
    other = authorized(emu, sdk, "20.00")
    r = sdk.payments.void_payment({"authorization_id": other["id"], "prefer": PREFER})
    assert r.status_code == 200 and body(r)["status"] == "VOIDED"


def test_expired_authorizations(emu, account):
    _, sdk = account
    auth = authorized(emu, sdk, "20.00")
    emu.expire(auth["id"])
    assert body(sdk.payments.get_authorized_payment({"authorization_id": auth["id"]}))["status"] == "EXPIRED"
    assert refusal(lambda: capture(sdk, auth["id"], "1.00"))[2] == "AUTHORIZATION_EXPIRED"
    # By the clock: 29 days.
    later = authorized(emu, sdk, "20.00")
    emu.advance(29 * 86400 + 1)
    try:
        assert refusal(lambda: capture(sdk, later["id"], "1.00"))[2] == "AUTHORIZATION_EXPIRED"
    finally:
        emu.advance(-(29 * 86400 + 1))


# ---- refunds ---------------------------------------------------------------------------------

def captured(emu, sdk, value):
    order = create(sdk, value, intent="CAPTURE")
    emu.approve(order["id"])
    done = body(sdk.orders.capture_order({"id": order["id"], "prefer": PREFER}))
    return done["purchase_units"][0]["payments"]["captures"][0]


def refund(sdk, capture_id, value=None, request_id=None):
    options = {"capture_id": capture_id, "prefer": PREFER, "body": {}}
    if value is not None:
        options["body"]["amount"] = {"currency_code": "USD", "value": value}
    if request_id:
        options["paypal_request_id"] = request_id
    return sdk.payments.refund_captured_payment(options)


def test_full_refund(emu, account):
    client_id, sdk = account
    cap = captured(emu, sdk, "30.00")
    r = refund(sdk, cap["id"])
    assert r.status_code == 201
    assert body(r)["status"] == "COMPLETED" and body(r)["amount"] == {"currency_code": "USD", "value": "30.00"}
    assert body(sdk.payments.get_captured_payment({"capture_id": cap["id"]}))["status"] == "REFUNDED"
    assert refusal(lambda: refund(sdk, cap["id"], "1.00"))[2] == "CAPTURE_FULLY_REFUNDED"
    totals = emu.books(client_id)["totals"]["USD"]
    assert (totals["captured"], totals["refunded"]) == (3000, 3000)


def test_partial_refunds_and_over_refund(emu, account):
    client_id, sdk = account
    cap = captured(emu, sdk, "30.00")
    first = refund(sdk, cap["id"], "10.00", request_id="refund-1")
    assert body(first)["amount"]["value"] == "10.00"
    assert refund(sdk, cap["id"], "10.00", request_id="refund-1").text == first.text  # replayed, not twice
    assert body(sdk.payments.get_captured_payment({"capture_id": cap["id"]}))["status"] == "PARTIALLY_REFUNDED"
    assert refusal(lambda: refund(sdk, cap["id"], "20.01")) == (422, "UNPROCESSABLE_ENTITY",
                                                                "REFUND_AMOUNT_EXCEEDED")
    last = body(refund(sdk, cap["id"]))  # the rest
    assert last["amount"]["value"] == "20.00"
    books = emu.books(client_id)
    assert books["totals"]["USD"]["refunded"] == 3000 and len(books["refunds"]) == 2
    assert [r["amount"]["value"] for r in books["refunds"]] == ["10.00", "20.00"]


# ---- injected failures -------------------------------------------------------------------------

def test_fail_next(emu, account):
    client_id, sdk = account
    auth = authorized(emu, sdk, "10.00")
    emu.fail_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", 503)
    assert refusal(lambda: capture(sdk, auth["id"], "2.00", request_id="c-1")) == (503, "SERVICE_UNAVAILABLE", None)
    assert emu.books(client_id)["captures"] == []
    # The failure is not remembered for the request id: the retry captures.
    assert body(capture(sdk, auth["id"], "2.00", request_id="c-1"))["status"] == "COMPLETED"
    # A body of our choosing.
    other = authorized(emu, sdk, "10.00")
    emu.fail_next("POST", r"/capture$", 422, body={"name": "UNPROCESSABLE_ENTITY", "message": "declined",
                                                   "details": [{"issue": "INSTRUMENT_DECLINED",
                                                                "description": "declined"}]})
    assert refusal(lambda: capture(sdk, other["id"], "2.00"))[2] == "INSTRUMENT_DECLINED"
    log = [e for e in emu.requests if e["client_id"] == client_id or e["status"] in (503, 422)]
    assert any(e["status"] == 503 and e["request_id"] == "c-1" for e in log)


def test_drop_next_after_processing_then_retry_gets_the_original(emu, account):
    client_id, sdk = account
    auth = authorized(emu, sdk, "10.00")
    emu.drop_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", after_processing=True)
    with pytest.raises(requests.ConnectionError):
        capture(sdk, auth["id"], "3.00", request_id="capture-crash")
    books = emu.books(client_id)
    assert [c["amount"]["value"] for c in books["captures"]] == ["3.00"]  # PayPal did capture
    retry = body(capture(sdk, auth["id"], "3.00", request_id="capture-crash"))
    assert retry["id"] == books["captures"][0]["id"]
    assert emu.books(client_id) == books  # no second capture
    assert [e["dropped"] for e in emu.requests if e["request_id"] == "capture-crash"] == [True, False]


def test_drop_next_before_processing(emu, account):
    client_id, sdk = account
    auth = authorized(emu, sdk, "10.00")
    emu.drop_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", after_processing=False)
    with pytest.raises(requests.ConnectionError):
        capture(sdk, auth["id"], "3.00", request_id="capture-lost")
    assert emu.books(client_id)["captures"] == []
    assert body(capture(sdk, auth["id"], "3.00", request_id="capture-lost"))["status"] == "COMPLETED"
    assert len(emu.books(client_id)["captures"]) == 1


# ---- webhooks ----------------------------------------------------------------------------------

def verify(emu, sdk, headers, raw, webhook_id):
    token = sdk.oauth_2.fetch_token().access_token
    return requests.post(f"{emu.url}/v1/notifications/verify-webhook-signature", timeout=5,
                         headers={"Authorization": f"Bearer {token}"}, json={
                             "auth_algo": headers["PAYPAL-AUTH-ALGO"], "cert_url": headers["PAYPAL-CERT-URL"],
                             "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
                             "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
                             "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
                             "webhook_id": webhook_id, "webhook_event": json.loads(raw)})


def test_webhook_verification(emu, account):
    client_id, sdk = account
    webhook_id = f"WH-{client_id.split('-')[1]}"
    resource = {"id": "RF-1", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "1.00"}}
    headers, raw = emu.webhook(client_id, "PAYMENT.CAPTURE.REFUNDED", resource)
    event = json.loads(raw)
    assert event["event_type"] == "PAYMENT.CAPTURE.REFUNDED" and event["resource"] == resource
    assert event["resource_type"] == "refund" and event["id"].startswith("WH-")
    r = verify(emu, sdk, headers, raw, webhook_id)
    assert r.status_code == 200 and r.json() == {"verification_status": "SUCCESS"}
    # Tampered body, another webhook id, a forged signature: FAILURE.
    tampered = raw.replace(b'"1.00"', b'"3.00"')
    assert verify(emu, sdk, headers, tampered, webhook_id).json()["verification_status"] == "FAILURE"
    assert verify(emu, sdk, headers, raw, "WH-OTHER").json()["verification_status"] == "FAILURE"
    forged = {**headers, "PAYPAL-TRANSMISSION-SIG": "AAAA"}
    assert verify(emu, sdk, forged, raw, webhook_id).json()["verification_status"] == "FAILURE"
    # Another app cannot verify it as its own.
    n = next(_seq)
    emu.add_app(f"wh-other-{n}", "s")
    emu.add_webhook(f"wh-other-{n}", webhook_id + "-x")
    other = sdk_by_subclass(emu.url, f"wh-other-{n}", "s")
    assert verify(emu, other, headers, raw, webhook_id).json()["verification_status"] == "FAILURE"
    # Missing fields: PayPal's 400.
    token = sdk.oauth_2.fetch_token().access_token
    r = requests.post(f"{emu.url}/v1/notifications/verify-webhook-signature", json={"webhook_id": webhook_id},
                      headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 400 and r.json()["name"] == "VALIDATION_ERROR"


def test_send_webhook_posts_a_genuine_event(emu, account):
    client_id, sdk = account
    received = {}
    sink = PayPalEmulator()  # any WSGI server will do as the receiver; borrow the emulator's plumbing

    def app(environ, start_response):
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        received["headers"], received["body"] = dict(request.headers), request.get_data()
        return Response("ok")(environ, start_response)

    sink.wsgi_app = app
    sink.start()
    try:
        r = emu.send_webhook(sink.url + "/hook", client_id, "PAYMENT.CAPTURE.COMPLETED", {"id": "CAP-1"})
    finally:
        sink.stop()
    assert r.status_code == 200
    headers = {k.upper(): v for k, v in received["headers"].items()}
    webhook_id = f"WH-{client_id.split('-')[1]}"
    assert verify(emu, sdk, headers, received["body"], webhook_id).json()["verification_status"] == "SUCCESS"


# ---- the command line ----------------------------------------------------------------------------

def test_main_serves_and_prints_its_url(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "callme.dev.paypal_emulator", "--port", "0", "--app", "cli:cli-secret"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        token = sdk_by_subclass(url, "cli", "cli-secret").oauth_2.fetch_token()
        assert token.access_token
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()


def test_capture_without_amount_takes_the_rest(emu, account):
    client_id, sdk = account
    auth = authorized(emu, sdk, "10.00")
    body(capture(sdk, auth["id"], "4.00", final=False))
    rest = body(sdk.payments.capture_authorized_payment({"authorization_id": auth["id"], "prefer": PREFER,
                                                         "body": {"final_capture": True}}))
    assert rest["amount"]["value"] == "6.00"
    assert emu.books(client_id)["totals"]["USD"]["captured"] == 1000


def test_concurrent_retries_with_one_request_id_capture_once(emu, account):
    from concurrent.futures import ThreadPoolExecutor

    client_id, sdk = account
    auth = authorized(emu, sdk, "10.00")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: capture(sdk, auth["id"], "2.00", request_id="same").text, range(6)))
    assert len(set(answers)) == 1 and len(emu.books(client_id)["captures"]) == 1
