"""callme's front door: the landing page, self-service sign-up and its email link, the password
reset, the expert's email change, and the local mailbox (mail kept when no SMTP server is set)."""
import hashlib
import hmac
import re

import click
from flask import Blueprint, abort, current_app, render_template, request
from flask.cli import with_appcontext

from ..errors import ApiError, CallmeError
from ..experts import accounts
from ..extensions import db
from ..models import RESERVED_HANDLES
from ..notify import mail
from ..notify.outbox import OutboxMail, send_due
from ..security import check_csrf, csrf_token, current_expert, login_required, secure
from ..urls import own_origin
from .limits import limit

bp = Blueprint("signup", __name__, cli_group="mail")

MAILBOX_SIZE = 50
LINK_RE = re.compile(r"https?://[^\s<>\"]*[^\s<>\".,;:!?)]")  # a sentence's full stop is not the link's


def _page(template, status=200, **context):
    response = current_app.make_response((render_template(template, csrf=csrf_token(), **context), status))
    return secure(response)


def _base_url():
    """Where the links in mail point: PUBLIC_URL. Without it, links are made from the request's
    Host only while mail stays in the local mailbox: sent out, a forged Host would send a
    victim's reset link to someone else's server."""
    config = current_app.config
    if config.get("PUBLIC_URL"):
        return config["PUBLIC_URL"].rstrip("/")
    if mail.embedded(config):
        return own_origin()
    raise CallmeError("mail_not_configured", "This server sends mail but has no PUBLIC_URL for the links in it; "
                      "its operator must set PUBLIC_URL.", status=503)


def served_segments(app):
    """The first path segments the app's routes serve (``/login`` -> ``login``), variables left out."""
    segments = set()
    for rule in app.url_map.iter_rules():
        first = rule.rule.lstrip("/").split("/", 1)[0]
        if first and "<" not in first:
            segments.add(first.lower())
    return segments


def _limits(rule, email=None):
    """A mail-sending form's limits: per client, and per address asked for (a mailbox is not flooded)."""
    limit(rule, f"{rule}:{request.remote_addr}")
    if email:
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        limit("RATE_LIMIT_MAIL_TO", f"mailto:{digest}")


def _field(name, size):
    return request.form.get(name, "")[:size]


# ---- the landing page ------------------------------------------------------------------------------

@bp.get("/")
def landing():
    """What callme is, sign up, log in."""
    response = current_app.make_response(render_template(
        "landing.html", expert=current_expert(), signup_open=current_app.config["SIGNUP_OPEN"]))
    return secure(response, cache="private, no-cache", referrer=None)  # its header names who is logged in


# ---- sign-up and the verification link -------------------------------------------------------------

@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if not current_app.config["SIGNUP_OPEN"]:
        return _page("notice.html", 403, title="Sign-up is closed",
                     message="This callme server does not take sign-ups; its operator makes accounts.")
    error, status, form = None, 200, {}
    if request.method == "POST":
        check_csrf()
        form = {"email": _field("email", 254), "handle": _field("handle", 64), "name": _field("name", 200)}
        try:
            _limits("RATE_LIMIT_SIGNUP")
            reserved = RESERVED_HANDLES | served_segments(current_app)
            accounts.sign_up(form["email"], _field("password", 1024), form["handle"], form["name"], _base_url(),
                             current_app.config, reserved=reserved)
        except ApiError as e:
            error, status = e.message, e.status
        except ValueError as e:
            error, status = str(e), 400
        else:
            return _sent(form["email"].strip().lower())
    return _page("signup.html", status, error=error, form=form)


def _sent(email):
    return _page("notice.html", title="Check your inbox", resend=email, message=(
        f"We sent a link to {email}. Open it to confirm your address, then log in. "
        "If this address has an account already, the mail says so."), mailbox=mail.embedded(current_app.config))


@bp.post("/signup/resend")
def resend():
    """Send the verification link again (the same answer whether or not the address has an account)."""
    check_csrf()
    email = _field("email", 254)
    _limits("RATE_LIMIT_MAIL", email)
    accounts.resend_verification(email, _base_url(), current_app.config)
    return _page("notice.html", title="Check your inbox", resend=email.strip().lower(),
                 mailbox=mail.embedded(current_app.config), message=(
                     f"If an account waits for {email.strip().lower()} to be confirmed, a new link is on its way. "
                     "Older links still work until they expire."))


@bp.get("/verify")
def verify():
    try:
        expert = accounts.verify_email(request.args.get("t", ""), current_app.config)
    except accounts.LinkError as e:
        return _link_refused(e, resend=True)
    return _page("notice.html", title="Address confirmed", login=True,
                 message=f"Thank you, {expert.display_name}: {expert.email} is confirmed. Log in to set up your page.")


