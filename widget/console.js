// The expert console (/console): presence, the ring, accepting and taking the call, the
// post-call summary, and the embed snippet. The call itself is call.js, as in the widget.
import { isFinished, isOpen } from "./callstate.js";
import { endSummary, formatCountdown, formatMoney, freeOffer, termsText } from "./format.js";
import { accept, decline, presence } from "./frames.js";
import { CallSession, CallState } from "./call.js";
import { InCallView, setText } from "./incall.js";
import * as M from "./media.js";
import { ConsoleSocket, sameOriginSocketUrl } from "./signal.js";
import { exposeForTests } from "./testhook.js";

const $ = (id) => document.getElementById(id);
const root = $("console");
const locale = navigator.language || undefined;
const terms = {
  price: { amount: Number(root.dataset.price), currency: root.dataset.currency },
  free_seconds: Number(root.dataset.freeSeconds),
  cap_minutes: Number(root.dataset.capMinutes),
};
const RING_REPEAT_MS = 2500;
const CALL_ENDED_GRACE_MS = 1500;

const store = new CallState("expert");
const exposed = { state: store.state.name, pc: null, call_id: null };
exposeForTests(exposed);

const view = new InCallView({
  onHangup: () => session?.hangup(store.state.meter), otherName: () => "the caller", locale, costLabel: "Earned so far",
});
$("incall-avatar").textContent = "V";  // the visitor: no name, one colour
$("incall-avatar").classList.add("hue-1");
let session = null;
let stream = null;
let mediaReady = null;       // Promise<MediaStream|null> started on Accept
let wanted = null;           // the presence the expert chose ("online"/"offline"); restored after a reconnect
let serverStatus = "connecting";

// ---- the console socket --------------------------------------------------------------

const socket = new ConsoleSocket(sameOriginSocketUrl("/ws/console"));

socket.addEventListener("frame", (e) => {
  const f = e.detail;
  if (f.type === "hello") {
    if (wanted === null) wanted = f.status === "offline" ? "offline" : "online";  // as another window left it
    else if (wanted === "online" && f.status === "offline") socket.send(presence("online"));
    showPresence(f.status);
  } else if (f.type === "presence") {
    if (f.status !== serverStatus) wanted = f.status === "offline" ? "offline" : "online";
    showPresence(f.status);
  } else if (f.type === "accepted") {
    join(f);
  } else if (f.type === "call_ended") {
    // The call socket normally reports the end itself; if it is down, ask the API.
    const s = session;
    if (s && s.callId === f.call_id) setTimeout(() => s.done || s.fetchResult(), CALL_ENDED_GRACE_MS);
  } else if (f.type === "error") {
    console.warn(`callme console: ${f.code}: ${f.message}`);
    if (["not_ringing", "call_not_found"].includes(f.code) && store.state.phase === "connecting" && !session) {
      store.dispatch({ type: "reset" });
      showNotice("That call is no longer ringing.");
    }
  }
  store.dispatch({ type: "frame", frame: f });
});
socket.addEventListener("down", () => showPresence("connecting"));
socket.addEventListener("fatal", (e) => {
  const { code, message } = e.detail;
  const error = $("console-error");
  error.textContent = code === "not_logged_in" ? "Your session has ended. " : `${message || code} `;
  if (code === "not_logged_in") {
    const link = Object.assign(document.createElement("a"), { href: "/login", textContent: "Log in again" });
    error.append(link);
  }
  error.hidden = false;
  showPresence("disconnected");
});

// ---- presence ------------------------------------------------------------------------

const PRESENCE_WORDS = {
  online: "Online: visitors can call you",
  ringing: "Ringing: a visitor is calling you",
  busy: "Busy: in a call",
  offline: "Offline: visitors cannot call you",
  connecting: "Connecting…",
  disconnected: "Disconnected",
};

/** What this page knows better than the server's word: a ring, or a call under way here. */
function localStatus(received) {
  if (received === "connecting" || received === "disconnected") return received;
  if (store.state.phase === "ringing") return "ringing";
  // The server announces "busy" only sometimes; a call on this page is proof enough.
  return isOpen(store.state) ? "busy" : received;
}

