// The widget page (/w/<handle>, inside the loader's iframe): screens, devices, and messages
// to the host page. The call itself is call.js; what things say is format.js and callstate.js.
import { holdAmount, needsPayment } from "./api.js";
import { isFinished, isOpen } from "./callstate.js";
import { endSummary, formatMoney, freeOffer, hueSlot, initials, termsText } from "./format.js";
import { hostMessage, hostOrigin } from "./messages.js";
import { VisitorCall } from "./call.js";
import { InCallView, setText } from "./incall.js";
import * as M from "./media.js";
import { exposeForTests } from "./testhook.js";

const $ = (id) => document.getElementById(id);
const locale = navigator.language || undefined;
const handle = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const host = hostOrigin(location.search);
const framed = window.parent !== window;
const STATUS_REFRESH_MS = 15_000;

const call = new VisitorCall({ handle, origin: host });
const media = { stream: null, stopLevel: () => {}, error: null, fellBack: false, requesting: null, again: false };
const exposed = { state: call.state.name, pc: null, call_id: null };
exposeForTests(exposed);

/** Getting the call going: the PayPal approval, then creating it. */
const busy = (state) => state.phase === "paying" || state.phase === "creating";

const expertName = () => call.state.expert?.display_name || handle;

const view = new InCallView({ onHangup: () => call.hangup(), otherName: expertName, locale });

// ---- the host page -------------------------------------------------------------------

/** Tell the host page (the exact ?origin=, never "*"); nothing when not framed or no origin. */
function post(type, detail) {
  if (host && framed) window.parent.postMessage(hostMessage(type, detail), host);
}

addEventListener("message", (event) => {
  if (!host || event.origin !== host || event.source !== window.parent) return;
  const msg = event.data;
  if (!msg || msg.callme !== 1) return;
  if (msg.type === "close") {
    if (isOpen(call.state) || busy(call.state)) call.hangup();
    M.stopStream(media.stream);
    media.stream = null;
  }
});

// Escape outside a call asks the host page to close the widget (focus is often in here). During
// a call it never ends the call by itself: it says how, with the focus on the button that does.
addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (call.state.phase === "active" || call.state.phase === "connecting") view.escape();
  else if (isOpen(call.state) || busy(call.state)) $("cancel").focus();
  else post("close");
});

// A closing page hangs up rather than leaving the expert in a silent call (or PayPal open).
addEventListener("pagehide", () => {
  if (isOpen(call.state) || call.state.phase === "paying") call.hangup();
});

// ---- devices -------------------------------------------------------------------------

const audioOnly = $("audio-only");

/** (Re)start the camera and microphone with the current choices; one request at a time. */
async function acquire() {
  if (media.requesting) {
    media.again = true;  // the choices changed meanwhile: ask once more when this one is done
    return media.requesting;
  }
  media.requesting = (async () => {
    do {
      media.again = false;
      M.stopStream(media.stream);
      media.stopLevel();
      media.stream = null;
      renderPrecall(call.state);
      const result = await M.getMediaWithFallback({
        audioOnly: audioOnly.checked, micId: $("mic-select").value, camId: $("camera-select").value,
      });
      Object.assign(media, { stream: result.stream, error: result.error, fellBack: result.fellBack });
      if (result.fellBack) audioOnly.checked = true;
    } while (media.again);
  })();
  try {
    await media.requesting;
  } finally {
    media.requesting = null;
  }
  if (call.state.phase !== "precall") {  // the widget was closed meanwhile
    M.stopStream(media.stream);
    media.stream = null;
    return;
  }
  showPreview();
  await fillDevices();
  renderPrecall(call.state);
}

function showPreview() {
  media.stopLevel();
  const video = $("preview");
  const stream = media.stream;
  const hasVideo = !!stream?.getVideoTracks().length;
  video.srcObject = hasVideo ? stream : null;
  if (hasVideo) video.play().catch(() => {});
  $("preview-box").classList.toggle("off", !hasVideo);
  $("preview-box").classList.toggle("no-audio", !stream?.getAudioTracks().length);
  setText($("preview-off-text"), !stream ? "No camera or microphone" : "Camera off");
  const fill = $("mic-level");
  media.stopLevel = M.watchLevel(stream, (level) => fill.style.setProperty("--level", level.toFixed(3)));
  const error = $("device-error");
  if (media.error && (!stream || media.fellBack)) {
    setText($("device-error-text"), deviceErrorText());
    error.hidden = false;
  } else {
    error.hidden = true;
  }
}

const BLOCKED = ["NotAllowedError", "SecurityError"];

/** What stops the devices; with "Audio only" chosen, that the microphone alone is blocked too. */
function deviceErrorText() {
  if (!media.stream && audioOnly.checked && BLOCKED.includes(media.error.name)) {
    return "The microphone is blocked too, and every call needs it, audio only as well. Allow the microphone "
      + "in your browser's address bar (the camera icon), then press Try again.";
  }
  return M.mediaErrorMessage(media.error, { fellBack: media.fellBack });
}

