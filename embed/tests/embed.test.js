// embed.js in a fake page (fake-dom.js): the served, minified file and its readable source both.
// Run: node --test embed/tests/
"use strict";
const {describe, test} = require("node:test");
const assert = require("node:assert/strict");
const {load, settle, ORIGIN, PAGE} = require("./fake-dom.js");

const status = (over = {}) => ({
  handle: "ray", display_name: "Ray Demo", status: "online", price: {amount: 150, currency: "USD"},
  free_seconds: 60, cap_minutes: 60, rating: null, next_available: null, ...over,
});
// Objects made inside the vm have another realm's prototypes: compare them as plain data.
const plain = x => JSON.parse(JSON.stringify(x));
const money = (value, currency) => new Intl.NumberFormat([], {style: "currency", currency}).format(value);

for (const file of ["embed.js", "embed.src.js"]) {
  describe(file, () => {
    test("defines no global but CallMe, even through a whole call", async () => {
      const page = load(file, {queue: null, scriptExpert: "ray", statuses: {ray: status()}});
      await settle();
      const host = page.buttons()[0];
      host.shadowRoot.querySelector("button").onclick();
      const frame = page.dialogs()[0].shadowRoot.querySelector("iframe");
      page.message({origin: ORIGIN, source: frame.contentWindow, data: {callme: 1, type: "started", detail: {call_id: "c1"}}});
      page.message({origin: ORIGIN, source: frame.contentWindow, data: {callme: 1, type: "close"}});
      page.intervals.forEach(i => i.fn());
      await settle();
      assert.deepEqual(page.newGlobals(), ["CallMe"]);
      assert.equal(typeof page.win.CallMe, "function");
      assert.deepEqual(page.warnings, []);
    });

    test("drains the stub's queue, in order, and warns about unknown commands", async () => {
      const opened = [];
      const page = load(file, {
        statuses: {ann: status({handle: "ann", display_name: "Ann Law"})},
        setup: doc => doc.add("div", {id: "slot"}),
        queue: [["on", "call:opened", d => opened.push(d)], ["bogus", 1],
          ["button", {expert: "ann", target: "#slot", theme: "dark", label: "Ask Ann"}]],
      });
      await settle();
      assert.deepEqual(plain(page.warnings), [["CallMe:", "unknown command", "bogus"]]);
      const [host] = page.buttons();
      assert.equal(host.parent.id, "slot");
      assert.equal(host.dataset.expert, "ann");
      assert.equal(host.shadowMode, "open");
      const view = page.view(host);
      assert.equal(view.title, "Ask Ann");
      assert.match(view.className, /\bdark\b/);
      host.shadowRoot.querySelector("button").onclick();
      assert.deepEqual(plain(opened), [{expert: "ann"}]);
    });

    test("a button right after the script tag only when nothing else names the expert", async () => {
      let page = load(file, {scriptExpert: "ray", statuses: {ray: status()}});
      assert.equal(page.buttons().length, 1);
      assert.equal(page.script.nextSibling, page.buttons()[0]);

      page = load(file, {scriptExpert: "ray", setup: doc => doc.add("div", {dataset: {callmeExpert: "ray"}})});
      assert.equal(page.buttons().length, 1);
      assert.notEqual(page.script.nextSibling?.tagName, "CALLME-BUTTON");

      page = load(file, {scriptExpert: "ray", queue: [["button", {target: "#x"}]], setup: doc => doc.add("p", {id: "x"})});
      assert.equal(page.buttons().length, 1);
      assert.equal(page.buttons()[0].parent.id, "x");
    });

    test("every placeholder gets its own button, several per page", async () => {
      const page = load(file, {
        statuses: {ray: status(), ann: status({handle: "ann", display_name: "Ann Law", status: "busy"})},
        setup: doc => {
          doc.add("div", {dataset: {callmeExpert: "ray"}});
          doc.add("div", {dataset: {callmeExpert: "ann"}});
          doc.add("div", {dataset: {callmeExpert: "ray"}});
        },
      });
      await settle();
      const views = page.buttons().map(page.view);
      assert.deepEqual(views.map(v => v.title), ["Call Ray Demo", "Call Ann Law", "Call Ray Demo"]);
      assert.match(views[1].line, /^On a call · /);
      assert.equal(views[1].disabled, "false");
    });

    test("prices: integer minor units, the currency's ISO decimals, exact (no float division)", async () => {
      const NB = "\u00a0";
      const cases = [
        ["en-US", {amount: 150, currency: "USD"}, "$1.50"],
        ["en-US", {amount: 150, currency: "JPY"}, "¥150"],
        ["en-US", {amount: 1500, currency: "KWD"}, `KWD${NB}1.500`],
        ["en-US", {amount: 5, currency: "EUR"}, "€0.05"],
        ["en-US", {amount: 0, currency: "USD"}, "$0.00"],
        ["en-US", {amount: 0, currency: "JPY"}, "¥0"],
        ["en-US", {amount: 0, currency: "KWD"}, `KWD${NB}0.000`],
        ["en-US", {amount: Number.MAX_SAFE_INTEGER, currency: "USD"}, "$90,071,992,547,409.91"],
        ["en-US", {amount: 123456789012, currency: "JPY"}, "¥123,456,789,012"],
        // ISO says 2 and 3 decimals where the browser's locale data says 0: ISO wins.
        ["en-US", {amount: 150, currency: "HUF"}, `HUF${NB}1.50`],
        ["en-US", {amount: 1500, currency: "IQD"}, `IQD${NB}1.500`],
        // Locales that write a decimal comma.
        ["de-DE", {amount: 123456, currency: "EUR"}, `1.234,56${NB}€`],
        ["de-DE", {amount: 1500, currency: "KWD"}, `1,500${NB}KWD`],
        ["de-DE", {amount: 150, currency: "JPY"}, `150${NB}¥`],
      ];
      for (const [locale, price, shown] of cases) {
        const page = load(file, {scriptExpert: "ray", statuses: {ray: status({price})}, locale});
        await settle();
        assert.equal(page.view(page.buttons()[0]).line, `Online · ${shown}/min · first minute free`, `${price.amount} ${price.currency} in ${locale}`);
      }
    });

    test("every currency the runtime knows is formatted as the widget formats it", async () => {
      const {formatMoney} = await import("../../widget/format.js");
      const wrong = [];
      for (const currency of Intl.supportedValuesOf("currency")) {
        for (const amount of [1, 123456]) {
          const page = load(file, {scriptExpert: "ray", statuses: {ray: status({price: {amount, currency}, free_seconds: 0})}, locale: "en-US"});
          await settle();
          const line = page.view(page.buttons()[0]).line, widget = `Online · ${formatMoney(amount, currency, "en-US")}/min`;
          if (line != widget) wrong.push([currency, line, widget]);
        }
      }
      assert.deepEqual(wrong, []);
    });

    test("the button's accessible name is its visible text; its class names no missing theme", async () => {
      for (const over of [{}, {status: "offline"}, {status: "busy"}]) {
        const page = load(file, {scriptExpert: "ray", statuses: {ray: status(over)}});
        assert.doesNotMatch(page.view(page.buttons()[0]).className, /undefined|null/); // still loading
        await settle();
        const root = page.buttons()[0].shadowRoot, view = page.view(page.buttons()[0]);
        // No aria-label: the name is computed from the text, so it holds every visible word
        // (WCAG 2.5.3 label in name); the coloured dot is an empty <i>, drawn by CSS.
        assert.equal(view.label, undefined);
        assert.match(root.innerHTML, /^<button><i><\/i><span><\/span><\/button>$/);
        assert.equal(view.className, `b  ${over.status || "online"}`);
      }
      const page = load(file, {queue: [["button", {expert: "ray", theme: "dark"}]], scriptExpert: "ray", statuses: {ray: status()}});
      await settle();
      assert.equal(page.view(page.buttons()[0]).className, "b dark online");
    });

    test("free seconds, status wording, and the rating with its count once rated", async () => {
      const cases = [
        [{free_seconds: 0}, "Online · $P/min"],
        [{free_seconds: 30}, "Online · $P/min · first 30 seconds free"],
        [{free_seconds: 90, rating: 4.5, rating_count: 12}, "Online · ★ 4.5 (12) · $P/min · first 90 seconds free"],
        [{rating: 4, rating_count: 1}, "Online · ★ 4.0 (1) · $P/min · first minute free"],
        [{rating: null, rating_count: 0}, "Online · $P/min · first minute free"],
        [{status: "offline"}, "Offline · $P/min · first minute free"],
      ];
      for (const [over, line] of cases) {
        const page = load(file, {scriptExpert: "ray", statuses: {ray: status(over)}});
        await settle();
        assert.equal(page.view(page.buttons()[0]).line, line.replace("$P", money(1.5, "USD")));
      }
    });

    test("offline: disabled, with the next available time, and a click opens nothing", async () => {
      const page = load(file, {scriptExpert: "ray", statuses: {ray: status({status: "offline", next_available: "2030-01-15T09:30:00Z"})}});
      await settle();
      const host = page.buttons()[0], view = page.view(host);
      const when = new Date("2030-01-15T09:30:00Z").toLocaleString([], {dateStyle: "medium", timeStyle: "short"});
      assert.equal(view.line, `Offline, back ${when} · ${money(1.5, "USD")}/min · first minute free`);

      assert.equal(view.disabled, "true");
      host.shadowRoot.querySelector("button").onclick();
      assert.equal(page.dialogs().length, 0);
    });

    test("a failed status (network, CORS, an error answer) shows the button as unavailable", async () => {
      for (const answer of [new Error("offline"), {error: "origin_not_allowed", message: "no"}]) {
        const page = load(file, {scriptExpert: "ray", statuses: {ray: answer}});
        const loading = page.view(page.buttons()[0]);
        assert.equal(loading.disabled, "true");
        await settle();
        const view = page.view(page.buttons()[0]);
        assert.deepEqual([view.title, view.line, view.disabled], ["Call me", "Unavailable", "true"]);
        page.buttons()[0].shadowRoot.querySelector("button").onclick();
        assert.equal(page.dialogs().length, 0);
        assert.deepEqual(page.warnings, []);
      }
    });

    test("the status is fetched without credentials and polled every 30 s while visible and shown", async () => {
      const page = load(file, {scriptExpert: "ray", statuses: {ray: status()}});
      assert.deepEqual(plain(page.fetches), [{url: `${ORIGIN}/api/v1/experts/ray/status`, init: {credentials: "omit"}}]);
      assert.deepEqual(page.intervals.map(i => i.ms), [30000]);
      page.doc.hidden = true;
      page.intervals[0].fn();
      assert.equal(page.fetches.length, 1);
      page.doc.hidden = false;
      page.intervals[0].fn();
      assert.equal(page.fetches.length, 2);
      page.buttons()[0].remove(); // the host page took the button away
      page.intervals[0].fn();
      assert.equal(page.fetches.length, 2);
    });

    test("CallMe never throws into the host page", async () => {
      const page = load(file, {scriptExpert: "ray", statuses: {ray: status()}});
      const bad = [[], ["button", null], ["button", {expert: "ann", target: "#missing"}], ["button", {target: "a[["}],
        ["on"], ["on", "call:opened"], ["on", "call:opened", "not a function"], [{}], ["constructor"], ["toString"]];
      for (const args of bad) assert.doesNotThrow(() => page.win.CallMe(...args), String(args));
      assert.equal(page.warnings.length, bad.length);
      assert.ok(page.warnings.every(w => w[0] == "CallMe:"));
    });

    test("the overlay: the widget iframe, exact-origin messages, events, Esc/X and focus", async () => {
      const page = load(file, {scriptExpert: "ray", statuses: {ray: status()}});
      const events = [];
      for (const name of ["opened", "started", "ended", "closed", "ready"]) {
        page.doc.addEventListener("callme:" + name, e => events.push([name, e.detail]));
      }
      page.win.CallMe("on", "call:ended", d => events.push(["on:ended", d]));
      await settle();
      const button = page.buttons()[0].shadowRoot.querySelector("button");
      button.focus();
      button.onclick();
      const [host] = page.dialogs();
      assert.equal(host.parent, page.doc.body);
      assert.equal(host.shadowMode, "open");
      const root = host.shadowRoot, dialog = root.querySelector("dialog"), frame = root.querySelector("iframe");
      assert.deepEqual(plain(dialog.attributes), {}); // showModal() makes it a modal dialog: no ARIA needed
      assert.equal(frame.attributes.allow, "camera; microphone; autoplay");
      assert.equal(frame.src, `${ORIGIN}/w/ray?origin=${encodeURIComponent(PAGE)}`);
      assert.equal(frame.title, "Call Ray Demo");
      assert.equal(dialog.ariaLabel, "Call Ray Demo");
      assert.ok(dialog.open);
      assert.equal(page.doc.focused, root.querySelector("button")); // the close button
      assert.match(root.innerHTML, /<form method="dialog"><button aria-label="Close">/);
      // Styles come from one constructed sheet (a <style> element would break under a strict CSP).
      assert.equal(root.adoptedStyleSheets[0], page.buttons()[0].shadowRoot.adoptedStyleSheets[0]);
      assert.match(root.adoptedStyleSheets[0].text, /^:host\{all:initial!important;/);
      assert.doesNotMatch(root.innerHTML + page.buttons()[0].shadowRoot.innerHTML, /<style|style=/);

      const detail = {call_id: "c1", duration_ms: 61000, amount: 300, currency: "USD", reason: "hangup"};
      const from = {origin: ORIGIN, source: frame.contentWindow};
      // Ignored: another origin, another window, not ours.
      page.message({...from, origin: PAGE, data: {callme: 1, type: "close"}});
      page.message({...from, source: {}, data: {callme: 1, type: "close"}});
      page.message({...from, data: {type: "close"}});
      page.message({...from, data: null});
      page.message({...from, data: "close"});
      assert.ok(dialog.open);
      page.message({...from, data: {callme: 1, type: "started", detail: {call_id: "c1"}}});
      page.message({...from, data: {callme: 1, type: "ended", detail}});

      dialog.close(); // Esc, or the X (a method="dialog" form)
      assert.equal(dialog.open, false);
      assert.deepEqual(plain(frame.posted), [{data: {callme: 1, type: "close"}, targetOrigin: ORIGIN}]);
      assert.equal(page.doc.focused, button);
      // The iframe stays a moment, hidden, so the widget can hang up; then it goes.
      assert.equal(page.dialogs().length, 1);
      page.timeouts.forEach(t => t.fn());
      assert.equal(page.dialogs().length, 0);
      assert.deepEqual(plain(events), [
        ["opened", {expert: "ray"}],
        ["started", {call_id: "c1", expert: "ray"}],
        ["ended", {...detail, expert: "ray"}],
        ["on:ended", {...detail, expert: "ray"}],
        ["closed", {expert: "ray"}],
      ]);
    });

    test("the widget's own close message closes the overlay", async () => {
      const page = load(file, {scriptExpert: "ray", statuses: {ray: status()}});
      await settle();
      page.buttons()[0].shadowRoot.querySelector("button").onclick();
      const root = page.dialogs()[0].shadowRoot, frame = root.querySelector("iframe");
      page.message({origin: ORIGIN, source: frame.contentWindow, data: {callme: 1, type: "close"}});
      assert.equal(root.querySelector("dialog").open, false);
    });

    test("loaded without document.currentScript, it finds its own tag", async () => {
      const page = load(file, {currentScript: false, scriptExpert: "ray", statuses: {ray: status()}});
      assert.equal(page.fetches[0].url, `${ORIGIN}/api/v1/experts/ray/status`);
      assert.equal(page.buttons().length, 1);
    });

    test("a browser without constructed style sheets gets no button and no error", () => {
      const page = load(file, {scriptExpert: "ray", statuses: {ray: status()}, setup: doc => { delete doc.adoptedStyleSheets; }});
      assert.equal(page.buttons().length, 0);
      assert.deepEqual(page.newGlobals(), []);
      assert.deepEqual(page.fetches, []);
    });

    test("waits for the page to be parsed before placing buttons", async () => {
      let doc;
      const page = load(file, {scriptExpert: "ray", statuses: {ray: status()}, setup: d => { doc = d; d.readyState = "loading"; }});
      assert.equal(page.buttons().length, 0);
      doc.add("div", {dataset: {callmeExpert: "ann"}});
      doc.readyState = "interactive";
      doc.dispatchEvent({type: "DOMContentLoaded"});
      assert.deepEqual(page.buttons().map(b => b.dataset.expert).sort(), ["ann", "ray"]);
    });
  });
}

test("embed.js is the minified embed.src.js: same markup and styles, same words", async () => {
  const render = async file => {
    const page = load(file, {scriptExpert: "ray", statuses: {ray: status({status: "busy"})}});
    await settle();
    const host = page.buttons()[0];
    host.shadowRoot.querySelector("button").onclick();
    const dialog = page.dialogs()[0].shadowRoot;
    return [host.shadowRoot.innerHTML, page.view(host), dialog.innerHTML, dialog.adoptedStyleSheets[0].text];
  };
  assert.deepEqual(await render("embed.js"), await render("embed.src.js"));
});
