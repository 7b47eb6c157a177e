// A minimal fake browser: only what embed.js touches, so that the real file (not a copy of its
// functions) runs in node's vm and its behaviour can be checked with `node --test`.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const ORIGIN = "https://callme.example";
const PAGE = "https://ann-law.example";

class Node {
  constructor(doc, tag, attrs = {}) {
    Object.assign(this, {doc, tagName: tag.toUpperCase(), parent: null, children: [], listeners: {}, textContent: ""});
    this.dataset = {...attrs.dataset};
    this.id = attrs.id || "";
  }
  append(...nodes) {
    for (const n of nodes) { n.remove(); n.parent = this; this.children.push(n); }
  }
  after(node) {
    node.remove();
    const siblings = this.parent.children;
    siblings.splice(siblings.indexOf(this) + 1, 0, node);
    node.parent = this.parent;
  }
  remove() {
    if (!this.parent) return;
    this.parent.children.splice(this.parent.children.indexOf(this), 1);
    this.parent = null;
  }
  get nextSibling() {
    const siblings = this.parent.children;
    return siblings[siblings.indexOf(this) + 1] || null;
  }
  get isConnected() {
    let n = this;
    while (n.parent) n = n.parent;
    return n === this.doc.documentElement;
  }
  attachShadow(init) {
    if (this.shadowRoot) throw new Error("NotSupportedError: already a shadow host");
    this.shadowMode = init.mode;
    return (this.shadowRoot = new ShadowRoot(this));
  }
  focus() { this.doc.focused = this; }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  dispatchEvent(event) {
    for (const fn of this.listeners[event.type] || []) {
      try { fn(event); } catch (e) { this.doc.listenerErrors.push(e); } // as browsers do: reported, not thrown
    }
    return true;
  }
  *walk() {
    for (const child of this.children) { yield child; yield* child.walk(); }
  }
}

class Dialog extends Node {
  showModal() {
    if (!this.isConnectedHost()) throw new Error("InvalidStateError: not connected");
    this.open = true;
    this.shadowRootOf.querySelector("button").focus(); // the dialog focusing steps: first focusable
  }
  close() {
    if (!this.open) return;
    this.open = false;
    this.onclose?.();
  }
  isConnectedHost() { return this.shadowRootOf.host.isConnected; }
}

class Frame extends Node {
  constructor(doc, tag) {
    super(doc, tag);
    this.posted = [];
    this.contentWindow = {postMessage: (data, targetOrigin) => this.posted.push({data, targetOrigin})};
  }
}

