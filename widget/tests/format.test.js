// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import * as T from "../format.js";

const METER = { elapsed_ms: 1000, free_left_ms: 59000, cap_left_ms: 3599000, minutes: 0, amount: 0, currency: "USD", price: 150 };

// Intl separates some currency codes and symbols with a no-break space.
const money = (...args) => T.formatMoney(...args).replace(/\u00a0/g, " ");

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
  assert.throws(() => T.formatMoney(1.5, "USD", "en-US"), TypeError);
});

test("decimal strings are exact", () => {
  assert.equal(T.toDecimalString(150, "USD"), "1.50");
  assert.equal(T.toDecimalString(7, "USD"), "0.07");
  assert.equal(T.toDecimalString(-7, "USD"), "-0.07");
  assert.equal(T.toDecimalString(7, "JPY"), "7");
  assert.equal(T.toDecimalString(7, "BHD"), "0.007");
  assert.equal(T.minorDigits("CLF"), 4);
});

test("durations read m:ss, h:mm:ss from an hour", () => {
  assert.equal(T.formatDuration(0), "0:00");
  assert.equal(T.formatDuration(999), "0:00");
  assert.equal(T.formatDuration(59_999), "0:59");
  assert.equal(T.formatDuration(61_000), "1:01");
  assert.equal(T.formatDuration(3_599_000), "59:59");
  assert.equal(T.formatDuration(3_600_000), "1:00:00");
  assert.equal(T.formatDuration(-5), "0:00");
  assert.equal(T.formatDuration(undefined), "0:00");
  assert.equal(T.formatCountdown(999), "0:01");
  assert.equal(T.formatCountdown(60_000), "1:00");
  assert.equal(T.formatCountdown(-1), "0:00");
});

test("the end screen says Free under the free time, the amount otherwise", () => {
  const ended = (o) => ({ reason: "hangup", by: "visitor", duration_ms: 42_000, minutes: 0, amount: 0, currency: "USD", ...o });
  assert.deepEqual(T.endSummary(ended(), { locale: "en-US" }), { duration: "0:42", amount: "Free: under one minute", reason: "You hung up." });
  assert.equal(T.endSummary(ended({ duration_ms: 0 }), { locale: "en-US" }).amount, "Free: under one minute");
  assert.equal(T.endSummary(ended({ duration_ms: 1500 }), { freeSeconds: 2, locale: "en-US" }).amount, "Free: under 2 seconds");
  const paid = T.endSummary(ended({ duration_ms: 125_000, minutes: 3, amount: 450 }), { locale: "en-US" });
  assert.deepEqual(paid, { duration: "2:05", amount: "$4.50", reason: "You hung up." });
  assert.equal(T.endSummary(ended({ amount: 300, currency: "JPY" }), { locale: "en-US" }).amount, "¥300");
  assert.equal(T.endSummary(ended({ reason: "failed", duration_ms: 0 })).amount, "Nothing charged");
  assert.equal(T.endSummary(ended({ by: "expert" }), { role: "visitor", other: "Ray" }).reason, "Ray hung up.");
  assert.equal(T.endSummary(ended({ reason: "silence", by: "visitor" }), { role: "expert", other: "The caller" }).reason, "The caller's connection was lost.");
  assert.equal(T.endSummary(ended({ reason: "cap" })).reason, "The call reached its time limit.");
});

test("terms are stated plainly before anything is charged", () => {
  const lines = T.termsText({ amount: 150, currency: "USD" }, 60, 60, "en-US");
  assert.deepEqual(lines, [
    "$1.50 per minute",
    "Calls shorter than one minute are free. After that, every started minute is billed, the first one included.",
    "The call ends automatically after 60 minutes, so it costs at most $90.00.",
    "You approve that much in PayPal before the call rings; only the minutes you talk are charged, and the rest is released.",
  ]);
  assert.equal(T.termsText({ amount: 0, currency: "USD" }, 60, 60).length, 3);
  assert.equal(T.freeOffer(60), "First minute free");
  assert.equal(T.freeOffer(30), "First 30 seconds free");
  assert.equal(T.freeOffer(120), "First 2 minutes free");
  assert.equal(T.freeOffer(0), "");
  assert.equal(T.termsText({ amount: 0, currency: "USD" }, 60, 60)[1], "This call is free.");
  assert.equal(T.termsText({ amount: 100, currency: "JPY" }, 0, 30, "en-US")[2], "The call ends automatically after 30 minutes, so it costs at most ¥3,000.");
});

test("the meter reads elapsed, free time left and cost", () => {
  assert.deepEqual(T.meterText(METER, "en-US"), { elapsed: "0:01", free: "Free for 0:59 more", cost: "$0.00" });
  assert.equal(T.meterText({ ...METER, elapsed_ms: 1500, free_left_ms: 500 }, "en-US").free, "Free for 0:01 more");
  assert.deepEqual(T.meterText({ ...METER, elapsed_ms: 65_000, free_left_ms: 0, minutes: 2, amount: 300 }, "en-US"),
    { elapsed: "1:05", free: "", cost: "$3.00" });
});

test("a cap warning in words, counting down with the meter", () => {
  const warning = { seconds_left: 30, message: null };
  assert.equal(T.warningText(warning), "The call ends in 30 seconds (time limit).");
  assert.equal(T.warningText({ seconds_left: 120 }), "The call ends in 2 minutes (time limit).");
  assert.equal(T.warningText(warning, { ...METER, cap_left_ms: 29_200 }), "The call ends in 0:30 (time limit).");
  assert.equal(T.warningText(null, METER), "");
});

test("initials and avatar colours", () => {
  assert.equal(T.initials("Ray Mears"), "RM");
  assert.equal(T.initials("ann"), "A");
  assert.equal(T.initials("Jean Paul Sartre"), "JS");
  assert.equal(T.initials(""), "?");
  assert.equal(T.hueSlot("ray"), T.hueSlot("ray"));
  assert.ok(T.hueSlot("ray") >= 0 && T.hueSlot("ray") < 8);
});
