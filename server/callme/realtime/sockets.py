"""WebSocket endpoints: one per call participant, one per expert console.

Handlers receive a frame, hand it to ``signaling.parse`` and the call service, and answer;
everything else a socket sends (the other participant's frames, the lifecycle's events, the
clock's meters) arrives through the bus, to which each socket subscribes, and is written
under a lock.
"""
import functools
import json
import logging
import secrets
import threading

from flask import Blueprint, current_app, request
from simple_websocket import ConnectionClosed

from ..calls import frames as signaling
from ..calls.lifecycle import CallError, call_channel, expert_channel, other
from ..extensions import db, sock
from ..calls.tokens import TokenError
from ..security import current_expert
from ..urls import own_origin, ws_url

log = logging.getLogger(__name__)
bp = Blueprint("sockets", __name__)

HELLO_TIMEOUT = 10


class Connection:
    """A socket that several threads may write to."""

    def __init__(self, ws, clock):
        self.ws = ws
        self.id = secrets.token_hex(8)
        self.token_ms = clock()
        self._lock = threading.Lock()
        self.closed = False

    def send(self, kind, **data):
        self.send_raw(signaling.build(kind, **data))

    def send_raw(self, text):
        with self._lock:
            if self.closed:
                return
            try:
                self.ws.send(text)
            except (ConnectionClosed, OSError):
                self.closed = True

    def error(self, code, message, ref=None):
        self.send_raw(signaling.error(code, message, ref))

    def close(self):
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self.ws.close()
            except (ConnectionClosed, OSError):
                pass

    def deliver(self, message):
        """A frame from the bus: internal ones start with '_', the rest go to the client."""
        kind = message.get("type", "")
        if not kind.startswith("_"):
            self.send_raw(json.dumps(message, separators=(",", ":")))


class CallConnection(Connection):
    def __init__(self, ws, clock, bus, call_id, role):
        super().__init__(ws, clock)
        self.bus, self.call_id, self.role = bus, call_id, role
        self.peer_present = False
        self.replaced = False

    def to_peer(self, message):
        self.bus.publish(call_channel(self.call_id, other(self.role)), message)

    def deliver(self, message):
        kind = message.get("type")
        if kind == "_replaced" and message["conn"] != self.id:
            self.replaced = True
            self.error("replaced", "This participant connected again from another socket.")
            self.close()
        elif kind in ("_peer_joined", "_peer_here"):
            self.peer_present = True
            self.send("peer", present=True)
            if kind == "_peer_joined":
                self.to_peer({"type": "_peer_here"})
        elif kind == "_peer_left":
            self.peer_present = False
            self.send("peer", present=False)
        else:
            super().deliver(message)
            if kind == "ended":
                self.close()


def _config(name):
    return current_app.config[name]


def _release_db():
    """Give the database connection back while the socket waits: a socket lives for minutes,
    and a session that keeps its connection would let a handful of sockets drain the pool."""
    db.session.remove()


def _receive(ws, timeout=None):
    try:
        return ws.receive(timeout=timeout)
    except ConnectionClosed:
        return False


def _guarded(handler):
    """Turn an unexpected failure into an error frame: a socket never gets an HTTP error page."""
    @functools.wraps(handler)
    def run(ws, *args, **kwargs):
        try:
            handler(ws, *args, **kwargs)
        except ConnectionClosed:
            raise
        except Exception:
            db.session.rollback()
            log.exception("socket handler %s failed", handler.__name__)
            try:
                ws.send(signaling.error("internal_error", "Something went wrong on our side."))
            except (ConnectionClosed, OSError):
                pass
        finally:
            db.session.remove()
    return run


