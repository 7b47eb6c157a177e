// callme's page in the PayPal window: tells the call widget (the window that opened this one,
// same origin only) whether the visitor approved or cancelled, then closes. When the link back
// is gone, the page says to return to the call; the widget notices the window closing.
import { paypalMessage } from "./messages.js";

const page = document.getElementById("paypal-return");
const { status, order } = page.dataset;

if (status === "approved" || status === "cancelled") {
  let told = false;
  try {
    if (window.opener && !window.opener.closed) {
      window.opener.postMessage(paypalMessage(status, order), location.origin);
      told = true;
    }
  } catch {
    // the opener is gone or of another origin now
  }
  if (told) setTimeout(() => window.close(), 150);
}
