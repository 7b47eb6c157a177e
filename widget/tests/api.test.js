// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import * as A from "../api.js";

test("the create-call body quotes the price shown and the host origin", () => {
  assert.deepEqual(A.createCallBody("ray", { amount: 150, currency: "USD", extra: 1 }, "https://ray.example"), {
    expert: "ray", kind: "instant", price: { amount: 150, currency: "USD" }, origin: "https://ray.example",
  });
  assert.equal(A.createCallBody("ray", { amount: 1, currency: "JPY" }, null).origin, null);
});

test("a paid call: the PayPal hold, then the call with its order", () => {
  assert.deepEqual(A.orderBody("ray", { amount: 150, currency: "USD", extra: 1 }, "https://ray.example"),
    { expert: "ray", price: { amount: 150, currency: "USD" }, origin: "https://ray.example" });
  assert.deepEqual(A.createCallBody("ray", { amount: 150, currency: "USD" }, null, "ORDER-1").payment, { order_id: "ORDER-1" });
  assert.equal("payment" in A.createCallBody("ray", { amount: 0, currency: "USD" }, null), false);
  assert.equal(A.needsPayment({ price: { amount: 150, currency: "USD" } }), true);
  assert.equal(A.needsPayment({ price: { amount: 0, currency: "USD" } }), false);
  assert.equal(A.needsPayment(null), false);
  assert.equal(A.holdAmount({ amount: 150, currency: "USD" }, 60), 9000);
  assert.equal(A.holdAmount({ amount: 150, currency: "USD" }, 0), 0);
});
