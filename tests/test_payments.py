"""Payments (``callme.money.payments``): settlement through the real SDK against the PayPal emulator,
the hold voided or the metered amount captured once, failures retried and never doubled, refunds,
reversals and webhooks applied once, the payment's state machine; the emulator's books and the
ledger agree to the cent."""
import pytest
import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from callme.money import payments
from callme.money.currency import from_paypal_value
from callme.extensions import db
from callme.money.ledger import earnings, holds_open, rows_of_call, mark_payment_due
from callme.models import LedgerEntry, Payment, PayPalEvent

from .conftest import post_webhook as webhook

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def rows(call_id=None):
    db.session.expire_all()
    found = rows_of_call(call_id) if call_id else db.session.scalars(sa.select(LedgerEntry).order_by(LedgerEntry.id))
    return [(r.kind, r.amount_minor, r.currency) for r in found]


def payment_of(call_id):
    db.session.expire_all()
    return db.session.scalar(sa.select(Payment).where(Payment.call_id == call_id))


def paypal_totals(books, currency):
    """What PayPal's side says: captured (completed captures), refunded, open authorizations."""
    def total(items, statuses):
        return sum(from_paypal_value(i["amount"]["value"], currency) for i in items
                   if i.get("status") in statuses and i["amount"]["currency_code"] == currency)
    return {"captured": total(books["captures"], ("COMPLETED", "PENDING", "PARTIALLY_REFUNDED", "REFUNDED")),
            "refunded": total(books["refunds"], ("COMPLETED", "PENDING")),
            "captures": len(books["captures"])}


def assert_books_agree(emulator, expert):
    """The emulator's books and callme's ledger, to the cent."""
    paypal = paypal_totals(emulator.books(expert.paypal_client_id), expert.currency)
    mine = {k: 0 for k in ("capture", "refund", "reversal")}
    for kind, amount, currency in rows():
        if kind in mine and currency == expert.currency:
            mine[kind] += amount
    assert paypal["captured"] == mine["capture"], (paypal, mine)
    assert paypal["refunded"] == mine["refund"], (paypal, mine)
    assert earnings(expert.id).get(expert.currency, 0) == mine["capture"] - mine["refund"] - mine["reversal"]
    return paypal


# ---- the settlement table ------------------------------------------------------------------------

@pytest.mark.parametrize("active_ms, price, currency, free_seconds, cap, minutes, captured, state", [
    (30_000, 150, "USD", 60, 10, 0, 0, "voided"),               # inside the free minute
    (59_999, 150, "USD", 60, 10, 0, 0, "voided"),
    (60_000, 150, "USD", 60, 10, 1, 150, "captured"),           # one minute
    (61_000, 150, "USD", 60, 10, 2, 300, "captured"),           # two
    (7 * 60_000 + 1, 150, "USD", 60, 10, 8, 1200, "captured"),  # n
    (1, 99, "EUR", 0, 5, 1, 99, "captured"),                    # no free time: the first started minute
    (150_000, 100, "JPY", 60, 10, 3, 300, "captured"),          # zero-decimal currency
    (20 * 60_000, 150, "USD", 60, 3, 3, 450, "captured"),       # the cap: the whole hold, nothing released
])
def test_settlement(app, talk, emulator, active_ms, price, currency, free_seconds, cap, minutes, captured, state):
    expert, call = talk(active_ms, price, currency, free_seconds, cap)
    assert (call.billed_minutes, call.amount_minor) == (minutes, captured)
    if cap * 60_000 < active_ms:
        assert call.end_reason == "cap"
    payment = payment_of(call.id)
    hold = cap * price
    assert (payment.state, payment.amount_minor) == (state, hold)
    if captured:
        released = [("void", hold - captured, currency)] if hold > captured else []
        assert rows(call.id) == [("hold", hold, currency), ("capture", captured, currency)] + released
        assert (payment.captured_minor, payment.capture_id) == (captured, payment.raw["capture"]["id"])
        assert payment.raw["capture"]["amount"]["currency_code"] == currency
    else:
        assert rows(call.id) == [("hold", hold, currency), ("void", hold, currency)]
        assert payment.capture_id is None and "void" in payment.raw
    books = emulator.books(expert.paypal_client_id)
    assert len(books["captures"]) == (1 if captured else 0)
    auth = next(a for a in books["authorizations"] if a["id"] == payment.authorization_id)
    assert auth["status"] == ("CAPTURED" if captured else "VOIDED")
    assert_books_agree(emulator, expert)
    assert earnings(expert.id) == ({currency: captured} if captured else {})
    assert holds_open(expert.id) == {currency: 0}
    assert payments.unsettled(expert.id) == []
    # Settling again (another worker, a retry) changes nothing.
    assert mark_payment_due(db.session, call) is None
    assert payments.settle_payment(payment.id, app.config) == state
    assert payments.retry_due(app.config, everything=True) == {}
    assert len(emulator.books(expert.paypal_client_id)["captures"]) == (1 if captured else 0)