// innerHTML is kept as text; querySelector hands out one element per selector.
class ShadowRoot {
  constructor(host) { this.host = host; this.elements = {}; }
  set innerHTML(html) { this.html = html; this.elements = {}; }
  get innerHTML() { return this.html; }
  querySelector(selector) {
    const tag = selector.match(/^\w+/)[0];
    if (!new RegExp(`<${tag}[\\s>]`).test(this.html)) return null;
    if (!this.elements[selector]) {
      const Kind = tag == "dialog" ? Dialog : tag == "iframe" ? Frame : Node;
      const el = this.elements[selector] = new Kind(this.host.doc, tag);
      el.shadowRootOf = this;
      el.attributes = Object.fromEntries([...this.html.match(new RegExp(`<${tag}([^>]*)>`))[1]
        .matchAll(/([\w-]+)="([^"]*)"/g)].map(m => [m[1], m[2]]));
    }
    return this.elements[selector];
  }
}

class Document extends Node {
  constructor() {
    super(null, "#document");
    this.doc = this;
    this.readyState = "complete";
    this.hidden = false;
    this.listenerErrors = [];
    this.adoptedStyleSheets = [];
    this.documentElement = new Node(this, "html");
    this.head = new Node(this, "head");
    this.body = new Node(this, "body");
    this.documentElement.append(this.head, this.body);
  }
  createElement(tag) { return new Node(this, tag); }
  add(tag, attrs, parent = this.body) {
    const el = new Node(this, tag, attrs);
    parent.append(el);
    return el;
  }
  querySelectorAll(selector) {
    const all = [...this.documentElement.walk()];
    if (selector == "[data-callme-expert]") return all.filter(n => n.dataset.callmeExpert !== undefined);
    if (selector == 'script[src$="/embed.js"]') return all.filter(n => n.tagName == "SCRIPT" && /\/embed\.js$/.test(n.src));
    if (selector.startsWith("#")) return all.filter(n => n.id == selector.slice(1));
    throw new SyntaxError(`'${selector}' is not a valid selector`);
  }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
}

/**
 * Run an embed.js file in a fresh fake page.
 *  file:      "embed.js" or "embed.src.js"
 *  statuses:  handle -> status answer (an object) or an Error (the fetch fails)
 *  queue:     calls made to the paste-in stub before the script arrived (null: no stub)
 *  scriptExpert: data-expert on the script tag
 *  setup(doc): add placeholders and targets before the script runs
 *  locale:    the browser's language for number formatting (default: node's own)
 */
function load(file, {statuses = {}, queue = [], scriptExpert, setup, currentScript = true, locale} = {}) {
  const doc = new Document();
  setup?.(doc);
  const script = doc.add("script", {dataset: scriptExpert ? {expert: scriptExpert} : {}});
  script.src = ORIGIN + "/embed.js";
  doc.currentScript = currentScript ? script : null;
  const warnings = [], intervals = [], timeouts = [], fetches = [], windowListeners = {};
  const win = {
    document: doc,
    location: {origin: PAGE},
    console: {warn: (...a) => warnings.push(a), error: (...a) => warnings.push(a), log: () => {}},
    fetch: (url, init) => {
      fetches.push({url, init});
      const handle = url.match(/experts\/([^/]+)\/status$/)?.[1];
      const answer = statuses[handle];
      if (answer instanceof Error || answer === undefined) return Promise.reject(new TypeError("Failed to fetch"));
      return Promise.resolve({ok: !answer.error, json: () => Promise.resolve(structuredClone(answer))});
    },
    setInterval: (fn, ms) => intervals.push({fn, ms}),
    setTimeout: (fn, ms) => timeouts.push({fn, ms}),
    addEventListener: (type, fn) => (windowListeners[type] ||= []).push(fn),
    CSSStyleSheet: class CSSStyleSheet { replaceSync(text) { this.text = text; } },
    CustomEvent: class CustomEvent { constructor(type, init) { this.type = type; this.detail = init?.detail; } },
    URL, Date, Promise, Object, Array, JSON, RegExp, Error, TypeError,
    // The page asks for the browser's locale ([]); a test may choose it.
    Intl: locale ? Object.create(Intl, {NumberFormat: {value: function (_, options) { return new Intl.NumberFormat(locale, options); }}}) : Intl,
  };
  win.window = win;
  if (queue) {
    // the paste-in stub, exactly as documented
    win.CallMe = function () { (win.CallMe.q = win.CallMe.q || []).push(arguments); };
    for (const args of queue) win.CallMe(...args);
  }
  vm.createContext(win);
  const before = new Set(Object.keys(win));
  const source = fs.readFileSync(path.join(__dirname, "..", file), "utf8");
  vm.runInContext(source, win, {filename: file});
  return {
    win, doc, script, warnings, intervals, timeouts, fetches,
    newGlobals: () => Object.keys(win).filter(k => !before.has(k)),
    buttons: () => [...doc.documentElement.walk()].filter(n => n.tagName == "CALLME-BUTTON"),
    dialogs: () => [...doc.documentElement.walk()].filter(n => n.tagName == "CALLME-DIALOG"),
    // What a button shows: its text lines, aria, state.
    view: host => {
      const root = host.shadowRoot, button = root.querySelector("button");
      const [title, line] = root.querySelector("span").textContent.split("\n");
      return {title, line, label: button.ariaLabel, disabled: String(button.ariaDisabled), className: button.className};
    },
    message: (init) => (windowListeners.message || []).forEach(fn => fn({type: "message", ...init})),
  };
}

// Let pending promise callbacks (the status fetches) run.
const settle = () => new Promise(resolve => setImmediate(resolve));

module.exports = {load, settle, ORIGIN, PAGE};
