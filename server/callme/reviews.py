"""Ratings after paid sessions: who may rate, the review itself, the expert's one reply, the
operator's removal, and the summary the profile and the status API show.

A call may be rated when its payment was captured with money taken (``captured_minor > 0``)
and at least one billed minute, once (``call_id`` is unique), within RATING_WINDOW_DAYS of the
call's end. The visitor proves the call theirs with a signed rating link (``rating_token``,
valid as long as the window). A review is never edited after publishing; the expert may reply
once, publicly, and can neither edit nor hide it; an operator removes one for a stated policy
reason (``callme reviews remove``), logged. Removed reviews neither count nor show.
"""
import logging
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from .calls.tokens import TokenError
from .errors import CallmeError
from .extensions import db
from .models import Call, Payment, utcnow

log = logging.getLogger(__name__)

TEXT_MAX = 2000
REPLY_MAX = 2000
REASON_MAX = 500
DAY_MS = 24 * 3600 * 1000


class Review(db.Model):
    __tablename__ = "reviews"
    __table_args__ = (
        sa.CheckConstraint("stars >= 1 AND stars <= 5", name="ck_reviews_stars"),
        sa.CheckConstraint("billed_minutes >= 1", name="ck_reviews_billed_minutes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(sa.ForeignKey("calls.id"), unique=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    stars: Mapped[int] = mapped_column(sa.Integer)
    text: Mapped[str | None] = mapped_column(sa.Text)
    billed_minutes: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    reply: Mapped[str | None] = mapped_column(sa.Text)
    replied_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    removed_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    removed_reason: Mapped[str | None] = mapped_column(sa.String(REASON_MAX))


class RatingRefused(CallmeError):
    """A rating (or reply, or removal) that is not allowed; ``code`` says why."""


# A rating link is read by people: say what is wrong with it in their words.
LINK_MESSAGES = {"token_expired": "This rating link has expired.",
                 "token_wrong_call": "This rating link is for another call."}


def window_days(config=None):
    return int((config or current_app.config).get("RATING_WINDOW_DAYS", 14))


def _now_ms():
    return current_app.extensions["callme.calls"].clock()


def paid_minutes(call):
    """The billed minutes of a call whose money was taken; 0 if nothing was."""
    if call is None or call.state != "ended" or not call.billed_minutes or call.billed_minutes < 1:
        return 0
    payment = _payment(call)
    if payment is None or payment.state != "captured" or not payment.captured_minor or payment.captured_minor <= 0:
        return 0
    return call.billed_minutes


def _payment(call):
    return db.session.scalar(sa.select(Payment).where(Payment.call_id == call.id))


# A paid call's money is taken after it ends (and retried when PayPal refuses): not rateable yet.
PENDING_PAYMENT = ("authorized", "capture_pending", "capture_failed")


def review_of_call(call_id):
    return db.session.scalar(sa.select(Review).where(Review.call_id == call_id))


def check_rateable(call, now_ms=None):
    """Raise RatingRefused unless ``call`` may be rated now."""
    if call is None:
        raise RatingRefused("call_not_found", "This call does not exist.", status=404)
    if not paid_minutes(call):
        payment = _payment(call) if call.state == "ended" and (call.amount_minor or 0) > 0 else None
        if payment is not None and payment.state in PENDING_PAYMENT:
            raise RatingRefused("payment_pending", "The payment for this call is still being processed; "
                                "open this link again in a few minutes.", status=409)
        raise RatingRefused("not_paid", "Only a paid call can be rated, and this one was not paid.", status=403)
    existing = review_of_call(call.id)
    if existing is not None:
        raise RatingRefused("already_rated", "This call has already been rated.", status=409)
    now_ms = _now_ms() if now_ms is None else now_ms
    if call.ended_ms is None or now_ms > call.ended_ms + window_days() * DAY_MS:
        raise RatingRefused("window_closed",
                            f"Calls can be rated within {window_days()} days of their end; this one is past that.",
                            status=410)


def can_rate(call):
    try:
        check_rateable(call)
    except RatingRefused:
        return False
    return True


def call_by_link(tokens, call_id, token):
    """The call a rating link opens, or RatingRefused (403 bad link, 404 no call)."""
    try:
        tokens.check_rating_token(token, call_id, window_days() * 24 * 3600)
    except TokenError as e:
        raise RatingRefused(e.code, LINK_MESSAGES.get(e.code, "This rating link is not valid."), status=403) from None
    call = db.session.get(Call, call_id)
    if call is None:
        raise RatingRefused("call_not_found", "This call does not exist.", status=404)
    return call


def parse_stars(value):
    """1..5 from a form field (a string of digits) or an int; RatingRefused (400) otherwise."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.isascii() and value.isdigit() and len(value) == 1 else None
    if not isinstance(value, int) or not 1 <= value <= 5:
        raise RatingRefused("stars_invalid", "Choose from 1 to 5 stars.", status=400)
    return value


def clean_text(value, limit, code="text_too_long", what="The review"):
    """Stripped text (None if empty), at most ``limit`` characters; stored raw, escaped on output."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RatingRefused("text_invalid", f"{what} must be text.", status=400)
    value = value.replace("\r\n", "\n").strip()
    if "\x00" in value:
        raise RatingRefused("text_invalid", f"{what} contains characters that are not allowed.", status=400)
    if len(value) > limit:
        raise RatingRefused(code, f"{what} may be at most {limit} characters long.", status=400)
    return value or None


def rate(call, stars, text=None):
    """Publish the review of ``call`` (all checks first; the caller need not commit)."""
    stars = parse_stars(stars)
    text = clean_text(text, TEXT_MAX)
    now_ms = _now_ms()
    check_rateable(call, now_ms)
    review = Review(call_id=call.id, expert_id=call.expert_id, stars=stars, text=text,
                    billed_minutes=call.billed_minutes, created_at=_from_ms(now_ms))
    db.session.add(review)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:  # a second submission racing the first: the unique call_id
        db.session.rollback()
        raise RatingRefused("already_rated", "This call has already been rated.", status=409) from None
    return review


def reply(expert, review_id, text):
    """The expert's one public reply to a review of theirs."""
    review = db.session.get(Review, review_id) if isinstance(review_id, int) else None
    if review is None or review.expert_id != expert.id or review.removed_at is not None:
        raise RatingRefused("review_not_found", "No such review.", status=404)
    text = clean_text(text, REPLY_MAX, what="The reply")
    if not text:
        raise RatingRefused("reply_empty", "Write a reply first.", status=400)
    done = db.session.execute(sa.update(Review).where(Review.id == review.id, Review.reply.is_(None))
                              .values(reply=text, replied_at=utcnow())).rowcount
    if not done:
        db.session.rollback()
        raise RatingRefused("already_replied", "You have already replied to this review.", status=409)
    db.session.commit()
    return db.session.get(Review, review.id)


def remove(review_id, reason):
    """The operator removes a review for a stated policy reason; logged."""
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not reason:
        raise RatingRefused("reason_missing", "Say which policy the review breaks (--reason).", status=400)
    if len(reason) > REASON_MAX:
        raise RatingRefused("reason_too_long", f"The reason may be at most {REASON_MAX} characters.", status=400)
    review = db.session.get(Review, review_id)
    if review is None:
        raise RatingRefused("review_not_found", f"No review {review_id}.", status=404)
    if review.removed_at is not None:
        raise RatingRefused("already_removed", f"Review {review_id} was already removed.", status=409)
    review.removed_at = utcnow()
    review.removed_reason = reason
    db.session.commit()
    log.warning("review removed: id=%s expert=%s call=%s reason=%r", review.id, review.expert_id, review.call_id,
                reason)
    return review


def _visible(expert_id):
    return sa.and_(Review.expert_id == expert_id, Review.removed_at.is_(None))


def summary(expert_id, recent=10):
    """{"average": one-decimal float or None, "count": int, "recent": [Review, ...]}."""
    total, count = db.session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Review.stars), 0), sa.func.count(Review.id))
        .where(_visible(expert_id))).one()
    total, count = int(total), int(count)
    reviews = list(db.session.scalars(sa.select(Review).where(_visible(expert_id))
                                      .order_by(Review.created_at.desc(), Review.id.desc()).limit(recent))) \
        if recent else []
    return {"average": average(total, count), "count": count, "recent": reviews}


def average(total, count):
    """The mean of integer stars to one decimal, rounded half up, from integers only."""
    if not count:
        return None
    tenths = (total * 20 + count) // (2 * count)  # round(10 * total / count), half up
    return tenths / 10


def reviews_of(expert_id):
    """Every review of an expert, newest first, removed ones included (the expert's own page)."""
    return list(db.session.scalars(sa.select(Review).where(Review.expert_id == expert_id)
                                   .order_by(Review.created_at.desc(), Review.id.desc())))


def _from_ms(ms):
    from .money.earnings import from_ms

    return from_ms(ms)
