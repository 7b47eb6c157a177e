"""PayPal's webhook events, one URL per expert: verified with PayPal, applied once."""
from flask import Blueprint, current_app, jsonify, request

from ..calls.instant import expert_by_handle
from ..errors import ApiError
from ..money import payments
from .limits import max_body, read_body
from .schemas import read_json

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/paypal/webhooks")

# PayPal's events are a few KB; nothing bigger is read.
MAX_EVENT_BYTES = 256 * 1024


@bp.post("/<handle>")
@max_body(MAX_EVENT_BYTES)
def paypal_webhook(handle):
    """A PayPal webhook event for one expert: verified with PayPal, applied once."""
    expert = expert_by_handle(handle)
    event = read_json(read_body())
    if event is None:
        raise ApiError(400, "bad_json", "The body is not JSON.")
    outcome = payments.receive_event(expert, event, request.headers, current_app.config,
                                     sender=request.remote_addr)
    return jsonify({"ok": True, "outcome": outcome})
