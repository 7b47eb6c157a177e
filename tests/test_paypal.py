"""The PayPal boundary (``callme.money.paypal``): credentials and their encryption, one SDK client
per expert, and every bad input to /payments/orders, /calls with a payment, and the webhook: a
clear 4xx each, and nothing changed in the ledger. Amounts as PayPal writes them: test_currency.py."""
import json

import pytest
import sqlalchemy as sa

from callme.money import payments
from callme.extensions import db
from callme.models import Call, Expert, LedgerEntry, Payment, PayPalEvent
from callme.money.paypal import (PayPalError, check_credentials, decrypt_secret, encrypt_secret, forget_gateways,
                           set_paypal_credentials)

from .conftest import API, ORIGIN, assert_error, connect_paypal, make_active, post_webhook

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


# ---- secrets at rest ---------------------------------------------------------------------------

def test_secret_round_trip_and_key_rotation():
    old = {"SECRET_KEY": "old-key"}
    token = encrypt_secret(old, "s3cret")
    assert "s3cret" not in token and decrypt_secret(old, token) == "s3cret"
    rotated = {"SECRET_KEY": "new-key", "SECRET_KEY_FALLBACKS": ["old-key"]}
    assert decrypt_secret(rotated, token) == "s3cret"
    with pytest.raises(PayPalError) as e:
        decrypt_secret({"SECRET_KEY": "new-key"}, token)
    assert e.value.code == "secret_unreadable"


def test_an_explicit_fernet_key_is_used():
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    config = {"SECRET_KEY": "k", "PAYPAL_ENCRYPTION_KEY": key}
    token = encrypt_secret(config, "s3cret")
    assert Fernet(key).decrypt(token.encode()) == b"s3cret"


def test_the_database_never_holds_the_secret(app, make_expert, emulator):
    expert = make_expert(price=0)
    emulator.add_app("app-enc", "very-secret-value")
    set_paypal_credentials(expert, "app-enc", "very-secret-value", "sandbox", "WH-1", app.config)
    with db.engine.connect() as c:
        dump = "\n".join(str(tuple(row)) for row in c.execute(sa.text("SELECT * FROM experts")))
    assert "app-enc" in dump and "very-secret-value" not in dump
    stored = db.session.get(Expert, expert.id)
    assert decrypt_secret(app.config, stored.paypal_secret_enc) == "very-secret-value"
    assert stored.paypal_mode == "sandbox" and stored.paypal_webhook_id == "WH-1" and stored.paypal_version == 1


# ---- credentials ------------------------------------------------------------------------------

def test_check_credentials(emulator):
    emulator.add_app("app-good", "good-secret")
    assert check_credentials("app-good", "good-secret", "sandbox", emulator.url) is None


@pytest.mark.parametrize("client_id, secret, mode, code", [
    ("app-good2", "wrong-secret", "sandbox", "invalid_client"),
    ("no-such-app", "good-secret", "sandbox", "invalid_client"),
    ("", "good-secret", "sandbox", "invalid_client"),
    ("app-good2", "", "sandbox", "invalid_client"),
    ("app-good2", "good-secret", "production", "bad_mode"),
])
def test_check_credentials_refuses(emulator, client_id, secret, mode, code):
    emulator.add_app("app-good2", "good-secret")
    with pytest.raises(PayPalError) as e:
        check_credentials(client_id, secret, mode, emulator.url)
    assert e.value.code == code and e.value.message


def test_check_credentials_when_paypal_is_unreachable():
    from .scenarios.live import free_port

    with pytest.raises(PayPalError) as e:
        check_credentials("app", "secret", "sandbox", f"http://127.0.0.1:{free_port()}", timeout=2)
    assert e.value.code == "network" and e.value.transient


def test_set_credentials_refuses_wrong_ones_and_keeps_the_old(app, make_expert, emulator):
    expert = make_expert(price=150)
    before = (expert.paypal_client_id, expert.paypal_secret_enc, expert.paypal_version)
    with pytest.raises(PayPalError) as e:
        set_paypal_credentials(expert, "nobody", "nothing", "sandbox", None, app.config)
    assert e.value.code == "invalid_client"
    db.session.rollback()
    expert = db.session.get(Expert, expert.id)
    assert (expert.paypal_client_id, expert.paypal_secret_enc, expert.paypal_version) == before


