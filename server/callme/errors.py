"""One error type, mapped once: JSON for the API and socket paths, an HTML page elsewhere."""
import logging

from flask import jsonify, render_template_string, request
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


def _wants_json():
    return request.path.startswith(("/api/", "/ws/")) or request.accept_mimetypes.best == "application/json"


def _json(status, code, message, fields=None, headers=None, extra=None):
    body = {"error": code, "message": message, "fields": fields or {}, **(extra or {})}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


PAGE = """<!doctype html><meta charset="utf-8"><title>{{ status }} {{ name }}</title>
<main style="font:16px system-ui;max-width:40rem;margin:4rem auto"><h1>{{ name }}</h1><p>{{ message }}</p></main>"""


def init_app(app):
    @app.errorhandler(CallmeError)
    def callme_error(e):
        if _wants_json():
            return _json(e.status, e.code, e.message, e.fields, e.headers, e.extra)
        return render_template_string(PAGE, status=e.status, name=e.code.replace("_", " ").capitalize(),
                                      message=e.message), e.status, e.headers

    @app.errorhandler(HTTPException)
    def http_error(e):
        if _wants_json():
            code = (e.name or "error").lower().replace(" ", "_").replace("'", "")
            return _json(e.code, code, e.description or e.name)
        return render_template_string(PAGE, status=e.code, name=e.name, message=e.description), e.code

    @app.errorhandler(Exception)
    def server_error(e):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return _json(500, "internal_error", "Something went wrong on our side; nothing was changed.")
        return render_template_string(PAGE, status=500, name="Server error",
                                      message="Something went wrong on our side."), 500
