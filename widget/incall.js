// The in-call screen, shared by the widget and the expert console: the two videos, mute,
// camera, hang-up, the meter, warnings, "Reconnecting…" and the tap-to-unmute fallback.
import * as P from "./protocol.js";

const $ = (id) => document.getElementById(id);

export class InCallView {
  /** @param {{onHangup: () => void, otherName: () => string, locale?: string}} o */
  constructor({ onHangup, otherName, locale }) {
    this.otherName = otherName;
    this.locale = locale;
    this.local = null;
    this.remote = null;
    this.el = {
      root: $("incall"), remoteVideo: $("remote-video"), localVideo: $("local-video"), remoteAvatar: $("remote-avatar"),
      mute: $("mute"), camera: $("camera"), hangup: $("hangup"), elapsed: $("elapsed"), freeLeft: $("free-left"),
      cost: $("cost"), warning: $("warning"), reconnecting: $("reconnecting"), unmute: $("unmute-audio"),
      note: $("call-note"), announce: $("announce"),
    };
    this.warned = null;
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
      const text = P.meterText(m, this.locale);
      setText(el.elapsed, text.elapsed);
      setText(el.freeLeft, text.free);
      el.freeLeft.hidden = !text.free;
      setText(el.cost, text.cost);
    } else {
      setText(el.elapsed, "0:00");
      el.freeLeft.hidden = true;
      setText(el.cost, state.terms ? P.formatMoney(0, state.terms.currency, this.locale) : "");
    }
    setText(el.warning, P.warningText(state.warning, state.meter));
    el.warning.hidden = !state.warning;
    if (state.warning !== this.warned) {
      this.warned = state.warning;
      setText(el.announce, P.warningText(state.warning));  // said once, not at every tick
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

  /** Release the videos after a call. */
  clear() {
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