function fillSelect(select, devices, current) {
  const chosen = select.value || current || "";
  select.replaceChildren(...devices.map((d) => new Option(d.label, d.id, false, d.id === chosen)));
  select.disabled = devices.length === 0;
  if (!devices.length) select.append(new Option("None found", ""));
}

async function fillDevices() {
  const devices = await M.listDevices().catch(() => null);
  if (!devices) return;
  const track = (kind) => media.stream?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
  fillSelect($("mic-select"), devices.audioinput, track("audio"));
  fillSelect($("camera-select"), devices.videoinput, track("video"));
  const speakers = M.canPickSpeaker() && devices.audiooutput.length > 0;
  $("speaker-row").hidden = !speakers;
  $("speaker-label").hidden = !speakers;
  if (speakers) fillSelect($("speaker-select"), devices.audiooutput, "default");
}

$("mic-select").addEventListener("change", acquire);
$("camera-select").addEventListener("change", acquire);
audioOnly.addEventListener("change", acquire);
$("device-retry").addEventListener("click", () => {
  if (media.fellBack) audioOnly.checked = false;  // try the camera again too
  acquire();
});
$("speaker-select").addEventListener("change", () => view.setSpeaker($("speaker-select").value));
$("speaker-test").addEventListener("click", () => M.chime({ sinkId: $("speaker-select").value }));
navigator.mediaDevices?.addEventListener?.("devicechange", () => {
  if (call.state.phase === "precall") fillDevices();
});

// ---- the screens ---------------------------------------------------------------------

function setAvatar(el, name) {
  el.textContent = initials(name);
  el.className = el.className.replace(/\bhue-\d\b/g, "").trim() + ` hue-${hueSlot(handle)}`;
}

// While a call is under way the status line says how the call is doing.
const CALL_STATUS = {
  paying: "Waiting for PayPal…", creating: "Starting the call…", ringing: "Calling…", connecting: "Connecting…", active: "In call",
  reconnecting: "Reconnecting…", ended: "Call ended",
};

function renderHeader(state) {
  const e = state.expert;
  if (!e) return;
  const name = e.display_name;
  setText($("expert-name"), name);
  document.title = `Call ${name} · callme`;
  for (const el of document.querySelectorAll(".expert-name")) setText(el, name);
  for (const id of ["expert-avatar", "ringing-avatar", "outcome-avatar", "incall-avatar"]) setAvatar($(id), name);
  const words = { online: `${name} is online`, busy: `${name} is in another call`, offline: `${name} is offline` };
  const during = CALL_STATUS[state.name];
  setText($("status-text"), during || words[e.status] || e.status);
  $("status").dataset.status = during ? "call" : e.status;
  setText($("price"), `${formatMoney(e.price.amount, e.price.currency, locale)}/min`);
}