def test_cli_connects_paypal(app, runner, make_expert, emulator):
    make_expert(handle="clay", price=0)
    emulator.add_app("app-cli", "cli-secret")
    r = runner.invoke(args=["expert", "paypal", "--handle", "clay", "--client-id", "app-cli", "--secret",
                            "cli-secret", "--mode", "sandbox", "--webhook-id", "WH-CLI"])
    assert r.exit_code == 0, r.output
    expert = db.session.scalar(sa.select(Expert).filter_by(handle="clay"))
    assert expert.paypal_client_id == "app-cli" and expert.paypal_webhook_id == "WH-CLI"
    r = runner.invoke(args=["expert", "paypal", "--handle", "clay", "--client-id", "app-cli", "--secret", "bad"])
    assert r.exit_code != 0 and "refused" in r.output
    r = runner.invoke(args=["expert", "paypal", "--handle", "nobody", "--client-id", "a", "--secret", "b"])
    assert r.exit_code != 0 and "does not exist" in r.output


def test_one_sdk_client_per_expert_reused(app, make_expert, emulator):
    from callme.money.paypal import gateway_for

    forget_gateways()
    ray, ann = make_expert(), make_expert()
    assert gateway_for(ray, app.config) is gateway_for(ray, app.config)
    assert gateway_for(ray, app.config) is not gateway_for(ann, app.config)
    first = gateway_for(ray, app.config)
    assert first.access_token() == first.access_token()  # the token is reused too
    connect_paypal(ray, emulator)
    assert gateway_for(ray, app.config) is not first  # new credentials, new client


# ---- POST /payments/orders ------------------------------------------------------------------------

def ledger_count():
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry))


def order_body(expert="ray", amount=150, currency="USD", **extra):
    return {"expert": expert, "price": {"amount": amount, "currency": currency}, "origin": ORIGIN, **extra}


def test_create_order(client, make_expert, emulator):
    expert = make_expert(handle="ray", price=150, cap_minutes=60)
    r = client.post(f"{API}/payments/orders", json=order_body(), headers={"Origin": ORIGIN})
    assert r.status_code == 201, r.get_json()
    data = r.get_json()
    assert data["amount"] == {"amount": 9000, "currency": "USD"}
    assert data["approve_url"].startswith(emulator.url) and data["order_id"] in data["approve_url"]
    payment = db.session.scalar(sa.select(Payment).filter_by(order_id=data["order_id"]))
    assert (payment.state, payment.intent, payment.amount_minor, payment.currency, payment.expert_id) == (
        "created", "AUTHORIZE", 9000, "USD", expert.id)
    assert payment.paypal_client_id == expert.paypal_client_id
    order = payment.raw["order"]
    assert order["intent"] == "AUTHORIZE"
    assert order["purchase_units"][0]["amount"] == {"currency_code": "USD", "value": "90.00"}
    books = emulator.books(expert.paypal_client_id)
    assert [o["id"] for o in books["orders"]] == [data["order_id"]]
    assert ledger_count() == 0  # an order moves no money


def test_create_order_in_yen(client, make_expert, emulator):
    make_expert(handle="ken", price=100, currency="JPY", cap_minutes=30)
    data = client.post(f"{API}/payments/orders", json=order_body("ken", 100, "JPY")).get_json()
    assert data["amount"] == {"amount": 3000, "currency": "JPY"}
    payment = db.session.scalar(sa.select(Payment).filter_by(order_id=data["order_id"]))
    assert payment.raw["order"]["purchase_units"][0]["amount"] == {"currency_code": "JPY", "value": "3000"}


@pytest.mark.parametrize("setup, body, status, code", [
    ("ray", order_body("nobody"), 404, "expert_not_found"),
    ("ray", order_body(amount=149), 409, "price_changed"),
    ("ray", order_body(currency="EUR"), 409, "price_changed"),
    ("free", order_body("free", amount=0), 409, "payment_not_needed"),
    ("nopaypal", order_body("nopaypal"), 409, "payments_not_set_up"),
    ("kwd", order_body("kwd", currency="KWD"), 409, "currency_not_supported"),
    ("ray", order_body(origin="https://evil.example"), 403, "origin_not_allowed"),
    ("ray", order_body(return_url="https://evil.example/paypal/return"), 422, "invalid"),
    ("ray", {"expert": "ray"}, 422, "invalid"),
    ("ray", order_body(price={"amount": 1.5, "currency": "USD"}), 422, "invalid"),
    ("ray", order_body(tip=1), 422, "invalid"),
], ids=["unknown expert", "stale price", "stale currency", "free expert", "no paypal", "currency paypal lacks",
        "origin", "foreign return url", "missing price", "float price", "unknown field"])
