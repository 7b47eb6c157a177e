// Stand-ins for the browser's WebSocket and RTCPeerConnection wrapper, for the node tests.
// (Not a test file: node --test runs only *.test.js here.)

/** A WebSocket the test drives: it opens, receives and drops when told; `sent` holds parsed frames. */
export class FakeWebSocket {
  static made = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWebSocket.made.push(this);
  }

  send(data) {
    this.sent.push(JSON.parse(data));
  }

  close() {
    this.drop();
  }

  open() {
    this.readyState = 1;
    this.onopen?.();
  }

  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({});
  }
}

/** Stands in for peer.js's Peer: the connection state is whatever the test sets. */
export class FakePeer extends EventTarget {
  constructor({ role, send }) {
    super();
    this.role = role;
    this.send = send;
    this.connectionState = "new";
    this.pc = { connectionState: "new" };
    this.closed = false;
    this.present = 0;
  }

  peerPresent() {
    this.present += 1;
  }

  handle() {
    return null;
  }

  /** The RTCPeerConnection's state changed: report it, as peer.js does. */
  changed(state) {
    this.connectionState = state;
    this.send({ type: "state", connection: state });
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  close() {
    this.closed = true;
  }
}
