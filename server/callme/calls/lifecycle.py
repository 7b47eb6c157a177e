"""The call lifecycle: ring, accept, connect, end, and hand the bill to payments.

The server is the only clock. Every state change goes through ``machine.transition`` (a
compare-and-set UPDATE on the call's row), so two connections (or two workers) racing to
change one call cannot both win; the events the change publishes on the bus follow only a
winning change. The lifecycle never touches a socket: the socket layer subscribes to the
call's and the expert's channels and sends what arrives.
"""
import logging
import time

import sqlalchemy as sa

from . import frames, machine
from .heartbeats import Heartbeats
from .ice import ice_servers
from .machine import ACCEPTED, ACTIVE, CREATED, ENDED, OPEN, RINGING
from .metering import Terms, bill, hangup_end
from .presence import Presence
from .tokens import tokens_for
from ..errors import CallmeError
from ..extensions import db
from ..models import Call, Payment, new_call_id
from ..money.ledger import mark_payment_due

log = logging.getLogger(__name__)

# How long a call remembers who made its latest offer (it is forgotten when the call ends).
OFFER_TTL_S = 24 * 3600


def wall_ms():
    return int(time.time() * 1000)


class CallError(CallmeError):
    """A call that cannot be made or changed now: answered 409."""

    status = 409

    def __init__(self, code, message):
        super().__init__(code, message)


def call_channel(call_id, role):
    return f"call:{call_id}:{role}"


def expert_channel(expert_id):
    return f"expert:{expert_id}"


def offer_key(call_id):
    return f"offer:{call_id}"


def other(role):
    return "expert" if role == "visitor" else "visitor"


