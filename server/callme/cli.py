"""Command line: ``callme expert create``, ``callme serve``, ``callme demo`` and Flask's own."""
import functools
import http.server
import os
import re
import subprocess
import sys
import threading

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from .extensions import db
from .models import HANDLE_RE, RESERVED_HANDLES, Expert
from .web.schemas import MAX_PRICE

CURRENCY_HELP = "ISO 4217 code, e.g. USD"


def init_app(app):
    app.cli.add_command(expert_group)
    app.cli.add_command(payments_group)
    app.cli.add_command(serve)
    app.cli.add_command(demo)


@click.group("expert")
def expert_group():
    """Manage expert accounts."""


def create_expert(email, password, handle, name, price, currency="USD", free_seconds=None,
                  cap_minutes=None, origins=()):
    """Create an expert; raise ValueError with a readable message for bad values."""
    handle = handle.lower()
    if not HANDLE_RE.match(handle):
        raise ValueError("The handle takes 1-32 lowercase letters, digits and inner dashes.")
    if handle in RESERVED_HANDLES:
        raise ValueError(f"The handle {handle!r} is taken by a callme page; choose another.")
    if "@" not in email:
        raise ValueError("The email address is not valid.")
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise ValueError(f"The currency must be an {CURRENCY_HELP}.")
    if price < 0:
        raise ValueError("The price cannot be negative.")
    if price > MAX_PRICE:
        raise ValueError(f"The price can be at most {MAX_PRICE} minor units per minute.")
    if free_seconds is not None and free_seconds < 0:
        raise ValueError("The free seconds cannot be negative.")
    if cap_minutes is not None and cap_minutes < 1:
        raise ValueError("The cap must be at least 1 minute.")
    if len(password) < 8:
        raise ValueError("The password needs at least 8 characters.")
    if db.session.scalar(db.select(Expert).where((Expert.handle == handle) | (Expert.email == email.lower()))):
        raise ValueError("An expert with that handle or email already exists.")
    cfg = current_app.config
    expert = Expert(
        email=email.lower(), handle=handle, display_name=name, price_minor=price, currency=currency.upper(),
        free_seconds=cfg["DEFAULT_FREE_SECONDS"] if free_seconds is None else free_seconds,
        cap_minutes=cfg["DEFAULT_CAP_MINUTES"] if cap_minutes is None else cap_minutes,
        allowed_origins=[o.rstrip("/") for o in origins],
    )
    expert.set_password(password)
    db.session.add(expert)
    db.session.commit()
    return expert


@expert_group.command("create")
@click.option("--email", required=True)
@click.option("--handle", required=True, help="The unique URL name, e.g. ray.")
@click.option("--name", required=True, help="Display name.")
@click.option("--price", type=int, required=True, help="Price per minute in minor units (150 = 1.50).")
@click.option("--currency", default="USD", show_default=True, help=CURRENCY_HELP)
@click.option("--free-seconds", type=int, default=None, help="Free threshold (default 60).")
@click.option("--cap-minutes", type=int, default=None, help="Longest call (default 60).")
@click.option("--origin", "origins", multiple=True, help="A site allowed to embed the button (repeat).")
@click.password_option(envvar="CALLME_EXPERT_PASSWORD")
@with_appcontext
def create_expert_command(email, handle, name, price, currency, free_seconds, cap_minutes, origins, password):
    """Create an expert account."""
    try:
        expert = create_expert(email, password, handle, name, price, currency, free_seconds, cap_minutes, origins)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"Created expert {expert.handle} ({expert.email}).")


@expert_group.command("paypal")
@click.option("--handle", required=True)
@click.option("--client-id", required=True, help="The client id of the expert's PayPal REST app.")
@click.option("--secret", required=True, envvar="CALLME_PAYPAL_SECRET", help="Its secret (or CALLME_PAYPAL_SECRET).")
@click.option("--mode", type=click.Choice(["sandbox", "live"]), default="sandbox", show_default=True)
@click.option("--webhook-id", default=None, help="The id of the webhook that points at "
              "/api/v1/paypal/webhooks/<handle>.")
@click.option("--no-check", is_flag=True, help="Store without asking PayPal for a token first.")
@with_appcontext
def expert_paypal_command(handle, client_id, secret, mode, webhook_id, no_check):
    """Connect an expert's own PayPal app (checked with PayPal; the secret stored encrypted)."""
    from .money.paypal import set_paypal_credentials
    from .money.paypal import PayPalError

    expert = db.session.scalar(db.select(Expert).filter_by(handle=handle.lower()))
    if expert is None:
        raise click.UsageError(f"Expert {handle!r} does not exist.")
    try:
        set_paypal_credentials(expert, client_id, secret, mode, webhook_id, current_app.config, check=not no_check)
    except PayPalError as e:
        raise click.UsageError(e.message) from None
    click.echo(f"Connected PayPal ({mode}) for {expert.handle}.")


@click.group("payments")
def payments_group():
    """PayPal captures and voids."""


@payments_group.command("retry")
@click.option("--all", "everything", is_flag=True,
              help="Every unsettled payment now, backoff or not (and holds that never became a call).")