function showPresence(received) {
  const changed = received !== serverStatus;
  serverStatus = received;
  const status = localStatus(received);
  const p = $("presence");
  setText(p, PRESENCE_WORDS[status] || status);
  p.dataset.status = status;
  root.dataset.presence = status;
  const toggle = $("presence-toggle");
  const on = wanted === "online";
  toggle.disabled = status === "connecting" || status === "disconnected";
  toggle.setAttribute("aria-pressed", String(on));
  toggle.textContent = on ? "Go offline" : "Go online";
  toggle.classList.toggle("primary", !on);
  setText($("presence-hint"), on
    ? "Keep this page open. You will hear a ring and see a notification when a visitor calls."
    : "Go online to take calls. Keep this page open: you will hear a ring when a visitor calls.");
  if (changed) refreshPreview();
}

// ---- the page title: what is going on, in the tab's name ---------------------------

const title0 = document.title;

function showTitle(state) {
  const prefix = { ringing: "☎ Incoming call · ", connecting: "In call · ", active: "In call · " }[state.phase] || "";
  document.title = prefix + title0;
}

$("presence-toggle").addEventListener("click", () => {
  wanted = wanted === "online" ? "offline" : "online";
  if (wanted === "online") {
    M.audioContext()?.resume();  // a gesture now lets the ring sound later
    if (globalThis.Notification?.permission === "default") Notification.requestPermission().catch(() => {});
  }
  socket.send(presence(wanted));
  showPresence(serverStatus);
});

// ---- the ring ------------------------------------------------------------------------

const ringer = { sound: 0, countdown: 0, notification: null };

function startRinging(ring) {
  stopRinging();
  const price = formatMoney(ring.price, ring.currency, locale);
  setText($("incoming-terms"), `${price} per minute${ring.free_seconds ? `, ${freeOffer(ring.free_seconds).toLowerCase()}` : ""}`);
  setText($("incoming-from"), ring.origin ? `From ${ring.origin}` : "From your callme page");
  const deadline = performance.now() + ring.timeout_ms;
  const tick = () => setText($("ring-countdown"), `Answer within ${formatCountdown(deadline - performance.now())}`);
  tick();
  ringer.countdown = setInterval(tick, 250);
  const ding = () => M.chime({ notes: [880, 660, 880, 660], gap: 0.16, volume: 0.25 });
  ding();
  ringer.sound = setInterval(ding, RING_REPEAT_MS);
  if (globalThis.Notification?.permission === "granted") {
    try {
      const n = new Notification("Incoming call", { body: `A visitor is calling (${price}/min).`, tag: `callme-${ring.call_id}`, requireInteraction: true });
      n.onclick = () => {
        window.focus();
        $("accept").focus();
        n.close();
      };
      ringer.notification = n;
    } catch {
      // Notifications can need a service worker on some platforms; the sound and title still ring.
    }
  }
  $("accept").focus({ preventScroll: false });
}

function stopRinging() {
  clearInterval(ringer.sound);
  clearInterval(ringer.countdown);
  ringer.notification?.close();
  ringer.notification = null;
}

/**
 * The card that had the focus went away (the ring ended, Decline, Done, a call that failed): the
 * focus goes to the presence toggle, not to the page body.
 */
function keepFocus() {
  const at = document.activeElement;
  if (!at || at === document.body || !at.getClientRects().length) $("presence-toggle").focus();
}

$("accept").addEventListener("click", () => {
  const callId = store.state.call_id;
  if (store.state.phase !== "ringing" || !callId) return;
  store.dispatch({ type: "accept", call_id: callId });
  socket.send(accept(callId));
  mediaReady = M.getMediaWithFallback({}).then(({ stream: s, error, fellBack }) => {
    if (fellBack) showDeviceError(`Your camera could not start (${error.name}): the caller hears you but cannot see you.`);
    else if (!s) showDeviceError(`${M.mediaErrorMessage(error)} Until then the caller cannot hear you.`);
    return s;
  });
});

$("decline").addEventListener("click", () => {
  const callId = store.state.call_id;
  if (store.state.phase !== "ringing" || !callId) return;
  stopRinging();
  socket.send(decline(callId));
});

// ---- the call ------------------------------------------------------------------------

