"""Receipts, for the visitor and the expert: a page and its JSON, reached by a signed link."""
from flask import Blueprint, current_app, jsonify, render_template, request, url_for

from ..calls.tokens import tokens_for
from ..errors import CallmeError
from ..money.receipts import receipt_by_link
from ..security import secure

bp = Blueprint("receipts", __name__)


def _receipt(call_id):
    return receipt_by_link(tokens_for(current_app.config), call_id, request.args.get("t", ""))


def _page(status=200, **context):
    # The link carries its token: no-referrer, so it is never handed on to another site.
    return secure(current_app.make_response((render_template("receipt.html", **context),
                                             status)))


@bp.get("/receipts/<call_id>")
def receipt_page(call_id):
    """A call's receipt, for the visitor and the expert (signed link)."""
    try:
        data = _receipt(call_id)
    except CallmeError as e:  # the page says what is wrong with the link, in the receipt's frame
        return _page(e.status, receipt=None, error=e.message)
    return _page(receipt=data, error=None, rate_url=_rating_link(call_id),
                 json_url=url_for("receipts.receipt_json", call_id=call_id, t=request.args.get("t")))


def _rating_link(call_id):
    """The signed rating link, while the call may be rated (paid, not rated yet, in the window)."""
    from ..extensions import db
    from ..models import Call
    from .reviews import link_for

    return link_for(db.session.get(Call, call_id))


@bp.get("/receipts/<call_id>.json")
def receipt_json(call_id):
    """The same receipt as JSON."""
    response = jsonify(_receipt(call_id))
    response.headers["Cache-Control"] = "no-store"
    return response
