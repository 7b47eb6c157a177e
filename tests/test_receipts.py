"""A call's receipt: its figures from the call and its ledger rows, and the signed link that opens it."""
import pytest

from callme.calls.tokens import tokens_for
from callme.errors import CallmeError
from callme.extensions import db
from callme.models import Call
from callme.money.receipts import ReceiptRefused, receipt, receipt_by_link

from .test_earnings import entry, fake_call


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
def ended_call(app, make_expert, clock):
    expert = make_expert(handle="ray", paypal=False)
    call = Call(expert_id=expert.id, kind="instant", state="ended", price_minor=150, currency="USD", free_seconds=60,
                cap_minutes=60, created_ms=clock.now, active_ms=clock.now, ended_ms=clock.now + 125_000,
                end_reason="hangup", billed_ms=125_000, billed_minutes=3, amount_minor=450)
    db.session.add(call)
    db.session.commit()
    return call


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
