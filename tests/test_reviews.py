"""Ratings after paid sessions (``callme.reviews``, ``callme.web.reviews``): only a paid call may
be rated, once, within the window, through its signed rating link; the profile, the status API
and the receipt show it; the expert replies once; the operator removes one, logged."""
import logging
import re
import time

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner

from callme.calls.tokens import tokens_for
from callme.extensions import db
from callme.models import Payment
from callme.reviews import Review, average, summary

from .conftest import API, CSRF, add_call, login, receipt_token

DAY_S = 24 * 3600


def rating_token(app, call_id):
    return tokens_for(app.config).rating_token(call_id)


@pytest.fixture
def paid(talk):
    """A real paid call: a PayPal hold through the emulator, 2 min 30 s talked, 3 minutes captured."""
    expert, call = talk(150_000)
    payment = db.session.scalar(sa.select(Payment).where(Payment.call_id == call.id))
    assert (payment.state, payment.captured_minor, call.billed_minutes) == ("captured", 450, 3)
    return expert, call


def post_rating(client, app, call_id, token=None, **form):
    data = {"t": rating_token(app, call_id) if token is None else token, **form}
    return client.post(f"/rate/{call_id}", data={k: v for k, v in data.items() if v is not None})


def reviews_in_db():
    return db.session.scalars(sa.select(Review)).all()


def test_a_paid_call_is_rated_once(app, client, paid):
    expert, call = paid
    t = rating_token(app, call.id)
    form = client.get(f"/rate/{call.id}?t={t}")
    html = form.get_data(as_text=True)
    assert form.status_code == 200 and form.headers["Referrer-Policy"] == "no-referrer"
    assert html.count('type="radio" name="stars"') == 5 and "<legend>" in html and f'value="{t}"' in html

    r = post_rating(client, app, call.id, stars="5", text="  Clear and kind advice.  ")
    assert r.status_code == 200 and 'id="rate-done"' in r.get_data(as_text=True)
    [review] = reviews_in_db()
    assert (review.call_id, review.expert_id, review.stars, review.text, review.billed_minutes) == \
        (call.id, expert.id, 5, "Clear and kind advice.", 3)

    again = post_rating(client, app, call.id, stars="1", text="changed my mind")
    assert again.status_code == 409 and "Clear and kind advice." in again.get_data(as_text=True)
    assert client.get(f"/rate/{call.id}?t={t}").status_code == 409
    assert [(r.stars, r.text) for r in reviews_in_db()] == [(5, "Clear and kind advice.")]


def test_a_free_call_cannot_be_rated(app, client, talk):
    _, call = talk(30_000)  # inside the free minute: nothing billed, the hold voided
    payment = db.session.scalar(sa.select(Payment).where(Payment.call_id == call.id))
    assert payment.state == "voided" and call.billed_minutes == 0
    r = client.get(f"/rate/{call.id}?t={rating_token(app, call.id)}")
    assert r.status_code == 403 and 'data-code="not_paid"' in r.get_data(as_text=True)
    assert post_rating(client, app, call.id, stars="5").status_code == 403
    assert reviews_in_db() == []


def test_a_call_with_money_in_the_ledger_but_no_captured_payment_cannot_be_rated(app, client, clock, make_expert):
    call = add_call(make_expert("ray", paypal=False), clock)  # no Payment row at all
    assert post_rating(client, app, call.id, stars="4").status_code == 403
    assert reviews_in_db() == []


def _expired_token(app, call_id, monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 14 * DAY_S - 5)
    token = rating_token(app, call_id)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    return token


