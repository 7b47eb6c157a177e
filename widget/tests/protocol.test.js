// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import * as P from "../protocol.js";

// ---- frames ------------------------------------------------------------------------------

test("builders make exactly the frames the server accepts", () => {
  assert.deepEqual(P.hello("tok"), { type: "hello", token: "tok" });
  assert.deepEqual(P.offer("v=0"), { type: "offer", sdp: "v=0" });
  assert.deepEqual(P.answer("v=0"), { type: "answer", sdp: "v=0" });
  assert.deepEqual(P.heartbeat(), { type: "heartbeat" });
  assert.deepEqual(P.hangup(), { type: "hangup" });
  assert.deepEqual(P.connectionState("connected"), { type: "state", connection: "connected" });
  assert.deepEqual(P.presence("online"), { type: "presence", status: "online" });
  assert.deepEqual(P.accept("c1"), { type: "accept", call_id: "c1" });
  assert.deepEqual(P.decline("c1"), { type: "decline", call_id: "c1" });
});

test("a candidate frame carries only candidate, sdpMid and sdpMLineIndex", () => {
  const ice = { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0, address: "127.0.0.1", toJSON() {} };
  assert.deepEqual(P.candidate(ice), { type: "candidate", candidate: ice.candidate, sdpMid: "0", sdpMLineIndex: 0 });
  assert.deepEqual(P.candidate({ candidate: "" }), { type: "candidate", candidate: "", sdpMid: null, sdpMLineIndex: null });
});

test("the create-call body quotes the price shown and the host origin", () => {
  assert.deepEqual(P.createCallBody("ray", { amount: 150, currency: "USD", extra: 1 }, "https://ray.example"), {
    expert: "ray", kind: "instant", price: { amount: 150, currency: "USD" }, origin: "https://ray.example",
  });
  assert.equal(P.createCallBody("ray", { amount: 1, currency: "JPY" }, null).origin, null);
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
    { type: "ring", call_id: "c", kind: "instant", origin: null, price: 150, currency: "USD", free_seconds: 60, timeout_ms: 30000 },
    { type: "error", code: "out_of_turn", message: "x" },
  ]) {
    assert.deepEqual(P.parseFrame(JSON.stringify(frame)), { frame }, frame.type);
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
  ];
  for (const raw of bad) {
    const out = P.parseFrame(raw);
    assert.ok(out.error && !out.frame, String(raw));
  }
});

// ---- the state machine -------------------------------------------------------------------

const STATUS = { handle: "ray", display_name: "Ray", status: "online", price: { amount: 150, currency: "USD" }, free_seconds: 60, cap_minutes: 60 };
const frame = (type, data = {}) => ({ type: "frame", frame: { type, ...data } });

function run(events, state = P.initialState("visitor")) {
  return events.reduce(P.reduce, state);
}

const toRinging = [{ type: "status", status: STATUS }, { type: "create" }, { type: "created", call_id: "c1", terms: { price: 150, currency: "USD", free_seconds: 60, cap_minutes: 60 } }];
const toActive = [...toRinging, frame("welcome", { call_id: "c1", state: "ringing", token: "t2", heartbeat_ms: 5000 }),
  frame("accepted"), frame("peer", { present: true }), { type: "pc", connection: "connected" }, frame("active", { started_ms: 1, ...METER })];

test("a visitor's call walks idle → precall → creating → ringing → connecting → active → ended", () => {
  const names = [];
  let s = P.initialState("visitor");
  names.push(s.name);
  for (const e of [...toActive, frame("ended", { reason: "hangup", by: "visitor", duration_ms: 61000, minutes: 2, amount: 300, currency: "USD", receipt: "r" })]) {
    s = P.reduce(s, e);
    if (names.at(-1) !== s.name) names.push(s.name);
  }
  assert.deepEqual(names, ["idle", "precall", "creating", "ringing", "connecting", "active", "ended"]);
  assert.equal(s.ended.amount, 300);
  assert.equal(s.ended.call_id, "c1");
  assert.ok(P.STATES.includes(s.name));
});

