"""The dashboard (``callme.web.dashboard``) through the test client: earnings, the chart, the calls and
their CSV, the PayPal settings, each expert seeing only their own. Receipt pages: test_receipts.py."""
import csv
import io
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from callme.web import dashboard
from callme.money.earnings import from_ms
from callme.extensions import db
from callme.models import Call, Expert, LedgerEntry, Payment
from callme.money.paypal import decrypt_secret

from .conftest import add_call, login, receipt_token


DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def pinned_now(monkeypatch, clock):
    """The dashboard's now is the test clock's (the rows below are stamped from it too)."""
    monkeypatch.setattr(dashboard, "now_utc", lambda: from_ms(clock.now))




def totals_of(html):
    """{period: amount shown} of the dashboard's totals."""
    return dict(re.findall(r'data-period="(\w+)">\s*<dt>[^<]*</dt>\s*<dd>([^<]*)</dd>', html))


# ---- log in ----------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", "/dashboard"), ("get", "/dashboard?page=2"), ("get", "/dashboard/calls.csv"),
    ("get", "/dashboard/paypal"), ("post", "/dashboard/paypal"),
])
def test_every_dashboard_page_needs_a_logged_in_expert(client, method, path):
    r = getattr(client, method)(path)
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")


def test_a_session_of_an_expert_that_is_gone_is_sent_to_log_in(client):
    with client.session_transaction() as s:
        s["expert_id"] = 424242
    assert client.get("/dashboard").status_code == 302


# ---- the dashboard ----------------------------------------------------------------------

def test_dashboard_shows_earnings_the_chart_and_only_the_experts_own_calls(app, client, clock, make_expert):
    ray = make_expert("ray", price=150, paypal=False)
    ann = make_expert("ann", price=200, paypal=False)
    mine = add_call(ray, clock, ago_ms=3_600_000, capture_id="CAPRAY1")          # $4.50 today
    add_call(ray, clock, ago_ms=3 * DAY_MS, taken="charge", minutes=2)            # $3.00 this week
    old = add_call(ray, clock, ago_ms=40 * DAY_MS, minutes=10)                    # $15.00 long ago
    db.session.add(LedgerEntry(key="refund:r1", kind="refund", expert_id=ray.id, call_id=old.id, amount_minor=500,
                               currency="USD", created_at=from_ms(clock.now - 60_000), detail={}))
    db.session.commit()
    theirs = add_call(ann, clock, ago_ms=60_000, minutes=7, capture_id="CAPANN")
    login(client, ray)

    r = client.get("/dashboard")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert totals_of(html) == {"today": "−$0.50", "7d": "$2.50", "30d": "$2.50", "all": "$17.50"}
    assert mine.id in html and old.id in html
    assert theirs.id not in html and "CAPANN" not in html and "$14.00" not in html
    svg = re.search(r"<svg class=\"bars\".*?</svg>", html, re.S).group(0)
    assert len(re.findall(r"<rect ", svg)) == 30
    assert "style=" not in html and "<script" not in html  # the CSP allows neither inline
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    # Every row has a receipt link whose token opens that call's receipt.
    links = re.findall(r'href="(/receipts/[^"]+)"', html)
    assert len(links) == 3
    assert all(client.get(link.replace("&amp;", "&")).status_code == 200 for link in links)


def test_the_chart_has_one_bar_per_day_with_its_amount(client, clock, make_expert):
    ray = make_expert("ray", price=100, currency="JPY", paypal=False)
    add_call(ray, clock, ago_ms=600_000, minutes=5)
    add_call(ray, clock, ago_ms=2 * DAY_MS, minutes=3)
    add_call(ray, clock, ago_ms=31 * DAY_MS, minutes=9)
    login(client, ray)
    html = client.get("/dashboard").get_data(as_text=True)
    bars = re.findall(r'<rect class="bar[^"]*"[^>]*data-day="([\d-]+)" data-amount="(-?\d+)"', html)
    today = from_ms(clock.now).date()
    assert [day for day, _ in bars] == [(today - timedelta(days=29 - i)).isoformat() for i in range(30)]
    amounts = [int(a) for _, a in bars]
    assert amounts[-1] == 500 and amounts[-3] == 300 and sum(amounts) == 800
    assert "¥800 in 30 days" in html and "¥1,700" in html  # all time, in yen, no decimals


