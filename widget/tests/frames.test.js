// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import * as F from "../frames.js";

test("builders make exactly the frames the server accepts", () => {
  assert.deepEqual(F.hello("tok"), { type: "hello", token: "tok" });
  assert.deepEqual(F.offer("v=0"), { type: "offer", sdp: "v=0" });
  assert.deepEqual(F.answer("v=0"), { type: "answer", sdp: "v=0" });
  assert.deepEqual(F.heartbeat(), { type: "heartbeat" });
  assert.deepEqual(F.hangup(), { type: "hangup" });
  assert.deepEqual(F.connectionState("connected"), { type: "state", connection: "connected" });
  assert.deepEqual(F.presence("online"), { type: "presence", status: "online" });
  assert.deepEqual(F.accept("c1"), { type: "accept", call_id: "c1" });
  assert.deepEqual(F.decline("c1"), { type: "decline", call_id: "c1" });
});

test("a candidate frame carries only candidate, sdpMid and sdpMLineIndex", () => {
  const ice = { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0, address: "127.0.0.1", toJSON() {} };
  assert.deepEqual(F.candidate(ice), { type: "candidate", candidate: ice.candidate, sdpMid: "0", sdpMLineIndex: 0 });
  assert.deepEqual(F.candidate({ candidate: "" }), { type: "candidate", candidate: "", sdpMid: null, sdpMLineIndex: null });
});

const METER = { elapsed_ms: 1000, free_left_ms: 59000, cap_left_ms: 3599000, minutes: 0, amount: 0, currency: "USD", price: 150 };

test("server frames parse", () => {
  for (const frame of [
    { type: "welcome", call_id: "c", role: "visitor", state: "ringing", token: "t", heartbeat_ms: 5000, terms: {}, expires_in: 120 },
    { type: "accepted" },
    { type: "accepted", call_id: "c", ws_url: "ws://x/ws/calls/c", token: "t", ice_servers: [], expires_in: 120 },
    { type: "peer", present: true },
    { type: "candidate", candidate: "candidate:1", sdpMid: null, sdpMLineIndex: 0 },
    { type: "active", started_ms: 5, ...METER },
    { type: "meter", ...METER },
    { type: "warning", code: "cap", seconds_left: 30, message: "soon" },
    { type: "ended", call_id: "c", reason: "hangup", by: "visitor", duration_ms: 0, minutes: 0, amount: 0, currency: "USD", receipt: "r" },
    { type: "ended", call_id: "c", reason: "hangup", by: "visitor", duration_ms: 61000, minutes: 2, amount: 300, currency: "USD", receipt: "r", rating: "g" },
    { type: "ring", call_id: "c", kind: "instant", origin: null, price: 150, currency: "USD", free_seconds: 60, timeout_ms: 30000 },
    { type: "error", code: "out_of_turn", message: "x" },
    { type: "ack", seen_ms: 1_764_600_000_123 },
  ]) {
    assert.deepEqual(F.parseFrame(JSON.stringify(frame)), { frame }, frame.type);
  }
});

test("malformed server frames are errors, never exceptions", () => {
  const bad = [
    42, "not json", "[1]", "null", '{"no":"type"}', '{"type":"teleport"}',
    JSON.stringify({ type: "meter", ...METER, amount: 1.5 }),
    JSON.stringify({ type: "meter", ...METER, currency: "usd" }),
    JSON.stringify({ type: "meter", ...METER, elapsed_ms: "1" }),
    JSON.stringify({ type: "peer", present: "yes" }),
    JSON.stringify({ type: "welcome", call_id: "c", role: "visitor", state: "ringing", token: 5, heartbeat_ms: 5000 }),
    JSON.stringify({ type: "accepted", ice_servers: ["stun:x"] }),
    JSON.stringify({ type: "ended", reason: "hangup", amount: "150", currency: "USD" }),
    JSON.stringify({ type: "ended", reason: "hangup", amount: 150, currency: "USD", rating: 5 }),
    JSON.stringify({ type: "ack" }),
    JSON.stringify({ type: "ack", seen_ms: "5" }),
    JSON.stringify({ type: "ack", seen_ms: 5.5 }),
    // names every object inherits are not frame types
    '{"type":"toString"}', '{"type":"constructor"}', '{"type":"__proto__"}', '{"type":"hasOwnProperty"}',
  ];
  for (const raw of bad) {
    const out = F.parseFrame(raw);
    assert.ok(out.error && !out.frame, String(raw));
  }
});

// Defect 14: the hang-up carries the last ack's server time and our monotonic time since it.
test("a hang-up is stamped with the last ack: its server time and the milliseconds since it arrived", () => {
  assert.deepEqual(F.hangup(null, 12_345), { type: "hangup" });  // no ack yet: a bare hang-up, as before
  const ack = F.ackReceived({ type: "ack", seen_ms: 1_764_600_000_000 }, 1000.2);
  assert.deepEqual(ack, { seenMs: 1_764_600_000_000, at: 1000.2 });
  assert.deepEqual(F.hangup(ack, 4_250.7), { type: "hangup", ack_ms: 1_764_600_000_000, since_ack_ms: 3251 });
  assert.deepEqual(F.hangup(ack, 1000.2), { type: "hangup", ack_ms: 1_764_600_000_000, since_ack_ms: 0 });
  const frame = F.hangup(ack, 2000);
  assert.ok(Number.isInteger(frame.since_ack_ms) && Number.isInteger(frame.ack_ms));
});
