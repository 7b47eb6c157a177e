// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import * as S from "../callstate.js";

const METER = { elapsed_ms: 1000, free_left_ms: 59000, cap_left_ms: 3599000, minutes: 0, amount: 0, currency: "USD", price: 150 };

const STATUS = { handle: "ray", display_name: "Ray", status: "online", price: { amount: 150, currency: "USD" }, free_seconds: 60, cap_minutes: 60 };
const frame = (type, data = {}) => ({ type: "frame", frame: { type, ...data } });

function run(events, state = S.initialState("visitor")) {
  return events.reduce(S.reduce, state);
}

const toRinging = [{ type: "status", status: STATUS }, { type: "create" }, { type: "created", call_id: "c1", terms: { price: 150, currency: "USD", free_seconds: 60, cap_minutes: 60 } }];
const toActive = [...toRinging, frame("welcome", { call_id: "c1", state: "ringing", token: "t2", heartbeat_ms: 5000 }),
  frame("accepted"), frame("peer", { present: true }), { type: "pc", connection: "connected" }, frame("active", { started_ms: 1, ...METER })];

test("a visitor's call walks idle → precall → creating → ringing → connecting → active → ended", () => {
  const names = [];
  let s = S.initialState("visitor");
  names.push(s.name);
  for (const e of [...toActive, frame("ended", { reason: "hangup", by: "visitor", duration_ms: 61000, minutes: 2, amount: 300, currency: "USD", receipt: "r" })]) {
    s = S.reduce(s, e);
    if (names.at(-1) !== s.name) names.push(s.name);
  }
  assert.deepEqual(names, ["idle", "precall", "creating", "ringing", "connecting", "active", "ended"]);
  assert.equal(s.ended.amount, 300);
  assert.equal(s.ended.call_id, "c1");
  assert.ok(S.STATES.includes(s.name));
});

test("meter and warning frames update an active call; amounts stay integers", () => {
  let s = run(toActive);
  s = S.reduce(s, frame("meter", { ...METER, elapsed_ms: 61000, free_left_ms: 0, minutes: 2, amount: 300 }));
  assert.equal(s.meter.amount, 300);
  assert.ok(Number.isInteger(s.meter.amount));
  assert.equal(s.meter.type, undefined);
  s = S.reduce(s, frame("warning", { seconds_left: 30 }));
  assert.deepEqual(s.warning, { seconds_left: 30, message: null });
});

test("a dropped socket or lost media shows reconnecting, and recovery returns to the call", () => {
  let s = run(toActive);
  s = S.reduce(s, { type: "socket", up: false });
  assert.equal(s.name, "reconnecting");
  assert.equal(s.phase, "active");
  s = S.reduce(s, frame("welcome", { call_id: "c1", state: "active", token: "t3", heartbeat_ms: 5000 }));
  assert.equal(s.name, "active");
  s = S.reduce(s, { type: "pc", connection: "disconnected" });
  assert.equal(s.name, "reconnecting");
  s = S.reduce(s, { type: "pc", connection: "connected" });
  assert.equal(s.name, "active");
});

test("ICE still connecting is not reconnecting", () => {
  const s = run([...toRinging, frame("accepted"), { type: "pc", connection: "failed" }]);
  assert.equal(s.name, "connecting");
});

test("missed accepted/active frames are caught up from welcome and meter", () => {
  let s = run([...toRinging, frame("welcome", { call_id: "c1", state: "accepted", token: "t", heartbeat_ms: 5000 })]);
  assert.equal(s.name, "connecting");
  s = S.reduce(s, frame("meter", METER));
  assert.equal(s.name, "active");
});

test("declined, missed, cancelled and expired calls end where they should", () => {
  const end = (reason) => run([...toRinging, frame("ended", { reason, by: "expert", amount: 0, currency: "USD" })]);
  assert.equal(end("declined").name, "declined");
  assert.equal(end("missed").name, "missed");
  const cancelled = end("cancelled");
  assert.equal(cancelled.name, "precall");
  assert.match(cancelled.notice, /cancelled/);
  assert.equal(cancelled.ended.reason, "cancelled");
  assert.equal(end("expired").name, "error");
  // from a declined call, Try again goes back to the pre-call screen
  assert.equal(S.reduce(end("declined"), { type: "reset" }).name, "precall");
  assert.equal(S.reduce(end("missed"), { type: "create" }).name, "creating");
});

test("create failures: offline/busy/forbidden/rate-limited are errors; a changed price goes back to precall", () => {
  const fail = (status, body) => run([{ type: "status", status: STATUS }, { type: "create" }, { type: "create_failed", status, body }]);
  const offline = fail(409, { error: "expert_offline", message: "Ray is offline.", status: "offline" });
  assert.equal(offline.name, "error");
  assert.match(offline.error.message, /Ray is offline/);
  assert.equal(offline.expert.status, "offline");
  assert.equal(fail(409, { error: "expert_busy" }).error.code, "expert_busy");
  assert.match(fail(403, { error: "origin_not_allowed" }).error.message, /not allowed/);
  assert.match(fail(429, { error: "rate_limited", message: "Too many attempts; try again in 12 seconds." }).error.message, /12 seconds/);
  assert.equal(fail(0, null).error.code, "network");
  assert.equal(fail(500, { error: "internal_error", message: "Oops" }).error.message, "Oops");
  const changed = fail(409, { error: "price_changed", price: { amount: 200, currency: "USD" } });
  assert.equal(changed.name, "precall");
  assert.deepEqual(changed.expert.price, { amount: 200, currency: "USD" });
  assert.match(changed.notice, /\$2\.00/);
});