def test_the_capture_carries_a_stable_request_id_and_final_capture(talk, emulator):
    expert, call = talk(61_000)
    capture = emulator.books(expert.paypal_client_id)["captures"][0]
    assert capture.get("final_capture", True) is True
    payment = payment_of(call.id)
    assert payment.raw["capture"]["id"] == capture["id"]


# ---- failures: declined, network, crash -------------------------------------------------------------

def decline(emulator):
    emulator.fail_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", 422, body={
        "name": "UNPROCESSABLE_ENTITY", "message": "The requested action could not be performed.",
        "details": [{"issue": "INSTRUMENT_DECLINED", "description": "The instrument presented was declined."}]})


def test_declined_capture_is_visible_and_retried(app, talk, emulator, runner):
    decline(emulator)
    expert, call = talk(61_000)
    assert call.state == "ended"  # ending never fails with PayPal
    payment = payment_of(call.id)
    assert payment.state == "capture_failed" and "INSTRUMENT_DECLINED" in payment.last_error
    assert payment.attempts == 1 and payment.next_attempt_ms is not None
    assert [p.id for p in payments.unsettled(expert.id)] == [payment.id]
    assert rows(call.id) == [("hold", 1500, "USD")]
    assert emulator.books(expert.paypal_client_id)["captures"] == []
    assert earnings(expert.id) == {}
    # Not due yet: the backoff holds it back.
    assert payments.retry_due(app.config) == {}
    r = runner.invoke(args=["payments", "retry", "--all"])
    assert r.exit_code == 0 and f"payment {payment.id}: captured" in r.output, r.output
    assert payment_of(call.id).state == "captured"
    assert rows(call.id) == [("hold", 1500, "USD"), ("capture", 300, "USD"), ("void", 1200, "USD")]
    assert_books_agree(emulator, expert)


def test_network_error_then_the_retry_command(app, talk, emulator, runner):
    emulator.drop_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", after_processing=False)
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    assert payment.state == "capture_pending" and payment.last_error.startswith("network")
    assert emulator.books(expert.paypal_client_id)["captures"] == []  # PayPal never saw it
    assert rows(call.id) == [("hold", 1500, "USD")]
    r = runner.invoke(args=["payments", "retry", "--all"])
    assert r.exit_code == 0, r.output
    assert payment_of(call.id).state == "captured"
    assert len(emulator.books(expert.paypal_client_id)["captures"]) == 1
    assert_books_agree(emulator, expert)


