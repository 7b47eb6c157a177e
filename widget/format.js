// The words and numbers people see: money, durations, terms, the meter, the end screen,
// avatar initials. Pure: no DOM, no sockets, no timers.
//
// Money is an integer of minor units plus an ISO 4217 currency code. `formatMoney` turns the
// integer into an exact decimal string with the currency's ISO exponent (from the table below,
// never from the browser's locale data) and lets Intl format that string: no float division,
// so no rounding and no locale surprises about how many decimals a currency has.

// ISO 4217 minor-unit exponents that are not 2. Fixed here, not taken from the browser's
// locale data, which differs from ISO for a few currencies (HUF, for one). The server's
// `callme/money/currency.py` holds the same table; a test keeps them equal.
const EXPONENTS = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0,
  UGX: 0, UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
};

/** Digits after the decimal point for a currency's minor unit (USD 2, JPY 0, KWD 3). */
export function minorDigits(currency) {
  return EXPONENTS[currency] ?? 2;
}

/** Minor units as an exact decimal string: (150, "USD") -> "1.50", (150, "JPY") -> "150". */
export function toDecimalString(minor, currency) {
  if (!Number.isSafeInteger(minor)) throw new TypeError(`amount must be an integer of minor units, got ${minor}`);
  const digits = minorDigits(currency);
  const sign = minor < 0 ? "-" : "";
  const units = String(Math.abs(minor)).padStart(digits + 1, "0");
  return digits ? `${sign}${units.slice(0, -digits)}.${units.slice(-digits)}` : `${sign}${units}`;
}

/**
 * Format an integer amount of minor units: (150, "USD", "en-US") -> "$1.50", (1500, "JPY") -> "¥1,500".
 * The integer becomes a decimal string, never a float; Intl formats strings exactly, with exactly
 * the currency's ISO digits. `locale` defaults to the browser's.
 */
export function formatMoney(minor, currency, locale) {
  const digits = minorDigits(currency);
  const fmt = new Intl.NumberFormat(locale, {
    style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
  return fmt.format(toDecimalString(minor, currency));
}

/** "m:ss" (or "h:mm:ss" from one hour), from milliseconds; partial seconds are dropped. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor((Number.isFinite(ms) ? ms : 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A countdown: like formatDuration, but a started second counts (999 ms left reads 0:01). */
export function formatCountdown(ms) {
  return formatDuration(Math.ceil(Math.max(0, ms) / 1000) * 1000);
}

/** A span of seconds in words: 60 -> "one minute", 90 -> "90 seconds", 120 -> "2 minutes". */
export function spanWords(seconds) {
  if (seconds === 60) return "one minute";
  if (seconds % 60 === 0) return `${seconds / 60} minutes`;
  if (seconds === 1) return "one second";
  return `${seconds} seconds`;
}

/** The free-threshold promise: "First minute free", "First 30 seconds free", or "" when none. */
export function freeOffer(freeSeconds) {
  if (!freeSeconds) return "";
  return `First ${spanWords(freeSeconds).replace(/^one /, "")} free`;
}

/** The terms stated before anything is charged, as plain sentences. */
export function termsText(price, freeSeconds, capMinutes, locale) {
  const per = `${formatMoney(price.amount, price.currency, locale)} per minute`;
  const lines = [per];
  if (price.amount === 0) {
    lines.push("This call is free.");
  } else if (freeSeconds) {
    lines.push(`Calls shorter than ${spanWords(freeSeconds)} are free. After that, every started minute is billed, the first one included.`);
  } else {
    lines.push("Every started minute is billed.");
  }
  if (capMinutes) {
    const most = price.amount ? `, so it costs at most ${formatMoney(price.amount * capMinutes, price.currency, locale)}` : "";
    lines.push(`The call ends automatically after ${spanWords(capMinutes * 60)}${most}.`);
  }
  if (price.amount && capMinutes) {
    lines.push("You approve that much in PayPal before the call rings; only the minutes you talk are charged, and the rest is released.");
  }
  return lines;
}

const NEVER_ACTIVE = ["cancelled", "declined", "missed", "expired", "failed"];

const END_REASONS = {
  hangup: (by, role, other) => (by === role ? "You hung up." : by ? `${other} hung up.` : "The call ended."),
  cap: () => "The call reached its time limit.",
  silence: (by, role, other) => (by === role ? "Your connection was lost." : `${other}'s connection was lost.`),
  failed: () => "The call could not connect. Nothing was charged.",
  cancelled: () => "The call was cancelled.",
  declined: () => "The call was declined.",
  missed: () => "The call was not answered.",
  expired: () => "The call did not start in time.",
};

/**
 * The end screen: {duration, amount, reason} as text. An amount of 0 on a call that ran reads
 * "Free: under one minute" (or the call's own free span), never "$0.00".
 */
export function endSummary(ended, { role = "visitor", other = "The other side", freeSeconds = 60, locale } = {}) {
  const amount = ended.amount ?? 0;
  let amountText;
  if (amount > 0) amountText = formatMoney(amount, ended.currency, locale);
  else if (NEVER_ACTIVE.includes(ended.reason) && !ended.duration_ms) amountText = "Nothing charged";
  else amountText = `Free: under ${spanWords(freeSeconds || 60)}`;
  const reason = (END_REASONS[ended.reason] || (() => "The call ended."))(ended.by, role, other);
  return { duration: formatDuration(ended.duration_ms ?? 0), amount: amountText, reason };
}

/** The meter as text: {elapsed, free (or ""), cost}. */
export function meterText(meter, locale) {
  return {
    elapsed: formatDuration(meter.elapsed_ms),
    free: meter.free_left_ms > 0 ? `Free for ${formatCountdown(meter.free_left_ms)} more` : "",
    cost: formatMoney(meter.amount, meter.currency, locale),
  };
}

/** A warning before the cap, in words; counts down with the meter once one has arrived. */
export function warningText(warning, meter = null) {
  if (!warning) return "";
  if (meter && meter.cap_left_ms >= 0) return `The call ends in ${formatCountdown(meter.cap_left_ms)} (time limit).`;
  const s = warning.seconds_left;
  return `The call ends in ${s >= 60 && s % 60 === 0 ? spanWords(s) : `${s} seconds`} (time limit).`;
}

/** Up to two initials for an avatar: "Ray Mears" -> "RM", "ray" -> "R". */
export function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => [...w][0].toUpperCase()).join("") || "?";
}

/** A stable colour slot 0..7 for an avatar. */
export function hueSlot(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 8;
}
