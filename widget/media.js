// Local media: the camera and microphone, the device lists, the microphone level, the speaker.

/** Ask for the microphone (and the camera unless `audioOnly`), on the chosen devices. */
export async function getMedia({ audioOnly = false, micId = "", camId = "" } = {}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const e = new Error("This page cannot use a camera or microphone (it needs a secure https page).");
    e.name = "NotSupportedError";
    throw e;
  }
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, ...(micId ? { deviceId: { exact: micId } } : {}) };
  const video = audioOnly ? false : { width: { ideal: 1280 }, height: { ideal: 720 }, ...(camId ? { deviceId: { exact: camId } } : {}) };
  return navigator.mediaDevices.getUserMedia({ audio, video });
}

/**
 * Get media, falling back to the microphone alone when the camera is missing, busy or blocked.
 * Returns {stream, fellBack, error}: stream null when nothing could be had.
 */
export async function getMediaWithFallback(options) {
  try {
    return { stream: await getMedia(options), fellBack: false, error: null };
  } catch (error) {
    if (options.audioOnly || error.name === "NotSupportedError") return { stream: null, fellBack: false, error };
    try {
      return { stream: await getMedia({ ...options, audioOnly: true, camId: "" }), fellBack: true, error };
    } catch (second) {
      // Report what stops the microphone too; a missing camera is not the point then.
      return { stream: null, fellBack: false, error: second.name === "NotFoundError" ? second : error };
    }
  }
}

/** A message people can act on, for a getUserMedia failure. */
export function mediaErrorMessage(error, { fellBack = false } = {}) {
  if (fellBack) {
    const why = {
      NotReadableError: "Your camera is in use by another app",
      NotAllowedError: "Camera access is blocked",
      SecurityError: "Camera access is blocked",
    }[error?.name] || "No camera was found";
    return `${why}. You can call with audio only, or fix it and press Try again.`;
  }
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera and microphone access is blocked. Allow it in your browser's address bar (the camera icon), then press Try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one (or a headset) and press Try again.";
    case "NotReadableError":
    case "AbortError":
      return "Your microphone or camera is in use by another app. Close it and press Try again.";
    case "NotSupportedError":
      return error.message;
    default:
      return `The camera or microphone could not start (${error?.name || "unknown error"}). Press Try again.`;
  }
}

/** Devices by kind: {audioinput, videoinput, audiooutput}, each [{id, label}]. */
export async function listDevices() {
  const out = { audioinput: [], videoinput: [], audiooutput: [] };
  if (!navigator.mediaDevices?.enumerateDevices) return out;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const counts = { audioinput: 0, videoinput: 0, audiooutput: 0 };
  const names = { audioinput: "Microphone", videoinput: "Camera", audiooutput: "Speaker" };
  for (const d of devices) {
    if (!(d.kind in out) || !d.deviceId) continue;
    counts[d.kind] += 1;
    out[d.kind].push({ id: d.deviceId, label: d.label || `${names[d.kind]} ${counts[d.kind]}` });
  }
  return out;
}

/** Whether audio output can be chosen (HTMLMediaElement.setSinkId). */
export const canPickSpeaker = () => typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;

/** Stop every track of a stream. */
export function stopStream(stream) {
  stream?.getTracks().forEach((t) => t.stop());
}

let sharedContext = null;

/** One AudioContext for the page, resumed on the first gesture (autoplay rules). */
export function audioContext() {
  if (!sharedContext) {
    const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!Ctx) return null;
    sharedContext = new Ctx();
    const resume = () => sharedContext.state === "suspended" && sharedContext.resume();
    for (const type of ["pointerdown", "keydown"]) addEventListener(type, resume, { capture: true });
  }
  return sharedContext;
}

/**
 * Measure a stream's microphone level; calls `onLevel(0..1)` on every animation frame.
 * Returns a function that stops measuring.
 */
export function watchLevel(stream, onLevel) {
  const ctx = audioContext();
  const track = stream?.getAudioTracks()[0];
  if (!ctx || !track) return () => {};
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  let frame = 0;
  let level = 0;
  const tick = () => {
    analyser.getByteTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += (v - 128) * (v - 128);
    const rms = Math.sqrt(sum / data.length) / 128;
    level = Math.max(Math.min(1, rms * 4), level * 0.85);  // fast attack, slow fall
    onLevel(level);
    frame = requestAnimationFrame(tick);
  };
  tick();
  return () => {
    cancelAnimationFrame(frame);
    source.disconnect();
    onLevel(0);
  };
}

/** Play a short two-note chime (speaker test, ring), through `sinkId` when the browser allows. */
export async function chime({ notes = [660, 880], gap = 0.18, volume = 0.2, sinkId = "" } = {}) {
  const ctx = audioContext();
  if (!ctx) return;
  if (ctx.state === "suspended") await ctx.resume().catch(() => {});
  if (sinkId && ctx.setSinkId) await ctx.setSinkId(sinkId).catch(() => {});
  const start = ctx.currentTime + 0.02;
  notes.forEach((hz, i) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    const t = start + i * gap;
    osc.type = "sine";
    osc.frequency.value = hz;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(volume, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + gap * 1.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t);
    osc.stop(t + gap * 1.7);
  });
}