def test_crash_between_paypals_answer_and_the_commit_captures_once(app, talk, emulator):
    # PayPal captures, and the answer is lost: to callme it looks like a network error.
    emulator.drop_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", after_processing=True)
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    assert payment.state == "capture_pending"
    captures = emulator.books(expert.paypal_client_id)["captures"]
    assert len(captures) == 1  # the money was taken...
    assert rows(call.id) == [("hold", 1500, "USD")]  # ...and callme does not know yet
    # The retry asks again with the same PayPal-Request-Id and gets the same capture back.
    assert payments.retry_due(app.config, everything=True) == {payment.id: "captured"}
    payment = payment_of(call.id)
    assert payment.capture_id == captures[0]["id"]
    assert len(emulator.books(expert.paypal_client_id)["captures"]) == 1
    assert rows(call.id) == [("hold", 1500, "USD"), ("capture", 300, "USD"), ("void", 1200, "USD")]
    assert_books_agree(emulator, expert)


def test_two_settlers_racing_record_one_capture(app, talk, emulator):
    emulator.fail_next("POST", r"/v2/payments/authorizations/[^/]+/capture$", 503)
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    assert payment.state == "capture_pending"
    assert payments.settle_payment(payment.id, app.config) == "captured"
    assert payments.settle_payment(payment.id, app.config) == "captured"
    assert len(emulator.books(expert.paypal_client_id)["captures"]) == 1
    assert [k for k, *_ in rows(call.id)].count("capture") == 1


def test_backoff_grows_and_stops(app):
    config = {**app.config, "PAYMENTS_RETRY_BASE": 10, "PAYMENTS_RETRY_MAX": 60}
    assert [payments.backoff_ms(n, config) for n in (1, 2, 3, 4, 5)] == [10_000, 20_000, 40_000, 60_000, 60_000]


def test_a_void_that_fails_is_retried(app, talk, emulator):
    emulator.fail_next("POST", r"/v2/payments/authorizations/[^/]+/void$", 500)
    expert, call = talk(10_000)
    assert payment_of(call.id).state == "void_pending"
    assert payments.retry_due(app.config, everything=True) == {payment_of(call.id).id: "voided"}
    assert rows(call.id) == [("hold", 1500, "USD"), ("void", 1500, "USD")]


def test_a_hold_that_never_became_a_call_is_voided(app, make_expert, make_hold, emulator):
    expert = make_expert(price=150, cap_minutes=10)
    payment = make_hold(expert)
    assert payments.retry_due(app.config, everything=True) == {}  # young: the visitor may still call
    assert payments.retry_due({**app.config, "PAYMENTS_ORPHAN_HOLD": -1}) == {payment.id: "voided"}
    assert rows() == [("hold", 1500, "USD"), ("void", 1500, "USD")]


# ---- refunds, reversals, denials, webhooks ----------------------------------------------------------

def test_refund_of_a_paid_call_and_its_webhook_applied_once(app, client, talk, emulator):
    expert, call = talk(3 * 60_000 - 1)  # 3 minutes: 450
    payment = payment_of(call.id)
    payment = payments.refund(payment, app.config, 150, key="goodwill")
    assert payment.state == "partially_refunded"
    again = payments.refund(payment, app.config, 150, key="goodwill")  # the same refund, asked twice
    assert again.state == "partially_refunded"
    books = emulator.books(expert.paypal_client_id)
    assert len(books["refunds"]) == 1
    refund = books["refunds"][0]
    # PayPal tells us about the same refund by webhook, twice: nothing more happens.
    outcomes = webhook(client, emulator, expert, "PAYMENT.CAPTURE.REFUNDED", refund, times=2)
    assert outcomes == ["already_applied", "duplicate"]
    assert [k for k, *_ in rows(call.id)].count("refund") == 1
    assert earnings(expert.id) == {"USD": 300}
    assert_books_agree(emulator, expert)
    payment = payments.refund(payment_of(call.id), app.config, key="rest")
    assert payment.state == "refunded"
    assert earnings(expert.id) == {} or earnings(expert.id) == {"USD": 0}
    assert_books_agree(emulator, expert)
    with pytest.raises(payments.PaymentRefused) as e:
        payments.refund(payment, app.config, 1, key="more")
    assert e.value.code == "not_refundable"