def _link_refused(e, resend=False, forgot=False):
    title = {"link_expired": "This link has expired", "link_used": "This link was used already"}.get(
        e.code, "This link is not valid")
    return _page("notice.html", e.status, title=title, message=e.message, code=e.code, login=e.code == "link_used",
                 resend_form=resend and e.code != "link_used", forgot=forgot)


# ---- password reset --------------------------------------------------------------------------------

@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot():
    if request.method == "POST":
        check_csrf()
        email = _field("email", 254)
        try:
            _limits("RATE_LIMIT_MAIL", email)
        except ApiError as e:
            return _page("reset.html", e.status, step="forgot", error=e.message)
        accounts.request_password_reset(email, _base_url(), current_app.config)
        email = email.strip().lower()
        return _page("notice.html", title="Check your inbox", mailbox=mail.embedded(current_app.config), message=(
            f"If an account has the address {email}, a link to choose a new password is on its way."))
    return _page("reset.html", step="forgot")


@bp.route("/password/reset", methods=["GET", "POST"])
def reset():
    token = (request.form if request.method == "POST" else request.args).get("t", "")[:1024]
    if request.method == "POST":
        check_csrf()
    try:
        expert = accounts.check_reset_link(token, current_app.config)
        if request.method == "POST":
            accounts.reset_password(token, _field("password", 1024), _field("confirm", 1024), current_app.config)
            return _page("notice.html", title="Password changed", login=True,
                         message="Your new password is set, and every session has ended. Log in with it.")
    except accounts.LinkError as e:
        return _link_refused(e, forgot=True)
    except ValueError as e:
        return _page("reset.html", 400, step="reset", token=token, expert=expert, error=str(e))
    return _page("reset.html", step="reset", token=token, expert=expert)


# ---- email change ----------------------------------------------------------------------------------

@bp.route("/dashboard/email", methods=["GET", "POST"])
@login_required
def email(expert):
    """Change the address: the new one gets a link; the change happens when it is opened."""
    error, status, sent = None, 200, None
    if request.method == "POST":
        check_csrf()
        new = _field("email", 254)
        try:
            _limits("RATE_LIMIT_MAIL", new)
            sent = accounts.request_email_change(expert, _field("password", 256), new, _base_url(), current_app.config)
        except ApiError as e:
            error, status = e.message, e.status
        except ValueError as e:
            error, status = str(e), 400
    return _page("email_change.html", status, expert=expert, error=error, sent=sent,
                 mailbox=mail.embedded(current_app.config))


@bp.get("/email/confirm")
def confirm_email():
    try:
        expert = accounts.confirm_email_change(request.args.get("t", ""), _base_url(), current_app.config)
    except accounts.LinkError as e:
        return _link_refused(e)
    return _page("notice.html", title="Address changed", login=current_expert() is None,
                 message=f"Your account's address is now {expert.email}. Log in with it from now on.")


# ---- the local mailbox -----------------------------------------------------------------------------

def mailbox_open(config):
    """The local mailbox exists only while no SMTP server is configured (and MAIL_MAILBOX is on)."""
    return mail.embedded(config) and config.get("MAIL_MAILBOX", True)


@bp.get("/dev/mailbox")
def mailbox():
    """Mail kept in the database, newest first. It shows sign-up and reset links, so it opens only
    with its key (``?key=``, printed by ``callme demo`` and ``callme mail mailbox``); anything else
    is a 404, as if it did not exist."""
    config = current_app.config
    key = request.args.get("key", "")[:64]
    if not mailbox_open(config) or not hmac.compare_digest(key, mail.mailbox_key(config)):
        abort(404)
    rows = db.session.scalars(db.select(OutboxMail).order_by(OutboxMail.id.desc()).limit(MAILBOX_SIZE)).all()
    mails = [{"row": row, "links": LINK_RE.findall(row.text)} for row in rows]
    return _page("mailbox.html", mails=mails)


def mailbox_url(config, base=None):
    base = (base or config.get("PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/dev/mailbox?key={mail.mailbox_key(config)}"


@bp.cli.command("mailbox")
@with_appcontext
def mailbox_command():
    """Print the local mailbox's address (mail is kept there while no SMTP host is set)."""
    config = current_app.config
    if not mailbox_open(config):
        raise click.ClickException("There is no local mailbox: MAIL_SMTP_HOST is set (or MAIL_MAILBOX is off).")
    click.echo(mailbox_url(config))


@bp.cli.command("retry")
@with_appcontext
def retry_command():
    """Send every unsent mail now, the failed ones too."""
    results = send_due(db.engine, current_app.config, everything=True)
    sent = sum(1 for state in results.values() if state == "sent")
    click.echo(f"Tried {len(results)} mail(s): {sent} sent, {len(results) - sent} not.")
