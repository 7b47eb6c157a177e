// The signaling sockets: a call socket (hello with the latest token, heartbeats, the peer
// connection's state re-reported after every welcome, hang-ups stamped with the last ack) and the
// expert console socket. Both reconnect with backoff when the connection drops and emit parsed frames.
import { ackReceived, connectionState, hangup, heartbeat, hello, parseFrame } from "./frames.js";

const BACKOFF_MS = [250, 500, 1000, 2000, 4000];
const OPEN_TIMEOUT_MS = 8000;
const QUEUE_LIMIT = 200;

// Errors answered to a hello after which trying again cannot help.
const FATAL_ON_HELLO = new Set([
  "token_invalid", "token_expired", "token_wrong_call", "token_wrong_role", "call_ended", "call_not_found",
  "not_accepted", "bad_frame", "unknown_type", "not_logged_in", "origin_not_allowed",
]);

/**
 * A WebSocket that comes back. Events (EventTarget, `event.detail`):
 *  "frame"  a parsed server frame (`ack` frames are kept, not emitted)
 *  "up"     the socket is usable (after the handshake of the subclass)
 *  "down"   the connection dropped; a reconnect is scheduled
 *  "fatal"  {code, message}: it stopped for good
 * `now` is the monotonic clock acks are timed with (`performance.now()`).
 */
class ReconnectingSocket extends EventTarget {
  constructor(url, { WebSocketImpl = globalThis.WebSocket, heartbeatMs = 10_000, now = () => performance.now() } = {}) {
    super();
    this.url = url;
    this.WebSocketImpl = WebSocketImpl;
    this.heartbeatMs = heartbeatMs;
    this.now = now;
    this.ws = null;
    this.up = false;
    this.stopped = false;
    this.attempt = 0;
    this.queue = [];
    this.ack = null;  // the last `ack`: {seenMs (server clock), at (our clock when it arrived)}
    this.timers = { retry: 0, beat: 0, open: 0 };
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  /** Send a frame object now, or after the reconnect when the socket is down (heartbeats are dropped). */
  send(frame) {
    if (this.up && this.ws?.readyState === 1) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    if (frame.type !== "heartbeat" && !this.stopped && this.queue.length < QUEUE_LIMIT) this.queue.push(frame);
    return false;
  }

  /** True while a frame of this type waits for the socket to come back. */
  waiting(type) {
    return this.queue.some((frame) => frame.type === type);
  }

  /** Close for good; no reconnect. */
  stop() {
    this.stopped = true;
    this.clearTimers();
    this.queue = [];
    const ws = this.ws;
    this.ws = null;
    this.up = false;
    if (ws && ws.readyState <= 1) ws.close(1000);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  clearTimers() {
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.beat);
    clearTimeout(this.timers.open);
  }

  connect() {
    this.clearTimers();
    const ws = new this.WebSocketImpl(this.url);
    this.ws = ws;
    this.timers.open = setTimeout(() => ws.readyState === 0 && ws.close(), OPEN_TIMEOUT_MS);
    ws.onopen = () => {
      if (ws === this.ws) this.opened();
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      const { frame, error } = parseFrame(event.data);
      if (error) {
        console.warn("callme: ignored a frame:", error);
        return;
      }
      if (frame.type === "ack") {
        this.ack = ackReceived(frame, this.now());
        return;
      }
      this.received(frame);
    };
    ws.onclose = () => {
      if (ws === this.ws) this.dropped();
    };
  }

  /** The transport is open: subclasses start their handshake here. */
  opened() {}

  /** A parsed frame arrived: subclasses may act, then it is emitted. */
  received(frame) {
    this.emit("frame", frame);
  }

  /** The handshake is done: flush what waited, start heartbeats. */
  ready() {
    this.attempt = 0;
    this.up = true;
    const waiting = this.queue;
    this.queue = [];
    for (const frame of waiting) this.send(frame);
    clearInterval(this.timers.beat);
    this.timers.beat = setInterval(() => this.send(heartbeat()), this.heartbeatMs);
    this.emit("up");
  }

  fail(code, message) {
    this.stop();
    this.emit("fatal", { code, message });
  }

  dropped() {
    const wasUp = this.up;
    this.up = false;
    this.ws = null;
    this.clearTimers();
    if (this.stopped) return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.timers.retry = setTimeout(() => this.connect(), base + Math.floor(Math.random() * base * 0.3));
    if (wasUp || this.attempt === 1) this.emit("down");
  }
}

/**
 * A participant's call socket. Sends hello with the latest token (renewed by `welcome` and
 * `token` frames), heartbeats every `heartbeat_ms`, and rejoins the call after a drop.
 * After every `welcome` it reports the peer connection's state first (`pcState()`, null when
 * there is no peer connection): a server that restarted may not have recorded the last report.
 * After an `ended` frame it stops.
 */
export class CallSocket extends ReconnectingSocket {
  constructor(url, token, { pcState = () => null, ...options } = {}) {
    super(url, options);
    this.token = token;
    this.pcState = pcState;
    this.welcomed = false;
  }

  /** Hang up: the frame is stamped now (the last ack, the time since), sent now or after the reconnect. */
  hangup() {
    return this.send(hangup(this.ack, this.now()));
  }

  /** Welcomed: the current peer connection state goes first; state reports queued meanwhile are stale. */
  ready() {
    const pc = this.pcState();
    if (pc) this.queue = [connectionState(pc), ...this.queue.filter((f) => f.type !== "state")];
    super.ready();
  }

  opened() {
    this.welcomed = false;
    this.ws.send(JSON.stringify(hello(this.token)));
  }

  received(frame) {
    if (frame.type === "welcome") {
      this.token = frame.token;
      this.heartbeatMs = frame.heartbeat_ms || this.heartbeatMs;
      this.welcomed = true;
      this.emit("frame", frame);
      this.ready();
      return;
    }
    if (frame.type === "token") this.token = frame.token;
    if (frame.type === "error" && (!this.welcomed ? FATAL_ON_HELLO.has(frame.code) : frame.code === "replaced")) {
      this.fail(frame.code, frame.message);
      return;
    }
    this.emit("frame", frame);
    if (frame.type === "ended") this.stop();
  }
}

/** The expert console's socket: same origin, the session cookie authenticates. */
export class ConsoleSocket extends ReconnectingSocket {
  received(frame) {
    if (frame.type === "error" && FATAL_ON_HELLO.has(frame.code) && !this.up) {
      this.fail(frame.code, frame.message);
      return;
    }
    if (frame.type === "hello") {
      this.emit("frame", frame);
      this.ready();
      return;
    }
    this.emit("frame", frame);
  }
}

/** ws(s)://host/path for a same-origin socket. */
export function sameOriginSocketUrl(path, location = globalThis.location) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}
