// The RTCPeerConnection of one participant. The visitor offers once the expert is present;
// the expert answers. Candidates trickle both ways through `send`. Only the visitor restarts
// ICE (so the two sides never offer at once).
import { answer, candidate, connectionState, offer } from "./frames.js";

const RESTART_AFTER_DISCONNECTED_MS = 4000;
const MAX_RESTARTS = 5;

export class Peer extends EventTarget {
  /**
   * @param {object} o
   * @param {"visitor"|"expert"} o.role
   * @param {RTCIceServer[]} o.iceServers exactly as the server gave them (possibly [])
   * @param {MediaStream|null} o.stream local media (may be null or audio only)
   * @param {(frame: object) => void} o.send sends a signaling frame
   * Events: "track" (detail: the remote MediaStream), "state" (detail: connectionState).
   */
  constructor({ role, iceServers, stream, send }) {
    super();
    this.role = role;
    this.send = send;
    this.stream = stream;
    this.remote = new MediaStream();
    this.offered = false;
    this.restarts = 0;
    this.chain = Promise.resolve();
    this.pendingCandidates = [];
    this.disconnectTimer = 0;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    this.pc.onicecandidate = (e) => {
      // null = gathering finished; an empty candidate string likewise: nothing to send.
      if (e.candidate && e.candidate.candidate) this.send(candidate(e.candidate));
    };
    this.pc.ontrack = (e) => {
      if (!this.remote.getTracks().includes(e.track)) this.remote.addTrack(e.track);
      e.track.onunmute = () => this.emit("track", this.remote);
      this.emit("track", this.remote);
    };
    this.pc.onconnectionstatechange = () => this.connectionChanged();
    if (role === "visitor") this.addVisitorTransceivers();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  /** The visitor always offers audio and video m-lines, sending what it has, receiving both. */
  addVisitorTransceivers() {
    for (const kind of ["audio", "video"]) {
      const track = this.stream?.getTracks().find((t) => t.kind === kind) || null;
      const init = track ? { direction: "sendrecv", streams: [this.stream] } : { direction: "recvonly" };
      this.pc.addTransceiver(track || kind, init);
    }
  }

  /** The expert binds its tracks to the m-lines of the visitor's offer. */
  bindExpertTracks() {
    for (const t of this.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      const track = this.stream?.getTracks().find((x) => x.kind === kind) || null;
      if (track && !t.sender.track) {
        t.sender.replaceTrack(track);
        if (t.sender.setStreams) t.sender.setStreams(this.stream);
        t.direction = "sendrecv";
      } else if (!track) {
        t.direction = "recvonly";
      }
    }
  }

  /** Run signaling steps one at a time, in arrival order. */
  queue(step) {
    this.chain = this.chain.then(step).catch((e) => console.warn("callme: signaling step failed:", e));
    return this.chain;
  }

  /** The other participant joined (or came back). The visitor offers once per connection. */
  peerPresent() {
    if (this.role !== "visitor") return;
    if (!this.offered) {
      this.offered = true;
      this.queue(() => this.makeOffer(false));
    } else if (["failed", "disconnected"].includes(this.pc.connectionState)) {
      this.restartIce();
    }
  }

  async makeOffer(iceRestart) {
    if (this.pc.signalingState === "closed") return;
    if (this.pc.signalingState !== "stable") await this.pc.setLocalDescription({ type: "rollback" });
    await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart }));
    this.send(offer(this.pc.localDescription.sdp));
  }

  /** Handle a relayed offer, answer or candidate frame. */
  handle(frame) {
    if (frame.type === "offer") return this.queue(() => this.onOffer(frame.sdp));
    if (frame.type === "answer") return this.queue(() => this.onAnswer(frame.sdp));
    if (frame.type === "candidate") return this.queue(() => this.onCandidate(frame));
    return null;
  }

  async onOffer(sdp) {
    if (this.role !== "expert" || this.pc.signalingState === "closed") return;
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    this.bindExpertTracks();
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.send(answer(this.pc.localDescription.sdp));
    await this.flushCandidates();
  }

  async onAnswer(sdp) {
    if (this.role !== "visitor" || this.pc.signalingState !== "have-local-offer") return;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    await this.flushCandidates();
  }

  async onCandidate(frame) {
    const init = { candidate: frame.candidate, sdpMid: frame.sdpMid ?? null, sdpMLineIndex: frame.sdpMLineIndex ?? null };
    if (init.sdpMid === null && init.sdpMLineIndex === null) init.sdpMLineIndex = 0;
    if (!this.pc.remoteDescription) {
      this.pendingCandidates.push(init);
      return;
    }
    await this.addCandidate(init);
  }

  async flushCandidates() {
    const waiting = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const init of waiting) await this.addCandidate(init);
  }

  async addCandidate(init) {
    try {
      await this.pc.addIceCandidate(init);
    } catch (e) {
      // A candidate from an earlier ICE generation, after a restart: harmless.
      console.debug("callme: candidate not added:", e.message);
    }
  }

  connectionChanged() {
    const state = this.pc.connectionState;
    this.send(connectionState(state));
    this.emit("state", state);
    clearTimeout(this.disconnectTimer);
    if (state === "connected") this.restarts = 0;
    if (state === "failed") this.restartIce();
    if (state === "disconnected") {
      this.disconnectTimer = setTimeout(() => {
        if (this.pc.connectionState === "disconnected") this.restartIce();
      }, RESTART_AFTER_DISCONNECTED_MS);
    }
  }

  /** Ask for new ICE candidates with a fresh offer (visitor only; the expert answers it). */
  restartIce() {
    if (this.role !== "visitor" || !this.offered || this.restarts >= MAX_RESTARTS) return;
    if (this.pc.signalingState === "closed") return;
    this.restarts += 1;
    this.queue(() => this.makeOffer(true));
  }

  /** Bytes received on inbound RTP streams (audio + video) so far. */
  async inboundBytes() {
    let bytes = 0;
    const stats = await this.pc.getStats();
    stats.forEach((r) => {
      if (r.type === "inbound-rtp") bytes += r.bytesReceived || 0;
    });
    return bytes;
  }

  close() {
    clearTimeout(this.disconnectTimer);
    this.pc.onconnectionstatechange = null;
    this.pc.onicecandidate = null;
    this.pc.close();
  }
}
