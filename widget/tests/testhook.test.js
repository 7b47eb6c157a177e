// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import { exposeForTests } from "../testhook.js";

test("window.callme exists only when the tests set window.__callmeTest first", () => {
  const exposed = { state: "idle", pc: null, call_id: null };
  for (const flag of [undefined, false, "true", 1, "1"]) {
    const win = flag === undefined ? {} : { __callmeTest: flag };
    assert.equal(exposeForTests(exposed, win), exposed);
    assert.equal("callme" in win, false, String(flag));
  }
  const win = { __callmeTest: true };
  exposeForTests(exposed, win);
  assert.equal(win.callme, exposed);
});
