// The pure modules under one namespace, for the page scripts that read them as `P.*`
// (widget.js, console.js, incall.js). New code imports from the module that does the job:
//   frames.js     signaling frames: built for the server, checked from it
//   callstate.js  the call state machine (a pure reducer)
//   format.js     money from integer minor units, durations, the words people see
//   api.js        HTTP request bodies and the payment rules behind them
//   messages.js   postMessage between windows (host page, PayPal popup)
export * from "./frames.js";
export * from "./callstate.js";
export * from "./format.js";
export * from "./api.js";
export * from "./messages.js";
