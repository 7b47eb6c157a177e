// What the widget asks callme's HTTP API for: the bodies of POST /api/v1/calls and
// POST /api/v1/payments/orders, and the payment rules that decide whether a hold comes first.
// Pure: no DOM, no fetch.

/**
 * POST /api/v1/calls body for an instant call at the price the visitor was shown; a paid call
 * carries the PayPal order the visitor approved.
 */
export function createCallBody(handle, price, origin, orderId = null) {
  const body = { expert: handle, kind: "instant", price: { amount: price.amount, currency: price.currency }, origin: origin || null };
  if (orderId) body.payment = { order_id: orderId };
  return body;
}

/** POST /api/v1/payments/orders body: the PayPal hold (cap x price) for a paid call. */
export function orderBody(handle, price, origin) {
  return { expert: handle, price: { amount: price.amount, currency: price.currency }, origin: origin || null };
}

/** A paid call needs a PayPal hold first. */
export const needsPayment = (expert) => !!expert && expert.price.amount > 0;

/** The most a call can cost (what PayPal holds), in minor units, or 0 when there is no cap or no price. */
export const holdAmount = (price, capMinutes) => (capMinutes ? price.amount * capMinutes : 0);