test("meter and warning frames update an active call; amounts stay integers", () => {
  let s = run(toActive);
  s = P.reduce(s, frame("meter", { ...METER, elapsed_ms: 61000, free_left_ms: 0, minutes: 2, amount: 300 }));
  assert.equal(s.meter.amount, 300);
  assert.ok(Number.isInteger(s.meter.amount));
  assert.equal(s.meter.type, undefined);
  s = P.reduce(s, frame("warning", { seconds_left: 30 }));
  assert.deepEqual(s.warning, { seconds_left: 30, message: null });
  assert.equal(P.warningText(s.warning), "The call ends in 30 seconds (time limit).");
  assert.equal(P.warningText({ seconds_left: 120 }), "The call ends in 2 minutes (time limit).");
  assert.equal(P.warningText(s.warning, { ...METER, cap_left_ms: 29_200 }), "The call ends in 0:30 (time limit).");
  assert.equal(P.warningText(null, METER), "");
});

test("a dropped socket or lost media shows reconnecting, and recovery returns to the call", () => {
  let s = run(toActive);
  s = P.reduce(s, { type: "socket", up: false });
  assert.equal(s.name, "reconnecting");
  assert.equal(s.phase, "active");
  s = P.reduce(s, frame("welcome", { call_id: "c1", state: "active", token: "t3", heartbeat_ms: 5000 }));
  assert.equal(s.name, "active");
  s = P.reduce(s, { type: "pc", connection: "disconnected" });
  assert.equal(s.name, "reconnecting");
  s = P.reduce(s, { type: "pc", connection: "connected" });
  assert.equal(s.name, "active");
});

test("ICE still connecting is not reconnecting", () => {
  const s = run([...toRinging, frame("accepted"), { type: "pc", connection: "failed" }]);
  assert.equal(s.name, "connecting");
});

test("missed accepted/active frames are caught up from welcome and meter", () => {
  let s = run([...toRinging, frame("welcome", { call_id: "c1", state: "accepted", token: "t", heartbeat_ms: 5000 })]);
  assert.equal(s.name, "connecting");
  s = P.reduce(s, frame("meter", METER));
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
  assert.equal(P.reduce(end("declined"), { type: "reset" }).name, "precall");
  assert.equal(P.reduce(end("missed"), { type: "create" }).name, "creating");
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
  const s = P.reduce(run(toActive), { type: "fatal", code: "replaced", message: "x" });
  assert.equal(s.name, "error");
  assert.match(s.error.message, /another window/);
  const ended = run([...toActive, frame("ended", { reason: "hangup", amount: 150, currency: "USD" })]);
  assert.equal(P.reduce(ended, { type: "fatal", code: "replaced" }), ended);
});

test("frames out of place change nothing", () => {
  const pre = run([{ type: "status", status: STATUS }]);
  for (const f of [frame("meter", METER), frame("accepted"), frame("ended", { reason: "hangup", currency: "USD" }), frame("warning", { seconds_left: 5 }), frame("ring", { call_id: "x" })]) {
    assert.equal(P.reduce(pre, f), pre, f.frame.type);
  }
  assert.equal(P.reduce(pre, { type: "created", call_id: "x" }), pre);
  assert.equal(P.reduce(pre, { type: "socket", up: false }), pre);
});

