// Signaling frames: the ones the clients send, built here, and the ones the server sends,
// checked here. Pure: no DOM, no sockets, no timers (README, "The signaling protocol").

// ---- frames the clients send ---------------------------------------------------------

export const hello = (token) => ({ type: "hello", token });
export const offer = (sdp) => ({ type: "offer", sdp });
export const answer = (sdp) => ({ type: "answer", sdp });
export const heartbeat = () => ({ type: "heartbeat" });
export const presence = (status) => ({ type: "presence", status });
export const accept = (callId) => ({ type: "accept", call_id: callId });
export const decline = (callId) => ({ type: "decline", call_id: callId });

/** The RTCPeerConnection state, as the server wants it reported. */
export const connectionState = (connection) => ({ type: "state", connection });

/**
 * Hang up. Built at the moment of the click and sent unchanged, however late: with the server
 * time of the last `ack` (`ack_ms`) and the milliseconds on this client's monotonic clock since
 * that ack arrived (`since_ack_ms`), so the server can bill to the click, not to when a queued
 * hang-up finally got through. Without an ack yet, a bare hang-up.
 * @param {{seenMs: number, at: number} | null} ack what `ackReceived` recorded
 * @param {number} now `performance.now()` at the click
 */
export function hangup(ack = null, now = 0) {
  if (!ack) return { type: "hangup" };
  return { type: "hangup", ack_ms: ack.seenMs, since_ack_ms: Math.max(0, Math.round(now - ack.at)) };
}

/** What to remember of an `ack` frame that arrived at `now` (`performance.now()`). */
export const ackReceived = (frame, now) => ({ seenMs: frame.seen_ms, at: now });

/** A trickled ICE candidate: exactly the fields the server accepts (it rejects others). */
export function candidate(c) {
  return {
    type: "candidate",
    candidate: c.candidate ?? "",
    sdpMid: c.sdpMid ?? null,
    sdpMLineIndex: c.sdpMLineIndex ?? null,
  };
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
  ack: { seen_ms: isInt },  // the answer to a heartbeat or state frame: the server's clock then
  ended: {
    reason: isStr, by: optional(isStr), duration_ms: optional(isInt), minutes: optional(isInt),
    amount: optional(isInt), currency: isCurrency, receipt: optional(isStr), call_id: optional(isStr),
    rating: optional(isStr),
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
  const spec = Object.hasOwn(SERVER_FRAMES, obj.type) ? SERVER_FRAMES[obj.type] : null;
  if (!spec) return { error: `Unknown frame type '${obj.type}'.` };
  for (const [name, check] of Object.entries(spec)) {
    if (!check(obj[name])) return { error: `'${obj.type}' has a bad '${name}'.` };
  }
  if (obj.type === "accepted" && obj.ice_servers && !obj.ice_servers.every(isObj)) {
    return { error: "'accepted' has bad ice_servers." };
  }
  return { frame: obj };
}
