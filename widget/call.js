// A call, orchestrated: the visitor creates it through the API; either participant joins its
// socket and peer connection. Server frames drive the state (callstate.js's reducer).
import { createCallBody, needsPayment, orderBody } from "./api.js";
import { initialState, isOpen, reduce } from "./callstate.js";
import { paypalResult } from "./messages.js";
import { Peer } from "./peer.js";
import { CallSocket } from "./signal.js";

const HANGUP_FALLBACK_MS = 6000;
const HANGUP_DELIVERY_MS = 60_000;  // how long a finished session still tries to deliver its hang-up
const POPUP_POLL_MS = 400;

/** Read a JSON body, or null. */
async function json(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** POST a JSON body; resolves to {response, body} (body: the JSON answer or null). Rejects on network failure. */
async function postJson(fetchImpl, path, payload) {
  const response = await fetchImpl(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
  return { response, body: await json(response) };
}

/** An `ended`-like frame from GET /api/v1/calls/<id>, when the socket could not deliver one. */
function endedFromResult(result) {
  return {
    type: "ended", call_id: result.call_id, reason: result.end_reason || "hangup", by: result.ended_by || null,
    duration_ms: result.duration_ms ?? 0, minutes: result.minutes ?? 0, amount: result.amount ?? 0,
    currency: result.currency, receipt: null,
  };
}

/**
 * One participant in one call: the call socket plus the peer connection.
 * `dispatch` receives reducer events; "remote" events carry the remote MediaStream.
 * `PeerImpl` and `socketOptions` (e.g. a WebSocketImpl) let tests run it without a browser.
 */
export class CallSession extends EventTarget {
  constructor({
    role, callId, wsUrl, token, iceServers, stream, dispatch, fetchImpl = globalThis.fetch.bind(globalThis),
    PeerImpl = Peer, socketOptions = {},
  }) {
    super();
    Object.assign(this, { role, callId, dispatch, fetchImpl });
    this.done = false;
    this.peer = null;
    this.socket = new CallSocket(wsUrl, token, { ...socketOptions, pcState: () => this.peer?.connectionState ?? null });
    this.peer = new PeerImpl({ role, iceServers, stream, send: (frame) => this.socket.send(frame) });
    this.peer.addEventListener("state", (e) => this.dispatch({ type: "pc", connection: e.detail }));
    this.peer.addEventListener("track", (e) => this.dispatchEvent(new CustomEvent("remote", { detail: e.detail })));
    // Once finished, a socket still delivering the hang-up (see finish) no longer speaks for the page.
    this.socket.addEventListener("frame", (e) => this.done || this.onFrame(e.detail));
    this.socket.addEventListener("down", () => this.done || this.dispatch({ type: "socket", up: false }));
    this.socket.addEventListener("up", () => this.done || this.dispatch({ type: "socket", up: true }));
    this.socket.addEventListener("fatal", (e) => this.onFatal(e.detail));
  }

  start() {
    this.socket.start();
    return this;
  }

  get pc() {
    return this.peer.pc;
  }

  onFrame(frame) {
    if (frame.type === "peer" && frame.present) this.peer.peerPresent();
    if (frame.type === "offer" || frame.type === "answer" || frame.type === "candidate") this.peer.handle(frame);
    if (frame.type === "error") console.warn(`callme: ${frame.code}: ${frame.message}`);
    this.dispatch({ type: "frame", frame });
    if (frame.type === "ended") this.finish();
  }

  async onFatal({ code, message }) {
    if (this.done) return;
    if (code === "call_ended" && (await this.fetchResult())) return;
    this.finish();
    this.dispatch({ type: "fatal", code, message });
  }

  /** Ask the API how the call ended; dispatch it as an `ended` frame. True when it had ended. */
  async fetchResult() {
    try {
      const r = await this.fetchImpl(`/api/v1/calls/${encodeURIComponent(this.callId)}`, {
        headers: { Authorization: `Bearer ${this.socket.token}` },
      });
      const result = r.ok ? await json(r) : null;
      if (result?.state !== "ended" || this.done) return false;
      this.onFrame(endedFromResult(result));
      return true;
    } catch {
      return false;
    }
  }

  /** Hang up (or cancel a ringing call). The server's `ended` frame follows; if it cannot, ask the API. */
  hangup(lastMeter = null) {
    if (this.done) return;
    this.dispatch({ type: "hangup" });
    this.socket.hangup();  // stamped now, with the last ack: a late delivery is billed to this moment
    clearTimeout(this.fallback);
    this.fallback = setTimeout(() => this.endWithoutServer(lastMeter), HANGUP_FALLBACK_MS);
  }

  /**
   * No `ended` came after a hang-up: ask the API, and if the server is out of reach end here with
   * the last meter the server sent. The server's numbers are the ones that count: it gets the
   * stamped hang-up when it is back (see finish), or ends the call on silence.
   */
  async endWithoutServer(lastMeter) {
    if (this.done || (await this.fetchResult())) return;
    const m = lastMeter || {};
    this.onFrame({
      type: "ended", call_id: this.callId, reason: !lastMeter && this.role === "visitor" ? "cancelled" : "hangup",
      by: this.role, duration_ms: m.elapsed_ms ?? 0, minutes: m.minutes ?? 0, amount: m.amount ?? 0,
      currency: m.currency || null, receipt: null, provisional: true,
    });
  }

  /**
   * Done with the call: close the peer connection and the socket. A hang-up still waiting for the
   * server (it was down) is delivered first, if the server comes back within HANGUP_DELIVERY_MS;
   * the socket stops itself on the `ended` that answers it.
   */
  finish() {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.fallback);
    this.peer.close();
    if (this.socket.waiting("hangup")) {
      this.delivery = setTimeout(() => this.socket.stop(), HANGUP_DELIVERY_MS);
      this.socket.addEventListener("frame", (e) => e.detail.type === "ended" && clearTimeout(this.delivery));
      this.socket.addEventListener("fatal", () => clearTimeout(this.delivery));
    } else {
      this.socket.stop();
    }
  }
}

/** The reducer's state for one page; emits "change" ({state, prev}) when an event changes it. */
export class CallState extends EventTarget {
  constructor(role) {
    super();
    this.state = initialState(role);
  }

  dispatch = (event) => {
    const prev = this.state;
    this.state = reduce(prev, event);
    if (this.state !== prev) this.dispatchEvent(new CustomEvent("change", { detail: { state: this.state, prev } }));
  };
}

/**
 * The visitor's side: the expert's public status, creating the call at the price shown,
 * then a CallSession. Emits "change" and "remote" (the expert's MediaStream).
 */
export class VisitorCall extends CallState {
  constructor({ handle, origin, fetchImpl = globalThis.fetch.bind(globalThis) }) {
    super("visitor");
    Object.assign(this, { handle, origin, fetchImpl });
    this.session = null;
    this.cancelRequested = false;
    this.popup = null;          // the PayPal approval window, while paying
    this.abortPayment = null;   // ends the wait for it
  }

  get pc() {
    return this.session?.pc || null;
  }

  /** GET the expert's status (name, price, free seconds, cap). Throws on failure. */
  async loadStatus() {
    const r = await this.fetchImpl(`/api/v1/experts/${encodeURIComponent(this.handle)}/status`, { cache: "no-store" });
    const body = await json(r);
    if (!r.ok || !body) throw new Error(body?.message || `Could not load the expert's status (${r.status}).`);
    this.dispatch({ type: "status", status: body });
    return body;
  }

  /**
   * Create the call at the price the visitor was shown, then join it with `stream`. A paid call
   * first gets its PayPal hold approved in `popup`, a window the click handler opened (browsers
   * only allow popups opened right in a click).
   */
  async start(stream, popup = null) {
    const expert = this.state.expert;
    if (!expert) return;
    this.cancelRequested = false;
    this.session?.finish();
    this.session = null;
    this.dispatch({ type: "create" });
    if (this.state.phase !== "creating") return;
    let orderId = null;
    if (needsPayment(expert)) {
      orderId = await this.pay(expert, popup);
      if (!orderId) return;
    }
    let response;
    let body;
    try {
      ({ response, body } = await postJson(this.fetchImpl, "/api/v1/calls",
        createCallBody(this.handle, expert.price, this.origin, orderId)));
    } catch {
      this.dispatch({ type: "create_failed", status: 0, body: null });
      return;
    }
    if (response.status !== 201 || !body?.call_id) {
      this.dispatch({ type: "create_failed", status: response.status, body });
      return;
    }
    this.dispatch({ type: "created", call_id: body.call_id, terms: body.terms });
    this.session = new CallSession({
      role: "visitor", callId: body.call_id, wsUrl: body.ws_url, token: body.token, iceServers: body.ice_servers,
      stream, dispatch: this.dispatch, fetchImpl: this.fetchImpl,
    });
    this.session.addEventListener("remote", (e) => this.dispatchEvent(new CustomEvent("remote", { detail: e.detail })));
    this.session.start();
    // Cancelled while the call was being created: it exists now, so end it properly.
    if (this.cancelRequested) this.session.hangup();
  }

  /**
   * The PayPal hold: create the order, show PayPal's approval page in `popup`, wait for callme's
   * return page to say how it went. Returns the order id to call with, or null (and says why).
   */
  async pay(expert, popup) {
    const fail = (status, body) => {
      if (popup && !popup.closed) popup.close();
      this.popup = null;
      this.dispatch({ type: "create_failed", status, body });
      return null;
    };
    if (!popup || popup.closed) return fail(0, { error: "popup_blocked" });
    this.popup = popup;
    this.dispatch({ type: "pay" });
    let response;
    let body;
    try {
      ({ response, body } = await postJson(this.fetchImpl, "/api/v1/payments/orders",
        orderBody(this.handle, expert.price, this.origin)));
    } catch {
      return fail(0, null);
    }
    if (this.state.phase !== "paying") return fail(0, { error: "call_cancelled" });
    if (response.status !== 201 || !body?.approve_url) return fail(response.status, body);
    popup.location.href = body.approve_url;
    const outcome = await this.waitForPayPal(popup, body.order_id);
    this.popup = null;
    if (outcome === "aborted" || this.state.phase !== "paying") return fail(0, { error: "call_cancelled" });
    if (outcome === "cancelled") return fail(0, { error: "payment_cancelled" });
    // "approved", or the window closed without a word (a PayPal page can cut the link back to
    // us): the server authorizes the order, or answers 402 payment_not_approved.
    this.dispatch({ type: "paid" });
    return body.order_id;
  }

  /** "approved" / "cancelled" from the return page, "closed" when the window went away, "aborted". */
  waitForPayPal(popup, orderId) {
    return new Promise((resolve) => {
      const done = (outcome) => {
        clearInterval(poll);
        removeEventListener("message", onMessage);
        this.abortPayment = null;
        resolve(outcome);
      };
      const onMessage = (event) => {
        if (event.origin !== location.origin || event.source !== popup) return;
        const status = paypalResult(event.data, orderId);
        if (status) done(status);
      };
      const poll = setInterval(() => popup.closed && done("closed"), POPUP_POLL_MS);
      addEventListener("message", onMessage);
      this.abortPayment = () => done("aborted");
    });
  }

  /** Bring the PayPal window back to the front (it hides behind the page easily). */
  focusPayPal() {
    if (this.popup && !this.popup.closed) this.popup.focus();
  }

  /** Hang up, or cancel while it rings or is being created. */
  hangup() {
    if (this.state.phase === "paying") {
      if (this.popup && !this.popup.closed) this.popup.close();
      this.dispatch({ type: "create_failed", status: 0, body: { error: "call_cancelled" } });
      this.abortPayment?.();
      return;
    }
    if (this.state.phase === "creating") {
      this.cancelRequested = true;
      this.dispatch({ type: "hangup" });
      return;
    }
    if (this.session && isOpen(this.state)) this.session.hangup(this.state.meter);
  }

  /** Back to the pre-call screen (Try again, Close). */
  reset() {
    this.session?.finish();
    this.dispatch({ type: "reset" });
  }
}
