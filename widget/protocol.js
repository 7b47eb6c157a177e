// The call protocol without a browser: frame builders, server-frame validation, the call
// state machine as a pure reducer, and the words and numbers people see (money, durations).
// No DOM, no sockets, no timers: everything here is testable with `node --test`.

// ---- frames the clients send ---------------------------------------------------------

export const hello = (token) => ({ type: "hello", token });
export const offer = (sdp) => ({ type: "offer", sdp });
export const answer = (sdp) => ({ type: "answer", sdp });
export const heartbeat = () => ({ type: "heartbeat" });
export const hangup = () => ({ type: "hangup" });
export const presence = (status) => ({ type: "presence", status });
export const accept = (callId) => ({ type: "accept", call_id: callId });
export const decline = (callId) => ({ type: "decline", call_id: callId });

/** The RTCPeerConnection state, as the server wants it reported. */
export const connectionState = (connection) => ({ type: "state", connection });

/** A trickled ICE candidate: exactly the fields the server accepts (it rejects others). */
export function candidate(c) {
  return {
    type: "candidate",
    candidate: c.candidate ?? "",
    sdpMid: c.sdpMid ?? null,
    sdpMLineIndex: c.sdpMLineIndex ?? null,
  };
}

/**
 * POST /api/v1/calls body for an instant call at the price the visitor was shown; a paid call
 * carries the PayPal order the visitor approved.
 */
export function createCallBody(handle, price, origin, orderId = null) {
  const body = { expert: handle, kind: "instant", price: { amount: price.amount, currency: price.currency }, origin: origin || null };
  if (orderId) body.payment = { order_id: orderId };
  return body;
}

/** POST /api/v1/payments/orders body: the PayPal hold (cap x price) for a paid call. */
export function orderBody(handle, price, origin) {
  return { expert: handle, price: { amount: price.amount, currency: price.currency }, origin: origin || null };
}

/** A paid call needs a PayPal hold first. */
export const needsPayment = (expert) => !!expert && expert.price.amount > 0;

/** The most a call can cost (what PayPal holds), or 0 when there is no cap or no price. */
export const holdAmount = (price, capMinutes) => (capMinutes ? price.amount * capMinutes : 0);

/**
 * The word from callme's PayPal return page (posted by the popup to its opener):
 * "approved" or "cancelled" for `orderId`, else null (someone else's message, another order).
 */
export function paypalResult(data, orderId) {
  if (!isObj(data) || data.callme !== 1 || data.type !== "paypal" || data.order_id !== orderId) return null;
  return data.status === "approved" || data.status === "cancelled" ? data.status : null;
}

// ---- frames the server sends ---------------------------------------------------------

const isInt = (v) => Number.isSafeInteger(v);
const isStr = (v) => typeof v === "string";
const isCurrency = (v) => isStr(v) && /^[A-Z]{3}$/.test(v);
const isBool = (v) => typeof v === "boolean";
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const optional = (check) => (v) => v === undefined || v === null || check(v);

const METER = {
  elapsed_ms: isInt, free_left_ms: isInt, cap_left_ms: isInt, minutes: isInt,
  amount: isInt, currency: isCurrency, price: isInt,
};

// type -> {field: check}. Extra fields are allowed (the server may add some); listed ones must hold.
const SERVER_FRAMES = {
  welcome: { call_id: isStr, role: isStr, state: isStr, token: isStr, heartbeat_ms: isInt, terms: optional(isObj) },
  accepted: { call_id: optional(isStr), ws_url: optional(isStr), token: optional(isStr), ice_servers: optional(Array.isArray) },
  peer: { present: isBool },
  offer: { sdp: isStr },
  answer: { sdp: isStr },
  candidate: { candidate: isStr, sdpMid: optional(isStr), sdpMLineIndex: optional(isInt) },
  active: { started_ms: isInt, ...METER },
  meter: METER,
  warning: { seconds_left: isInt, message: optional(isStr) },
  token: { token: isStr },
  ended: {
    reason: isStr, by: optional(isStr), duration_ms: optional(isInt), minutes: optional(isInt),
    amount: optional(isInt), currency: isCurrency, receipt: optional(isStr), call_id: optional(isStr),
  },
  error: { code: isStr, message: optional(isStr) },
  // the expert console
  hello: { status: isStr, expert: optional(isObj) },
  presence: { status: isStr },
  ring: { call_id: isStr, price: isInt, currency: isCurrency, timeout_ms: isInt, free_seconds: optional(isInt), origin: optional(isStr) },
  ring_ended: { call_id: isStr, reason: isStr },
  call_ended: { call_id: isStr, reason: isStr },
};