@pytest.mark.parametrize("case", ["missing", "tampered", "other_call", "expired", "receipt_token", "other_key"])
def test_a_bad_rating_token_is_refused(app, client, clock, paid, make_expert, monkeypatch, case):
    _, call = paid
    good = rating_token(app, call.id)
    token = {
        "missing": "",
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "other_call": rating_token(app, "another-call"),
        "expired": _expired_token(app, call.id, monkeypatch) if case == "expired" else None,
        "receipt_token": receipt_token(app, call.id),
        "other_key": tokens_for({"SECRET_KEY": "another key"}).rating_token(call.id),
    }[case]
    page = client.get(f"/rate/{call.id}?t={token}")
    assert page.status_code == 403 and 'id="rate-error"' in page.get_data(as_text=True)
    assert 'name="stars"' not in page.get_data(as_text=True)
    assert post_rating(client, app, call.id, token=token, stars="5").status_code == 403
    assert reviews_in_db() == []
    assert client.get(f"/rate/{call.id}?t={good}").status_code == 200


def test_an_unknown_call_cannot_be_rated(app, client):
    assert client.get(f"/rate/nope?t={rating_token(app, 'nope')}").status_code == 404


def test_the_window_closes_after_14_days(app, client, clock, paid):
    _, call = paid
    clock.advance(14 * DAY_S - 60)
    assert client.get(f"/rate/{call.id}?t={rating_token(app, call.id)}").status_code == 200
    clock.advance(DAY_S + 60)  # 15 days after the end
    r = client.get(f"/rate/{call.id}?t={rating_token(app, call.id)}")
    assert r.status_code == 410 and 'data-code="window_closed"' in r.get_data(as_text=True)
    assert post_rating(client, app, call.id, stars="5").status_code == 410
    assert reviews_in_db() == []


@pytest.mark.parametrize("stars", ["0", "6", "x", None, "", "4.5", "-1", "５", "55"])
def test_bad_stars_are_a_400_and_nothing_is_stored(app, client, paid, stars):
    _, call = paid
    r = post_rating(client, app, call.id, stars=stars, text="fine")
    assert r.status_code == 400 and 'data-code="stars_invalid"' in r.get_data(as_text=True)
    assert 'name="stars"' in r.get_data(as_text=True) and "fine" in r.get_data(as_text=True)  # the form again
    assert reviews_in_db() == []


def test_text_too_long_is_a_400(app, client, paid):
    _, call = paid
    r = post_rating(client, app, call.id, stars="4", text="a" * 2001)
    assert r.status_code == 400 and 'data-code="text_too_long"' in r.get_data(as_text=True)
    assert reviews_in_db() == []
    assert post_rating(client, app, call.id, stars="4", text="a" * 2000).status_code == 200


def test_text_is_optional(app, client, paid):
    _, call = paid
    assert post_rating(client, app, call.id, stars="3", text="   ").status_code == 200
    assert [(r.stars, r.text) for r in reviews_in_db()] == [(3, None)]


def test_the_receipt_offers_the_rating_link_while_the_call_may_be_rated(app, client, paid, talk):
    _, call = paid
    html = client.get(f"/receipts/{call.id}?t={receipt_token(app, call.id)}").get_data(as_text=True)
    link = re.search(r'id="rate-call"><a class="btn primary" href="([^"]+)">Rate this call', html)
    assert link, html
    href = link.group(1).replace("&amp;", "&")
    assert client.get(href).status_code == 200
    post_rating(client, app, call.id, stars="5")
    html = client.get(f"/receipts/{call.id}?t={receipt_token(app, call.id)}").get_data(as_text=True)
    assert "Rate this call" not in html  # rated already

    _, free = talk(20_000)
    html = client.get(f"/receipts/{free.id}?t={receipt_token(app, free.id)}").get_data(as_text=True)
    assert "Rate this call" not in html