test("the expert console: ring → accept → connecting → active → ended; ring_ended goes back to idle", () => {
  const ring = frame("ring", { call_id: "c9", price: 150, currency: "USD", timeout_ms: 30000 });
  let s = run([ring], P.initialState("expert"));
  assert.equal(s.name, "ringing");
  assert.equal(s.call_id, "c9");
  // the console hears ring_ended(accepted) before its own accepted frame
  s = run([{ type: "accept", call_id: "c9" }, frame("ring_ended", { call_id: "c9", reason: "accepted" }),
    frame("accepted", { call_id: "c9", ws_url: "ws://x", token: "t", ice_servers: [] })], s);
  assert.equal(s.name, "connecting");
  s = run([frame("active", { started_ms: 1, ...METER }), frame("ended", { reason: "hangup", by: "visitor", amount: 150, currency: "USD" })], s);
  assert.equal(s.name, "ended");
  assert.equal(P.reduce(s, { type: "reset" }).name, "idle");

  const missed = run([ring, frame("ring_ended", { call_id: "c9", reason: "missed" })], P.initialState("expert"));
  assert.equal(missed.name, "idle");
  assert.match(missed.notice, /missed/);
  const elsewhere = run([ring, frame("ring_ended", { call_id: "c9", reason: "accepted" })], P.initialState("expert"));
  assert.equal(elsewhere.name, "idle");
  assert.match(elsewhere.notice, /another window/);
  const other = run([ring, frame("ring_ended", { call_id: "zz", reason: "missed" })], P.initialState("expert"));
  assert.equal(other.name, "ringing");
});

// ---- money and time ----------------------------------------------------------------------

// Intl separates some currency codes and symbols with a no-break space.
const money = (...args) => P.formatMoney(...args).replace(/\u00a0/g, " ");

test("money is formatted from integer minor units, zero- and three-decimal currencies included", () => {
  assert.equal(money(150, "USD", "en-US"), "$1.50");
  assert.equal(money(0, "USD", "en-US"), "$0.00");
  assert.equal(money(5, "USD", "en-US"), "$0.05");
  assert.equal(money(123456789, "USD", "en-US"), "$1,234,567.89");
  assert.equal(money(150, "JPY", "en-US"), "¥150");
  assert.equal(money(1500, "JPY", "ja-JP"), "￥1,500");
  assert.equal(money(1234, "KWD", "en-US"), "KWD 1.234");
  assert.equal(money(150, "EUR", "de-DE"), "1,50 €");
  assert.equal(money(15000, "HUF", "en-US"), "HUF 150.00");
  // exact beyond float precision: 2^53 - 1 cents
  assert.equal(money(Number.MAX_SAFE_INTEGER, "USD", "en-US"), "$90,071,992,547,409.91");
  assert.throws(() => P.formatMoney(1.5, "USD", "en-US"), TypeError);
});

test("decimal strings are exact", () => {
  assert.equal(P.toDecimalString(150, "USD"), "1.50");
  assert.equal(P.toDecimalString(7, "USD"), "0.07");
  assert.equal(P.toDecimalString(-7, "USD"), "-0.07");
  assert.equal(P.toDecimalString(7, "JPY"), "7");
  assert.equal(P.toDecimalString(7, "BHD"), "0.007");
  assert.equal(P.minorDigits("CLF"), 4);
});

test("durations read m:ss, h:mm:ss from an hour", () => {
  assert.equal(P.formatDuration(0), "0:00");
  assert.equal(P.formatDuration(999), "0:00");
  assert.equal(P.formatDuration(59_999), "0:59");
  assert.equal(P.formatDuration(61_000), "1:01");
  assert.equal(P.formatDuration(3_599_000), "59:59");
  assert.equal(P.formatDuration(3_600_000), "1:00:00");
  assert.equal(P.formatDuration(-5), "0:00");
  assert.equal(P.formatDuration(undefined), "0:00");
  assert.equal(P.formatCountdown(999), "0:01");
  assert.equal(P.formatCountdown(60_000), "1:00");
  assert.equal(P.formatCountdown(-1), "0:00");
});

