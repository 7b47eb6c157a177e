"""Database models. Clock fields of a call are integer milliseconds since the epoch."""
import hashlib
import re
import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

HANDLE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
MAX_PRICE = 10_000_000  # minor units per minute
# What callme accepts as a PayPal order id, wherever one comes in (API bodies, PayPal's return).
ORDER_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# First path segments callme serves itself: an expert's page /<handle> must never shadow them.
RESERVED_HANDLES = frozenset(
    "api ws w widget embed login logout console dashboard receipts paypal healthz static admin "
    "book bookings appointments help about terms privacy "
    "signup verify password email dev mailbox media internal rate".split())

OPEN_STATES = ("created", "ringing", "accepted", "active")
CALL_STATES = OPEN_STATES + ("ended",)
CALL_KINDS = ("instant", "consultation", "appointment")


def off_the_loop(fn, *args):
    """Run CPU-heavy work (password hashing, ~0.1 s) on a real thread under gevent, so the
    worker's other sockets are not frozen meanwhile; hashlib releases the GIL while it works."""
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return fn(*args)
    if not monkey.is_module_patched("threading"):
        return fn(*args)
    return get_hub().threadpool.apply(fn, args)


def password_matches(password_hash, password):
    """Check a password against a hash, off the event loop."""
    return off_the_loop(check_password_hash, password_hash, password)


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_call_id():
    return secrets.token_urlsafe(12)


