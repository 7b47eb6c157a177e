"""The expert's account: the login form, logging out, and the session API."""
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for

from ..errors import ApiError
from ..extensions import db
from ..models import Expert
from ..security import check_csrf, csrf_token, current_expert, secure
from .limits import limit
from .schemas import ExpertSchema, LoginSchema, load_json

bp = Blueprint("account", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        check_csrf()
        try:
            limit("RATE_LIMIT_LOGIN", f"login:{request.remote_addr}")
        except ApiError as e:
            return render_template("login.html", error=e.message, csrf=csrf_token()), 429
        email = request.form.get("email", "").strip().lower()[:254]
        expert = db.session.scalar(db.select(Expert).filter_by(email=email)) if email else None
        if expert is None or not expert.check_password(request.form.get("password", "")[:256]):
            error = "The email or password is wrong."
        else:
            session.clear()
            session["expert_id"] = expert.id
            session.permanent = True
            return redirect(url_for("console.console"))
    status = 401 if error else 200
    return secure(current_app.make_response((render_template("login.html", error=error, csrf=csrf_token()),
                                             status)), cache=None, referrer=None)


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("account.login"))


@bp.post("/api/v1/session")
def api_login():
    """Log an expert in: sets an HttpOnly session cookie."""
    data = load_json(LoginSchema())
    limit("RATE_LIMIT_LOGIN", f"login:{request.remote_addr}")
    expert = db.session.scalar(db.select(Expert).filter_by(email=data["email"].lower()))
    if expert is None or not expert.check_password(data["password"]):
        raise ApiError(401, "bad_credentials", "The email or password is wrong.")
    session.clear()
    session["expert_id"] = expert.id
    session.permanent = True
    return jsonify(expert_json(expert))


@bp.get("/api/v1/session")
def whoami():
    expert = current_expert()
    if expert is None:
        raise ApiError(401, "not_logged_in", "Log in first.")
    return jsonify(expert_json(expert))


@bp.delete("/api/v1/session")
def api_logout():
    session.clear()
    return "", 204


def expert_json(expert):
    return ExpertSchema().dump({
        "id": expert.id, "handle": expert.handle, "display_name": expert.display_name, "email": expert.email,
        "price": {"amount": expert.price_minor, "currency": expert.currency},
        "free_seconds": expert.free_seconds, "cap_minutes": expert.cap_minutes,
        "allowed_origins": expert.allowed_origins or [],
    })
