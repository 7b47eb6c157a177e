"""Who is logged in, CSRF, and the security headers every response carries.

One ``login_required`` for the expert's pages, one ``secure`` helper for a page's
headers (CSP, caching, referrer); the defaults every response gets are set by ``init_app``.
"""
import functools
import hmac
import secrets

from flask import abort, redirect, request, session, url_for

from .extensions import db
from .models import Expert
from .urls import own_origin


def current_expert():
    """The expert logged in on this session, or None."""
    expert_id = session.get("expert_id")
    return db.session.get(Expert, expert_id) if isinstance(expert_id, int) else None


def login_required(view):
    """Pass the logged-in expert to the view as ``expert``; send everyone else to /login."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        expert = current_expert()
        if expert is None:
            return redirect(url_for("account.login"))
        return view(*args, expert=expert, **kwargs)
    return wrapped


def csrf_token():
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf():
    sent = request.form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, "The form expired; reload the page and try again.")


def content_security_policy(frame_ancestors=("'none'",)):
    origin = own_origin()
    ws = origin.replace("http", "ws", 1)
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:", f"connect-src 'self' {ws}", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors " + " ".join(frame_ancestors),
    ])


def secure(response, frame_ancestors=("'none'",), cache="no-store", referrer="no-referrer"):
    """A page's headers: its CSP (who may frame it), caching and referrer policy."""
    response.headers["Content-Security-Policy"] = content_security_policy(frame_ancestors)
    if cache:
        response.headers["Cache-Control"] = cache
    if referrer:
        response.headers["Referrer-Policy"] = referrer
    return response