class Expert(db.Model):
    __tablename__ = "experts"
    __table_args__ = (
        sa.CheckConstraint("price_minor >= 0", name="ck_experts_price_minor"),
        sa.CheckConstraint("free_seconds >= 0", name="ck_experts_free_seconds"),
        sa.CheckConstraint("cap_minutes >= 1", name="ck_experts_cap_minutes"),
        sa.CheckConstraint("length(currency) = 3", name="ck_experts_currency"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    handle: Mapped[str] = mapped_column(sa.String(32), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(120))
    price_minor: Mapped[int] = mapped_column(sa.Integer, default=0)
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    price_changed_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    free_seconds: Mapped[int] = mapped_column(sa.Integer, default=60)
    cap_minutes: Mapped[int] = mapped_column(sa.Integer, default=60)
    allowed_origins: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    # The expert's own PayPal REST app; the secret only ever encrypted (see paypal.py).
    paypal_client_id: Mapped[str | None] = mapped_column(sa.String(128))
    paypal_secret_enc: Mapped[str | None] = mapped_column(sa.Text)
    paypal_mode: Mapped[str | None] = mapped_column(sa.String(8))
    paypal_webhook_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Bumped on every change of the credentials: cached SDK clients of older ones are dropped.
    paypal_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    paypal_connected_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    # When the expert proved the email address theirs (a sign-up's link); None: not yet, no login.
    # Experts made by the operator (``create_expert``'s default) count as verified.
    email_verified_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    calls = relationship("Call", back_populates="expert", lazy="dynamic")

    @property
    def paypal_connected(self):
        return bool(self.paypal_client_id and self.paypal_secret_enc)

    @property
    def hold_minor(self):
        """What a paid call's PayPal hold covers: the longest call (the cap) at the price."""
        return self.cap_minutes * self.price_minor

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        return password_matches(self.password_hash, password)

    def __repr__(self):
        return f"<Expert {self.handle}>"


class ExpertSession(db.Model):
    """A live login. The signed session cookie carries the expert's id and a random session id;
    only its SHA-256 is stored. A request is logged in while the row exists and has not
    expired, so logging out (deleting the row) ends the session even for a copied cookie."""

    __tablename__ = "expert_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    # Fixed at login: a stolen cookie is worth at most one session lifetime, however it is used.
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)

    @staticmethod
    def _key(sid):
        return hashlib.sha256(sid.encode()).hexdigest()

    @classmethod
    def open(cls, expert_id, lifetime_seconds):
        """Start a session (the caller commits); return the id the cookie carries."""
        now = utcnow()
        db.session.execute(sa.delete(cls).where(cls.expires_at <= now))  # expired ones, now and then
        sid = secrets.token_urlsafe(32)
        db.session.add(cls(id=cls._key(sid), expert_id=expert_id, created_at=now,
                           expires_at=now + timedelta(seconds=lifetime_seconds)))
        return sid

    @classmethod
    def expert(cls, expert_id, sid):
        """The expert of a live session, or None: one primary-key lookup per request."""
        if not isinstance(expert_id, int) or not isinstance(sid, str) or not sid:
            return None
        return db.session.scalar(
            sa.select(Expert).join(cls, cls.expert_id == Expert.id)
            .where(cls.id == cls._key(sid), Expert.id == expert_id, cls.expires_at > utcnow()))

    @classmethod
    def close(cls, sid):
        """End one session (the caller commits)."""
        if isinstance(sid, str) and sid:
            db.session.execute(sa.delete(cls).where(cls.id == cls._key(sid)))

    @classmethod
    def close_all(cls, expert_id):
        """End every session of an expert (the caller commits)."""
        db.session.execute(sa.delete(cls).where(cls.expert_id == expert_id))


class Call(db.Model):
    __tablename__ = "calls"
    __table_args__ = (
        sa.CheckConstraint("price_minor >= 0", name="ck_calls_price_minor"),
        sa.CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="ck_calls_amount_minor"),
        sa.CheckConstraint(f"state IN {CALL_STATES!r}", name="ck_calls_state"),
        # One open call per expert, enforced by the database so that two racing
        # visitors cannot both ring the same expert.
        sa.Index(
            "uq_calls_one_open_per_expert", "expert_id", unique=True,
            sqlite_where=sa.text("state <> 'ended'"),
            postgresql_where=sa.text("state <> 'ended'"),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_call_id)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="instant")
    state: Mapped[str] = mapped_column(sa.String(16), default="created", index=True)
    # Terms locked when the call is created: a later price change never touches this call.
    price_minor: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    free_seconds: Mapped[int] = mapped_column(sa.Integer)
    cap_minutes: Mapped[int] = mapped_column(sa.Integer)
    origin: Mapped[str | None] = mapped_column(sa.String(255))

    created_ms: Mapped[int] = mapped_column(sa.BigInteger)
    rung_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    accepted_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    active_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    ended_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    visitor_seen_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    expert_seen_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    visitor_connected_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    expert_connected_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    end_reason: Mapped[str | None] = mapped_column(sa.String(32))
    ended_by: Mapped[str | None] = mapped_column(sa.String(16))

    billed_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    billed_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    amount_minor: Mapped[int | None] = mapped_column(sa.Integer)
    settled_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    expert = relationship("Expert", back_populates="calls")
    payment = relationship("Payment", back_populates="call", uselist=False)

    @property
    def is_open(self):
        return self.state in OPEN_STATES

    def __repr__(self):
        return f"<Call {self.id} {self.state}>"


LEDGER_KINDS = ("hold", "capture", "void", "refund", "reversal", "charge")


