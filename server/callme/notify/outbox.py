"""The mail outbox: ``queue`` adds a row in the caller's transaction; the sender delivers it.

A mail is never lost and never sent twice by callme:
- ``queue`` only inserts a row (state ``pending``; ``kept`` when no SMTP server is configured:
  the local mailbox shows it). If the caller's transaction rolls back, no mail exists.
- Right after the commit that queued it, the ``Sender`` runs a pass (a background thread; inline
  when MAIL_SEND_ASYNC is off), and the clock runs one every MAIL_RETRY_INTERVAL seconds.
- A pass claims each due row with a compare-and-set (``pending`` -> ``sending``, committed) before
  talking to the SMTP server, so of two workers only one sends it. Accepted: ``sent``. Refused for
  now (connection refused, time-out, 4xx): back to ``pending`` with a backoff. Refused for good
  (5xx) or out of attempts: ``failed``, kept with the error (``callme mail retry`` sends it again).
- A worker that died between its claim and its answer leaves a ``sending`` row; once its claim
  has expired (MAIL_CLAIM_SECONDS) the row is pending again. That is the one case where the SMTP
  server may see a message twice; it carries the same Message-ID both times, so it is one message.
"""
import logging
import threading
import time
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..extensions import db
from ..models import utcnow
from . import mail

log = logging.getLogger(__name__)

MAIL_STATES = ("pending", "sending", "sent", "failed", "kept")
CLAIM_SECONDS = 600  # longer than any SMTP conversation (MAIL_SMTP_TIMEOUT per step)
QUEUED = "callme.mail_queued"