def test_refund_made_at_paypal_arrives_by_webhook(app, client, talk, emulator):
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    from callme.money.paypal import gateway_for

    refund = gateway_for(expert, app.config).refund_capture(payment.capture_id, 100, "USD", request_id="at-paypal")
    assert webhook(client, emulator, expert, "PAYMENT.CAPTURE.REFUNDED", refund, times=2) == ["applied", "duplicate"]
    assert payment_of(call.id).state == "partially_refunded"
    assert earnings(expert.id) == {"USD": 200}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PayPalEvent)) == 1
    assert_books_agree(emulator, expert)


def test_reversal_by_webhook(app, client, talk, emulator):
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    resource = {"id": "REV-1", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "3.00"},
                "links": [{"rel": "up", "method": "GET",
                           "href": f"{emulator.url}/v2/payments/captures/{payment.capture_id}"}]}
    assert webhook(client, emulator, expert, "PAYMENT.CAPTURE.REVERSED", resource, times=2) == ["applied",
                                                                                                "duplicate"]
    assert payment_of(call.id).state == "reversed"
    assert rows(call.id)[-1] == ("reversal", 300, "USD")
    assert earnings(expert.id) == {"USD": 0}


def test_denied_capture_by_webhook(app, client, talk, emulator):
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    resource = {**payment.raw["capture"], "status": "DENIED"}
    assert webhook(client, emulator, expert, "PAYMENT.CAPTURE.DENIED", resource) == ["applied"]
    assert payment_of(call.id).state == "denied"
    assert earnings(expert.id) == {"USD": 0}


def test_other_events_are_recorded_and_ignored(app, client, talk, emulator):
    expert, call = talk(61_000)
    before = rows()
    assert webhook(client, emulator, expert, "CHECKOUT.ORDER.APPROVED", {"id": "X"}) == ["ignored"]
    assert rows() == before


# ---- prepaid (appointments) ---------------------------------------------------------------------------

def test_prepaid_capture_and_refunds(app, make_expert, emulator):
    expert = make_expert(price=150)
    payment, order = payments.create_order(expert, 6000, "USD", app.config, intent="CAPTURE",
                                           return_url="http://localhost/paypal/return",
                                           cancel_url="http://localhost/paypal/cancel")
    assert payment.intent == "CAPTURE" and payment.state == "created"
    with pytest.raises(payments.PaymentRefused) as e:
        payments.capture_prepaid(payment, app.config)  # not approved yet
    assert e.value.code == "payment_not_approved"
    emulator.approve(payment.order_id)
    payment = payments.capture_prepaid(payment, app.config)
    assert (payment.state, payment.captured_minor) == ("captured", 6000)
    assert payments.capture_prepaid(payment, app.config).capture_id == payment.capture_id  # idempotent
    assert rows() == [("capture", 6000, "USD")]
    payment = payments.refund(payment, app.config, 1000, key="late-start")
    payment = payments.refund(payment, app.config, 1000, key="late-start")  # the same refund again
    assert payment.state == "partially_refunded"
    assert earnings(expert.id) == {"USD": 5000}
    with pytest.raises(payments.PaymentRefused) as e:
        payments.refund(payment, app.config, 5001, key="too-much")
    assert e.value.code == "refund_too_large"
    payment = payments.refund(payment, app.config, key="cancelled")
    assert payment.state == "refunded" and earnings(expert.id) == {"USD": 0}
    assert rows() == [("capture", 6000, "USD"), ("refund", 1000, "USD"), ("refund", 5000, "USD")]
    assert_books_agree(emulator, expert)


# ---- the state machine ----------------------------------------------------------------------------------

@pytest.mark.parametrize("frm, to", [
    ("created", "capture_pending"), ("created", "voided"), ("authorized", "captured"), ("voided", "captured"),
    ("captured", "voided"), ("refunded", "captured"), ("captured", "capture_pending"), ("void_pending", "captured"),
    ("reversed", "refunded"), ("denied", "captured"),
])
def test_illegal_transitions_are_refused(make_expert, frm, to):
    expert = make_expert(price=0)
    payment = Payment(expert_id=expert.id, intent="AUTHORIZE", state=frm, currency="USD", amount_minor=100,
                      paypal_client_id="x", order_id=f"O-{frm}-{to}", raw={})
    db.session.add(payment)
    db.session.commit()
    with pytest.raises(payments.IllegalTransition):
        payments.transition(payment, to)
    db.session.rollback()
    assert db.session.get(Payment, payment.id).state == frm