test("fatal socket errors end an open call as an error; they do nothing after it ended", () => {
  const s = S.reduce(run(toActive), { type: "fatal", code: "replaced", message: "x" });
  assert.equal(s.name, "error");
  assert.match(s.error.message, /another window/);
  const ended = run([...toActive, frame("ended", { reason: "hangup", amount: 150, currency: "USD" })]);
  assert.equal(S.reduce(ended, { type: "fatal", code: "replaced" }), ended);
});

test("frames out of place change nothing", () => {
  const pre = run([{ type: "status", status: STATUS }]);
  for (const f of [frame("meter", METER), frame("accepted"), frame("ended", { reason: "hangup", currency: "USD" }), frame("warning", { seconds_left: 5 }), frame("ring", { call_id: "x" })]) {
    assert.equal(S.reduce(pre, f), pre, f.frame.type);
  }
  assert.equal(S.reduce(pre, { type: "created", call_id: "x" }), pre);
  assert.equal(S.reduce(pre, { type: "socket", up: false }), pre);
});

test("the expert console: ring → accept → connecting → active → ended; ring_ended goes back to idle", () => {
  const ring = frame("ring", { call_id: "c9", price: 150, currency: "USD", timeout_ms: 30000 });
  let s = run([ring], S.initialState("expert"));
  assert.equal(s.name, "ringing");
  assert.equal(s.call_id, "c9");
  // the console hears ring_ended(accepted) before its own accepted frame
  s = run([{ type: "accept", call_id: "c9" }, frame("ring_ended", { call_id: "c9", reason: "accepted" }),
    frame("accepted", { call_id: "c9", ws_url: "ws://x", token: "t", ice_servers: [] })], s);
  assert.equal(s.name, "connecting");
  s = run([frame("active", { started_ms: 1, ...METER }), frame("ended", { reason: "hangup", by: "visitor", amount: 150, currency: "USD" })], s);
  assert.equal(s.name, "ended");
  assert.equal(S.reduce(s, { type: "reset" }).name, "idle");

  const missed = run([ring, frame("ring_ended", { call_id: "c9", reason: "missed" })], S.initialState("expert"));
  assert.equal(missed.name, "idle");
  assert.match(missed.notice, /missed/);
  const elsewhere = run([ring, frame("ring_ended", { call_id: "c9", reason: "accepted" })], S.initialState("expert"));
  assert.equal(elsewhere.name, "idle");
  assert.match(elsewhere.notice, /another window/);
  const other = run([ring, frame("ring_ended", { call_id: "zz", reason: "missed" })], S.initialState("expert"));
  assert.equal(other.name, "ringing");
});

test("paying: precall → creating → paying → creating → ringing", () => {
  const names = [];
  let s = S.initialState("visitor");
  for (const e of [{ type: "status", status: STATUS }, { type: "create" }, { type: "pay" }, { type: "paid" },
    { type: "created", call_id: "c1", terms: null }]) {
    s = S.reduce(s, e);
    if (names.at(-1) !== s.name) names.push(s.name);
  }
  assert.deepEqual(names, ["precall", "creating", "paying", "creating", "ringing"]);
  assert.ok(S.STATES.includes("paying"));
  // out of turn: nothing changes
  assert.equal(S.reduce(s, { type: "pay" }), s);
  assert.equal(S.reduce(s, { type: "paid" }), s);
});

test("a PayPal window closed, blocked or not approved goes back to the pre-call screen with a notice", () => {
  const paying = run([{ type: "status", status: STATUS }, { type: "create" }, { type: "pay" }]);
  for (const [code, words] of [["payment_cancelled", "Nothing was charged"], ["popup_blocked", "Allow pop-ups"],
    ["call_cancelled", "You cancelled"], ["payment_not_approved", "not approved"]]) {
    const s = S.reduce(paying, { type: "create_failed", status: code === "payment_not_approved" ? 402 : 0, body: { error: code } });
    assert.equal(s.name, "precall", code);
    assert.match(s.notice, new RegExp(words), code);
  }
  const declined = S.reduce(paying, { type: "create_failed", status: 402, body: { error: "payment_declined", message: "x" } });
  assert.equal(declined.name, "error");
  assert.match(declined.error.message, /PayPal declined/);
  const unset = S.reduce(paying, { type: "create_failed", status: 409, body: { error: "payments_not_set_up" } });
  assert.match(unset.error.message, /does not take paid calls yet/);
  assert.equal(S.reduce(paying, { type: "hangup" }).hangingUp, true);
});