@sock.route("/ws/calls/<call_id>", bp=bp)
@_guarded
def call_socket(ws, call_id):
    """A participant's signaling socket; the first frame must be ``hello`` with its token."""
    svc = current_app.extensions["callme.calls"]
    bus = current_app.extensions["callme.bus"]
    max_bytes = _config("MAX_FRAME_BYTES")
    probe = Connection(ws, svc.clock)
    raw = _receive(ws, HELLO_TIMEOUT)
    if not raw:
        probe.error("hello_timeout", "Send a hello frame with your token first.")
        return
    try:
        frame = signaling.parse(raw, signaling.CALL_FRAMES, max_bytes)
        if frame.type != "hello":
            raise signaling.FrameError("out_of_turn", "The first frame must be 'hello'.")
        grant = svc.tokens.check_call_token(frame.data["token"], _config("CALL_TOKEN_TTL"), call_id=call_id)
        svc.join(call_id, grant.role)
    except (signaling.FrameError, TokenError, CallError) as e:
        probe.error(e.code, e.message)
        return

    role = grant.role
    conn = CallConnection(ws, svc.clock, bus, call_id, role)
    sub = bus.subscribe(call_channel(call_id, role), conn.deliver)
    bus.publish(call_channel(call_id, role), {"type": "_replaced", "conn": conn.id})
    ttl = _config("CALL_TOKEN_TTL")
    try:
        call = svc.get(call_id)
        conn.deliver(signaling.welcome(call, role, svc.tokens.call_token(call_id, role), ttl,
                                       _config("HEARTBEAT_INTERVAL") * 1000))
        if call.state == "ended":  # ended between join and subscribe
            conn.deliver(svc.ended_frame(call))
            return
        conn.to_peer({"type": "_peer_joined"})
        while not conn.closed:
            _release_db()
            raw = _receive(ws, max(1, ttl // 4))
            _refresh_token(svc, conn, ttl)
            if raw is False:
                break
            if raw is None:
                continue
            try:
                frame = signaling.parse(raw, signaling.CALL_FRAMES, max_bytes)
                _dispatch_call(svc, conn, frame)
            except signaling.FrameError as e:
                conn.error(e.code, e.message)
            except CallError as e:
                conn.error(e.code, e.message)
    finally:
        sub.close()
        if not conn.replaced:
            conn.to_peer({"type": "_peer_left"})
        svc.flush_heartbeats()


def _refresh_token(svc, conn, ttl):
    """Hand the participant a fresh token before its current one expires (at half its life)."""
    now = svc.clock()
    if now - conn.token_ms >= ttl * 500:
        conn.token_ms = now
        conn.deliver(signaling.token(svc.tokens.call_token(conn.call_id, conn.role), ttl))


def _dispatch_call(svc, conn, frame):
    kind = frame.type
    if kind == "heartbeat":
        conn.deliver(signaling.ack(svc.heartbeat(conn.call_id, conn.role)))
    elif kind in signaling.RELAYED:
        if not conn.peer_present:
            raise signaling.FrameError("out_of_turn", f"'{kind}' needs the other participant in the call.")
        svc.relay(conn.call_id, conn.role, kind, frame.data)
    elif kind == "state":
        conn.deliver(signaling.ack(svc.report(conn.call_id, conn.role, frame.data["connection"])))
    elif kind == "hangup":
        svc.hangup(conn.call_id, conn.role, **frame.data)
    elif kind == "hello":
        raise signaling.FrameError("out_of_turn", "Already joined.")


@sock.route("/ws/console", bp=bp)
@_guarded
def console_socket(ws):
    """The logged-in expert's console: presence, rings, accept and decline."""
    svc = current_app.extensions["callme.calls"]
    bus = current_app.extensions["callme.bus"]
    conn = Connection(ws, svc.clock)
    origin = request.headers.get("Origin")
    if origin and origin != own_origin():
        conn.error("origin_not_allowed", "The console only accepts connections from its own pages.")
        return
    expert = current_expert()
    if expert is None:
        conn.error("not_logged_in", "Log in before opening the console.")
        return
    expert_id = expert.id
    online = False
    sub = bus.subscribe(expert_channel(expert_id), conn.deliver)
    try:
        conn.send("hello", expert={"handle": expert.handle, "display_name": expert.display_name},
                  status=svc.status(expert_id))
        ringing = svc.open_call(expert_id)
        if ringing is not None and ringing.state == "ringing":
            conn.deliver(svc.ring_frame(ringing))
        refresh = max(1, _config("PRESENCE_TTL") // 3)
        while not conn.closed:
            _release_db()
            raw = _receive(ws, refresh)
            if raw is False:
                break
            if raw is None:
                if online:
                    svc.set_presence(expert_id, True, connection=conn.id, announce=False)
                continue
            try:
                frame = signaling.parse(raw, signaling.CONSOLE_FRAMES, _config("MAX_FRAME_BYTES"))
                if frame.type == "presence":
                    online = frame.data["status"] == "online"
                    svc.set_presence(expert_id, online, connection=conn.id)
                elif frame.type == "heartbeat":
                    if online:
                        svc.set_presence(expert_id, True, connection=conn.id, announce=False)
                elif frame.type == "accept":
                    call = svc.accept(expert_id, frame.data["call_id"])
                    conn.send("accepted", call_id=call.id, ws_url=ws_url(call.id), **svc.grant(call, "expert"))
                elif frame.type == "decline":
                    svc.decline(expert_id, frame.data["call_id"])
            except (signaling.FrameError, CallError) as e:
                conn.error(e.code, e.message)
    finally:
        sub.close()
        if online:
            svc.set_presence(expert_id, False, connection=conn.id)
