"""One error type, mapped once: JSON for the API and socket paths, an HTML page elsewhere."""
import logging

from flask import current_app, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

from .extensions import db

log = logging.getLogger(__name__)


class CallmeError(Exception):
    """A refusal with a code, a message for people and the HTTP status that answers it.

    Domain errors (a call that cannot be made, a payment refused, a bad token) subclass it,
    so a view lets them rise and the handler below answers them; sockets send them as
    ``error`` frames with the same code and message.
    """

    status = 400

    def __init__(self, code, message, status=None, fields=None, headers=None, extra=None):
        super().__init__(message)
        self.code, self.message = code, message
        if status is not None:
            self.status = status
        self.fields, self.headers, self.extra = fields, headers or {}, extra or {}


class ApiError(CallmeError):
    """An error raised by a view: ``ApiError(status, code, message)``."""

    def __init__(self, status, code, message, fields=None, headers=None, extra=None):
        super().__init__(code, message, status=status, fields=fields, headers=headers, extra=extra)


class RateLimited(ApiError):
    """Too many attempts: 429, with the seconds to wait in ``Retry-After``."""

    def __init__(self, wait):
        super().__init__(429, "rate_limited", f"Too many attempts; try again in {wait} seconds.",
                         headers={"Retry-After": str(wait)})
        self.wait = wait


# Codes of HTTP errors whose name would make a clumsy code (werkzeug renames some of them).
HTTP_CODES = {408: "request_timeout", 413: "too_large"}


def _wants_json():
    return request.path.startswith(("/api/", "/ws/")) or request.path.endswith(".json") or \
        request.accept_mimetypes.best == "application/json"


def _answer(status, code, message, fields=None, headers=None, extra=None, title=None):
    """The one error answer: JSON ``{"error", "message", "fields", ...}`` or an HTML page."""
    if _wants_json():
        response = jsonify({"error": code, "message": message, "fields": fields or {}, **(extra or {})})
    else:
        response = current_app.make_response(render_template_string(
            PAGE, status=status, name=title or code.replace("_", " ").capitalize(), message=message))
    response.status_code = status
    response.headers.update(headers or {})
    # An error is about this request only: never cached, and a page gets the pages' CSP.
    from .security import secure  # here: security needs the models, which need this module

    return secure(response, referrer=None) if response.mimetype == "text/html" else _no_store(response)


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


PAGE = """<!doctype html><meta charset="utf-8"><title>{{ status }} {{ name }}</title>
<main><h1>{{ name }}</h1><p>{{ message }}</p></main>"""


def http_code(e):
    """A snake_case code for an HTTP error: 404 -> not_found, 405 -> method_not_allowed."""
    return HTTP_CODES.get(e.code) or (e.name or "error").lower().replace(" ", "_").replace("'", "")


def init_app(app):
    @app.errorhandler(CallmeError)
    def callme_error(e):
        db.session.rollback()  # a refusal changes nothing
        return _answer(e.status, e.code, e.message, e.fields, e.headers, e.extra)

    @app.errorhandler(HTTPException)
    def http_error(e):
        # get_headers() carries what the status needs (Allow on a 405), and a Content-Type we replace.
        headers = {k: v for k, v in e.get_headers() if k.lower() != "content-type"}
        return _answer(e.code, http_code(e), e.description or e.name, headers=headers, title=e.name)

    @app.errorhandler(Exception)
    def server_error(e):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return _answer(500, "internal_error", "Something went wrong on our side; nothing was changed.")
        return _answer(500, "server_error", "Something went wrong on our side.", title="Server error")
