// The `window.callme` hook the browser tests read (state name, call id, peer connection).
// It exists only when the test harness asked for it before the page's scripts ran, with an
// init script that sets `window.__callmeTest = true`; real pages expose nothing.

/** Publish `obj` as `window.callme` when tests asked for it; returns `obj` either way. */
export function exposeForTests(obj, win = globalThis) {
  if (win.__callmeTest === true) win.callme = obj;
  return obj;
}