def test_a_stale_transition_loses(make_expert):
    expert = make_expert(price=0)
    payment = Payment(expert_id=expert.id, intent="AUTHORIZE", state="capture_pending", currency="USD",
                      amount_minor=100, due_minor=100, paypal_client_id="x", order_id="O-stale", raw={})
    db.session.add(payment)
    db.session.commit()
    db.session.execute(sa.update(Payment).where(Payment.id == payment.id).values(state="captured"))
    db.session.commit()
    # What a slower worker still believes:
    set_committed_value(payment, "state", "capture_pending")
    assert payments.transition(payment, "captured", captured_minor=100) is False
    db.session.rollback()
    assert db.session.get(Payment, payment.id).captured_minor is None


@pytest.mark.parametrize("values", [
    {"amount_minor": 0}, {"amount_minor": -1}, {"due_minor": -1}, {"captured_minor": 101},
    {"captured_minor": 0}, {"currency": "US"}, {"state": "lost"}, {"intent": "SALE"},
])
def test_payment_constraints(make_expert, values):
    expert = make_expert(price=0)
    base = dict(expert_id=expert.id, intent="AUTHORIZE", state="created", currency="USD", amount_minor=100,
                paypal_client_id="x", order_id="O-constraint", raw={})
    db.session.add(Payment(**{**base, **values}))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_provider_ids_are_unique(make_expert):
    expert = make_expert(price=0)
    base = dict(expert_id=expert.id, intent="AUTHORIZE", state="created", currency="USD", amount_minor=100,
                paypal_client_id="x", raw={})
    db.session.add(Payment(**base, order_id="O-1", authorization_id="A-1"))
    db.session.commit()
    for dup in ({"order_id": "O-1"}, {"order_id": "O-2", "authorization_id": "A-1"}):
        db.session.add(Payment(**{**base, "order_id": "O-3", **dup}))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_the_clock_retries_what_is_due(app, talk, emulator):
    server_clock = app.extensions["callme.clock"]
    decline(emulator)
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    assert payment.state == "capture_failed"
    server_clock.tick()  # the backoff is not over: nothing
    assert payment_of(call.id).state == "capture_failed"
    db.session.execute(sa.update(Payment).where(Payment.id == payment.id).values(next_attempt_ms=0))
    db.session.commit()
    server_clock.tick()  # the retry interval is not over either
    assert payment_of(call.id).state == "capture_failed"
    server_clock._payments_ms = 0
    server_clock.tick()
    assert payment_of(call.id).state == "captured"
    assert_books_agree(emulator, expert)


def test_settling_gives_up_after_the_last_attempt_until_asked(app, talk, emulator, runner):
    config = {**app.config, "PAYMENTS_MAX_ATTEMPTS": 2}
    decline(emulator)
    expert, call = talk(61_000)
    payment = payment_of(call.id)
    assert payment.attempts == 1 and payment.next_attempt_ms is not None
    decline(emulator)
    assert payments.retry_due(config, now=payment.next_attempt_ms) == {payment.id: "capture_failed"}
    payment = payment_of(call.id)
    assert payment.attempts == 2 and payment.next_attempt_ms is None  # stopped: shown, not retried
    assert payments.retry_due(config, now=10 ** 15) == {}
    r = runner.invoke(args=["payments", "list"])
    assert f"{payment.id}\t{expert.handle}\t{call.id}\tcapture_failed" in r.output
    assert payments.retry_due(config, everything=True) == {payment.id: "captured"}  # asked by hand
    assert_books_agree(emulator, expert)
