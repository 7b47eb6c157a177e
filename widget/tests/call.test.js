// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import { CallSession, CallState } from "../call.js";
import { FakePeer, FakeWebSocket } from "./fakes.js";

const WELCOME = { type: "welcome", call_id: "c1", role: "visitor", state: "accepted", token: "t2", heartbeat_ms: 5000 };
const METER = { elapsed_ms: 1000, free_left_ms: 0, cap_left_ms: 3599000, minutes: 1, amount: 150, currency: "USD", price: 150 };

/** A visitor's CallSession on a fake socket and a fake peer, with the page's state machine behind it. */
function session(t) {
  FakeWebSocket.made = [];
  const clock = { now: 0 };
  const store = new CallState("visitor");
  const events = [];
  const dispatch = (e) => {
    events.push(e);
    store.dispatch(e);
  };
  const s = new CallSession({
    role: "visitor", callId: "c1", wsUrl: "ws://x/ws/calls/c1", token: "t1", iceServers: [], stream: null, dispatch,
    fetchImpl: async () => ({ ok: false, json: async () => null }),
    PeerImpl: FakePeer, socketOptions: { WebSocketImpl: FakeWebSocket, now: () => clock.now },
  });
  t.after(() => s.finish());
  s.start();
  const ws = () => FakeWebSocket.made.at(-1);
  const join = (welcome = WELCOME) => {
    ws().open();
    ws().receive(welcome);
    return ws();
  };
  const reconnect = (welcome) => {
    ws().drop();
    s.socket.connect();
    return join(welcome);
  };
  return { s, clock, events, ws, join, reconnect };
}

// Defect 1: a server restarted between both peers reporting `connected` and recording it heard
// nobody say it again; the call ended `failed`, unbilled, while the peers talked on.
test("a session re-reports its peer connection's state after every welcome", (t) => {
  const { s, join, reconnect } = session(t);
  assert.deepEqual(join().sent.slice(1), [{ type: "state", connection: "new" }]);
  s.peer.changed("connected");
  assert.deepEqual(FakeWebSocket.made.at(-1).sent.at(-1), { type: "state", connection: "connected" });
  // The server dies before it records that; after the restart the peer is still connected.
  const back = reconnect({ ...WELCOME, token: "t3" });
  assert.deepEqual(back.sent, [{ type: "hello", token: "t2" }, { type: "state", connection: "connected" }]);
  assert.deepEqual(reconnect({ ...WELCOME, state: "active" }).sent.slice(1), [{ type: "state", connection: "connected" }]);
});

// Defect 14: a hang-up made while the server is down must be billed to the click, not to when
// the re-sent frame arrives after the restart.
test("hanging up while the server is down sends the click-time stamp after the reconnect", (t) => {
  const { s, clock, events, ws, join, reconnect } = session(t);
  const w = join({ ...WELCOME, state: "active" });
  s.peer.changed("connected");
  w.receive({ type: "active", started_ms: 1, ...METER });
  clock.now = 50_000;
  w.receive({ type: "ack", seen_ms: 1_764_600_050_000 });
  w.drop();
  clock.now = 53_210.6;            // the click, 3.2 s after the last ack
  s.hangup(METER);
  assert.equal(events.at(-1).type, "hangup");
  clock.now = 60_000;              // the server is back
  const back = reconnect({ ...WELCOME, state: "active", token: "t4" });
  assert.deepEqual(back.sent, [
    { type: "hello", token: "t2" },
    { type: "state", connection: "connected" },
    { type: "hangup", ack_ms: 1_764_600_050_000, since_ack_ms: 3211 },
  ]);
  ws().receive({ type: "ended", call_id: "c1", reason: "hangup", by: "visitor", duration_ms: 53_000, minutes: 1, amount: 150, currency: "USD" });
  assert.equal(s.done, true);
  assert.equal(s.peer.closed, true);
});

test("with a server that sends no ack the hang-up is the bare frame it always was", (t) => {
  const { s, join } = session(t);
  const w = join({ ...WELCOME, state: "active" });
  s.hangup(METER);
  assert.deepEqual(w.sent.at(-1), { type: "hangup" });
});

test("server frames reach the state machine; acks do not", (t) => {
  const { s, events, join } = session(t);
  const w = join({ ...WELCOME, state: "active" });
  w.receive({ type: "ack", seen_ms: 5 });
  w.receive({ type: "peer", present: true });
  assert.deepEqual(events.filter((e) => e.type === "frame").map((e) => e.frame.type), ["welcome", "peer"]);
  assert.equal(s.peer.present, 1);
});

test("a session that ends without the server still delivers its stamped hang-up when the server is back", async (t) => {
  const { s, clock, events, ws, join, reconnect } = session(t);
  const w = join({ ...WELCOME, state: "active" });
  s.peer.changed("connected");
  clock.now = 1_000;
  w.receive({ type: "ack", seen_ms: 9_000_000 });
  w.drop();
  clock.now = 2_500;
  s.hangup(METER);
  await s.endWithoutServer(METER);  // what the fallback timer does: the API is out of reach too
  const ended = events.at(-1).frame;
  assert.equal(ended.type, "ended");
  assert.equal(ended.provisional, true);
  assert.equal(s.done, true);
  assert.equal(s.peer.closed, true);
  assert.equal(s.socket.stopped, false);
  const seen = events.length;
  clock.now = 40_000;  // the server is back long after the fallback
  const back = reconnect({ ...WELCOME, state: "active", token: "t5" });
  assert.deepEqual(back.sent.at(-1), { type: "hangup", ack_ms: 9_000_000, since_ack_ms: 1500 });
  ws().receive({ type: "ended", call_id: "c1", reason: "hangup", by: "visitor", duration_ms: 1000, minutes: 0, amount: 0, currency: "USD" });
  assert.equal(events.length, seen, "a finished session's socket no longer feeds the page");
  assert.equal(s.socket.stopped, true);
});

test("finishing with nothing left to deliver closes the socket at once", (t) => {
  const { s, join } = session(t);
  join({ ...WELCOME, state: "active" });
  s.finish();
  assert.equal(s.socket.stopped, true);
  assert.equal(s.peer.closed, true);
});
