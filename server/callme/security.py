"""Who is logged in, CSRF, and the security headers every response carries.

Sessions: the signed cookie holds the expert's id and a random session id; the
``expert_sessions`` table holds the live ones (hashed). Each request costs one primary-key
lookup, joined with the expert's row that the request needed anyway. Logging out deletes this
session's row, so a copy of the cookie stops working too; "log out everywhere" and a password
change delete all of the expert's rows. A session lives at most PERMANENT_SESSION_LIFETIME.

Headers: one ``login_required`` for the expert's pages, one ``secure`` helper for a page's
own headers (CSP, caching, referrer); ``init_app`` adds the defaults every response gets.
"""
import functools
import hmac
import secrets

from flask import abort, redirect, request, session, url_for

from .extensions import db
from .models import ExpertSession
from .urls import own_origin

DEFAULT_REFERRER_POLICY = "strict-origin-when-cross-origin"


def current_expert():
    """The expert logged in on this session, or None."""
    return ExpertSession.expert(session.get("expert_id"), session.get("sid"))


def log_in(expert, lifetime_seconds):
    """Start a new session for the expert: a fresh cookie, a new server-side session."""
    session.clear()
    sid = ExpertSession.open(expert.id, lifetime_seconds)
    db.session.commit()
    session["expert_id"], session["sid"] = expert.id, sid
    session.permanent = True


def log_out(everywhere=False):
    """End this session, or every session of its expert; forget the cookie."""
    expert = current_expert() if everywhere else None
    if expert is not None:
        ExpertSession.close_all(expert.id)
    else:
        ExpertSession.close(session.get("sid"))
    db.session.commit()
    session.clear()


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


def init_app(app):
    """Give every response the headers no view should have to remember."""
    # Secure-only cookies (an https PUBLIC_URL, see create_app, or SESSION_COOKIE_SECURE) mean
    # an https-only site: tell browsers never to try http.
    hsts = f"max-age={app.config['HSTS_MAX_AGE']}" if app.config.get("SESSION_COOKIE_SECURE") else None

    @app.after_request
    def default_headers(response):
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers.setdefault("Referrer-Policy", DEFAULT_REFERRER_POLICY)
        if hsts:
            headers.setdefault("Strict-Transport-Security", hsts)
        # Pages without a policy of their own (error pages among them) get the strict one.
        if response.mimetype == "text/html" and "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = content_security_policy()
        return response