/**
 * Parse a server frame (text). Returns `{frame}` or `{error}`; never throws.
 * Unknown types and frames whose fields have the wrong types are errors.
 */
export function parseFrame(raw) {
  if (typeof raw !== "string") return { error: "Frames must be text." };
  let obj;
  try {
    obj = JSON.parse(raw);
  } catch {
    return { error: "The frame is not valid JSON." };
  }
  if (!isObj(obj) || !isStr(obj.type)) return { error: "A frame must be an object with a string type." };
  const spec = SERVER_FRAMES[obj.type];
  if (!spec) return { error: `Unknown frame type '${obj.type}'.` };
  for (const [name, check] of Object.entries(spec)) {
    if (!check(obj[name])) return { error: `'${obj.type}' has a bad '${name}'.` };
  }
  if (obj.type === "accepted" && obj.ice_servers && !obj.ice_servers.every(isObj)) {
    return { error: "'accepted' has bad ice_servers." };
  }
  return { frame: obj };
}

// ---- the call state machine ----------------------------------------------------------

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
    expert_offline: `${name} is offline right now. Try again later, or book a time.`,
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

// ---- money and time ------------------------------------------------------------------

// ISO 4217 minor-unit exponents that are not 2. Fixed here, not taken from the browser's
// locale data, which differs from ISO for a few currencies (HUF, for one).
const EXPONENTS = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0,
  UGX: 0, UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
};

/** Digits after the decimal point for a currency's minor unit (USD 2, JPY 0, KWD 3). */
export function minorDigits(currency) {
  return EXPONENTS[currency] ?? 2;
}

/** Minor units as an exact decimal string: (150, "USD") -> "1.50", (150, "JPY") -> "150". */
export function toDecimalString(amount, currency) {
  if (!Number.isSafeInteger(amount)) throw new TypeError(`amount must be an integer of minor units, got ${amount}`);
  const digits = minorDigits(currency);
  const sign = amount < 0 ? "-" : "";
  const units = String(Math.abs(amount)).padStart(digits + 1, "0");
  return digits ? `${sign}${units.slice(0, -digits)}.${units.slice(-digits)}` : `${sign}${units}`;
}

/**
 * Format an integer amount of minor units: (150, "USD", "en-US") -> "$1.50", (1500, "JPY") -> "¥1,500".
 * The integer becomes a decimal string, never a float; Intl formats strings exactly.
 */
