"""callme: sell your time over live browser calls."""
import logging
import os
import secrets

from flask import Flask, jsonify
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import Config
from .extensions import db, migrate, sock

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def create_app(config=None):
    """Build the app: load config, initialise extensions, register blueprints."""
    app = Flask(__name__, instance_path=os.environ.get("CALLME_INSTANCE") or None,
                instance_relative_config=True)
    app.config.from_object(Config)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    _resolve_config(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS)
    sock.init_app(app)

    from . import cli, errors, security
    from .web import widget_api as api
    from .web import account, console, dashboard, limits, receipts, webhooks
    from .web import public as pages
    from .realtime import sockets
    from .bus import make_bus
    from .calls.lifecycle import CallService
    from .calls.clock import Clock
    from .money.payments import Settler
    from .ratelimit import make_limiter

    bus = make_bus(app.config, engine=lambda: db.engine)
    service = CallService(app, bus)
    settler = Settler(app)
    service.on_payment_due = settler
    app.extensions["callme.bus"] = bus
    app.extensions["callme.calls"] = service
    app.extensions["callme.limiter"] = make_limiter(app.config)
    app.extensions["callme.clock"] = clock = Clock(app, service, bus, settler=settler)

    app.register_blueprint(api.bp)
    app.register_blueprint(sockets.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(receipts.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(console.bp)
    from .notify.outbox import Sender
    from .web import signup
    app.extensions["callme.mail"] = Sender(app)  # sends after a commit that queued mail; the clock retries
    app.register_blueprint(signup.bp)
    from .web import profile as profile_pages
    app.register_blueprint(profile_pages.bp)
    app.register_blueprint(profile_pages.public_bp)  # /<handle>: static routes always win (werkzeug sorts)
    from .web import media as media_pages
    app.register_blueprint(media_pages.bp)
    from .web import reviews as review_pages
    app.register_blueprint(review_pages.bp)
    from .web import domains as domain_pages
    domain_pages.init_app(app)  # pages, the ask endpoint, routing by Host
    app.register_blueprint(pages.bp)
    errors.init_app(app)
    security.init_app(app)
    cli.init_app(app)

    if not app.config["WEBSOCKET_COMPRESSION"]:
        app.wsgi_app = _without_ws_compression(app.wsgi_app)
    app.wsgi_app = limits.body_deadline(app.wsgi_app, app.config["BODY_TIMEOUT"])

    if app.config["START_CLOCK"]:
        @app.before_request
        def _start_clock():
            from .bus import LeaseError

            try:
                clock.ensure_started()
            except LeaseError as e:
                response = jsonify(error="misconfigured", message=str(e))
                response.status_code = 503
                return response

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app


def _resolve_config(app):
    os.makedirs(app.instance_path, exist_ok=True)
    if not os.environ.get("SECRET_KEY") and app.config.get("SECRET_KEY") == Config.SECRET_KEY \
            and not app.config.get("TESTING"):
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not uri:
        uri = "sqlite:///" + os.path.join(app.instance_path, "callme.sqlite")
    if uri.startswith("postgres://"):
        uri = "postgresql://" + uri[len("postgres://"):]
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://"):]
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    if (app.config.get("PUBLIC_URL") or "").startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True  # and security.init_app sends HSTS


def _instance_secret(instance_path):
    """A key kept in the instance folder, so that every worker and every restart signs alike."""
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path) as f:
            key = f.read().strip()
            if key:
                return key
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker wrote it first
        return _instance_secret(instance_path)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def _without_ws_compression(wsgi_app):
    """Decline permessage-deflate: it costs ~100 KB per socket for frames of a few hundred bytes."""
    def middleware(environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return wsgi_app(environ, start_response)
    return middleware


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
