// The call state machine, as a pure reducer: `reduce(state, event) -> state`. The widget (the
// visitor) and the console (the expert) feed it their clicks, API answers, parsed server frames
// and the peer connection's state; the DOM wiring renders `state.name`. No DOM, no sockets, no
// timers: testable with `node --test`.
import { formatMoney } from "./format.js";

export const STATES = [
  "idle", "precall", "paying", "creating", "ringing", "connecting", "active", "ended",
  "reconnecting", "declined", "missed", "error",
];

const OPEN = ["ringing", "connecting", "active"];        // a call exists and is going on
const FINISHED = ["ended", "declined", "missed", "error"];  // the outcome is on screen

export const isOpen = (state) => OPEN.includes(state.phase);
export const isFinished = (state) => FINISHED.includes(state.phase);

/** The state before anything happened. `role` is "visitor" (the widget) or "expert" (the console). */
export function initialState(role = "visitor") {
  return named({
    role, phase: "idle", expert: null, notice: null, call_id: null, terms: null, ring: null,
    meter: null, warning: null, ended: null, error: null,
    socketDown: false, mediaDown: false, mediaConnected: false, peerPresent: false, hangingUp: false,
  });
}

const CALL_FIELDS = {
  call_id: null, terms: null, ring: null, meter: null, warning: null, ended: null, error: null,
  socketDown: false, mediaDown: false, mediaConnected: false, peerPresent: false, hangingUp: false,
};

/** The name shown (`body[data-state]`): the phase, or "reconnecting" while a link of an open call is down. */
function named(s) {
  const name = OPEN.includes(s.phase) && (s.socketDown || s.mediaDown) ? "reconnecting" : s.phase;
  return s.name === name ? s : { ...s, name };
}

function restPhase(role) {
  return role === "expert" ? "idle" : "precall";
}

/** What an `ended` frame leads to. */
function endPhase(state, reason) {
  if (state.role === "visitor") {
    if (reason === "declined") return "declined";
    if (reason === "missed") return "missed";
    if (reason === "cancelled") return "precall";
    if (reason === "expired") return "error";
  }
  return "ended";
}

const END_NOTICES = {
  cancelled: "You cancelled the call. Nothing was charged.",
  expired: "The call could not start in time. Nothing was charged.",
};

function onFrame(s, f) {
  switch (f.type) {
    case "welcome": {
      const next = { ...s, call_id: f.call_id, socketDown: false, terms: f.terms || s.terms };
      if (f.state === "accepted" && next.phase === "ringing") next.phase = "connecting";
      if (f.state === "active" && (next.phase === "ringing" || next.phase === "connecting")) next.phase = "active";
      return next;
    }
    case "accepted":
      if (s.phase === "ringing" || (s.role === "expert" && s.phase === "connecting")) {
        return { ...s, phase: "connecting", call_id: f.call_id || s.call_id };
      }
      return s;
    case "peer":
      return { ...s, peerPresent: f.present };
    case "active":
    case "meter": {
      if (!OPEN.includes(s.phase) || s.phase === "ringing" && s.role === "expert") return s;
      const { type, started_ms, ...meter } = f;
      return { ...s, phase: "active", meter };
    }
    case "warning":
      return isOpen(s) ? { ...s, warning: { seconds_left: f.seconds_left, message: f.message || null } } : s;
    case "ended": {
      if (isFinished(s) || (!isOpen(s) && s.phase !== "creating")) return s;
      const phase = endPhase(s, f.reason);
      const ended = { ...f, call_id: f.call_id || s.call_id };
      return {
        ...s, ...(phase === "precall" ? CALL_FIELDS : {}), phase, ended,
        notice: END_NOTICES[f.reason] && phase === "precall" ? END_NOTICES[f.reason] : s.notice,
        error: phase === "error" ? { code: f.reason, message: END_NOTICES[f.reason] || "The call ended." } : null,
        socketDown: false, mediaDown: false, hangingUp: false,
      };
    }
    case "ring":
      if (s.role !== "expert" || isOpen(s)) return s;
      return { ...s, ...CALL_FIELDS, phase: "ringing", call_id: f.call_id, ring: f, notice: null };
    case "ring_ended":
      if (s.role !== "expert" || s.call_id !== f.call_id || s.phase !== "ringing") return s;
      return { ...s, ...CALL_FIELDS, phase: "idle", notice: RING_ENDED[f.reason] || null };
    default:
      return s;
  }
}

const RING_ENDED = {
  accepted: "The call was answered in another window.",
  cancelled: "The caller hung up before you answered.",
  missed: "You missed a call.",
  declined: "You declined the call.",
  expired: "A caller did not connect in time.",
};

/**
 * The reducer: `reduce(state, event) -> state`. Events:
 *  {type:"status", status}            the expert's public status was (re)loaded
 *  {type:"create"}                    the visitor pressed Call
 *  {type:"pay"}                       waiting for the visitor to approve the PayPal hold (popup)
 *  {type:"paid"}                      the hold is approved: the call is being created
 *  {type:"created", call_id, terms}   POST /calls answered 201
 *  {type:"create_failed", status, body}  POST /calls failed (body: the API error, or null)
 *  {type:"accept", call_id}           the expert pressed Accept
 *  {type:"frame", frame}              a parsed server frame
 *  {type:"socket", up}                the call socket dropped (up:false) or is back (a welcome also says so)
 *  {type:"pc", connection}            the RTCPeerConnection's connectionState
 *  {type:"hangup"}                    we asked to hang up / cancel
 *  {type:"fatal", code, message}      the call socket cannot go on (bad or expired token, replaced)
 *  {type:"reset"}                     back to the resting screen (Try again, Close)
 */