export function formatMoney(amount, currency, locale) {
  const digits = minorDigits(currency);
  const fmt = new Intl.NumberFormat(locale, {
    style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
  return fmt.format(toDecimalString(amount, currency));
}

/** "m:ss" (or "h:mm:ss" from one hour), from milliseconds; partial seconds are dropped. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor((Number.isFinite(ms) ? ms : 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A countdown: like formatDuration, but a started second counts (999 ms left reads 0:01). */
export function formatCountdown(ms) {
  return formatDuration(Math.ceil(Math.max(0, ms) / 1000) * 1000);
}

/** A span of seconds in words: 60 -> "one minute", 90 -> "90 seconds", 120 -> "2 minutes". */
export function spanWords(seconds) {
  if (seconds === 60) return "one minute";
  if (seconds % 60 === 0) return `${seconds / 60} minutes`;
  if (seconds === 1) return "one second";
  return `${seconds} seconds`;
}

/** The free-threshold promise: "First minute free", "First 30 seconds free", or "" when none. */
export function freeOffer(freeSeconds) {
  if (!freeSeconds) return "";
  return `First ${spanWords(freeSeconds).replace(/^one /, "")} free`;
}

/** The terms stated before anything is charged, as plain sentences. */
export function termsText(price, freeSeconds, capMinutes, locale) {
  const per = `${formatMoney(price.amount, price.currency, locale)} per minute`;
  const lines = [per];
  if (price.amount === 0) {
    lines.push("This call is free.");
  } else if (freeSeconds) {
    lines.push(`Calls shorter than ${spanWords(freeSeconds)} are free. After that, every started minute is billed, the first one included.`);
  } else {
    lines.push("Every started minute is billed.");
  }
  if (capMinutes) {
    const most = price.amount ? `, so it costs at most ${formatMoney(price.amount * capMinutes, price.currency, locale)}` : "";
    lines.push(`The call ends automatically after ${spanWords(capMinutes * 60)}${most}.`);
  }
  if (price.amount && capMinutes) {
    lines.push("You approve that much in PayPal before the call rings; only the minutes you talk are charged, and the rest is released.");
  }
  return lines;
}

const NEVER_ACTIVE = ["cancelled", "declined", "missed", "expired", "failed"];

const END_REASONS = {
  hangup: (by, role, other) => (by === role ? "You hung up." : by ? `${other} hung up.` : "The call ended."),
  cap: () => "The call reached its time limit.",
  silence: (by, role, other) => (by === role ? "Your connection was lost." : `${other}'s connection was lost.`),
  failed: () => "The call could not connect. Nothing was charged.",
  cancelled: () => "The call was cancelled.",
  declined: () => "The call was declined.",
  missed: () => "The call was not answered.",
  expired: () => "The call did not start in time.",
};

/**
 * The end screen: {duration, amount, reason} as text. An amount of 0 on a call that ran reads
 * "Free: under one minute" (or the call's own free span), never "$0.00".
 */
export function endSummary(ended, { role = "visitor", other = "The other side", freeSeconds = 60, locale } = {}) {
  const amount = ended.amount ?? 0;
  let amountText;
  if (amount > 0) amountText = formatMoney(amount, ended.currency, locale);
  else if (NEVER_ACTIVE.includes(ended.reason) && !ended.duration_ms) amountText = "Nothing charged";
  else amountText = `Free: under ${spanWords(freeSeconds || 60)}`;
  const reason = (END_REASONS[ended.reason] || (() => "The call ended."))(ended.by, role, other);
  return { duration: formatDuration(ended.duration_ms ?? 0), amount: amountText, reason };
}

/** The meter as text: {elapsed, free (or ""), cost}. */
export function meterText(meter, locale) {
  return {
    elapsed: formatDuration(meter.elapsed_ms),
    free: meter.free_left_ms > 0 ? `Free for ${formatCountdown(meter.free_left_ms)} more` : "",
    cost: formatMoney(meter.amount, meter.currency, locale),
  };
}

/** A warning before the cap, in words; counts down with the meter once one has arrived. */
export function warningText(warning, meter = null) {
  if (!warning) return "";
  if (meter && meter.cap_left_ms >= 0) return `The call ends in ${formatCountdown(meter.cap_left_ms)} (time limit).`;
  const s = warning.seconds_left;
  return `The call ends in ${s >= 60 && s % 60 === 0 ? spanWords(s) : `${s} seconds`} (time limit).`;
}

/** Up to two initials for an avatar: "Ray Mears" -> "RM", "ray" -> "R". */
export function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => [...w][0].toUpperCase()).join("") || "?";
}

/** A stable colour slot 0..7 for an avatar. */
export function hueSlot(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 8;
}

/** The exact host-page origin from `?origin=`, or null when absent or not an http(s) origin. */
export function hostOrigin(search) {
  const value = new URLSearchParams(search).get("origin");
  if (!value) return null;
  try {
    const url = new URL(value);
    if ((url.protocol === "https:" || url.protocol === "http:") && url.origin === value) return value;
  } catch {
    // not a URL
  }
  return null;
}

/** A message for the host page. */
export const hostMessage = (type, detail) => (detail === undefined ? { callme: 1, type } : { callme: 1, type, detail });