test("the end screen says Free under the free time, the amount otherwise", () => {
  const ended = (o) => ({ reason: "hangup", by: "visitor", duration_ms: 42_000, minutes: 0, amount: 0, currency: "USD", ...o });
  assert.deepEqual(P.endSummary(ended(), { locale: "en-US" }), { duration: "0:42", amount: "Free: under one minute", reason: "You hung up." });
  assert.equal(P.endSummary(ended({ duration_ms: 0 }), { locale: "en-US" }).amount, "Free: under one minute");
  assert.equal(P.endSummary(ended({ duration_ms: 1500 }), { freeSeconds: 2, locale: "en-US" }).amount, "Free: under 2 seconds");
  const paid = P.endSummary(ended({ duration_ms: 125_000, minutes: 3, amount: 450 }), { locale: "en-US" });
  assert.deepEqual(paid, { duration: "2:05", amount: "$4.50", reason: "You hung up." });
  assert.equal(P.endSummary(ended({ amount: 300, currency: "JPY" }), { locale: "en-US" }).amount, "¥300");
  assert.equal(P.endSummary(ended({ reason: "failed", duration_ms: 0 })).amount, "Nothing charged");
  assert.equal(P.endSummary(ended({ by: "expert" }), { role: "visitor", other: "Ray" }).reason, "Ray hung up.");
  assert.equal(P.endSummary(ended({ reason: "silence", by: "visitor" }), { role: "expert", other: "The caller" }).reason, "The caller's connection was lost.");
  assert.equal(P.endSummary(ended({ reason: "cap" })).reason, "The call reached its time limit.");
});

test("terms are stated plainly before anything is charged", () => {
  const lines = P.termsText({ amount: 150, currency: "USD" }, 60, 60, "en-US");
  assert.deepEqual(lines, [
    "$1.50 per minute",
    "Calls shorter than one minute are free. After that, every started minute is billed, the first one included.",
    "The call ends automatically after 60 minutes, so it costs at most $90.00.",
    "You approve that much in PayPal before the call rings; only the minutes you talk are charged, and the rest is released.",
  ]);
  assert.equal(P.termsText({ amount: 0, currency: "USD" }, 60, 60).length, 3);
  assert.equal(P.freeOffer(60), "First minute free");
  assert.equal(P.freeOffer(30), "First 30 seconds free");
  assert.equal(P.freeOffer(120), "First 2 minutes free");
  assert.equal(P.freeOffer(0), "");
  assert.equal(P.termsText({ amount: 0, currency: "USD" }, 60, 60)[1], "This call is free.");
  assert.equal(P.termsText({ amount: 100, currency: "JPY" }, 0, 30, "en-US")[2], "The call ends automatically after 30 minutes, so it costs at most ¥3,000.");
});

test("the meter reads elapsed, free time left and cost", () => {
  assert.deepEqual(P.meterText(METER, "en-US"), { elapsed: "0:01", free: "Free for 0:59 more", cost: "$0.00" });
  assert.equal(P.meterText({ ...METER, elapsed_ms: 1500, free_left_ms: 500 }, "en-US").free, "Free for 0:01 more");
  assert.deepEqual(P.meterText({ ...METER, elapsed_ms: 65_000, free_left_ms: 0, minutes: 2, amount: 300 }, "en-US"),
    { elapsed: "1:05", free: "", cost: "$3.00" });
});

// ---- small helpers -----------------------------------------------------------------------

test("host origin comes only from an exact http(s) ?origin=", () => {
  assert.equal(P.hostOrigin("?origin=https%3A%2F%2Fray.example"), "https://ray.example");
  assert.equal(P.hostOrigin("?origin=http://127.0.0.1:5000"), "http://127.0.0.1:5000");
  assert.equal(P.hostOrigin(""), null);
  assert.equal(P.hostOrigin("?origin=*"), null);
  assert.equal(P.hostOrigin("?origin=https://ray.example/page"), null);
  assert.equal(P.hostOrigin("?origin=javascript:alert(1)"), null);
  assert.equal(P.hostOrigin("?origin=null"), null);
  assert.deepEqual(P.hostMessage("ready"), { callme: 1, type: "ready" });
  assert.deepEqual(P.hostMessage("started", { call_id: "c" }), { callme: 1, type: "started", detail: { call_id: "c" } });
});

