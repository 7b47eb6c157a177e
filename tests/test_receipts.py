"""A call's receipt (``callme.money.receipts``, ``callme.web.receipts``): its figures from the call
and its ledger rows, the signed link that opens it, and the page and JSON it is served as."""
import time

import pytest
from itsdangerous import TimestampSigner

from callme.calls.tokens import tokens_for
from callme.errors import CallmeError
from callme.extensions import db
from callme.models import Payment
from callme.money.receipts import RECEIPT_MAX_AGE, ReceiptRefused, receipt, receipt_by_link

from .conftest import add_call, entry, fake_call, receipt_token

DAY_MS = 24 * 3600 * 1000


def test_receipt_figures():
    data = receipt(fake_call(currency="JPY", price_minor=100, amount_minor=300), "Ray Law",
                   [entry("capture", 300, capture_id="CAP9")])
    assert data["expert"] == "Ray Law" and data["started_utc"] == "2025-11-22T08:26:40Z"
    assert data["started"] == "Sat 22 Nov 2025, 08:26 UTC"
    assert (data["billed_duration"], data["billed_minutes"], data["price"], data["amount"], data["amount_decimal"]) == \
        ("2:05", 3, "¥100", "¥300", "300")
    assert data["paypal_capture_id"] == "CAP9" and data["commission_minor"] == 0
    assert data["note"] == "No commission: the whole amount goes to Ray Law."


def test_the_decimal_amount_has_the_currencys_digits():
    data = receipt(fake_call(currency="KWD", price_minor=1500, amount_minor=4500), "Ray", [])
    assert data["amount_decimal"] == "4.500"


@pytest.fixture
def ended_call(make_expert, clock):
    """Ray's ended call: 125 s, 3 minutes at 1.50 USD, nothing taken yet."""
    return add_call(make_expert(handle="ray", paypal=False), clock, taken=None)


def test_a_good_link_opens_the_receipt(app, ended_call):
    tokens = tokens_for(app.config)
    data = receipt_by_link(tokens, ended_call.id, tokens.receipt_token(ended_call.id))
    assert (data["call_id"], data["expert"], data["amount_minor"], data["amount"]) == (ended_call.id, "Ray", 450,
                                                                                       "$4.50")


@pytest.mark.parametrize("case, status, code, message", [
    ("garbage", 403, "token_invalid", "This receipt link is not valid."),
    ("other call", 403, "token_wrong_call", "This receipt link is for another call."),
    ("no call", 404, "call_not_found", "This call does not exist."),
])
def test_a_bad_link_is_a_refusal_with_words_for_people(app, ended_call, case, status, code, message):
    tokens = tokens_for(app.config)
    call_id, token = {
        "garbage": (ended_call.id, "garbage"),
        "other call": (ended_call.id, tokens.receipt_token("another")),
        "no call": ("another", tokens.receipt_token("another")),
    }[case]
    with pytest.raises(ReceiptRefused) as e:
        receipt_by_link(tokens, call_id, token)
    assert isinstance(e.value, CallmeError)
    assert (e.value.status, e.value.code, e.value.message) == (status, code, message)


def test_the_json_receipt_refuses_as_json_and_the_page_as_a_page(client, app, ended_call):
    r = client.get(f"/receipts/{ended_call.id}.json?t=garbage")
    assert r.status_code == 403 and r.get_json()["error"] == "token_invalid"
    assert r.headers["Cache-Control"] == "no-store"
    page = client.get(f"/receipts/{ended_call.id}?t=garbage")
    assert page.status_code == 403 and 'id="receipt-error"' in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"


# ---- the pages: /receipts/<call> and its JSON -------------------------------------------------

