// node --test widget/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import * as P from "../protocol.js";

// protocol.js only re-exports, for the page scripts that read `P.*`. `export *` silently drops a
// name two modules both export, so check that every export of every module made it through.
test("protocol.js re-exports every pure module, no name lost to a clash", async () => {
  const names = [];
  for (const module of ["frames", "callstate", "format", "api", "messages"]) {
    const m = await import(`../${module}.js`);
    for (const [name, value] of Object.entries(m)) {
      names.push(name);
      assert.equal(P[name], value, `${module}.${name}`);
    }
  }
  assert.equal(new Set(names).size, names.length, "two modules export the same name");
  assert.deepEqual(Object.keys(P).sort(), [...names].sort());
});