test("initials and avatar colours", () => {
  assert.equal(P.initials("Ray Mears"), "RM");
  assert.equal(P.initials("ann"), "A");
  assert.equal(P.initials("Jean Paul Sartre"), "JS");
  assert.equal(P.initials(""), "?");
  assert.equal(P.hueSlot("ray"), P.hueSlot("ray"));
  assert.ok(P.hueSlot("ray") >= 0 && P.hueSlot("ray") < 8);
});

test("a paid call: the PayPal hold, then the call with its order", () => {
  assert.deepEqual(P.orderBody("ray", { amount: 150, currency: "USD", extra: 1 }, "https://ray.example"),
    { expert: "ray", price: { amount: 150, currency: "USD" }, origin: "https://ray.example" });
  assert.deepEqual(P.createCallBody("ray", { amount: 150, currency: "USD" }, null, "ORDER-1").payment, { order_id: "ORDER-1" });
  assert.equal("payment" in P.createCallBody("ray", { amount: 0, currency: "USD" }, null), false);
  assert.equal(P.needsPayment({ price: { amount: 150, currency: "USD" } }), true);
  assert.equal(P.needsPayment({ price: { amount: 0, currency: "USD" } }), false);
  assert.equal(P.needsPayment(null), false);
  assert.equal(P.holdAmount({ amount: 150, currency: "USD" }, 60), 9000);
  assert.equal(P.holdAmount({ amount: 150, currency: "USD" }, 0), 0);
});

test("only callme's own word about this order counts as PayPal's answer", () => {
  const msg = { callme: 1, type: "paypal", status: "approved", order_id: "O1" };
  assert.equal(P.paypalResult(msg, "O1"), "approved");
  assert.equal(P.paypalResult({ ...msg, status: "cancelled" }, "O1"), "cancelled");
  assert.equal(P.paypalResult(msg, "O2"), null);
  assert.equal(P.paypalResult({ ...msg, status: "paid" }, "O1"), null);
  assert.equal(P.paypalResult({ ...msg, callme: 2 }, "O1"), null);
  assert.equal(P.paypalResult("approved", "O1"), null);
  assert.equal(P.paypalResult(null, "O1"), null);
});

test("paying: precall → creating → paying → creating → ringing", () => {
  const names = [];
  let s = P.initialState("visitor");
  for (const e of [{ type: "status", status: STATUS }, { type: "create" }, { type: "pay" }, { type: "paid" },
    { type: "created", call_id: "c1", terms: null }]) {
    s = P.reduce(s, e);
    if (names.at(-1) !== s.name) names.push(s.name);
  }
  assert.deepEqual(names, ["precall", "creating", "paying", "creating", "ringing"]);
  assert.ok(P.STATES.includes("paying"));
  // out of turn: nothing changes
  assert.equal(P.reduce(s, { type: "pay" }), s);
  assert.equal(P.reduce(s, { type: "paid" }), s);
});

test("a PayPal window closed, blocked or not approved goes back to the pre-call screen with a notice", () => {
  const paying = run([{ type: "status", status: STATUS }, { type: "create" }, { type: "pay" }]);
  for (const [code, words] of [["payment_cancelled", "Nothing was charged"], ["popup_blocked", "Allow pop-ups"],
    ["call_cancelled", "You cancelled"], ["payment_not_approved", "not approved"]]) {
    const s = P.reduce(paying, { type: "create_failed", status: code === "payment_not_approved" ? 402 : 0, body: { error: code } });
    assert.equal(s.name, "precall", code);
    assert.match(s.notice, new RegExp(words), code);
  }
  const declined = P.reduce(paying, { type: "create_failed", status: 402, body: { error: "payment_declined", message: "x" } });
  assert.equal(declined.name, "error");
  assert.match(declined.error.message, /PayPal declined/);
  const unset = P.reduce(paying, { type: "create_failed", status: 409, body: { error: "payments_not_set_up" } });
  assert.match(unset.error.message, /does not take paid calls yet/);
  assert.equal(P.reduce(paying, { type: "hangup" }).hangingUp, true);
});
