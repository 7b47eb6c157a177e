"""Public pages: the embed loader, the call widget, callme's pages in the PayPal window.
The expert's public page (the unique URL) is web/profile.py's."""
import os

from flask import Blueprint, abort, current_app, render_template, request, send_from_directory

from ..experts.domains import allowed_origins
from ..experts.accounts import published_expert
from ..models import ORDER_ID_RE
from ..security import secure

bp = Blueprint("pages", __name__)


def assets_dir(name):
    return os.path.join(current_app.config["ASSETS_DIR"], name)


@bp.get("/embed.js")
def embed_js():
    """The loader, served from callme's origin (or an expert's custom domain)."""
    response = send_from_directory(assets_dir("embed"), "embed.js", max_age=300)
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script, no credentials
    return response


@bp.get("/widget/<path:filename>")
def widget_asset(filename):
    if not filename.endswith((".js", ".css", ".svg", ".mp3", ".ogg", ".wav")):
        abort(404)
    response = send_from_directory(assets_dir("widget"), filename, max_age=60)
    if filename.endswith(".js"):
        response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    return response


@bp.get("/w/<handle>")
def widget(handle):
    """The call UI inside the loader's iframe; only the expert's listed sites may frame it."""
    expert = published_expert(handle)
    if expert is None:
        abort(404, f"Expert {handle!r} does not exist.")
    response = secure(send_from_directory(assets_dir("widget"), "index.html", max_age=0),
                      frame_ancestors=["'self'", *allowed_origins(expert)], referrer="strict-origin")
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(self), display-capture=(self)"
    return response


PAYPAL_PAGES = {
    "wait": ("waiting", "Opening PayPal…", "PayPal's page opens here in a moment."),
    "return": ("approved", "Approved", "Thank you. Go back to the call window: it is ringing now."),
    "cancel": ("cancelled", "Payment cancelled", "Nothing was charged. You can close this window."),
}


@bp.get("/paypal/<step>")
def paypal_window(step):
    """callme's pages in the PayPal popup: before PayPal's page loads, and where PayPal sends the
    payer back (``?token=<order id>``); they tell the widget that opened the window."""
    if step not in PAYPAL_PAGES:
        abort(404)
    status, title, text = PAYPAL_PAGES[step]
    order_id = request.args.get("token", "")
    if step != "wait" and not ORDER_ID_RE.match(order_id):
        status, title, text = "invalid", "Not a PayPal answer", "This link is not a PayPal order. Go back to the call window."
        order_id = ""
    return secure(current_app.make_response((render_template(
        "paypal_return.html", status=status, title=title, text=text, order_id=order_id),
        400 if status == "invalid" else 200)))

