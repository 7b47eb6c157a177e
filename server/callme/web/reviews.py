"""Ratings after paid sessions: the visitor's rating page (/rate/<call>?t=..., reached by the
signed rating link on the receipt) and the expert's reviews page with the one reply
(/dashboard/reviews)."""
from flask import Blueprint, current_app, redirect, render_template, request, url_for

from .. import reviews
from ..calls.tokens import tokens_for
from ..extensions import db
from ..money.earnings import human_utc, iso_utc
from ..security import check_csrf, csrf_token, login_required, secure
from .limits import limit

bp = Blueprint("reviews", __name__)

TITLES = {"token_invalid": "Rating link not valid", "token_expired": "Rating link expired",
          "token_wrong_call": "Rating link not valid", "call_not_found": "No such call",
          "not_paid": "This call cannot be rated", "already_rated": "Already rated",
          "window_closed": "Too late to rate", "payment_pending": "Not yet"}


def _page(status=200, **context):
    # The link carries its token: no-referrer, so it is never handed on to another site.
    context.setdefault("error", None)
    context.setdefault("review", None)
    context.setdefault("form", {})
    return secure(current_app.make_response((render_template("rate.html", limits=reviews, **context), status)))


def _refused(e, call=None):
    review = reviews.review_of_call(call.id) if call is not None and e.code == "already_rated" else None
    if review is not None and review.removed_at is not None:  # removed: shown to nobody
        review = None
    return _page(e.status, title=TITLES.get(e.code, "Cannot rate this call"), error=e.message, code=e.code,
                 review=review, call=call)


@bp.route("/rate/<call_id>", methods=["GET", "POST"])
def rate(call_id):
    """The rating form of a paid call; the signed token (in the link, then in the form) is the credential."""
    if request.method == "POST":
        limit("RATE_LIMIT_RATING", f"rate:{request.remote_addr}")
    token = (request.form.get("t") if request.method == "POST" else request.args.get("t")) or ""
    try:
        call = reviews.call_by_link(tokens_for(current_app.config), call_id, token)
    except reviews.RatingRefused as e:
        return _refused(e)
    try:
        reviews.check_rateable(call)
    except reviews.RatingRefused as e:
        return _refused(e, call)
    context = dict(call=call, token=token, expert=call.expert, title=f"Rate your call with {call.expert.display_name}")
    if request.method == "GET":
        return _page(**context)
    form = {"stars": request.form.get("stars", ""), "text": request.form.get("text", "")}
    try:
        review = reviews.rate(call, request.form.get("stars"), request.form.get("text"))
    except reviews.RatingRefused as e:
        db.session.rollback()
        if e.status != 400:
            return _refused(e, call)
        return _page(400, form=form, error=e.message, code=e.code, **context)
    return _page(200, review=review, call=call, expert=call.expert, done=True,
                 title=f"Thank you for rating {call.expert.display_name}")


@bp.context_processor
def _helpers():
    return {"human_utc": human_utc, "iso_utc": iso_utc}


@bp.get("/dashboard/reviews")
@login_required
def dashboard(expert):
    """Every review of the expert, with a form to reply once to each."""
    return _dashboard(expert)


def _dashboard(expert, status=200, error=None, error_id=None, replied=False):
    return secure(current_app.make_response((render_template(
        "reviews.html", expert=expert, csrf=csrf_token(), reviews=reviews.reviews_of(expert.id),
        summary=reviews.summary(expert.id, recent=0), error=error, error_id=error_id, replied=replied,
        reply_max=reviews.REPLY_MAX), status)))


@bp.post("/dashboard/reviews/<int:review_id>/reply")
@login_required
def reply(expert, review_id):
    """The expert's one public reply; never an edit of the review, never a second reply."""
    check_csrf()
    try:
        reviews.reply(expert, review_id, request.form.get("reply"))
    except reviews.RatingRefused as e:
        db.session.rollback()
        return _dashboard(expert, e.status, e.message, review_id)
    return redirect(url_for("reviews.dashboard", replied=1), 303)


def rating_link(call_id):
    """The path of a call's rating link (signed)."""
    return url_for("reviews.rate", call_id=call_id, t=tokens_for(current_app.config).rating_token(call_id))


def link_for(call):
    """The rating link when ``call`` may be rated now, else None."""
    if call is None or not reviews.can_rate(call):
        return None
    return rating_link(call.id)