def test_create_order_refusals(client, make_expert, emulator, setup, body, status, code):
    make_expert(handle="ray", price=150)
    if setup == "free":
        make_expert(handle="free", price=0)
    elif setup == "nopaypal":
        make_expert(handle="nopaypal", price=150, paypal=False)
    elif setup == "kwd":
        make_expert(handle="kwd", price=150, currency="KWD")
    orders_before = db.session.scalar(sa.select(sa.func.count()).select_from(Payment))
    assert_error(client.post(f"{API}/payments/orders", json=body), status, code)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment)) == orders_before
    assert ledger_count() == 0


def test_create_order_with_wrong_credentials(client, make_expert, emulator):
    expert = make_expert(handle="ray", price=150)
    expert.paypal_secret_enc = encrypt_secret(client.application.config, "not-the-secret")
    expert.paypal_version += 1
    db.session.commit()
    assert_error(client.post(f"{API}/payments/orders", json=order_body()), 502, "paypal_misconfigured")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0


def test_create_order_when_paypal_fails(client, make_expert, emulator):
    make_expert(handle="ray", price=150)
    emulator.fail_next("POST", r"/v2/checkout/orders$", 500)
    assert_error(client.post(f"{API}/payments/orders", json=order_body()), 503, "paypal_unavailable")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0


# ---- POST /calls with a payment -------------------------------------------------------------------

def call_body(expert="ray", amount=150, currency="USD", order_id=None, **extra):
    body = {"expert": expert, "kind": "instant", "price": {"amount": amount, "currency": currency},
            "origin": ORIGIN, **extra}
    if order_id is not None:
        body["payment"] = {"order_id": order_id}
    return body


def test_paid_call_with_an_approved_order(client, make_expert, approved_order, emulator, service):
    expert = make_expert(handle="ray", price=150, cap_minutes=60, online=True)
    order_id = approved_order("ray", 150)
    r = client.post(f"{API}/calls", json=call_body(order_id=order_id))
    assert r.status_code == 201, r.get_json()
    call_id = r.get_json()["call_id"]
    payment = db.session.scalar(sa.select(Payment).filter_by(order_id=order_id))
    assert (payment.state, payment.call_id, payment.amount_minor) == ("authorized", call_id, 9000)
    assert payment.authorization_id and payment.raw["authorize"]["status"] == "COMPLETED"
    rows = db.session.scalars(sa.select(LedgerEntry)).all()
    assert [(r.kind, r.amount_minor, r.currency, r.payment_id) for r in rows] == [("hold", 9000, "USD", payment.id)]
    books = emulator.books(expert.paypal_client_id)
    assert [a["id"] for a in books["authorizations"]] == [payment.authorization_id]
    # The same approval cannot pay for a second call.
    service.hangup(call_id, "visitor")
    assert_error(client.post(f"{API}/calls", json=call_body(order_id=order_id)), 402, "payment_used")


def test_free_expert_needs_no_payment(client, make_expert):
    make_expert(handle="free", price=0, online=True)
    assert client.post(f"{API}/calls", json=call_body("free", amount=0)).status_code == 201
    assert ledger_count() == 0


def authorize_directly(expert, order_id, app):
    """The order authorized at PayPal by someone else (so we can spoil the authorization)."""
    from callme.money.paypal import gateway_for

    order = gateway_for(expert, app.config).authorize_order(order_id, request_id=f"authorize-{order_id}")
    return order["purchase_units"][0]["payments"]["authorizations"][0]["id"]


