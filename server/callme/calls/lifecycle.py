"""The call lifecycle: ring, accept, connect, meter, end and settle.

The server is the only clock. Every state change is a compare-and-set UPDATE on the
call's row, so two connections (or two workers) racing to change one call cannot both
win; the side effects (frames to the peers, the console) follow only a winning change.
"""
import logging
import threading
import time

import sqlalchemy as sa

from . import metering
from . import frames as signaling
from ..extensions import db
from .ice import ice_servers
from ..money.ledger import settle
from ..models import OPEN_STATES, Call, Payment, new_call_id
from .tokens import tokens_for

log = logging.getLogger(__name__)


def wall_ms():
    return int(time.time() * 1000)


class CallError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def call_channel(call_id, role):
    return f"call:{call_id}:{role}"


def expert_channel(expert_id):
    return f"expert:{expert_id}"


def presence_key(expert_id):
    return f"presence:{expert_id}"


def other(role):
    return "expert" if role == "visitor" else "visitor"


def terms_of(call):
    return metering.Terms(call.price_minor, call.currency, call.free_seconds, call.cap_minutes)


class CallService:
    """One per app. Holds only what is local to this process: the sockets it serves and
    their exact last heartbeats; everything shared lives in the database or the bus."""

    def __init__(self, app, bus, clock=None):
        self.config = app.config
        self.bus = bus
        self.clock = clock or app.config.get("CLOCK_MS") or wall_ms
        self.tokens = tokens_for(app.config)
        self.started_ms = self.clock()
        self._lock = threading.Lock()
        self._seen = {}        # (call_id, role) -> last heartbeat, ms
        self._dirty = set()    # (call_id, role) whose heartbeat is not persisted yet
        self._local = {}       # call_id -> {role: connection}
        self._warned = {}      # call_id -> {seconds before cap already warned}
        self._flushed_ms = 0
        self._payments_ms = 0
        # Called with a payment id once a call's payment is due (after the commit that ended
        # it); the app wires it to payments.Settler. None: settled by the retry loop alone.
        self.on_payment_due = None

    # ---- presence --------------------------------------------------------------------

    def set_presence(self, expert_id, online, announce=True):
        if online:
            self.bus.set_key(presence_key(expert_id), "online", ttl=self.config["PRESENCE_TTL"])
        else:
            self.bus.delete_key(presence_key(expert_id))
        if announce:
            self.bus.publish(expert_channel(expert_id), {"type": "presence", "status": self.status(expert_id)})

    def open_call(self, expert_id):
        return db.session.scalar(sa.select(Call).where(Call.expert_id == expert_id, Call.state.in_(OPEN_STATES)))

    def status(self, expert_id):
        if self.bus.get_key(presence_key(expert_id)) != "online":
            return "offline"
        return "busy" if self.open_call(expert_id) is not None else "online"

    # ---- creation --------------------------------------------------------------------

    def create(self, expert, kind, origin, payment=None):
        """Create a call on the expert's current terms, bound to its authorized payment in the
        same transaction; raise CallError when busy (or the payment was taken meanwhile)."""
        call = Call(
            id=new_call_id(), expert_id=expert.id, kind=kind, state="created", origin=origin,
            price_minor=expert.price_minor, currency=expert.currency,
            free_seconds=expert.free_seconds, cap_minutes=expert.cap_minutes,
            created_ms=self.clock(),
        )
        db.session.add(call)
        try:
            db.session.flush()
            if payment is not None:
                bound = db.session.execute(
                    sa.update(Payment).where(Payment.id == payment.id, Payment.call_id.is_(None),
                                             Payment.state == "authorized").values(call_id=call.id))
                if bound.rowcount != 1:
                    db.session.rollback()
                    raise CallError("payment_used", "This PayPal approval was already used for a call.")
            db.session.commit()
        except sa.exc.IntegrityError:
            db.session.rollback()
            raise CallError("expert_busy", f"{expert.display_name} is in another call.") from None
        return call

    def grant(self, call, role):
        """What a participant needs to join: a token and the ICE servers."""
        return {
            "token": self.tokens.call_token(call.id, role),
            "expires_in": self.config["CALL_TOKEN_TTL"],
            "ice_servers": ice_servers(self.config, f"{call.id}-{role}", self.clock() // 1000),
        }

    # ---- helpers ---------------------------------------------------------------------

    def get(self, call_id):
        db.session.expire_all()
        return db.session.get(Call, call_id)

    def _cas(self, call_id, from_states, **values):
        done = db.session.execute(
            sa.update(Call).where(Call.id == call_id, Call.state.in_(from_states)).values(**values)
        )
        db.session.commit()
        return done.rowcount == 1

    def _both(self, call_id, message):
        for role in ("visitor", "expert"):
            self.bus.publish(call_channel(call_id, role), message)

    # ---- participants ----------------------------------------------------------------

    def join(self, call_id, role):
        """A participant's socket authenticated: record it, ring on the visitor's first join."""
        call = self.get(call_id)
        if call is None:
            raise CallError("call_not_found", "This call does not exist.")
        if call.state == "ended":
            raise CallError("call_ended", "This call has ended.")
        if role == "expert" and call.state not in ("accepted", "active"):
            raise CallError("not_accepted", "The call has not been accepted.")
        now = self.clock()
        self.heartbeat(call_id, role, now)
        self.flush_heartbeats()
        if role == "visitor" and call.state == "created":
            if self._cas(call_id, ("created",), state="ringing", rung_ms=now):
                call = self.get(call_id)
                self.bus.publish(expert_channel(call.expert_id), self.ring_frame(call))
                self.bus.publish(expert_channel(call.expert_id), {"type": "presence", "status": "busy"})
        return self.get(call_id)

    def ring_frame(self, call):
        return {
            "type": "ring", "call_id": call.id, "kind": call.kind, "origin": call.origin,
            "price": call.price_minor, "currency": call.currency, "free_seconds": call.free_seconds,
            "timeout_ms": max(0, call.rung_ms + self.config["RING_TIMEOUT"] * 1000 - self.clock()),
        }

    def attach(self, call_id, role, connection):
        with self._lock:
            self._local.setdefault(call_id, {})[role] = connection

    def detach(self, call_id, role, connection):
        with self._lock:
            conns = self._local.get(call_id, {})
            if conns.get(role) is connection:
                del conns[role]
            if not conns:
                self._local.pop(call_id, None)

    def heartbeat(self, call_id, role, now=None):
        with self._lock:
            self._seen[(call_id, role)] = now if now is not None else self.clock()
            self._dirty.add((call_id, role))

    def flush_heartbeats(self):
        """Persist the latest heartbeats in one statement per role."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            values = [(c, r, self._seen[(c, r)]) for c, r in dirty if (c, r) in self._seen]
        table = Call.__table__
        for role in ("visitor", "expert"):
            rows = [{"cid": c, "seen": t} for c, r, t in values if r == role]
            if rows:
                db.session.execute(
                    table.update().where(table.c.id == sa.bindparam("cid"), table.c.state != "ended")
                    .values({f"{role}_seen_ms": sa.bindparam("seen")}),
                    rows,
                )
        if values:
            db.session.commit()

    def accept(self, expert_id, call_id):
        call = self.get(call_id)
        if call is None or call.expert_id != expert_id:
            raise CallError("call_not_found", "No such call is ringing for you.")
        if not self._cas(call_id, ("ringing",), state="accepted", accepted_ms=self.clock()):
            raise CallError("not_ringing", "This call is no longer ringing.")
        self.bus.publish(call_channel(call_id, "visitor"), {"type": "accepted"})
        self.bus.publish(expert_channel(expert_id), {"type": "ring_ended", "call_id": call_id, "reason": "accepted"})
        return self.get(call_id)

    def decline(self, expert_id, call_id):
        call = self.get(call_id)
        if call is None or call.expert_id != expert_id:
            raise CallError("call_not_found", "No such call is ringing for you.")
        if call.state != "ringing" or not self.end(call, "declined", by="expert"):
            raise CallError("not_ringing", "This call is no longer ringing.")

    def report(self, call_id, role, pc_state):
        """A peer reports its RTCPeerConnection state; both connected makes the call active."""
        if pc_state != "connected":
            return
        call = self.get(call_id)
        if call is None or call.state not in ("accepted", "active"):
            return
        column = "visitor_connected_ms" if role == "visitor" else "expert_connected_ms"
        now = self.clock()
        db.session.execute(
            sa.update(Call).where(Call.id == call_id, getattr(Call, column).is_(None)).values({column: now})
        )
        db.session.commit()
        call = self.get(call_id)
        if call.visitor_connected_ms and call.expert_connected_ms and call.state == "accepted":
            if self._cas(call_id, ("accepted",), state="active", active_ms=now):
                self._both(call_id, {"type": "active", "started_ms": now, **metering.meter(terms_of(call), now, now)})

    def hangup(self, call_id, role):
        call = self.get(call_id)
        if call is not None and call.state != "ended":
            reason = "cancelled" if call.state in ("created", "ringing") and role == "visitor" else "hangup"
            self.end(call, reason, by=role)

    # ---- the end ---------------------------------------------------------------------

    def end(self, call, reason, by=None, end_ms=None):
        """End an open call, bill it and settle it in one transaction. False if already ended."""
        end_ms = self.clock() if end_ms is None else end_ms
        was = call.state
        bill = metering.bill(terms_of(call), call.active_ms, end_ms if call.active_ms else None)
        done = db.session.execute(
            sa.update(Call).where(Call.id == call.id, Call.state == call.state).values(
                state="ended", ended_ms=end_ms, end_reason=reason, ended_by=by,
                billed_ms=bill.duration_ms, billed_minutes=bill.minutes, amount_minor=bill.amount_minor,
            )
        )
        if done.rowcount != 1:
            db.session.rollback()
            return False
        db.session.expire(call)
        due = settle(db.session, call)
        due_id = due.id if due is not None else None
        db.session.commit()
        with self._lock:
            self._warned.pop(call.id, None)
            for role in ("visitor", "expert"):
                self._seen.pop((call.id, role), None)
                self._dirty.discard((call.id, role))
        frame = self.ended_frame(call)
        self._both(call.id, frame)
        console = expert_channel(call.expert_id)
        kind = "ring_ended" if was in ("created", "ringing") else "call_ended"
        self.bus.publish(console, {"type": kind, "call_id": call.id, "reason": reason})
        self.bus.publish(console, {"type": "presence", "status": self.status(call.expert_id)})
        log.info("call %s ended: %s by %s, %s ms, %s %s",
                 call.id, reason, by, bill.duration_ms, bill.amount_minor, bill.currency)
        # PayPal is asked only now, after the commit and the frames: ending never waits on it.
        if due_id is not None and self.on_payment_due is not None:
            try:
                self.on_payment_due(due_id)
            except Exception:
                db.session.rollback()
                log.exception("settling the payment of call %s failed; the retry loop takes over", call.id)
        return True

    def ended_frame(self, call):
        return {
            "type": "ended", "call_id": call.id, "reason": call.end_reason, "by": call.ended_by,
            "duration_ms": call.billed_ms, "minutes": call.billed_minutes, "amount": call.amount_minor,
            "currency": call.currency, "receipt": self.tokens.receipt_token(call.id),
        }

    # ---- the clock -------------------------------------------------------------------

    def tick(self):
        """Enforce time-outs, the cap and silence; push meters to this process's sockets."""
        now = self.clock()
        cfg = self.config
        # Heartbeats are exact in memory; the database gets them every HEARTBEAT_PERSIST
        # seconds, which bounds what a crash can cost the expert (never the visitor).
        if now - self._flushed_ms >= cfg["HEARTBEAT_PERSIST"] * 1000:
            self._flushed_ms = now
            self.flush_heartbeats()
        db.session.expire_all()
        for call in self._due(now, cfg):
            try:
                self._tick_call(call, now, cfg)
            except Exception:
                db.session.rollback()
                log.exception("tick failed for call %s", call.id)
        self._push_meters(now, cfg)
        if self.on_payment_due is not None and now - self._payments_ms >= cfg["PAYMENTS_RETRY_INTERVAL"] * 1000:
            self._payments_ms = now
            self.retry_payments()

    def retry_payments(self):
        """Captures and voids that failed before, when their backoff is over: in the background
        (PayPal may be slow or down, the clock must not wait), inline in tests."""
        retry = getattr(self.on_payment_due, "retry_due", None)
        if retry is not None:
            retry()

    def _due(self, now, cfg):
        """Open calls whose time-out, cap or silence deadline may have passed.

        The database narrows them down (so a tick costs little however many calls are
        open); ``_tick_call`` decides, with the exact in-memory heartbeats.
        """
        grace = cfg["SILENCE_GRACE"] * 1000
        conditions = [
            (Call.state == "created") & (Call.created_ms <= now - cfg["CALL_TOKEN_TTL"] * 1000),
            (Call.state == "ringing") & (Call.rung_ms <= now - cfg["RING_TIMEOUT"] * 1000),
            (Call.state == "accepted") & (Call.accepted_ms <= now - cfg["CONNECT_TIMEOUT"] * 1000),
            (Call.state == "active") & (Call.active_ms + Call.cap_minutes * metering.MINUTE_MS <= now),
        ]
        if now - self.started_ms >= grace:  # nobody is silent before a restarted server had a grace period
            conditions.append(Call.state.in_(OPEN_STATES) & (
                (Call.visitor_seen_ms <= now - grace) | (Call.expert_seen_ms <= now - grace)))
        return db.session.scalars(sa.select(Call).where(sa.or_(*conditions))).all()

    def _tick_call(self, call, now, cfg):
        state = call.state
        if state == "created" and now - call.created_ms >= cfg["CALL_TOKEN_TTL"] * 1000:
            self.end(call, "expired")
            return
        if state == "ringing" and now - call.rung_ms >= cfg["RING_TIMEOUT"] * 1000:
            self.end(call, "missed", end_ms=call.rung_ms + cfg["RING_TIMEOUT"] * 1000)
            return
        if state == "accepted" and now - call.accepted_ms >= cfg["CONNECT_TIMEOUT"] * 1000:
            self.end(call, "failed")
            return
        terms = terms_of(call)
        cap_end = call.active_ms + terms.cap_ms if state == "active" else None
        seen = self.seen_of(call)
        floor = max(self.started_ms, call.created_ms)
        last = metering.silent_since(seen, now, cfg["SILENCE_GRACE"] * 1000, floor_ms=floor)
        # Whichever came first wins, even when a late tick sees both.
        if last is not None and (cap_end is None or last < cap_end):
            silent_role = min((r for r, t in seen.items() if t == last))
            self.end(call, "silence", by=silent_role, end_ms=max(last, call.active_ms or last))
            return
        if cap_end is not None and now >= cap_end:
            self.end(call, "cap", end_ms=cap_end)

    def seen_of(self, call):
        """Last heartbeat per joined role: the exact in-memory one or the persisted one."""
        with self._lock:
            mem = {r: self._seen.get((call.id, r)) for r in ("visitor", "expert")}
        stored = {"visitor": call.visitor_seen_ms, "expert": call.expert_seen_ms}
        seen = {}
        for role in ("visitor", "expert"):
            values = [t for t in (mem[role], stored[role]) if t is not None]
            if values:
                seen[role] = max(values)
        return seen

    def _push_meters(self, now, cfg):
        """Meter frames (and due cap warnings) to this process's participants of active calls."""
        with self._lock:
            local = {call_id: dict(conns) for call_id, conns in self._local.items()}
        ids = list(local)
        for start in range(0, len(ids), 100):
            rows = db.session.execute(
                sa.select(Call.id, Call.active_ms, Call.price_minor, Call.currency, Call.free_seconds,
                          Call.cap_minutes).where(Call.id.in_(ids[start:start + 100]), Call.state == "active")
            ).all()
            for row in rows:
                terms = metering.Terms(row.price_minor, row.currency, row.free_seconds, row.cap_minutes)
                if now >= row.active_ms + terms.cap_ms:
                    continue  # the cap ends it at this tick or the next
                with self._lock:
                    sent = self._warned.setdefault(row.id, set())
                    due = metering.due_warnings(terms, row.active_ms, now, cfg["CAP_WARNINGS"], sent)
                    if due:
                        sent.update(w for w in cfg["CAP_WARNINGS"] if w >= due[0])
                frames = [signaling.build("meter", **metering.meter(terms, row.active_ms, now))]
                for seconds in due:
                    frames.append(signaling.build(
                        "warning", code="cap", seconds_left=seconds,
                        message=f"The call ends in {seconds} seconds (the cap of {row.cap_minutes} minutes)."))
                for conn in local[row.id].values():
                    for frame in frames:
                        conn.send_raw(frame)
            # Let relays and heartbeats in between batches: under gevent a burst of a
            # thousand sends would otherwise hold the worker for tens of milliseconds.
            time.sleep(0)

    def refresh_tokens(self):
        """Hand each local participant a fresh token before its current one expires."""
        with self._lock:
            local = [(cid, role, conn) for cid, conns in self._local.items() for role, conn in conns.items()]
        now = self.clock()
        for call_id, role, conn in local:
            if now - conn.token_ms >= self.config["CALL_TOKEN_TTL"] * 500:
                conn.token_ms = now
                conn.deliver({"type": "token", "token": self.tokens.call_token(call_id, role),
                              "expires_in": self.config["CALL_TOKEN_TTL"]})
