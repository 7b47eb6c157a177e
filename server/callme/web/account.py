"""The expert's account: the login form, logging out (here or everywhere), the password form,
and the session API."""
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from ..errors import ApiError
from ..experts.accounts import authenticate, replace_password
from ..security import check_csrf, csrf_token, current_expert, log_in, log_out, login_required, secure
from .limits import limit
from .schemas import ExpertSchema, LoginSchema, load_json

bp = Blueprint("account", __name__)

# Self-service accounts log in once their address is confirmed (web/signup.py); the operator's are.
UNVERIFIED = "Confirm your email address first: open the link we mailed you when you signed up."


def _lifetime():
    return int(current_app.permanent_session_lifetime.total_seconds())


def _everywhere(values):
    return values.get("everywhere", "") in ("1", "true", "yes", "on")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status, unverified = None, 200, None
    if request.method == "POST":
        check_csrf()
        try:
            limit("RATE_LIMIT_LOGIN", f"login:{request.remote_addr}")
        except ApiError as e:
            error, status = e.message, 429
        else:
            expert = authenticate(request.form.get("email", "")[:254], request.form.get("password", "")[:256])
            if expert is None:
                error, status = "The email or password is wrong.", 401
            elif expert.email_verified_at is None:  # said only to whoever knows the password
                error, status, unverified = UNVERIFIED, 403, expert.email
            else:
                log_in(expert, _lifetime())
                return redirect(url_for("console.console"))
    return secure(current_app.make_response((render_template("login.html", error=error, csrf=csrf_token(),
                                                             unverified=unverified), status)))


@bp.post("/logout")
def logout():
    """End this session, or with ``everywhere`` every session of the expert."""
    check_csrf()
    log_out(everywhere=_everywhere(request.form))
    return redirect(url_for("account.login"))


@bp.route("/dashboard/password", methods=["GET", "POST"])
@login_required
def password(expert):
    """Change the password; every other session of the expert ends."""
    error, status, done = None, 200, False
    if request.method == "POST":
        check_csrf()
        form = request.form
        try:
            replace_password(expert, form.get("current", "")[:256], form.get("password", "")[:1024],
                             form.get("confirm", "")[:1024])
        except ValueError as e:
            error, status = str(e), 400
        else:
            log_in(expert, _lifetime())  # this browser stays logged in, in a new session
            done = True
    return secure(current_app.make_response((render_template(
        "password.html", expert=expert, csrf=csrf_token(), error=error, done=done), status)))


@bp.post("/api/v1/session")
def api_login():
    """Log an expert in: sets an HttpOnly session cookie."""
    data = load_json(LoginSchema())
    limit("RATE_LIMIT_LOGIN", f"login:{request.remote_addr}")
    expert = authenticate(data["email"], data["password"])
    if expert is None:
        raise ApiError(401, "bad_credentials", "The email or password is wrong.")
    if expert.email_verified_at is None:
        raise ApiError(403, "email_not_verified", UNVERIFIED)
    log_in(expert, _lifetime())
    return _private(jsonify(expert_json(expert)))


@bp.get("/api/v1/session")
def whoami():
    expert = current_expert()
    if expert is None:
        raise ApiError(401, "not_logged_in", "Log in first.")
    return _private(jsonify(expert_json(expert)))


@bp.delete("/api/v1/session")
def api_logout():
    """Log out; ``?everywhere=1`` ends every session of the expert."""
    log_out(everywhere=_everywhere(request.args))
    return "", 204


def _private(response):
    """The answer carries the expert's email: no cache may keep it."""
    response.headers["Cache-Control"] = "no-store"
    return response


def expert_json(expert):
    return ExpertSchema().dump({
        "id": expert.id, "handle": expert.handle, "display_name": expert.display_name, "email": expert.email,
        "price": {"amount": expert.price_minor, "currency": expert.currency},
        "free_seconds": expert.free_seconds, "cap_minutes": expert.cap_minutes,
        "allowed_origins": expert.allowed_origins or [],
    })
