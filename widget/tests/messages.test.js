// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import * as W from "../messages.js";

test("host origin comes only from an exact http(s) ?origin=", () => {
  assert.equal(W.hostOrigin("?origin=https%3A%2F%2Fray.example"), "https://ray.example");
  assert.equal(W.hostOrigin("?origin=http://127.0.0.1:5000"), "http://127.0.0.1:5000");
  assert.equal(W.hostOrigin(""), null);
  assert.equal(W.hostOrigin("?origin=*"), null);
  assert.equal(W.hostOrigin("?origin=https://ray.example/page"), null);
  assert.equal(W.hostOrigin("?origin=javascript:alert(1)"), null);
  assert.equal(W.hostOrigin("?origin=null"), null);
  assert.deepEqual(W.hostMessage("ready"), { callme: 1, type: "ready" });
  assert.deepEqual(W.hostMessage("started", { call_id: "c" }), { callme: 1, type: "started", detail: { call_id: "c" } });
});

test("only callme's own word about this order counts as PayPal's answer", () => {
  const msg = { callme: 1, type: "paypal", status: "approved", order_id: "O1" };
  assert.equal(W.paypalResult(msg, "O1"), "approved");
  assert.equal(W.paypalResult({ ...msg, status: "cancelled" }, "O1"), "cancelled");
  assert.equal(W.paypalResult(msg, "O2"), null);
  assert.equal(W.paypalResult({ ...msg, status: "paid" }, "O1"), null);
  assert.equal(W.paypalResult({ ...msg, callme: 2 }, "O1"), null);
  assert.equal(W.paypalResult("approved", "O1"), null);
  assert.equal(W.paypalResult(null, "O1"), null);
});

test("the PayPal return page's message is what the widget listens for", () => {
  assert.deepEqual(W.paypalMessage("approved", "O1"), { callme: 1, type: "paypal", status: "approved", order_id: "O1" });
  assert.equal(W.paypalResult(W.paypalMessage("approved", "O1"), "O1"), "approved");
  assert.equal(W.paypalResult(W.paypalMessage("cancelled", "O1"), "O1"), "cancelled");
  assert.equal(W.paypalResult(W.paypalMessage("approved", "O2"), "O1"), null);
});