class CallService:
    """One per app. Holds only what is local to this process (exact last heartbeats); everything
    shared lives in the database or the bus."""

    def __init__(self, app, bus, clock=None):
        self.config = app.config
        self.bus = bus
        self.clock = clock or app.config.get("CLOCK_MS") or wall_ms
        self.tokens = tokens_for(app.config)
        self.started_ms = self.clock()
        self.heartbeats = Heartbeats()
        self.presence = Presence(bus, app.config["PRESENCE_TTL"])
        self._flushed_ms = 0
        # Called with a payment id once a call's payment is due (after the commit that ended
        # it); the app wires it to payments.Settler. None: the clock's retry job settles it.
        self.on_payment_due = None

    # ---- presence --------------------------------------------------------------------

    def set_presence(self, expert_id, online, connection="default", announce=True):
        """One console (``connection``) says the expert is online (or renews it) or offline."""
        self.presence.set(expert_id, connection, online)
        if announce:
            self.bus.publish(expert_channel(expert_id), frames.presence(self.status(expert_id)))

    def open_call(self, expert_id):
        return db.session.scalar(sa.select(Call).where(Call.expert_id == expert_id, Call.state.in_(OPEN)))

    def status(self, expert_id):
        if not self.presence.online(expert_id):
            return "offline"
        return "busy" if self.open_call(expert_id) is not None else "online"

    # ---- creation --------------------------------------------------------------------

    def create(self, expert, kind, origin, payment=None):
        """Create a call on the expert's current terms, bound to its authorized payment in the
        same transaction; raise CallError when busy (or the payment was taken meanwhile)."""
        call = Call(
            id=new_call_id(), expert_id=expert.id, kind=kind, state=CREATED, origin=origin,
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

    def get(self, call_id):
        db.session.expire_all()
        return db.session.get(Call, call_id)

    # ---- participants ----------------------------------------------------------------

    def join(self, call_id, role):
        """A participant's socket authenticated: note it, ring on the visitor's first join."""
        call = self.get(call_id)
        if call is None:
            raise CallError("call_not_found", "This call does not exist.")
        if call.state == ENDED:
            raise CallError("call_ended", "This call has ended.")
        if role == "expert" and call.state not in (ACCEPTED, ACTIVE):
            raise CallError("not_accepted", "The call has not been accepted.")
        now = self.clock()
        # Persisted with the next flush, not now: until then the stored heartbeat is the one
        # from before this join, which bounds what a hang-up sent before it may claim (hangup).
        self.heartbeat(call_id, role, now)
        if role == "visitor" and call.state == CREATED:
            done = machine.step(CREATED, "join")
            if machine.transition(call_id, CREATED, done.to, rung_ms=now):
                db.session.commit()
                self._publish(self.get(call_id), done.effects)
            else:
                db.session.rollback()
        return self.get(call_id)

    def ring_frame(self, call):
        return frames.ring(call, self.clock(), self.config["RING_TIMEOUT"])

    def ended_frame(self, call):
        # A call with an amount due gets a rating link too; the capture may still be under way (it
        # runs after the call ends), so the rating page itself checks that the money was taken.
        rating = self.tokens.rating_token(call.id) if (call.amount_minor or 0) > 0 else None
        return frames.ended(call, self.tokens.receipt_token(call.id), rating)

    def heartbeat(self, call_id, role, now=None):
        """Note a participant's sign of life; return the time recorded (what its ack says)."""
        return self.heartbeats.record(call_id, role, self.clock() if now is None else now)

    def flush_heartbeats(self):
        self.heartbeats.flush()

    def seen_of(self, call):
        return self.heartbeats.seen_of(call)

    def accept(self, expert_id, call_id):
        call = self.get(call_id)
        if call is None or call.expert_id != expert_id:
            raise CallError("call_not_found", "No such call is ringing for you.")
        done = machine.step(call.state, "accept")
        if done is None or not machine.transition(call_id, RINGING, done.to, accepted_ms=self.clock()):
            db.session.rollback()
            raise CallError("not_ringing", "This call is no longer ringing.")
        db.session.commit()
        call = self.get(call_id)
        self._publish(call, done.effects, reason="accepted")
        return call

    def decline(self, expert_id, call_id):
        call = self.get(call_id)
        if call is None or call.expert_id != expert_id:
            raise CallError("call_not_found", "No such call is ringing for you.")
        if not self._end(call, "decline", by="expert"):
            raise CallError("not_ringing", "This call is no longer ringing.")

    def report(self, call_id, role, pc_state):
        """A peer reports its RTCPeerConnection state (a sign of life too; returns its time).

        Both sides connected makes an accepted call active, from the moment the later of the
        two reports was stored: after a restart, the peers report again after their welcome
        and the call goes on from a report the old process stored, or from the new one.
        """
        now = self.heartbeat(call_id, role)
        if pc_state != "connected":
            return now
        call = self.get(call_id)
        if call is None or call.state not in (ACCEPTED, ACTIVE):
            return now
        column = "visitor_connected_ms" if role == "visitor" else "expert_connected_ms"
        db.session.execute(
            sa.update(Call).where(Call.id == call_id, getattr(Call, column).is_(None)).values({column: now}))
        db.session.commit()
        call = self.get(call_id)
        if call.state == ACCEPTED and call.visitor_connected_ms is not None and call.expert_connected_ms is not None:
            self._activate(call, max(call.visitor_connected_ms, call.expert_connected_ms))
        return now

    def relay(self, call_id, role, kind, data):
        """Pass an offer, answer or candidate to the other participant, in the documented order."""
        offered_by = self.bus.get_key(offer_key(call_id))
        frames.check_order(kind, role, offered_by)
        if kind == "offer":
            self.bus.set_key(offer_key(call_id), role, ttl=OFFER_TTL_S)
        self.bus.publish(call_channel(call_id, other(role)), {"type": kind, **data})

    def hangup(self, call_id, role, ack_ms=None, since_ack_ms=None):
        """A participant hangs up. ``ack_ms`` and ``since_ack_ms`` (the last ack it got and its own
        time since) place the click of a hang-up that waited for a restarted server; see
        ``metering.hangup_end``."""
        call = self.get(call_id)
        if call is None or call.state == ENDED:
            return
        end_ms = now = self.clock()
        if call.state == ACTIVE and ack_ms is not None and since_ack_ms is not None:
            stored = getattr(call, f"{role}_seen_ms")
            if stored is None:  # not persisted yet: the exact one in memory bounds it instead
                stored = self.seen_of(call).get(role, now)
            end_ms = max(call.active_ms, hangup_end(now, stored, ack_ms, since_ack_ms,
                                                     self.config["HEARTBEAT_INTERVAL"] * 1000))
        self._end(call, f"hangup:{role}", by=role, end_ms=end_ms)

    # ---- changes and what they publish ---------------------------------------------------

    def _activate(self, call, active_ms):
        done = machine.step(call.state, "connected")
        if done is None or not machine.transition(call.id, ACCEPTED, done.to, active_ms=active_ms):
            db.session.rollback()
            return False
        db.session.commit()
        self._publish(self.get(call.id), done.effects)
        return True

    def _end(self, call, event, by=None, end_ms=None):
        """End an open call as ``event`` decides, bill it and mark its payment due, in one
        transaction. False when the event does not apply or somebody ended the call first."""
        done = machine.step(call.state, event)
        if done is None or done.to != ENDED:
            return False
        end_ms = self.clock() if end_ms is None else end_ms
        was = call.state
        billed = bill(Terms.of(call), call.active_ms, end_ms if call.active_ms else None)
        if not machine.transition(call.id, was, ENDED, ended_ms=end_ms, end_reason=done.reason.value, ended_by=by,
                                  billed_ms=billed.duration_ms, billed_minutes=billed.minutes,
                                  amount_minor=billed.amount_minor):
            db.session.rollback()
            return False
        db.session.expire(call)
        due = mark_payment_due(db.session, call)
        due_id = due.id if due is not None else None
        db.session.commit()
        self.heartbeats.forget(call.id)
        self.bus.delete_key(offer_key(call.id))
        self._publish(call, done.effects, reason=done.reason.value)
        log.info("call %s ended: %s by %s, %s ms, %s %s",
                 call.id, done.reason, by, billed.duration_ms, billed.amount_minor, billed.currency)
        # PayPal is asked only now, after the commit and the frames: ending never waits on it.
        if due_id is not None and self.on_payment_due is not None:
            try:
                self.on_payment_due(due_id)
            except Exception:
                db.session.rollback()
                log.exception("settling the payment of call %s failed; the retry job takes over", call.id)
        return True

    def _publish(self, call, effects, reason=None):
        """The events of a winning change, on the call's and the expert's channels."""
        console = expert_channel(call.expert_id)
        for effect in effects:
            if effect == "ring":
                self.bus.publish(console, self.ring_frame(call))
            elif effect == "accepted":
                self.bus.publish(call_channel(call.id, "visitor"), {"type": "accepted"})
            elif effect == "active":
                self._both(call.id, frames.active(Terms.of(call), call.active_ms))
            elif effect == "ended":
                self._both(call.id, self.ended_frame(call))
            elif effect in ("ring_ended", "call_ended"):
                self.bus.publish(console, {"type": effect, "call_id": call.id, "reason": reason})
            elif effect == "presence":
                self.bus.publish(console, frames.presence(self.status(call.expert_id)))

    def _both(self, call_id, message):
        for role in ("visitor", "expert"):
            self.bus.publish(call_channel(call_id, role), message)

    # ---- time ----------------------------------------------------------------------------

    def tick(self):
        """Act on every open call whose deadline has passed (time-outs, the cap, silence)."""
        now = self.clock()
        cfg = self.config
        # Heartbeats are exact in memory; the database gets them every HEARTBEAT_PERSIST
        # seconds, which bounds what a crash can cost the expert (never the visitor).
        if now - self._flushed_ms >= cfg["HEARTBEAT_PERSIST"] * 1000:
            self._flushed_ms = now
            self.flush_heartbeats()
        db.session.expire_all()
        due = db.session.scalars(sa.select(Call).where(machine.due_clause(cfg, self.started_ms, now))).all()
        for call in due:
            try:
                deadline = machine.due(call, cfg, self.started_ms, self.seen_of(call), now)
                if deadline is None:
                    continue
                if deadline.event == "connected":
                    self._activate(call, deadline.moves_ms)
                else:
                    self._end(call, deadline.event, by=deadline.by, end_ms=deadline.end_ms)
            except Exception:
                db.session.rollback()
                log.exception("tick failed for call %s", call.id)