def test_unsettled_lists_failed_captures_and_paid_calls_with_nothing_taken(client, clock, make_expert):
    ray = make_expert("ray", price=150, paypal=False)
    nothing = add_call(ray, clock, ago_ms=DAY_MS, taken=None)
    failed = add_call(ray, clock, ago_ms=2 * DAY_MS, taken=None, minutes=4)
    db.session.add(Payment(expert_id=ray.id, call_id=failed.id, intent="AUTHORIZE", state="capture_failed",
                           currency="USD", amount_minor=9000, due_minor=600, paypal_client_id="app", order_id="O-1",
                           authorization_id="A-1", attempts=2, last_error="INSTRUMENT_DECLINED: declined",
                           next_attempt_ms=clock.now + 60_000))
    paid = add_call(ray, clock, ago_ms=3 * DAY_MS)
    free = add_call(ray, clock, ago_ms=4 * DAY_MS, minutes=0, amount=0, billed_ms=30_000)
    db.session.commit()
    login(client, ray)
    html = client.get("/dashboard").get_data(as_text=True)
    section = html.split('id="unsettled"', 1)[1].split("</section>", 1)[0]
    assert nothing.id in section and failed.id in section
    assert paid.id not in section and free.id not in section
    assert "INSTRUMENT_DECLINED: declined" in section and "$6.00" in section and "capture failed" in section


def test_everything_settled_says_so(client, clock, make_expert):
    ray = make_expert("ray", paypal=False)
    add_call(ray, clock)
    login(client, ray)
    assert 'id="all-settled"' in client.get("/dashboard").get_data(as_text=True)


def test_calls_are_paginated_twenty_a_page_newest_first(client, clock, make_expert):
    ray = make_expert("ray", paypal=False)
    calls = [add_call(ray, clock, ago_ms=(45 - i) * 60_000, call_id=f"call{i:02d}") for i in range(45)]
    login(client, ray)

    def ids(query):
        html = client.get("/dashboard" + query).get_data(as_text=True)
        return re.findall(r'<tr data-call="(call\d\d)">', html.split('id="calls"', 1)[1]), html

    first, html = ids("")
    assert first == [c.id for c in reversed(calls)][:20] and "Page 1 of 3 · 45 calls" in html
    assert 'rel="next"' in html and 'rel="prev"' not in html
    assert ids("?page=2")[0] == [c.id for c in reversed(calls)][20:40]
    last, html = ids("?page=3")
    assert last == ["call04", "call03", "call02", "call01", "call00"] and 'rel="next"' not in html
    assert ids("?page=99")[0] == last
    assert ids("?page=nonsense")[0] == first


# ---- CSV ---------------------------------------------------------------------------------

def test_csv_has_all_the_experts_calls_and_nothing_else(client, clock, make_expert):
    clock.now = 1_763_800_000_000  # 2025-11-22T08:26:40Z
    ray = make_expert("ray", price=150, paypal=False)
    ann = make_expert("ann", price=200, paypal=False)
    add_call(ray, clock, ago_ms=DAY_MS, call_id="a-paid", billed_ms=125_500)
    add_call(ray, clock, ago_ms=3_600_000, call_id="b-free", minutes=0, amount=0, billed_ms=40_000)
    add_call(ray, clock, ago_ms=60_000, call_id="c-owed", minutes=1, billed_ms=60_000, taken=None, reason="silence")
    add_call(ann, clock, ago_ms=30_000, call_id="z-ann")
    login(client, ray)

    r = client.get("/dashboard/calls.csv")
    assert r.status_code == 200
    assert r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="callme-ray-calls.csv"'
    assert r.get_data(as_text=True) == (
        "call_id,started_utc,duration_seconds,billed_minutes,price_minor,amount_minor,currency,end_reason,settled\r\n"
        "a-paid,2025-11-21T08:26:40Z,125,3,150,450,USD,hangup,true\r\n"
        "b-free,2025-11-22T07:26:40Z,40,0,150,0,USD,hangup,true\r\n"
        "c-owed,2025-11-22T08:25:40Z,60,1,150,150,USD,silence,false\r\n"
    )
    assert len(list(csv.reader(io.StringIO(r.get_data(as_text=True))))) == 4


# ---- a refund, on the receipt and in the dashboard's table ----------------------------------------