function renderPrecall(state) {
  const e = state.expert;
  if (!e) return;
  setText($("terms-price"), `${formatMoney(e.price.amount, e.price.currency, locale)} per minute`);
  const free = e.price.amount ? freeOffer(e.free_seconds) : "";
  setText($("terms-free"), free);
  $("terms-free").hidden = !free;
  const lines = termsText(e.price, e.free_seconds, e.cap_minutes, locale).slice(1);
  $("terms-lines").replaceChildren(...lines.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
  setText($("notice"), state.notice || "");
  $("notice").hidden = !state.notice;
  setText($("start-label"), `Call ${e.display_name}`);
  const hold = holdAmount(e.price, e.cap_minutes);
  setText($("paying-hold"), hold ? formatMoney(hold, e.price.currency, locale) : "");
  const hasMic = !!media.stream?.getAudioTracks().length;
  $("start-call").disabled = !hasMic || !!media.requesting;
  // A disabled Call says why (beside it, and as its description).
  const why = !hasMic && !media.requesting && media.error ? "Calls need a microphone: see the message above." : "";
  setText($("start-why"), why);
  $("start-why").hidden = !why;
}

const OUTCOMES = {
  declined: (name) => [`${name} declined the call`, `${name} can't take your call right now. Nothing was charged.`],
  missed: (name) => ["No answer", `${name} didn't answer. Nothing was charged. Try again in a little while.`],
  error: (name, state) => [state.ended || state.call_id ? "The call was interrupted" : "The call could not start",
    state.error?.message || "Something went wrong."],
};

function renderOutcome(state) {
  const [title, text] = OUTCOMES[state.phase](expertName(), state);
  setText($("outcome-title"), title);
  setText($("outcome"), text);
}

function renderEnded(state) {
  const ended = state.ended;
  const summary = endSummary(ended, { role: "visitor", other: expertName(), freeSeconds: state.terms?.free_seconds ?? state.expert?.free_seconds, locale });
  setText($("ended-duration"), summary.duration);
  setText($("ended-amount"), summary.amount);
  $("ended-amount").classList.toggle("words", !(ended.amount > 0));
  setText($("ended-reason"), summary.reason);
  const receipt = $("receipt");
  receipt.hidden = !ended.receipt;
  if (ended.receipt) {
    receipt.href = `/receipts/${encodeURIComponent(ended.call_id)}?t=${encodeURIComponent(ended.receipt)}`;
  }
  const rate = $("rate");  // a paid call's rating link (the rating page checks the payment)
  rate.hidden = !(ended.rating && ended.call_id);
  if (!rate.hidden) {
    rate.href = `/rate/${encodeURIComponent(ended.call_id)}?t=${encodeURIComponent(ended.rating)}`;
  }
  const note = ended.provisional ? "We lost the connection to callme; the final amount will be on your receipt." : "";
  setText($("ended-note"), note);
  $("ended-note").hidden = !note;
}

const FOCUS = { paying: "ringing-title", ringing: "cancel", declined: "outcome-title", missed: "outcome-title", error: "outcome-title", ended: "ended-title", active: "incall-title" };

function render({ state, prev }) {
  document.body.dataset.state = state.name;
  document.body.dataset.phase = state.phase;
  exposed.state = state.name;
  exposed.call_id = state.call_id || exposed.call_id;
  exposed.pc = call.pc || exposed.pc;
  renderHeader(state);
  if (state.phase === "precall") renderPrecall(state);
  if (state.phase in OUTCOMES) renderOutcome(state);
  if (isOpen(state)) view.render(state);
  if (state.phase === "ended") renderEnded(state);
  if (state.phase !== prev.phase) entered(state, prev);
}

/** Side effects of entering a phase. */
function entered(state, prev) {
  if (state.phase === "precall" && prev.phase === "idle") post("ready");
  if (state.phase === "ringing" && prev.phase === "creating") {
    post("started", { call_id: state.call_id });
    view.setLocal(media.stream);
  }
  if (state.ended && state.ended !== prev.ended) {
    const e = state.ended;
    post("ended", { call_id: e.call_id, duration_ms: e.duration_ms ?? 0, amount: e.amount ?? 0, currency: e.currency, reason: e.reason });
  }
  if (isFinished(state)) {
    view.clear();
    media.stopLevel();
    M.stopStream(media.stream);
    media.stream = null;
  }
  if (state.phase === "precall") {
    if (media.stream) showPreview();  // back from a cancelled call: measure the microphone again
    else acquire();
  }
  const focus = FOCUS[state.phase];
  if (focus && prev.phase !== "idle") $(focus)?.focus({ preventScroll: true });
  if (state.phase === "precall" && prev.phase !== "idle") backToPrecall();
}

/**
 * Back at pre-call from a call that did not happen (PayPal cancelled, Cancel, Try again): the
 * focus was on a button that is gone. It goes to the notice saying what happened, scrolled into
 * view, or else to Call (or the screen's heading while Call waits for the microphone).
 */
function backToPrecall() {
  const notice = $("notice");
  const start = $("start-call");
  const target = !notice.hidden ? notice : !start.disabled ? start : $("precall-title");
  target.focus({ preventScroll: true });
  target.scrollIntoView({ block: "nearest" });
}

call.addEventListener("change", (e) => render(e.detail));
call.addEventListener("remote", (e) => {
  view.setRemote(e.detail);
  exposed.pc = call.pc;
});

// ---- buttons -------------------------------------------------------------------------

/**
 * The window PayPal's approval page will show in, opened right in the click (browsers block
 * popups opened later); a callme page says "Opening PayPal…" until the order exists.
 */
function openPayPalWindow() {
  const width = 480;
  const height = 680;
  const left = Math.max(0, Math.round(screenX + (outerWidth - width) / 2));
  const top = Math.max(0, Math.round(screenY + (outerHeight - height) / 2));
  return window.open("/paypal/wait", "callme-paypal", `popup,width=${width},height=${height},left=${left},top=${top}`);
}

$("start-call").addEventListener("click", async () => {
  const popup = needsPayment(call.state.expert) ? openPayPalWindow() : null;
  media.stopLevel();
  await call.start(media.stream, popup);
  exposed.pc = call.pc;
  const speaker = $("speaker-select").value;
  if (speaker) view.setSpeaker(speaker);
});
$("cancel").addEventListener("click", () => call.hangup());
$("paypal-focus").addEventListener("click", () => call.focusPayPal());
$("retry").addEventListener("click", async () => {
  call.reset();
  refreshStatus();
});
$("close").addEventListener("click", () => {
  if (host && framed) post("close");
  else {
    call.reset();
    refreshStatus();
  }
});

// ---- start ---------------------------------------------------------------------------

async function refreshStatus() {
  try {
    await call.loadStatus();
  } catch (e) {
    if (call.state.phase === "idle") setText($("status-text"), `${e.message} Reload the page to try again.`);
  }
}

render({ state: call.state, prev: call.state });
refreshStatus();
setInterval(() => {
  if (["idle", "precall", "declined", "missed", "error"].includes(call.state.phase) && !document.hidden) refreshStatus();
}, STATUS_REFRESH_MS);