@with_appcontext
def payments_retry_command(everything):
    """Settle the payments whose capture or void failed before."""
    from .money.payments import retry_due

    results = retry_due(current_app.config, everything=everything)
    for payment_id, state in results.items():
        click.echo(f"payment {payment_id}: {state}")
    click.echo(f"{len(results)} payment(s) tried.")


@payments_group.command("list")
@click.option("--handle", default=None)
@with_appcontext
def payments_list_command(handle):
    """The payments that are not settled yet."""
    from .models import Payment
    from .money.payments import UNSETTLED

    q = db.select(Payment).where(Payment.state.in_(UNSETTLED)).order_by(Payment.id)
    if handle:
        q = q.join(Expert).where(Expert.handle == handle.lower())
    for p in db.session.scalars(q):
        click.echo(f"{p.id}\t{p.expert.handle}\t{p.call_id}\t{p.state}\t{p.due_minor} {p.currency}\t"
                   f"attempts={p.attempts}\t{p.last_error or ''}")


def gunicorn_argv(bind, workers=1, extra=()):
    """The gunicorn command that serves callme: gevent workers, cheap idle sockets."""
    return [sys.executable, "-m", "gunicorn", "--worker-class", "gevent", "--workers", str(workers),
            "--worker-connections", "20000", "--bind", bind, "--graceful-timeout", "5",
            "--no-control-socket", *extra, "callme:create_app()"]


@click.command("serve")
@click.option("--bind", default="127.0.0.1:5000", show_default=True)
@click.option("--workers", default=1, show_default=True,
              help="More than one needs REDIS_URL (a shared bus).")
@with_appcontext
def serve(bind, workers):
    """Upgrade the database and serve with gunicorn (gevent)."""
    from flask_migrate import upgrade

    upgrade()
    if workers > 1 and not current_app.config.get("REDIS_URL"):
        raise click.UsageError("Several workers need a shared bus: set REDIS_URL, or run one worker.")
    os.environ.setdefault("CALLME_INSTANCE", current_app.instance_path)
    os.environ.setdefault("SECRET_KEY", current_app.config["SECRET_KEY"])
    argv = gunicorn_argv(bind, workers)
    os.execv(argv[0], argv)


@click.command("demo")
@click.option("--bind", default="127.0.0.1:5000", show_default=True)
@click.option("--site-port", default=5001, show_default=True, help="Where the example expert site is served.")
@click.option("--paypal-port", default=5002, show_default=True,
              help="Where the PayPal emulator listens (unless PAYPAL_BASE_URL is set).")
@with_appcontext
def demo(bind, site_port, paypal_port):
    """Serve callme with a demo expert, the example expert site on a second origin, and a
    PayPal emulator standing in for PayPal (ray's PayPal app lives there)."""
    from flask_migrate import upgrade

    upgrade()
    host, _, port = bind.rpartition(":")
    site_origins = [f"http://127.0.0.1:{site_port}", f"http://localhost:{site_port}"]
    ray = db.session.scalar(db.select(Expert).filter_by(handle="ray"))
    if not ray:
        ray = create_expert("ray@example.com", "demo-password", "ray", "Ray Demo", 30, "USD", origins=site_origins)
    emulator = None
    if not current_app.config.get("PAYPAL_BASE_URL"):
        from .money.paypal import set_paypal_credentials
        from .dev.paypal_emulator import PayPalEmulator

        emulator = PayPalEmulator().start(host="127.0.0.1", port=paypal_port)
        current_app.config["PAYPAL_BASE_URL"] = emulator.url
        # The emulator forgets everything when it stops: give ray's app back to it each time.
        emulator.add_app("demo-ray", "demo-ray-secret", merchant_name="Ray Demo")
        emulator.add_webhook("demo-ray", "WH-DEMO-RAY")
        if ray.paypal_client_id != "demo-ray":
            set_paypal_credentials(ray, "demo-ray", "demo-ray-secret", "sandbox", "WH-DEMO-RAY",
                                   current_app.config)
    base = f"http://{host}:{port}"
    site = os.path.join(current_app.config["ASSETS_DIR"], "examples", "expert-site")
    handler = functools.partial(_QuietHandler, directory=site)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", site_port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = {**os.environ, "CALLME_INSTANCE": current_app.instance_path, "SECRET_KEY": current_app.config["SECRET_KEY"],
           "PAYPAL_BASE_URL": current_app.config["PAYPAL_BASE_URL"]}
    server = subprocess.Popen(gunicorn_argv(bind), env=env)
    click.echo(f"""
callme is running.
  As the visitor, open the expert's own site:  http://127.0.0.1:{site_port}/
  or the expert's callme page:                  {base}/ray
  As the expert, log in and go online:          {base}/login   (ray@example.com / demo-password)
  The expert's earnings and PayPal settings:    {base}/dashboard
  Public status (JSON):                         {base}/api/v1/experts/ray/status
  API description:                              {base}/api/v1/openapi.json
  PayPal (emulated unless PAYPAL_BASE_URL):     {current_app.config["PAYPAL_BASE_URL"]}
Press Ctrl-C to stop.
""")
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(10)
    finally:
        httpd.shutdown()
        if emulator is not None:
            emulator.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def main():
    from . import create_app

    FlaskGroup(create_app=create_app, add_default_commands=True,
               help="callme: sell your time over live browser calls.")(prog_name="callme")
