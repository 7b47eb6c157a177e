// The in-call screen, shared by the widget and the expert console: the two videos, mute,
// camera, hang-up, the meter, warnings, "Reconnecting…" and the tap-to-unmute fallback.
// Its markup is written here once: each page holds only `<section id="incall">` with its own
// heading (and anything of its own, such as the console's device alert), and the view adds the
// stage after the heading and the controls at the end.
import { formatMoney, meterText, warningText } from "./format.js";

const $ = (id) => document.getElementById(id);
const icon = (name, cls = "") => `<svg class="icon${cls}" aria-hidden="true"><use href="/widget/icons.svg#${name}"/></svg>`;

/** The stage (videos, meter, banners) and the controls; `costLabel` names the running amount. */
export const markup = ({ costLabel }) => `
<div class="stage">
  <video id="remote-video" playsinline autoplay></video>
  <div class="remote-avatar" id="remote-avatar" aria-hidden="true"><div class="avatar large" id="incall-avatar"></div></div>
  <video id="local-video" playsinline muted autoplay></video>
  <div class="meter" role="group" aria-label="Call meter">
    <span class="pill"><span class="visually-hidden">Elapsed </span><span id="elapsed" role="timer">0:00</span></span>
    <span class="pill free" id="free-left" role="timer" hidden></span>
    <span class="pill cost"><span class="visually-hidden">${costLabel} </span><span id="cost" aria-live="polite"></span></span>
  </div>
  <p class="banner warn" id="warning" hidden></p>
  <p class="visually-hidden" id="announce" aria-live="assertive"></p>
  <p class="banner" id="reconnecting" role="status">Reconnecting…</p>
  <p class="banner quiet" id="call-note" hidden></p>
  <p class="banner hint" id="call-hint" hidden></p>
  <button type="button" class="btn primary" id="unmute-audio" hidden>${icon("speaker")} Tap to unmute</button>
</div>
<div class="controls">
  <button type="button" class="round" id="mute" aria-pressed="false">
    ${icon("mic", " when-off")}${icon("mic-off", " when-on")}<span class="label">Mute</span>
  </button>
  <button type="button" class="round" id="camera" aria-pressed="false">
    ${icon("cam", " when-off")}${icon("cam-off", " when-on")}<span class="label">Camera off</span>
  </button>
  <button type="button" class="round hangup" id="hangup">${icon("phone-down")}<span class="label">Hang up</span></button>
</div>`;

const HINT_MS = 5000;

export class InCallView {
  /** @param {{onHangup: () => void, otherName: () => string, locale?: string, costLabel?: string}} o */
  constructor({ onHangup, otherName, locale, costLabel = "Cost so far" }) {
    this.otherName = otherName;
    this.locale = locale;
    this.local = null;
    this.remote = null;
    const root = $("incall");
    const parts = document.createElement("template");
    parts.innerHTML = markup({ costLabel });
    const [stage, controls] = parts.content.children;
    root.querySelector("h2").after(stage);
    root.append(controls);
    this.el = {
      root, remoteVideo: $("remote-video"), localVideo: $("local-video"), remoteAvatar: $("remote-avatar"),
      mute: $("mute"), camera: $("camera"), hangup: $("hangup"), elapsed: $("elapsed"), freeLeft: $("free-left"),
      cost: $("cost"), warning: $("warning"), reconnecting: $("reconnecting"), unmute: $("unmute-audio"),
      note: $("call-note"), announce: $("announce"), hint: $("call-hint"),
    };
    this.warned = null;
    this.hintTimer = 0;
    this.el.mute.addEventListener("click", () => this.toggle("audio", this.el.mute));
    this.el.camera.addEventListener("click", () => this.toggle("video", this.el.camera));
    this.el.hangup.addEventListener("click", () => onHangup());
    this.el.unmute.addEventListener("click", () => this.unmute());
  }

  /** Show our own camera (muted, mirrored) and set up the buttons for what we send. */
  setLocal(stream) {
    this.local = stream;
    const hasVideo = !!stream?.getVideoTracks().length;
    this.el.localVideo.srcObject = hasVideo ? stream : null;
    this.el.root.classList.toggle("no-local-video", !hasVideo);
    this.el.camera.disabled = !hasVideo;
    this.el.mute.disabled = !stream?.getAudioTracks().length;
    this.setPressed(this.el.mute, false, "Mute", "Unmute");
    this.setPressed(this.el.camera, false, "Camera off", "Camera on");
    if (hasVideo) this.el.localVideo.play().catch(() => {});
  }

