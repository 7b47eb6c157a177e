// Messages between windows (postMessage): the widget and the host page that embeds it, and
// callme's PayPal return page in the popup. Pure: reads and builds plain objects.

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** The exact host-page origin from `?origin=`, or null when absent or not an http(s) origin. */
export function hostOrigin(search) {
  const value = new URLSearchParams(search).get("origin");
  if (!value) return null;
  try {
    const url = new URL(value);
    if ((url.protocol === "https:" || url.protocol === "http:") && url.origin === value) return value;
  } catch {
    // not a URL
  }
  return null;
}

/** A message for the host page. */
export const hostMessage = (type, detail) => (detail === undefined ? { callme: 1, type } : { callme: 1, type, detail });

/**
 * The word from callme's PayPal return page (posted by the popup to its opener):
 * "approved" or "cancelled" for `orderId`, else null (someone else's message, another order).
 */
export function paypalResult(data, orderId) {
  if (!isObj(data) || data.callme !== 1 || data.type !== "paypal" || data.order_id !== orderId) return null;
  return data.status === "approved" || data.status === "cancelled" ? data.status : null;
}

/** What callme's PayPal return page posts to the widget: the counterpart of `paypalResult`. */
export const paypalMessage = (status, orderId) => ({ callme: 1, type: "paypal", status, order_id: orderId });