class OutboxMail(db.Model):
    """One mail to send (or, with no SMTP server, kept for the local mailbox)."""

    __tablename__ = "mail_outbox"
    __table_args__ = (
        sa.CheckConstraint(f"state IN {MAIL_STATES!r}", name="ck_mail_outbox_state"),
        sa.Index("ix_mail_outbox_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The caller's key for this mail: queuing the same key twice makes one mail.
    key: Mapped[str] = mapped_column(sa.String(128), unique=True)
    message_id: Mapped[str] = mapped_column(sa.String(128))
    to_addr: Mapped[str] = mapped_column(sa.String(254), index=True)
    subject: Mapped[str] = mapped_column(sa.String(255))
    text: Mapped[str] = mapped_column(sa.Text)
    html: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(sa.DateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    def __repr__(self):
        return f"<OutboxMail {self.id} {self.to_addr} {self.state}>"


def _one_line(value, name, limit):
    if not isinstance(value, str) or not value.strip() or "\r" in value or "\n" in value or len(value) > limit:
        raise ValueError(f"a mail's {name} must be one line of at most {limit} characters")
    return value.strip()


def queue(to, subject, text, html=None, key=None, config=None):
    """Add a mail to the outbox in the caller's transaction (the caller commits); returns its row.

    ``key``: a stable name for this mail (``verify:<expert id>:<email>``...); the same key queued
    again returns the row already there, so a repeated request cannot send a mail twice.
    """
    from flask import current_app

    config = config or current_app.config
    to = _one_line(to, "recipient", 254)
    subject = _one_line(subject, "subject", 255)
    key = key or f"mail:{uuid.uuid4()}"
    if len(key) > 128:
        raise ValueError("a mail's key has at most 128 characters")
    row = db.session.scalar(sa.select(OutboxMail).filter_by(key=key))
    if row is not None:
        return row
    kept = mail.embedded(config)
    row = OutboxMail(key=key, message_id=mail.message_id(key, config), to_addr=to, subject=subject, text=text,
                     html=html, state="kept" if kept else "pending", next_attempt_at=utcnow())
    db.session.add(row)
    if not kept:
        db.session.info[QUEUED] = True  # the commit starts a pass (see _after_commit)
    return row


# ---- the sender -----------------------------------------------------------------------------------

def backoff(attempts, config):
    """Seconds before the next attempt after ``attempts`` failed ones."""
    base, most = config.get("MAIL_RETRY_BASE", 30), config.get("MAIL_RETRY_MAX", 3600)
    return min(most, base * 2 ** max(0, attempts - 1))


def _claim(session, row_id, now):
    """pending -> sending, committed, for one row: True when this worker won it."""
    done = session.execute(
        sa.update(OutboxMail).where(OutboxMail.id == row_id, OutboxMail.state == "pending",
                                    OutboxMail.next_attempt_at <= now)
        .values(state="sending", claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                attempts=OutboxMail.attempts + 1))
    session.commit()
    return done.rowcount == 1


def _settle(session, row_id, **values):
    """sending -> the outcome, for the row this worker claimed."""
    session.execute(sa.update(OutboxMail).where(OutboxMail.id == row_id, OutboxMail.state == "sending")
                    .values(claimed_until=None, **values))
    session.commit()


def send_due(engine, config, now=None, everything=False):
    """One pass: send every pending mail whose time has come (with ``everything``, the failed ones
    and those waiting for a retry too). Returns {row id: state after} for the rows it tried."""
    now = now or utcnow()
    results = {}
    with Session(engine) as session:
        # Claims of workers that died mid-send: pending again.
        session.execute(sa.update(OutboxMail).where(OutboxMail.state == "sending", OutboxMail.claimed_until < now)
                        .values(state="pending", claimed_until=None))
        if mail.embedded(config):  # no SMTP server (any more): the local mailbox holds them
            session.execute(sa.update(OutboxMail).where(OutboxMail.state == "pending").values(state="kept"))
            session.commit()
            return results
        if everything:
            session.execute(sa.update(OutboxMail).where(OutboxMail.state.in_(("pending", "failed")))
                            .values(state="pending", next_attempt_at=now))
        keep = config.get("MAIL_KEEP_DAYS", 30)
        session.execute(sa.delete(OutboxMail).where(OutboxMail.state == "sent",
                                                    OutboxMail.sent_at < now - timedelta(days=keep)))
        session.commit()
        due = session.scalars(sa.select(OutboxMail.id).where(
            OutboxMail.state == "pending", OutboxMail.next_attempt_at <= now).order_by(OutboxMail.id)).all()
        for row_id in due:
            if not _claim(session, row_id, now):
                continue  # another worker has it
            row = session.get(OutboxMail, row_id)
            try:
                mail.deliver(row, config)
            except mail.MailError as e:
                attempts = row.attempts
                give_up = e.permanent or attempts >= config.get("MAIL_MAX_ATTEMPTS", 30)
                log.warning("mail %s to %s: attempt %s failed (%s)%s", row_id, row.to_addr, attempts, e,
                            "; giving up" if give_up else "; will retry")
                state = "failed" if give_up else "pending"
                _settle(session, row_id, state=state, last_error=str(e)[:255],
                        next_attempt_at=now + timedelta(seconds=backoff(attempts, config)))
            else:
                state = "sent"
                _settle(session, row_id, state=state, sent_at=utcnow(), last_error=None)
            results[row_id] = state
            session.expire_all()
    return results


class Sender:
    """Runs ``send_due`` right after a commit that queued mail and, from the clock, for retries.

    One pass at a time per process; a kick during a pass makes it run once more.
    """

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._last_retry = 0.0

    def kick(self):
        """Send what is due now: in the background, or inline when MAIL_SEND_ASYNC is off."""
        if not self.app.config["MAIL_SEND_ASYNC"]:
            return self._pass()
        with self._lock:
            if self._running:
                self._again = True
                return None
            self._running = True
        threading.Thread(target=self._loop, name="callme-mail", daemon=True).start()
        return None

    def tick(self):
        """From the clock: a retry pass every MAIL_RETRY_INTERVAL seconds (none while mail is only
        kept for the local mailbox: there is nothing to send)."""
        if mail.embedded(self.app.config):
            return
        now = time.monotonic()
        if now - self._last_retry >= self.app.config["MAIL_RETRY_INTERVAL"]:
            self._last_retry = now
            self.kick()

    def _loop(self):
        while True:
            self._pass()
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False

    def _pass(self):
        try:
            with self.app.app_context():
                return send_due(db.engine, self.app.config)
        except Exception:
            log.exception("sending mail failed; the next pass retries")
            return None


@event.listens_for(Session, "after_commit")
def _after_commit(session):
    """A commit that queued mail starts a pass (after_rollback forgets the queued flag)."""
    if not session.info.pop(QUEUED, False):
        return
    from flask import current_app, has_app_context

    if not has_app_context():
        return  # the clock's next retry pass sends it
    sender = current_app.extensions.get("callme.mail")
    if sender is not None:
        sender.kick()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session):
    session.info.pop(QUEUED, None)
