// The readable source of embed.js. After editing it, rebuild the served file (see embed/README.md):
//   npx terser@5.51.2 embed/embed.src.js -c passes=3 -m --ecma 2020 -o embed/embed.js
(() => {
  const w = window, d = document, stub = w.CallMe;
  if (!d.adoptedStyleSheets) return; // too old a browser (no constructed style sheets): no button, no error

  // Read while this script runs: currentScript is null later (and in some old browsers).
  const me = d.currentScript || d.querySelector('script[src$="/embed.js"]');
  const ORIGIN = new URL(me.src).origin; // callme's own host, or the expert's custom domain
  const mine = me.dataset.expert;
  const named = {}; // experts given a placeholder or a 'button' command get no default button

  const warn = (...a) => console.warn("CallMe:", ...a);
  const emit = (name, expert, detail) =>
    d.dispatchEvent(new CustomEvent("callme:" + name, {detail: {...detail, expert}}));

  // The statuses that can take a call, as shown.
  const STATUS = {online: "Online", busy: "On a call"};

  // The detail line for a status answer: undefined while loading, null when it failed.
  // The price is integer minor units, formatted by the widget's rule (widget/format.js): the
  // currency's ISO 4217 exponent from a fixed table, never from the browser's locale data (which
  // differs from ISO for some), and the amount handed to Intl as an exact decimal string ("150e-2"
  // is 1.50), never divided as a float, with exactly that many decimals (the maximum follows the
  // minimum). The table lists the codes of each exponent that is not 2, then that exponent: digits
  // part the groups and no three letters across two codes spell another ISO code, so only a whole
  // code matches (embed/tests checks every currency the runtime knows against the widget's table).
  const describe = s => {
    if (!s) return s === null ? "Unavailable" : "";
    const back = new Date(s.next_available), free = s.free_seconds, {amount, currency} = s.price,
      e = +(/\d/.exec("bifclpdjfgnfiskjpykmfkrwpygrwfugxuyivndvuvxafxofxpf0bhdiqdjodkwdlydomrtnd3clfuyw4"
        .split(currency.toLowerCase())[1]) || 2);
    return [
      STATUS[s.status] || "Offline" + (back > 0 ? ", back " + back.toLocaleString([], {dateStyle: "medium", timeStyle: "short"}) : ""),
      s.rating && "★ " + s.rating.toFixed(1) + " (" + s.rating_count + ")",
      new Intl.NumberFormat([], {style: "currency", currency, minimumFractionDigits: e}).format(amount + "e-" + e) + "/min",
      free > 0 && `first ${free == 60 ? "minute" : free + " seconds"} free`,
    ].filter(Boolean).join(" · ");
  };

  // Both shadow roots share one constructed style sheet: a style element would be refused by pages
  // whose Content-Security-Policy has no 'unsafe-inline' (callme's own profile page among them).
  // An !important rule inside a shadow root beats every rule of the host page, so
  // :host{all:initial!important} keeps the page's CSS off the host element, and no page rule reaches inside.
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(":host{all:initial!important;font:15px system-ui!important}" +
    "button{all:unset;display:inline-flex;align-items:center;gap:12px;cursor:pointer}:focus-visible{outline:3px solid #26e}" +
    // the button
    ".b{padding:10px 16px;border:1px solid #ccd;border-radius:14px;background:#fff;color:#112}" +
    ".dark{background:#223;color:#fff}[aria-disabled=true]{opacity:.6}span{white-space:pre-line}::first-line{font-weight:600}" +
    "i{padding:5px;border-radius:9px;background:#99a}.online i{background:#1b6}.busy i{background:#f90}" +
    // the dialog: 560 x 760 px at most, centered; full screen below 600 px, where (600px - 100vw) turns
    // positive and, multiplied, lifts the limits (a media query, in fewer bytes)
    "dialog{width:100%;height:100%;max-width:max(560px,(600px - 100vw)*999);max-height:max(760px,(600px - 100vw)*999);" +
    "padding:0;border:0}::backdrop{background:#000a}" +
    "[open]{display:flex;flex-flow:column}iframe{flex:1;border:0}form{text-align:right;padding:4px}" +
    "form button{padding:2px 12px;font-size:24px}");

  const shadow = (tag, expert, html) => {
    const host = d.createElement(tag);
    host.dataset.expert = expert;
    const root = host.attachShadow({mode: "open"});
    root.adoptedStyleSheets = [sheet];
    root.innerHTML = html;
    return root; // root.host is the host
  };

  // One button: a real <button> in its own shadow root, kept in step with the expert's status.
  const button = (expert, theme, label) => {
    // The button's name is its text (WCAG label in name: what is seen is what voice control says).
    // The dot, drawn by CSS, only repeats the status in colour.
    const root = shadow("callme-button", expert, "<button><i></i><span></span></button>");
    const btn = root.querySelector("button");
    let data;
    const show = () => {
      const title = label || "Call " + (data?.display_name || "me"), line = describe(data);
      btn.className = ["b", theme, data?.status].join(" "); // join() writes nothing for undefined
      btn.ariaDisabled = !STATUS[data?.status];
      root.querySelector("span").textContent = title + "\n" + line;
    };
    // Any failure (network, CORS, an error answer) shows "unavailable" until the next poll.
    const refresh = () => fetch(`${ORIGIN}/api/v1/experts/${expert}/status`, {credentials: "omit"})
      .then(r => r.json()).then(s => data = s.status ? s : null, () => data = null).then(show);
    btn.onclick = () => STATUS[data?.status] && open(expert, data.display_name, btn);
    show();
    refresh();
    // Every 30 s while the page is visible, and until the host page removes the button.
    setInterval(() => d.hidden || root.host.isConnected && refresh(), 30000);
    return root.host;
  };

  // The call: a modal <dialog> (top layer, the page behind made inert, Esc closes) with the widget's
  // iframe. showModal() makes it a modal dialog for assistive technology too: no ARIA role needed.
  // The iframe may use what the widget uses (camera, microphone, sound) and nothing more.
  const open = (expert, name, from) => {
    const root = shadow("callme-dialog", expert,
      '<dialog><form method="dialog"><button aria-label="Close">×</button></form>' +
      '<iframe allow="camera; microphone; autoplay"></iframe></dialog>');
    const dlg = root.querySelector("dialog"), frame = root.querySelector("iframe");
    // Closed by Esc, by X or by the widget: ask the widget to hang up first, and give it a moment to
    // (the dialog is hidden at once, the iframe goes a little later).
    dlg.onclose = () => {
      frame.contentWindow.postMessage({callme: 1, type: "close"}, ORIGIN);
      setTimeout(() => root.host.remove(), 2000);
      from.focus();
      emit("closed", expert);
    };
    // Only our widget, in this iframe, at callme's origin. (The listener outlives the overlay, inert:
    // a removed iframe has no contentWindow.)
    w.addEventListener("message", e => {
      const m = e.data;
      if (e.origin !== ORIGIN || e.source !== frame.contentWindow || m?.callme !== 1) return;
      m.type == "close" ? dlg.close() : emit(m.type, expert, m.detail);
    });
    dlg.ariaLabel = frame.title = "Call " + name;
    frame.src = `${ORIGIN}/w/${expert}?origin=${encodeURIComponent(location.origin)}`;
    d.body.append(root.host);
    dlg.showModal(); // focuses the close button
    emit("opened", expert);
  };

  // A button in target (an element or a selector), else right after the script tag.
  const place = (expert = mine, target, theme, label) => {
    const at = target && (target.append ? target : d.querySelector(target));
    if (!expert || target && !at) return warn("bad button");
    named[expert] = 1;
    const host = button(expert, theme, label);
    at ? at.append(host) : me.after(host);
  };

  const CallMe = (cmd, a = {}, b) => {
    try {
      if (cmd == "button") place(a.expert, a.target, a.theme, a.label);
      else if (cmd == "on" && b.call) d.addEventListener("callme:" + a.slice(5), e => b(e.detail)); // "call:ended" is callme:ended
      else warn("unknown command", cmd);
    } catch (e) { warn(e); }
  };

  // Start once the page is parsed (placeholders and targets exist); until then the stub queues calls.
  const start = () => {
    w.CallMe = CallMe;
    stub?.q?.forEach(args => CallMe(...args));
    for (const el of d.querySelectorAll("[data-callme-expert]")) place(el.dataset.callmeExpert, el);
    mine && !named[mine] && place();
  };
  d.readyState == "loading" ? d.addEventListener("DOMContentLoaded", start) : start();
})();