def test_a_refund_shows_on_the_receipt_and_in_the_table(app, client, clock, make_expert):
    ray = make_expert("ray", price=150, paypal=False)
    call = add_call(ray, clock, ago_ms=3_600_000, minutes=4, capture_id="CAP-R")
    db.session.add(LedgerEntry(key="refund:R-1", kind="refund", expert_id=ray.id, call_id=call.id, amount_minor=250,
                               currency="USD", created_at=from_ms(clock.now), detail={"refund_id": "R-1"}))
    db.session.commit()
    data = client.get(f"/receipts/{call.id}.json?t={receipt_token(app, call.id)}").get_json()
    assert (data["amount_minor"], data["refunded_minor"], data["refunded"]) == (600, 250, "$2.50")
    assert "−$2.50" in client.get(f"/receipts/{call.id}?t={receipt_token(app, call.id)}").get_data(as_text=True)
    login(client, ray)
    html = client.get("/dashboard").get_data(as_text=True)
    assert "−$2.50 refunded" in html and totals_of(html)["today"] == "$3.50"


# ---- PayPal settings ----------------------------------------------------------------------

def form(**kw):
    return {"csrf": "csrf-for-tests", "client_id": "app-ray", "secret": "s3cret", "mode": "sandbox",
            "webhook_id": "WH-1", **kw}


def stored(expert_id):
    db.session.expire_all()
    return db.session.get(Expert, expert_id)


def test_paypal_form_shows_what_is_stored_but_never_the_secret(app, client, emulator, make_expert):
    ray = make_expert("ray", paypal=False)
    login(client, ray)
    html = client.get("/dashboard/paypal").get_data(as_text=True)
    assert 'name="csrf" value="csrf-for-tests"' in html and "•••• set" not in html
    emulator.add_app("app-ray", "s3cret-value")
    r = client.post("/dashboard/paypal", data=form(secret="s3cret-value"))
    assert r.status_code == 302 and r.headers["Location"].endswith("/dashboard/paypal?saved=1")
    html = client.get("/dashboard/paypal?saved=1").get_data(as_text=True)
    assert "•••• set" in html and "s3cret-value" not in html and 'value="app-ray"' in html
    assert 'id="paypal-saved"' in html and "/api/v1/paypal/webhooks/ray" in html
    expert = stored(ray.id)
    assert (expert.paypal_client_id, expert.paypal_mode, expert.paypal_webhook_id) == ("app-ray", "sandbox", "WH-1")
    assert "s3cret-value" not in expert.paypal_secret_enc
    assert decrypt_secret(app.config, expert.paypal_secret_enc) == "s3cret-value"


def test_wrong_paypal_credentials_say_why_and_store_nothing(client, emulator, make_expert):
    ray = make_expert("ray", paypal=False)
    emulator.add_app("app-ray", "the-right-one")
    login(client, ray)
    r = client.post("/dashboard/paypal", data=form(secret="a-wrong-one"))
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert re.search(r'id="paypal-error">PayPal refused the app&#39;s client id or secret[^<]*</p>', html)
    assert "a-wrong-one" not in html
    expert = stored(ray.id)
    assert expert.paypal_client_id is None and expert.paypal_secret_enc is None and expert.paypal_version == 0


@pytest.mark.parametrize("data, message", [
    (form(csrf=""), "The form expired"),
    (form(csrf="forged"), "The form expired"),
    (form(mode="production"), "Choose sandbox or live."),
    (form(mode=""), "Choose sandbox or live."),
    (form(client_id=""), "Enter the client id"),
    (form(client_id="x" * 129), "That is not a PayPal client id"),
    (form(client_id="app ray"), "That is not a PayPal client id"),
    (form(secret=""), "Enter the secret"),
    (form(secret="s" * 513), "That is not a PayPal secret"),
    (form(webhook_id="W" * 65), "That is not a PayPal webhook id"),
])
def test_bad_paypal_form_input_is_a_400_and_changes_nothing(client, emulator, make_expert, data, message):
    ray = make_expert("ray", paypal=False)
    emulator.add_app("app-ray", "s3cret")
    login(client, ray)
    r = client.post("/dashboard/paypal", data={k: v for k, v in data.items() if k != "csrf" or v})
    assert r.status_code == 400
    assert message in r.get_data(as_text=True)
    expert = stored(ray.id)
    assert expert.paypal_client_id is None and expert.paypal_secret_enc is None