@pytest.mark.parametrize("case, status, code", [
    ("no payment", 402, "payment_required"),
    ("unknown order", 402, "payment_invalid"),
    ("another expert's order", 402, "payment_invalid"),
    ("unapproved order", 402, "payment_not_approved"),
    ("expired authorization", 402, "payment_expired"),
    ("partially captured authorization", 402, "payment_invalid"),
    ("voided authorization", 402, "payment_invalid"),
    ("too small", 402, "payment_insufficient"),
    ("cap raised since", 402, "payment_insufficient"),
    ("no paypal", 409, "payments_not_set_up"),
    ("credentials changed", 402, "payment_invalid"),
    ("wrong credentials", 502, "paypal_misconfigured"),
    ("paypal down", 503, "paypal_unavailable"),
    ("malformed order id", 422, "invalid"),
])
def test_paid_call_refusals(app, client, make_expert, approved_order, emulator, case, status, code):
    ray = make_expert(handle="ray", price=150, cap_minutes=10, online=True)
    order_id = None
    if case == "unknown order":
        order_id = "5O190127TN364715T"
    elif case == "another expert's order":
        make_expert(handle="ann", price=150, cap_minutes=10, online=True)
        order_id = approved_order("ann", 150)
    elif case == "unapproved order":
        order_id = approved_order("ray", 150, approve=False)
    elif case in ("expired authorization", "partially captured authorization", "voided authorization"):
        order_id = approved_order("ray", 150)
        from callme.money.paypal import gateway_for

        auth_id = authorize_directly(ray, order_id, app)
        gateway = gateway_for(ray, app.config)
        if case == "expired authorization":
            emulator.expire(auth_id)
        elif case == "partially captured authorization":
            gateway.capture_authorization(auth_id, 100, "USD", request_id="sneaky", final=False)
        else:
            gateway.void_authorization(auth_id, request_id="sneaky-void")
    elif case == "too small":
        payment, _ = payments.create_order(ray, 150 * 5, "USD", app.config)  # covers 5 of the 10 minutes
        emulator.approve(payment.order_id)
        order_id = payment.order_id
    elif case == "cap raised since":
        order_id = approved_order("ray", 150)
        ray.cap_minutes = 20
        db.session.commit()
    elif case == "no paypal":
        make_expert(handle="ray2", price=150, online=True, paypal=False)
        r = client.post(f"{API}/calls", json=call_body("ray2", order_id="ABC"))
        assert_error(r, status, code)
        assert ledger_count() == 0
        return
    elif case == "credentials changed":
        order_id = approved_order("ray", 150)
        connect_paypal(ray, emulator)
    elif case == "wrong credentials":
        order_id = approved_order("ray", 150)
        ray.paypal_secret_enc = encrypt_secret(app.config, "not-the-secret")
        ray.paypal_version += 1
        db.session.commit()
    elif case == "paypal down":
        order_id = approved_order("ray", 150)
        emulator.fail_next("POST", r"/authorize$", 503)
    elif case == "malformed order id":
        order_id = "../../v1/oauth2/token"
    before = {p.id: p.state for p in db.session.scalars(sa.select(Payment))}
    r = client.post(f"{API}/calls", json=call_body(order_id=order_id))
    assert_error(r, status, code)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Call)) == 0  # nobody rung
    assert ledger_count() == 0
    assert {p.id: p.state for p in db.session.scalars(sa.select(Payment))} == before


def test_paid_call_can_retry_with_the_same_order_after_busy(client, make_expert, approved_order, make_call,
                                                           service):
    expert = make_expert(handle="ray", price=150, cap_minutes=10, online=True)
    blocking = make_call(expert)
    order_id = approved_order("ray", 150)
    assert_error(client.post(f"{API}/calls", json=call_body(order_id=order_id)), 409, "expert_busy")
    service.hangup(blocking.id, "visitor")
    r = client.post(f"{API}/calls", json=call_body(order_id=order_id))
    assert r.status_code == 201, r.get_json()
    payment = db.session.scalar(sa.select(Payment).filter_by(order_id=order_id))
    assert payment.call_id == r.get_json()["call_id"]


# ---- webhooks ----------------------------------------------------------------------------------------

def captured_payment(app, make_expert, make_call, service, clock, emulator, minutes=2):
    expert = make_expert(handle="ray", price=150, cap_minutes=10, free_seconds=60, online=True)
    call = make_call(expert)
    call_id = call.id
    make_active(service, call_id, expert.id)
    clock.advance(60 * minutes - 1)
    service.hangup(call_id, "visitor")
    db.session.expire_all()
    payment = db.session.scalar(sa.select(Payment).filter_by(call_id=call_id))
    assert payment.state == "captured", payment.last_error
    return expert, payment