async function join(accepted) {
  if (store.state.call_id !== accepted.call_id) return;
  stream = await (mediaReady || Promise.resolve(null));
  if (store.state.call_id !== accepted.call_id || !isOpen(store.state)) {  // it ended while the camera started
    M.stopStream(stream);
    stream = null;
    return;
  }
  session?.finish();
  session = new CallSession({
    role: "expert", callId: accepted.call_id, wsUrl: accepted.ws_url, token: accepted.token,
    iceServers: accepted.ice_servers, stream, dispatch: store.dispatch,
  });
  session.addEventListener("remote", (e) => view.setRemote(e.detail));
  view.setLocal(stream);
  session.start();
  exposed.pc = session.pc;
}

function showDeviceError(text) {
  const el = $("device-error");
  el.textContent = text;
  el.hidden = !text;
}

function showNotice(text) {
  setText($("notice"), text || "");
  $("notice").hidden = !text;
}

$("summary-done").addEventListener("click", () => store.dispatch({ type: "reset" }));

// Escape during a call says how to end it (never ends it by itself), as in the widget.
addEventListener("keydown", (event) => {
  if (event.key === "Escape" && ["connecting", "active"].includes(store.state.phase)) view.escape();
});

addEventListener("pagehide", () => {
  if (session && isOpen(store.state)) session.hangup();
});

// ---- rendering -----------------------------------------------------------------------

store.addEventListener("change", (e) => {
  const { state, prev } = e.detail;
  document.body.dataset.state = state.name;
  document.body.dataset.phase = state.phase;
  exposed.state = state.name;
  exposed.call_id = state.call_id || exposed.call_id;
  if (session) exposed.pc = session.pc;
  if (isOpen(state) && state.phase !== "ringing") view.render(state);
  if (state.phase === prev.phase) return;
  showPresence(serverStatus);
  showTitle(state);
  if (state.phase === "ringing") {
    showNotice("");
    showDeviceError("");
    startRinging(state.ring);
  } else if (prev.phase === "ringing") {
    stopRinging();
  }
  if (state.phase === "idle" && state.notice) showNotice(state.notice);
  if (state.phase === "error") showNotice(state.error?.message || "The call could not continue.");
  if (state.phase === "connecting") $("incall-title").focus({ preventScroll: true });
  if (state.phase === "ended") {
    const s = endSummary(state.ended, { role: "expert", other: "The caller", freeSeconds: state.terms?.free_seconds ?? terms.free_seconds, locale });
    setText($("summary-duration"), s.duration);
    setText($("summary-amount"), s.amount);
    $("summary-amount").classList.toggle("words", !(state.ended.amount > 0));
    setText($("summary-reason"), s.reason);
    $("summary-title").focus();
  }
  if (isFinished(state) || state.phase === "idle") {
    view.clear();
    M.stopStream(stream);
    stream = null;
    mediaReady = null;
    if (state.phase !== "ended") session?.finish();
  }
  keepFocus();
});

function renderTerms() {
  setText($("terms-price"), `${formatMoney(terms.price.amount, terms.price.currency, locale)} per minute`);
  const lines = termsText(terms.price, terms.free_seconds, terms.cap_minutes, locale).slice(1);
  $("terms-lines").replaceChildren(...lines.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
}

// ---- the snippet ---------------------------------------------------------------------

$("copy-snippet").addEventListener("click", async () => {
  const text = $("snippet").value;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    $("snippet").select();
    document.execCommand("copy");
  }
  setText($("copy-status"), "Copied");
  setTimeout(() => setText($("copy-status"), ""), 2000);
});
$("snippet").addEventListener("focus", (e) => e.target.select());

/**
 * The preview is the real button (embed.js), which asks for the status every 30 s: when the
 * presence changes, put a new one in its place at once. The status answer may be cached for a
 * few seconds, so fetch it afresh first (the same request the button makes), which refreshes
 * the cached copy the new button then reads.
 */
async function refreshPreview() {
  const slot = $("embed-preview");
  if (!window.CallMe || !slot.querySelector("callme-button")) return;  // the loader places it when it arrives
  const url = `/api/v1/experts/${encodeURIComponent(root.dataset.handle)}/status`;
  await fetch(url, { credentials: "omit", cache: "reload" }).catch(() => {});
  slot.replaceChildren();
  window.CallMe("button", { expert: root.dataset.handle, target: slot });
}

// ---- start ---------------------------------------------------------------------------

document.body.dataset.state = store.state.name;
renderTerms();
showPresence("connecting");
socket.start();