def test_an_empty_secret_keeps_the_stored_one_for_the_same_app(app, client, emulator, make_expert):
    ray = make_expert("ray", paypal=False)
    emulator.add_app("app-ray", "kept-secret")
    login(client, ray)
    assert client.post("/dashboard/paypal", data=form(secret="kept-secret")).status_code == 302
    r = client.post("/dashboard/paypal", data=form(secret="", mode="sandbox", webhook_id="WH-2"))
    assert r.status_code == 302
    expert = stored(ray.id)
    assert expert.paypal_webhook_id == "WH-2" and expert.paypal_version == 2
    assert decrypt_secret(app.config, expert.paypal_secret_enc) == "kept-secret"
    # Another app needs its own secret.
    r = client.post("/dashboard/paypal", data=form(client_id="app-other", secret=""))
    assert r.status_code == 400 and stored(ray.id).paypal_client_id == "app-ray"


def test_no_expert_sees_another_experts_data(app, client, clock, make_expert):
    ray = make_expert("ray", paypal=False)
    ann = make_expert("ann", paypal=False)
    add_call(ann, clock, call_id="ann-call", capture_id="CAP-ANN")
    login(client, ray)
    for path in ("/dashboard", "/dashboard/calls.csv", "/dashboard/paypal"):
        body = client.get(path).get_data(as_text=True)
        assert "ann-call" not in body and "CAP-ANN" not in body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Call).where(Call.expert_id == ann.id)) == 1


# ---- with real PayPal money (the emulator, through the SDK) ------------------------------

@pytest.mark.parametrize("currency, price, minutes, declined", [
    ("USD", 150, 3, False), ("JPY", 100, 2, False), ("USD", 150, 2, True),
])
def test_a_settled_paid_call_on_the_dashboard_receipt_and_csv(app, client, clock, emulator, make_expert, make_hold,
                                                               currency, price, minutes, declined):
    from callme.money import payments
    from callme.money.ledger import earnings as ledger_earnings
    from callme.money.ledger import mark_payment_due

    expert = make_expert("ray", price=price, currency=currency)
    hold = make_hold(expert)
    start = clock.now - 600_000
    call = Call(expert_id=expert.id, kind="instant", state="ended", price_minor=price, currency=currency,
                free_seconds=60, cap_minutes=60, created_ms=start - 5000, active_ms=start,
                ended_ms=start + minutes * 60_000 - 1000, end_reason="hangup", ended_by="visitor",
                billed_ms=minutes * 60_000 - 1000, billed_minutes=minutes, amount_minor=minutes * price)
    db.session.add(call)
    db.session.flush()
    hold.call_id = call.id
    db.session.commit()
    payment = mark_payment_due(db.session, call)
    db.session.commit()
    if declined:
        emulator.fail_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", 422, body={
            "name": "UNPROCESSABLE_ENTITY", "message": "The requested action could not be performed.",
            "details": [{"issue": "INSTRUMENT_DECLINED", "description": "The instrument presented was declined."}]})
    payments.settle_payment(payment.id, app.config)
    clock.now = int(time.time() * 1000) + 1000  # the capture row is stamped by the wall clock
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    login(client, expert)

    html = client.get("/dashboard").get_data(as_text=True)
    unsettled_section = html.split('id="unsettled"', 1)[1].split("</section>", 1)[0]
    csv_line = client.get("/dashboard/calls.csv").get_data(as_text=True).splitlines()[1]
    receipt = client.get(f"/receipts/{call.id}.json?t={receipt_token(app, call.id)}").get_json()
    amount = minutes * price
    if declined:
        assert payment.state == "capture_failed"
        assert call.id in unsettled_section and "INSTRUMENT_DECLINED" in unsettled_section
        assert totals_of(html)["all"] == "$0.00" and ledger_earnings(expert.id) == {}
        assert csv_line.endswith(",hangup,false") and receipt["paypal_capture_id"] is None
    else:
        assert payment.state == "captured" and payment.capture_id
        assert call.id not in unsettled_section
        # The dashboard's sign table and the ledger's own sum agree; the hold and the void never count.
        shown = {"USD": f"${amount // 100}.{amount % 100:02d}", "JPY": f"¥{amount}"}[currency]
        assert {totals_of(html)[p] for p in ("today", "7d", "30d", "all")} == {shown}
        assert ledger_earnings(expert.id) == {currency: amount}
        assert emulator.books(expert.paypal_client_id)["totals"][currency]["captured"] == amount
        assert csv_line == f"{call.id},{receipt['started_utc']},{minutes * 60 - 1},{minutes},{price},{amount}," \
                           f"{currency},hangup,true"
        assert (receipt["amount_minor"], receipt["paypal_capture_id"]) == (amount, payment.capture_id)