def test_receipt_page_and_json_with_the_right_figures(app, client, clock, make_expert):
    clock.now = 1_763_800_000_000
    ray = make_expert("ray", price=250, paypal=False)
    call = add_call(ray, clock, ago_ms=0, billed_ms=150_000, minutes=3, capture_id="CAP-42")
    t = receipt_token(app, call.id)

    r = client.get(f"/receipts/{call.id}?t={t}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    for text in ("Call with Ray", "2025-11-22T08:26:40Z", "Sat 22 Nov 2025, 08:26 UTC", "2:30", "$2.50", "$7.50",
                 "CAP-42", "No commission: the whole amount goes to Ray."):
        assert text in html
    assert r.headers["Referrer-Policy"] == "no-referrer" and "style=" not in html

    j = client.get(f"/receipts/{call.id}.json?t={t}")
    assert j.status_code == 200
    data = j.get_json()
    assert {k: data[k] for k in ("call_id", "expert", "started_utc", "billed_duration_ms", "billed_minutes",
                                 "price_minor", "amount_minor", "currency", "paypal_capture_id",
                                 "commission_minor")} == {
        "call_id": call.id, "expert": "Ray", "started_utc": "2025-11-22T08:26:40Z", "billed_duration_ms": 150_000,
        "billed_minutes": 3, "price_minor": 250, "amount_minor": 750, "currency": "USD",
        "paypal_capture_id": "CAP-42", "commission_minor": 0}


def test_receipt_in_yen_and_the_capture_id_from_the_payment(app, client, clock, make_expert):
    ray = make_expert("ray", price=100, currency="JPY", paypal=False)
    call = add_call(ray, clock, minutes=12, billed_ms=11 * 60_000 + 1)
    db.session.add(Payment(expert_id=ray.id, call_id=call.id, intent="AUTHORIZE", state="captured", currency="JPY",
                           amount_minor=6000, due_minor=1200, captured_minor=1200, paypal_client_id="app",
                           order_id="O-9", capture_id="CAP-PAYMENT"))
    db.session.commit()
    data = client.get(f"/receipts/{call.id}.json?t={receipt_token(app, call.id)}").get_json()
    assert (data["amount"], data["price"], data["amount_decimal"], data["paypal_capture_id"]) == \
        ("¥1,200", "¥100", "1200", "CAP-PAYMENT")


def _expired_token(app, call_id, monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - RECEIPT_MAX_AGE - 5)
    token = receipt_token(app, call_id)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    return token


@pytest.mark.parametrize("case", ["missing", "tampered", "other_call", "expired", "call_token", "other_key"])
def test_a_bad_receipt_token_is_refused(app, client, clock, make_expert, monkeypatch, case):
    ray = make_expert("ray", paypal=False)
    call = add_call(ray, clock, capture_id="CAP-SECRET")
    other = add_call(ray, clock, ago_ms=DAY_MS)
    good = receipt_token(app, call.id)
    token = {
        "missing": "",
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "other_call": receipt_token(app, other.id),
        "expired": _expired_token(app, call.id, monkeypatch) if case == "expired" else None,
        "call_token": tokens_for(app.config).call_token(call.id, "visitor"),
        "other_key": tokens_for({"SECRET_KEY": "another key"}).receipt_token(call.id),
    }[case]
    page = client.get(f"/receipts/{call.id}?t={token}")
    assert page.status_code == 403
    assert "CAP-SECRET" not in page.get_data(as_text=True) and 'id="receipt-error"' in page.get_data(as_text=True)
    j = client.get(f"/receipts/{call.id}.json?t={token}")
    assert j.status_code == 403
    assert j.get_json()["error"] in ("token_invalid", "token_expired", "token_wrong_call")
    assert "CAP-SECRET" not in j.get_data(as_text=True)
    assert client.get(f"/receipts/{call.id}?t={good}").status_code == 200


def test_an_unknown_call_has_no_receipt(app, client):
    t = receipt_token(app, "no-such-call")
    assert client.get(f"/receipts/no-such-call?t={t}").status_code == 404
    r = client.get(f"/receipts/no-such-call.json?t={t}")
    assert r.status_code == 404 and r.get_json()["error"] == "call_not_found"
