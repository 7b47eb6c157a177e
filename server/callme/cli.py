"""Command line: ``callme expert create``, ``callme serve``, ``callme demo`` and Flask's own."""
import functools
import os
import sys

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from .experts.accounts import CURRENCY_HELP, change_password, create_expert
from .extensions import db
from .models import Expert

UPGRADE_FIRST = "run `callme db upgrade` first"


def init_app(app):
    app.cli.add_command(expert_group)
    app.cli.add_command(payments_group)
    app.cli.add_command(reviews_group)
    app.cli.add_command(serve)
    app.cli.add_command(demo)


@click.group("expert")
def expert_group():
    """Manage expert accounts."""


def needs_schema(command):
    """Refuse to run on a database not migrated to this version, saying what to run."""
    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        problem = _schema_problem()
        if problem:
            raise click.ClickException(f"{problem}: {UPGRADE_FIRST}.")
        return command(*args, **kwargs)
    return wrapped


def _schema_problem():
    """Why the database cannot serve the commands yet, or None."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with db.engine.connect() as connection:
        if not sa.inspect(connection).has_table(Expert.__tablename__):
            return f"The database has no tables yet ({_where()})"
        current = set(MigrationContext.configure(connection).get_current_heads())
    # A schema made by db.create_all() (tests) has no version: taken as current.
    heads = set(ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config()).get_heads())
    if current and current != heads:
        return (f"The database's schema is at {', '.join(sorted(current))}, this callme needs "
                f"{', '.join(sorted(heads))} ({_where()})")
    return None


def _where():
    return db.engine.url.render_as_string(hide_password=True)


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
@needs_schema
def create_expert_command(email, handle, name, price, currency, free_seconds, cap_minutes, origins, password):
    """Create an expert account."""
    try:
        expert = create_expert(email, password, handle, name, price, currency, free_seconds, cap_minutes, origins)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"Created expert {expert.handle} ({expert.email}).")


@expert_group.command("password")
@click.option("--handle", required=True)
@click.password_option(envvar="CALLME_EXPERT_PASSWORD")
@with_appcontext
@needs_schema
def expert_password_command(handle, password):
    """Set an expert's password; every session of the expert ends."""
    expert = db.session.scalar(db.select(Expert).filter_by(handle=handle.lower()))
    if expert is None:
        raise click.UsageError(f"Expert {handle!r} does not exist.")
    try:
        change_password(expert, password)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"Changed the password of {expert.handle}; every session of {expert.handle} has ended.")


@expert_group.command("paypal")
@click.option("--handle", required=True)
@click.option("--client-id", required=True, help="The client id of the expert's PayPal REST app.")
@click.option("--secret", required=True, envvar="CALLME_PAYPAL_SECRET", help="Its secret (or CALLME_PAYPAL_SECRET).")
@click.option("--mode", type=click.Choice(["sandbox", "live"]), default="sandbox", show_default=True)
@click.option("--webhook-id", default=None, help="The id of the webhook that points at "
              "/api/v1/paypal/webhooks/<handle>.")
@click.option("--no-check", is_flag=True, help="Store without asking PayPal for a token first.")
@with_appcontext
@needs_schema
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
@needs_schema
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
@needs_schema
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


@click.group("reviews")
def reviews_group():
    """Ratings after paid sessions: list them, remove one for a policy reason."""


@reviews_group.command("remove")
@click.argument("review_id", type=int)
@click.option("--reason", required=True, help="The policy the review breaks (shown to nobody, logged and kept).")
@with_appcontext
@needs_schema
def reviews_remove_command(review_id, reason):
    """Remove a review for a stated policy reason: it no longer shows or counts. Logged."""
    from .reviews import RatingRefused, remove

    try:
        review = remove(review_id, reason)
    except RatingRefused as e:
        raise click.ClickException(e.message) from None
    click.echo(f"Review {review.id} (expert {review.expert_id}, call {review.call_id}) removed: "
               f"{review.removed_reason}")


@reviews_group.command("list")
@click.option("--handle", default=None)
@with_appcontext
@needs_schema
def reviews_list_command(handle):
    """Reviews, newest first (removed ones marked)."""
    from .reviews import Review

    q = db.select(Review).order_by(Review.id.desc())
    if handle:
        q = q.join(Expert, Expert.id == Review.expert_id).where(Expert.handle == handle.lower())
    for r in db.session.scalars(q):
        state = f"removed: {r.removed_reason}" if r.removed_at else "shown"
        click.echo(f"{r.id}\t{r.expert_id}\t{r.call_id}\t{r.stars}\t{r.created_at:%Y-%m-%d}\t{state}")


def gunicorn_argv(bind, workers=1, extra=()):
    """The gunicorn command that serves callme: gevent workers, cheap idle sockets."""
    return [sys.executable, "-m", "gunicorn", "--worker-class", "gevent", "--workers", str(workers),
            "--worker-connections", "20000", "--bind", bind, "--graceful-timeout", "5",
            "--no-control-socket", *extra, "callme:create_app()"]


@click.command("serve")
@click.option("--bind", default="127.0.0.1:5000", show_default=True)
@click.option("--workers", default=1, show_default=True,
              help="More than one needs a bus shared between processes, which callme does not have yet.")
@with_appcontext
def serve(bind, workers):
    """Upgrade the database and serve with gunicorn (gevent)."""
    from flask_migrate import upgrade

    if workers > 1 and not current_app.extensions["callme.bus"].several_processes:
        # Each worker would hold its own in-process bus and only one may serve the database:
        # the others would answer 503. REDIS_URL changes nothing until a Redis bus exists.
        raise click.UsageError("Run one worker: several need a bus shared between processes, and callme only "
                               "has the in-process bus so far (REDIS_URL does not provide one yet).")
    upgrade()
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
    from .dev.demo import run  # the dev tools load only here: production never imports them

    run(bind, site_port, paypal_port)


def main():
    from . import create_app

    FlaskGroup(create_app=create_app, add_default_commands=True,
               help="callme: sell your time over live browser calls.")(prog_name="callme")