def refund_resource(payment, refund_id="RF-1", value="1.00"):
    return {"id": refund_id, "status": "COMPLETED", "amount": {"currency_code": payment.currency, "value": value},
            "links": [{"rel": "up", "href": f"https://api.paypal.example/v2/payments/captures/{payment.capture_id}",
                       "method": "GET"}]}


@pytest.mark.parametrize("tamper, status, code", [
    ("body changed", 401, "webhook_unverified"),
    ("signature removed", 401, "webhook_unverified"),
    ("other webhook", 401, "webhook_unverified"),
    ("not json", 400, "bad_json"),
    ("no id", 400, "bad_event"),
    ("unknown expert", 404, "expert_not_found"),
])
def test_tampered_webhooks_change_nothing(app, client, make_expert, make_call, service, clock, emulator, caplog,
                                          tamper, status, code):
    expert, payment = captured_payment(app, make_expert, make_call, service, clock, emulator)
    rows_before = ledger_count()
    headers, body = emulator.webhook(expert.paypal_client_id, "PAYMENT.CAPTURE.REFUNDED", refund_resource(payment))
    headers = dict(headers)
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    raw = raw.decode() if isinstance(raw, bytes) else raw
    url = f"{API}/paypal/webhooks/{expert.handle}"
    if tamper == "body changed":
        raw = raw.replace('"1.00"', '"3.00"')
    elif tamper == "signature removed":
        headers = {k: v for k, v in headers.items() if k.lower() != "paypal-transmission-sig"}
    elif tamper == "other webhook":
        other = make_expert(handle="ann", price=150)
        url = f"{API}/paypal/webhooks/{other.handle}"
    elif tamper == "not json":
        raw = "{not json"
    elif tamper == "no id":
        event = json.loads(raw)
        del event["id"]
        raw = json.dumps(event)
    elif tamper == "unknown expert":
        url = f"{API}/paypal/webhooks/nobody"
    headers["Content-Type"] = "application/json"
    assert_error(client.post(url, data=raw, headers=headers), status, code)
    assert ledger_count() == rows_before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PayPalEvent)) == 0
    assert db.session.get(Payment, payment.id).state == "captured"


def test_webhook_of_an_unknown_capture_is_recorded_and_changes_no_money(app, client, make_expert, make_call,
                                                                       service, clock, emulator):
    expert, payment = captured_payment(app, make_expert, make_call, service, clock, emulator)
    before = ledger_count()
    resource = refund_resource(payment)
    resource["links"][0]["href"] = "https://api.paypal.example/v2/payments/captures/NOT-OURS"
    assert post_webhook(client, emulator, expert, "PAYMENT.CAPTURE.REFUNDED", resource) == ["unknown_capture"]
    assert ledger_count() == before


@pytest.mark.parametrize("client_id, secret, mode, webhook_id, code, message", [
    ("app", "s", "production", None, "bad_mode", "Choose sandbox or live."),
    ("", "s", "sandbox", None, "invalid_client", "Enter the client id"),
    ("app ray", "s", "sandbox", None, "invalid_client", "That is not a PayPal client id"),
    ("x" * 129, "s", "sandbox", None, "invalid_client", "That is not a PayPal client id"),
    ("app", "", "sandbox", None, "invalid_client", "Enter the secret"),
    ("app", "s" * 513, "sandbox", None, "invalid_client", "That is not a PayPal secret"),
    ("app", "s", "sandbox", "W" * 65, "bad_webhook_id", "That is not a PayPal webhook id"),
])
def test_credentials_are_checked_by_one_rule_wherever_they_come_from(app, make_expert, client_id, secret, mode,
                                                                     webhook_id, code, message):
    from callme.money.paypal import clean_credentials

    for attempt in (lambda: clean_credentials(client_id, secret, mode, webhook_id),
                    lambda: set_paypal_credentials(make_expert(price=0), client_id, secret, mode, webhook_id,
                                                   app.config, check=False)):
        with pytest.raises(PayPalError) as e:
            attempt()
        assert e.value.code == code and e.value.message.startswith(message) and e.value.status == 400


def test_clean_credentials_strips_and_forgets_an_empty_webhook_id():
    from callme.money.paypal import clean_credentials

    assert clean_credentials(" app ", " s3cret ", "live", "  ") == ("app", "s3cret", "live", None)