def test_the_profile_shows_average_count_and_recent_reviews_escaped(app, client, paid, clock, talk):
    expert, call = paid
    assert "No ratings yet" in client.get(f"/{expert.handle}").get_data(as_text=True)
    post_rating(client, app, call.id, stars="5", text="<script>alert(1)</script> & <b>great</b>")
    review = reviews_in_db()[0]
    html = client.get(f"/{expert.handle}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "<b>great</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;great&lt;/b&gt;" in html
    assert 'id="rating-average">5.0<' in html and 'id="rating-count">1 rating<' in html
    assert "paid call · 3 min" in html and review.created_at.strftime("%d %b %Y") in html


def test_average_is_one_decimal_from_integers():
    assert average(0, 0) is None
    assert (average(14, 3), average(9, 2), average(17, 4), average(5, 1), average(7, 5)) == (4.7, 4.5, 4.3, 5.0, 1.4)


def test_status_api_returns_the_rating_and_count(app, client, paid, talk):
    expert, call = paid
    data = client.get(f"{API}/experts/{expert.handle}/status").get_json()
    assert (data["rating"], data["rating_count"]) == (None, 0)
    post_rating(client, app, call.id, stars="5")
    second = _second_paid_call(talk, expert)
    post_rating(client, app, second.id, stars="4")
    data = client.get(f"{API}/experts/{expert.handle}/status").get_json()
    assert (data["rating"], data["rating_count"]) == (4.5, 2)


def _second_paid_call(talk_fixture, expert):
    """Another paid call of the same expert, rows as a settled paid call leaves them."""
    from callme.models import Call

    first = db.session.scalars(sa.select(Call).where(Call.expert_id == expert.id)).first()
    call = Call(expert_id=expert.id, kind="instant", state="ended", price_minor=first.price_minor,
                currency=first.currency, free_seconds=60, cap_minutes=10, created_ms=first.created_ms + 1,
                active_ms=first.active_ms + 1, ended_ms=first.ended_ms, end_reason="hangup", billed_ms=61_000,
                billed_minutes=2, amount_minor=300)
    db.session.add(call)
    db.session.flush()
    db.session.add(Payment(expert_id=expert.id, call_id=call.id, intent="AUTHORIZE", state="captured",
                           currency=first.currency, amount_minor=1500, due_minor=300, captured_minor=300,
                           paypal_client_id="app", order_id=f"O-{call.id}", capture_id=f"CAP-{call.id}"))
    db.session.commit()
    return call


def test_the_expert_replies_once_publicly_and_cannot_edit_or_hide(app, client, paid):
    expert, call = paid
    post_rating(client, app, call.id, stars="2", text="Late by five minutes.")
    review = reviews_in_db()[0]
    assert client.get("/dashboard/reviews").status_code == 302  # login first
    login(client, expert)
    page = client.get("/dashboard/reviews").get_data(as_text=True)
    assert "Late by five minutes." in page and f"/dashboard/reviews/{review.id}/reply" in page

    forged = client.post(f"/dashboard/reviews/{review.id}/reply", data={"csrf": "forged", "reply": "x"})
    assert forged.status_code == 400
    assert client.post(f"/dashboard/reviews/{review.id}/reply", data={"csrf": CSRF, "reply": "  "}).status_code == 400
    r = client.post(f"/dashboard/reviews/{review.id}/reply", data={"csrf": CSRF, "reply": "Sorry <i>again</i>."})
    assert r.status_code == 303
    again = client.post(f"/dashboard/reviews/{review.id}/reply", data={"csrf": CSRF, "reply": "Edited"})
    assert again.status_code == 409
    db.session.expire_all()
    review = db.session.get(Review, review.id)
    assert (review.reply, review.stars, review.text) == ("Sorry <i>again</i>.", 2, "Late by five minutes.")
    html = client.get(f"/{expert.handle}").get_data(as_text=True)
    assert "Sorry &lt;i&gt;again&lt;/i&gt;." in html and "Reply from" in html
    # No route edits or removes a review for the expert.
    for path in (f"/dashboard/reviews/{review.id}", f"/dashboard/reviews/{review.id}/delete",
                 f"/dashboard/reviews/{review.id}/edit"):
        assert client.post(path, data={"csrf": CSRF}).status_code in (404, 405)


def test_another_experts_review_cannot_be_replied_to(app, client, paid, make_expert):
    _, call = paid
    post_rating(client, app, call.id, stars="5")
    review = reviews_in_db()[0]
    login(client, make_expert("sam", paypal=False))
    r = client.post(f"/dashboard/reviews/{review.id}/reply", data={"csrf": CSRF, "reply": "Not mine"})
    assert r.status_code == 404
    db.session.expire_all()
    assert db.session.get(Review, review.id).reply is None


def test_the_operator_removes_a_review_for_a_reason_logged(app, client, paid, caplog, monkeypatch):
    expert, call = paid
    # Alembic's fileConfig (migrations/env.py, run in-process by the migration tests) disables the
    # loggers that existed before it; this one must be heard here.
    monkeypatch.setattr(logging.getLogger("callme.reviews"), "disabled", False)
    post_rating(client, app, call.id, stars="1", text="Spam spam spam")
    review = reviews_in_db()[0]
    runner = app.test_cli_runner()
    assert runner.invoke(args=["reviews", "remove", str(review.id)]).exit_code != 0  # the reason is required
    assert runner.invoke(args=["reviews", "remove", "999", "--reason", "spam"]).exit_code != 0
    with caplog.at_level(logging.WARNING, logger="callme.reviews"):
        result = runner.invoke(args=["reviews", "remove", str(review.id), "--reason", "Spam (policy 3)"])
    assert result.exit_code == 0, result.output
    assert f"Review {review.id}" in result.output
    [record] = [r for r in caplog.records if r.name == "callme.reviews"]
    assert f"id={review.id}" in record.getMessage() and f"expert={expert.id}" in record.getMessage()
    assert "Spam (policy 3)" in record.getMessage()
    assert runner.invoke(args=["reviews", "remove", str(review.id), "--reason", "again"]).exit_code != 0

    db.session.expire_all()
    assert summary(expert.id) == {"average": None, "count": 0, "recent": []}
    assert "Spam spam spam" not in client.get(f"/{expert.handle}").get_data(as_text=True)
    data = client.get(f"{API}/experts/{expert.handle}/status").get_json()
    assert (data["rating"], data["rating_count"]) == (None, 0)
    # Removed is not re-rateable: the call stays rated; the link shows the removed text to nobody.
    again = post_rating(client, app, call.id, stars="5")
    assert again.status_code == 409 and "Spam spam spam" not in again.get_data(as_text=True)
    assert "Spam spam spam" not in client.get(f"/rate/{call.id}?t={rating_token(app, call.id)}").get_data(as_text=True)


def test_the_ended_frame_carries_a_rating_token_only_for_a_call_with_an_amount_due(app, paid, talk):
    service = app.extensions["callme.calls"]
    _, call = paid
    frame = service.ended_frame(call)
    tokens_for(app.config).check_rating_token(frame["rating"], call.id, 60)
    assert frame["receipt"] != frame["rating"]
    _, free = talk(30_000)
    assert "rating" not in service.ended_frame(free)


def test_a_call_whose_capture_is_still_under_way_says_so(app, client, clock, make_expert):
    ray = make_expert("ray", paypal=False)
    call = add_call(ray, clock, minutes=2)
    payment = Payment(expert_id=ray.id, call_id=call.id, intent="AUTHORIZE", state="capture_pending", currency="USD",
                      amount_minor=9000, due_minor=300, paypal_client_id="app", order_id="O-PENDING")
    db.session.add(payment)
    db.session.commit()
    r = client.get(f"/rate/{call.id}?t={rating_token(app, call.id)}")
    assert r.status_code == 409 and 'data-code="payment_pending"' in r.get_data(as_text=True)
    assert post_rating(client, app, call.id, stars="5").status_code == 409
    payment.state, payment.captured_minor, payment.capture_id = "captured", 300, "CAP-1"
    db.session.commit()
    assert client.get(f"/rate/{call.id}?t={rating_token(app, call.id)}").status_code == 200
    assert post_rating(client, app, call.id, stars="5").status_code == 200