  /** Play the other side. If autoplay with sound is refused, play muted and offer "Tap to unmute". */
  setRemote(stream) {
    const video = this.el.remoteVideo;
    if (this.remote !== stream) {
      this.remote = stream;
      video.srcObject = stream;
      stream.addEventListener("addtrack", () => this.watchRemoteVideo());
    }
    this.watchRemoteVideo();
    video.play().catch((e) => {
      if (e.name !== "NotAllowedError") return;
      video.muted = true;
      this.el.unmute.hidden = false;
      video.play().catch(() => {});
    });
  }

  /** The avatar stands in while the other side sends no video. */
  watchRemoteVideo() {
    const tracks = this.remote?.getVideoTracks() || [];
    const update = () => {
      const live = tracks.some((t) => t.readyState === "live" && !t.muted);
      this.el.root.classList.toggle("no-remote-video", !live);
    };
    for (const t of tracks) {
      t.onmute = update;
      t.onunmute = update;
      t.onended = update;
    }
    update();
  }

  unmute() {
    const video = this.el.remoteVideo;
    video.muted = false;
    video.play().then(() => {
      this.el.unmute.hidden = true;
    }).catch(() => {});
  }

  async setSpeaker(sinkId) {
    if (this.el.remoteVideo.setSinkId) await this.el.remoteVideo.setSinkId(sinkId || "").catch(() => {});
  }

  toggle(kind, button) {
    const tracks = kind === "audio" ? this.local?.getAudioTracks() : this.local?.getVideoTracks();
    if (!tracks?.length) return;
    const off = tracks[0].enabled;
    tracks.forEach((t) => { t.enabled = !off; });
    if (kind === "audio") this.setPressed(button, off, "Mute", "Unmute");
    else {
      this.setPressed(button, off, "Camera off", "Camera on");
      this.el.root.classList.toggle("camera-off", off);
    }
  }

  setPressed(button, pressed, offLabel, onLabel) {
    button.setAttribute("aria-pressed", String(pressed));
    button.querySelector(".label").textContent = pressed ? onLabel : offLabel;
  }

  /** Render the parts of the state this screen shows. */
  render(state) {
    const el = this.el;
    const m = state.meter;
    const name = this.otherName();
    if (m) {
      const text = meterText(m, this.locale);
      setText(el.elapsed, text.elapsed);
      setText(el.freeLeft, text.free);
      el.freeLeft.hidden = !text.free;
      setText(el.cost, text.cost);
    } else {
      setText(el.elapsed, "0:00");
      el.freeLeft.hidden = true;
      setText(el.cost, state.terms ? formatMoney(0, state.terms.currency, this.locale) : "");
    }
    setText(el.warning, warningText(state.warning, state.meter));
    el.warning.hidden = !state.warning;
    if (state.warning !== this.warned) {
      this.warned = state.warning;
      setText(el.announce, warningText(state.warning));  // said once, not at every tick
    }
    let note = "";
    if (state.phase === "connecting") note = `Connecting to ${name}…`;
    else if (state.phase === "active" && !state.peerPresent && state.name !== "reconnecting") note = `Waiting for ${name} to come back…`;
    setText(el.note, note);
    el.note.hidden = !note;
    setText(el.reconnecting, state.socketDown ? "Reconnecting… the call goes on." : "Reconnecting the media…");
    el.hangup.disabled = state.hangingUp;
    el.hangup.querySelector(".label").textContent = state.hangingUp ? "Ending…" : "Hang up";
  }

  /**
   * Escape during a call: a paid call is never ended by a stray key (and Escape is how people
   * close things), so say how to end it and put the focus on Hang up: Enter then ends the call.
   */
  escape() {
    const hint = this.el.hint;
    setText(hint, "To end the call, press Hang up.");
    setText(this.el.announce, hint.textContent);
    hint.hidden = false;
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(() => { hint.hidden = true; }, HINT_MS);
    this.el.hangup.focus();
  }

  /** Release the videos after a call. */
  clear() {
    clearTimeout(this.hintTimer);
    this.el.hint.hidden = true;
    this.el.remoteVideo.srcObject = null;
    this.el.localVideo.srcObject = null;
    this.el.unmute.hidden = true;
    this.el.remoteVideo.muted = false;
    this.el.root.classList.remove("camera-off");
    this.remote = null;
    this.local = null;
  }
}

/** Set text only when it changed (keeps aria-live regions quiet). */
export function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}