class LedgerEntry(db.Model):
    """One movement of money. Rows are only ever inserted.

    ``hold``: a visitor's PayPal authorization (nobody's money yet). ``capture``: money
    taken, to the expert's own PayPal; for a paid call this is the movement, there is no
    separate charge. ``void``: the part of a hold released (the whole hold when voided, the
    rest of it after a final capture). ``refund``, ``reversal``: money given back. ``charge``
    is what the call core wrote before payments existed; old rows keep it.
    Earnings = captures - refunds - reversals. No commission is ever taken.
    """

    __tablename__ = "ledger"
    __table_args__ = (
        sa.CheckConstraint("amount_minor >= 0", name="ck_ledger_amount_minor"),
        sa.CheckConstraint("length(currency) = 3", name="ck_ledger_currency"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # A stable key per movement: inserting the same movement twice violates it.
    key: Mapped[str] = mapped_column(sa.String(128), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id"), index=True)
    call_id: Mapped[str | None] = mapped_column(sa.ForeignKey("calls.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments.id", name="fk_ledger_payment_id"),
                                                   index=True)
    amount_minor: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    detail: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


PAYMENT_INTENTS = ("AUTHORIZE", "CAPTURE")
PAYMENT_STATES = (
    "created",            # an order at PayPal, waiting for the payer's approval
    "authorized",         # approved and authorized: a hold on the visitor's PayPal
    "capture_pending",    # the call ended with an amount due; the capture is (re)tried
    "capture_failed",     # PayPal refused the capture; retried with backoff, shown to the expert
    "void_pending",       # the call ended free; the hold is being voided
    "captured",           # money taken (a call's metered amount, or a prepaid order)
    "voided",             # the hold released, nothing taken
    "partially_refunded", "refunded",
    "reversed",           # the payer disputed and PayPal took the money back
    "denied",             # PayPal denied the capture after accepting it
)


class Payment(db.Model):
    """One PayPal order and what became of it; see ``payments.TRANSITIONS``."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("amount_minor > 0", name="ck_payments_amount_minor"),
        sa.CheckConstraint("due_minor IS NULL OR due_minor >= 0", name="ck_payments_due_minor"),
        sa.CheckConstraint("captured_minor IS NULL OR (captured_minor > 0 AND captured_minor <= amount_minor)",
                           name="ck_payments_captured_minor"),
        sa.CheckConstraint("length(currency) = 3", name="ck_payments_currency"),
        sa.CheckConstraint(f"state IN {PAYMENT_STATES!r}", name="ck_payments_state"),
        sa.CheckConstraint(f"intent IN {PAYMENT_INTENTS!r}", name="ck_payments_intent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id"), index=True)
    call_id: Mapped[str | None] = mapped_column(sa.ForeignKey("calls.id"), unique=True)
    intent: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(24), default="created", index=True)
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount_minor: Mapped[int] = mapped_column(sa.Integer)           # ordered, and authorized
    due_minor: Mapped[int | None] = mapped_column(sa.Integer)       # to capture when the call ended
    captured_minor: Mapped[int | None] = mapped_column(sa.Integer)
    paypal_client_id: Mapped[str] = mapped_column(sa.String(128))  # the app the order was made with
    order_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    authorization_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    capture_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_ms: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(255))
    # PayPal's answers, as they came: {"order": {...}, "authorize": {...}, "capture": {...}, ...}.
    raw: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, onupdate=utcnow)

    expert = relationship("Expert")
    call = relationship("Call", back_populates="payment")

    def __repr__(self):
        return f"<Payment {self.id} {self.order_id} {self.state}>"


class PayPalEvent(db.Model):
    """A webhook event applied once (its PayPal event id is unique)."""

    __tablename__ = "paypal_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id"), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    payment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments.id"))
    outcome: Mapped[str] = mapped_column(sa.String(32))
    payload: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(LedgerEntry, "before_update")
@event.listens_for(LedgerEntry, "before_delete")
def _ledger_is_append_only(mapper, connection, target):
    raise AppendOnlyError("ledger rows are never changed or deleted")


class BusLease(db.Model):
    """Which process holds the in-process bus (see bus.py)."""

    __tablename__ = "bus_lease"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(255))
    renewed_ms: Mapped[int] = mapped_column(sa.BigInteger)


# The database refuses changes to ledger rows too, whatever statement asks for them.
LEDGER_GUARD_SQLITE = [
    """CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
       BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END""",
    """CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
       BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END""",
]
LEDGER_GUARD_POSTGRESQL = [
    """CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'ledger rows are append-only'; END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE ON ledger
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()""",
]

for _statement in LEDGER_GUARD_SQLITE:
    event.listen(LedgerEntry.__table__, "after_create", sa.DDL(_statement).execute_if(dialect="sqlite"))
for _statement in LEDGER_GUARD_POSTGRESQL:
    event.listen(LedgerEntry.__table__, "after_create", sa.DDL(_statement).execute_if(dialect="postgresql"))


# Tables that live in their rooms, imported here so that the metadata (migrations, create_all)
# knows every table. Each line is a room's; keep one import per line.
from .notify import outbox as _outbox  # noqa: F401,E402
from .experts import profiles as _profiles  # noqa: F401,E402
from .experts import media as _media  # noqa: F401,E402
from .experts import domains as _domains  # noqa: F401,E402
from . import reviews as _reviews  # noqa: F401,E402
