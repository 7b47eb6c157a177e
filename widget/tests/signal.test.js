// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import { CallSocket, ConsoleSocket } from "../signal.js";
import { FakeWebSocket } from "./fakes.js";

const WELCOME = { type: "welcome", call_id: "c1", role: "visitor", state: "active", token: "t2", heartbeat_ms: 5000 };

/** A call socket on a fake WebSocket and a clock the test sets. */
function callSocket(t, { pcState = () => null } = {}) {
  FakeWebSocket.made = [];
  const clock = { now: 0 };
  const socket = new CallSocket("ws://x/ws/calls/c1", "t1", { WebSocketImpl: FakeWebSocket, now: () => clock.now, pcState });
  const frames = [];
  socket.addEventListener("frame", (e) => frames.push(e.detail));
  t.after(() => socket.stop());
  socket.start();
  const ws = () => FakeWebSocket.made.at(-1);
  /** Open the current transport and welcome it; returns that transport. */
  const join = (welcome = WELCOME) => {
    const w = ws();
    w.open();
    w.receive(welcome);
    return w;
  };
  /** Drop the transport and reconnect at once (as the backoff timer would, later). */
  const reconnect = () => {
    ws().drop();
    socket.connect();
    return ws();
  };
  return { socket, frames, clock, ws, join, reconnect };
}

// ---- defect 1: the peer connection's state is re-reported after every welcome -----------

test("after every welcome the call socket reports the peer connection's state first", (t) => {
  let pc = "connected";
  const { join, reconnect } = callSocket(t, { pcState: () => pc });
  const first = join();
  assert.deepEqual(first.sent, [{ type: "hello", token: "t1" }, { type: "state", connection: "connected" }]);
  // The server restarts before it recorded that: after the reconnect, the state is said again.
  reconnect();
  const second = join({ ...WELCOME, token: "t3" });
  assert.deepEqual(second.sent, [{ type: "hello", token: "t2" }, { type: "state", connection: "connected" }]);
  pc = "disconnected";
  reconnect();
  assert.deepEqual(join().sent.slice(1), [{ type: "state", connection: "disconnected" }]);
});

test("without a peer connection nothing is reported; before the welcome nothing but hello is sent", (t) => {
  const { ws } = callSocket(t);
  ws().open();
  assert.deepEqual(ws().sent, [{ type: "hello", token: "t1" }]);
  ws().receive(WELCOME);
  assert.deepEqual(ws().sent, [{ type: "hello", token: "t1" }]);
});

test("state reports queued while the socket was down give way to the current state, sent before the rest", (t) => {
  let pc = "connected";
  const { socket, join, ws } = callSocket(t, { pcState: () => pc });
  join();
  ws().drop();
  socket.send({ type: "state", connection: "disconnected" });
  socket.send({ type: "offer", sdp: "v=0" });
  socket.send({ type: "state", connection: "connecting" });
  pc = "connected";
  socket.connect();
  const again = join();
  assert.deepEqual(again.sent, [
    { type: "hello", token: "t2" }, { type: "state", connection: "connected" }, { type: "offer", sdp: "v=0" },
  ]);
});

test("peer state changes are still sent as they happen", (t) => {
  const { socket, join } = callSocket(t, { pcState: () => "new" });
  const w = join();
  socket.send({ type: "state", connection: "connected" });
  assert.deepEqual(w.sent.slice(1), [{ type: "state", connection: "new" }, { type: "state", connection: "connected" }]);
});

// ---- defect 14: acks, and a hang-up stamped at the click ---------------------------------

test("an ack is kept (server time, our time of arrival), not emitted as a frame", (t) => {
  const { socket, frames, clock, join } = callSocket(t);
  const w = join();
  clock.now = 1234.5;
  w.receive({ type: "ack", seen_ms: 1_764_600_000_000 });
  assert.deepEqual(socket.ack, { seenMs: 1_764_600_000_000, at: 1234.5 });
  assert.deepEqual(frames.map((f) => f.type), ["welcome"]);
  clock.now = 2000;
  w.receive({ type: "ack", seen_ms: 1_764_600_000_800 });
  assert.deepEqual(socket.ack, { seenMs: 1_764_600_000_800, at: 2000 });
});

test("a hang-up while the socket is up carries the last ack and the time since it", (t) => {
  const { socket, clock, join } = callSocket(t);
  const w = join();
  clock.now = 10_000;
  w.receive({ type: "ack", seen_ms: 5_000_000 });
  clock.now = 13_400.4;
  assert.equal(socket.hangup(), true);
  assert.deepEqual(w.sent.at(-1), { type: "hangup", ack_ms: 5_000_000, since_ack_ms: 3400 });
});

test("a hang-up while the server is down is stamped at the click and sent unchanged after the reconnect", (t) => {
  const { socket, clock, join, ws } = callSocket(t, { pcState: () => "connected" });
  const w = join();
  clock.now = 10_000;
  w.receive({ type: "ack", seen_ms: 5_000_000 });
  w.drop();                        // the server is killed
  clock.now = 12_000;              // the click: 2 s after the last ack
  assert.equal(socket.hangup(), false);
  socket.connect();                // the first reconnect fails: the server is still down
  ws().drop();
  clock.now = 19_500;              // the server is back 9.5 s after the ack, 7.5 s after the click
  socket.connect();
  const back = join({ ...WELCOME, token: "t9" });
  assert.deepEqual(back.sent, [
    { type: "hello", token: "t2" },
    { type: "state", connection: "connected" },
    { type: "hangup", ack_ms: 5_000_000, since_ack_ms: 2000 },
  ]);
});

test("before any ack (a server that sends none) the hang-up is bare, as before", (t) => {
  const { socket, join, ws } = callSocket(t);
  const w = join();
  w.drop();
  socket.hangup();
  socket.connect();
  join();
  assert.deepEqual(ws().sent.at(-1), { type: "hangup" });
});

test("heartbeats go out every heartbeat_ms and are dropped, not queued, while the socket is down", async (t) => {
  const { socket, join, ws } = callSocket(t);
  const w = join({ ...WELCOME, heartbeat_ms: 10 });
  await new Promise((resolve) => setTimeout(resolve, 60));
  const beats = w.sent.slice(1);
  assert.ok(beats.length >= 2 && beats.every((f) => f.type === "heartbeat"), JSON.stringify(beats));
  w.drop();
  socket.send({ type: "heartbeat" });
  socket.connect();
  ws().open();
  assert.deepEqual(ws().sent, [{ type: "hello", token: "t2" }]);
});

test("the console socket keeps acks too and emits the rest", (t) => {
  FakeWebSocket.made = [];
  const socket = new ConsoleSocket("ws://x/ws/console", { WebSocketImpl: FakeWebSocket, now: () => 7 });
  t.after(() => socket.stop());
  const frames = [];
  socket.addEventListener("frame", (e) => frames.push(e.detail.type));
  socket.start();
  const w = FakeWebSocket.made[0];
  w.open();
  w.receive({ type: "hello", status: "online" });
  w.receive({ type: "ack", seen_ms: 99 });
  w.receive({ type: "presence", status: "offline" });
  assert.deepEqual(frames, ["hello", "presence"]);
  assert.deepEqual(socket.ack, { seenMs: 99, at: 7 });
});