export function reduce(state, event) {
  const s = state;
  switch (event.type) {
    case "status": {
      const next = { ...s, expert: event.status };
      if (s.phase === "idle" && s.role === "visitor") next.phase = "precall";
      return named(next);
    }
    case "create":
      if (!["precall", "declined", "missed", "error", "ended"].includes(s.phase)) return s;
      return named({ ...s, ...CALL_FIELDS, phase: "creating", notice: null });
    case "pay":
      return s.phase === "creating" ? named({ ...s, phase: "paying" }) : s;
    case "paid":
      return s.phase === "paying" ? named({ ...s, phase: "creating" }) : s;
    case "created":
      if (s.phase !== "creating") return s;
      return named({ ...s, phase: "ringing", call_id: event.call_id, terms: event.terms || null });
    case "create_failed": {
      if (s.phase !== "creating" && s.phase !== "paying") return s;
      const error = createError(event.status, event.body, s.expert);
      if (BACK_TO_PRECALL.includes(error.code)) {
        return named({ ...s, ...CALL_FIELDS, phase: "precall", notice: error.message });
      }
      if (error.code === "price_changed" && event.body?.price && s.expert) {
        const expert = { ...s.expert, price: event.body.price };
        return named({ ...s, ...CALL_FIELDS, phase: "precall", expert, notice: error.message });
      }
      const status = ["online", "busy", "offline"].includes(event.body?.status) ? event.body.status : null;
      const expert = status && s.expert ? { ...s.expert, status } : s.expert;
      return named({ ...s, ...CALL_FIELDS, phase: "error", error, expert });
    }
    case "accept":
      if (s.role !== "expert" || s.phase !== "ringing" || s.call_id !== event.call_id) return s;
      return named({ ...s, phase: "connecting" });
    case "frame":
      return named(onFrame(s, event.frame));
    case "socket":
      return isOpen(s) ? named({ ...s, socketDown: !event.up }) : s;
    case "pc": {
      if (!isOpen(s)) return s;
      const c = event.connection;
      if (c === "connected") return named({ ...s, mediaDown: false, mediaConnected: true });
      if (c === "disconnected" || c === "failed") return named({ ...s, mediaDown: s.mediaConnected });
      return s;
    }
    case "hangup":
      return isOpen(s) || s.phase === "creating" || s.phase === "paying" ? named({ ...s, hangingUp: true }) : s;
    case "fatal":
      if (isFinished(s) || !(isOpen(s) || s.phase === "creating")) return s;
      return named({
        ...s, phase: "error", socketDown: false, mediaDown: false,
        error: { code: event.code, message: FATAL[event.code] || event.message || FATAL.default },
      });
    case "reset":
      return named({ ...s, ...CALL_FIELDS, phase: restPhase(s.role), notice: null });
    default:
      return s;
  }
}

const FATAL = {
  replaced: "This call was opened in another window.",
  token_expired: "The connection was lost for too long and the call could not be resumed.",
  call_ended: "This call has ended.",
  default: "The call could not continue.",
};

// Failures the visitor fixes by pressing Call again: back to the pre-call screen, with a notice.
const BACK_TO_PRECALL = ["payment_cancelled", "popup_blocked", "payment_not_approved", "call_cancelled"];

/** A clear message for a failed POST /calls (or PayPal hold): {code, status, message}. */
export function createError(status, body, expert) {
  const name = expert?.display_name || "The expert";
  const code = body?.error || (status ? `http_${status}` : "network");
  const messages = {
    expert_offline: `${name} is offline right now. Try again later.`,
    expert_busy: `${name} is in another call. Try again in a few minutes.`,
    price_changed: body?.price
      ? `The price has changed to ${formatMoney(body.price.amount, body.price.currency)} per minute. Check it and call again.`
      : "The price has changed. Check it and call again.",
    origin_not_allowed: `This site is not allowed to place calls to ${name}.`,
    rate_limited: body?.message || "Too many attempts. Wait a minute and try again.",
    expert_not_found: "This expert does not exist.",
    booking_required: "This call needs a booking first.",
    call_cancelled: "You cancelled the call. Nothing was charged.",
    payment_cancelled: "You closed PayPal before approving. Nothing was charged.",
    popup_blocked: "Your browser blocked the PayPal window. Allow pop-ups for this page and press Call again.",
    payment_not_approved: "The PayPal payment was not approved, so the call did not start. Nothing was charged.",
    payments_not_set_up: `${name} does not take paid calls yet. Nothing was charged.`,
    payment_required: "This call needs a PayPal approval first. Press Call again.",
    payment_insufficient: "The PayPal approval does not cover this call. Press Call again to approve a new one.",
    payment_expired: "The PayPal approval has expired. Press Call again to approve a new one.",
    payment_invalid: "The PayPal approval cannot be used for this call. Press Call again to approve a new one.",
    payment_used: "That PayPal approval was already used. Press Call again to approve a new one.",
    payment_declined: "PayPal declined the payment. Nothing was charged.",
    paypal_unavailable: "PayPal could not be reached. Nothing was charged. Try again in a moment.",
    paypal_misconfigured: `${name}'s PayPal connection is not working right now. Nothing was charged.`,
    network: "Could not reach callme. Check your connection and try again.",
  };
  return { code, status: status || 0, message: messages[code] || body?.message || "The call could not be started. Try again." };
}
