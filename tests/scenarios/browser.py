"""Debian's Chromium driven by Playwright, a static host page on a second origin, and the steps
people take on the pages (the expert's console, the visitor's widget)."""
import functools
import http.server
import os
import shutil
import threading

from ..conftest import eventually

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
]


def have_chromium():
    return os.path.exists(CHROMIUM)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class HostSite:
    """A directory of static pages served on ``host:port``: the expert's own website."""

    def __init__(self, directory, host="localhost"):
        self.directory = str(directory)
        handler = functools.partial(_Handler, directory=self.directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def write(self, name, text):
        with open(os.path.join(self.directory, name), "w") as f:
            f.write(text)
        return f"{self.origin}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# Set before any page script runs, in every page and frame of a context: the widget and the
# console then publish their `window.callme` test hook (widget/testhook.js); without it they don't.
TEST_HOOK = "window.__callmeTest = true"


def new_context(browser, **options):
    """A browser context whose pages and frames (the widget's cross-origin iframe too) ask for
    callme's ``window.callme`` test hook."""
    context = browser.new_context(**options)
    context.add_init_script(TEST_HOOK)
    return context


def launch(playwright, without=()):
    """Debian's Chromium, headless, with the test flags (less any named in ``without``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=[a for a in ARGS if a not in without])


# ---- the pages, as people use them ----------------------------------------------------------

RECORD_EVENTS = """<script>window.events = [];
for (const name of ["opened", "started", "ended", "closed"])
  document.addEventListener("callme:" + name, e => window.events.push({name, detail: e.detail}));
</script>"""


def host_page(site, server, handle):
    """The example expert site, with the snippet pointing at the test server and this expert."""
    with open(os.path.join(ROOT, "examples", "expert-site", "index.html")) as f:
        html = f.read()
    html = html.replace("http://127.0.0.1:5000", server.url).replace('"ray"', f'"{handle}"')
    html = html.replace("</head>", RECORD_EVENTS + "</head>")
    return site.write(f"{handle}.html", html)


def console(browser, server, handle, online=True, test_hook=True):
    options = {"viewport": {"width": 1100, "height": 900}}
    ctx = new_context(browser, **options) if test_hook else browser.new_context(**options)
    page = ctx.new_page()
    page.goto(server.url + "/login")
    page.fill("input[name=email]", f"{handle}@example.com")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.wait_for_url("**/console")
    page.wait_for_selector("#presence[data-status=offline]")
    if online:
        page.click("#presence-toggle")
        page.wait_for_selector("#presence[data-status=online]")
    return page


def start_call(page, frame, pay="approve"):
    """Press Call. A paid call opens the PayPal window (the emulator's approval page, standing in
    for PayPal's); the visitor approves or cancels there, and the window closes itself."""
    with page.context.expect_page() as opened:
        frame.click("#start-call")
    popup = opened.value
    popup.wait_for_selector("#approve")
    state(frame, "paying")
    if pay == "look":
        return popup
    with popup.expect_event("close"):
        popup.click("#approve" if pay == "approve" else "#cancel")
    return popup


def visitor(browser, site, server, handle, width=900, test_hook=True):
    options = {"viewport": {"width": width, "height": 800}}
    ctx = new_context(browser, **options) if test_hook else browser.new_context(**options)
    page = ctx.new_page()
    page.goto(host_page(site, server, handle))
    return page


def open_widget(page, server, handle):
    """Click the first button on the host page; return the widget's frame, at pre-call."""
    button = page.locator(f"callme-button[data-expert={handle}] button").first
    button.wait_for()
    page.wait_for_function("() => /Online/.test(document.querySelector('callme-button').shadowRoot.textContent)")
    button.click()
    page.wait_for_selector("callme-dialog iframe")
    frame = widget_frame(page, handle)
    frame.wait_for_selector("body[data-state=precall]")
    frame.wait_for_function("() => !document.querySelector('#start-call').disabled")
    return frame


def widget_opened(browser, site, server, handle):
    """The expert online in the console, and a visitor on the expert's site with the widget open at
    pre-call. Returns (expert_page, page, frame)."""
    expert_page = console(browser, server, handle)
    page = visitor(browser, site, server, handle)
    return expert_page, page, open_widget(page, server, handle)


def answered_call(browser, site, server, handle):
    """``widget_opened``, then the call paid (approved in the PayPal window) and accepted: active.
    Returns (expert_page, page, frame)."""
    expert_page, page, frame = widget_opened(browser, site, server, handle)
    start_call(page, frame)
    expert_page.wait_for_selector("#incoming", state="visible")
    expert_page.click("#accept")
    state(frame, "active")
    return expert_page, page, frame


def widget_frame(page, handle):
    """The widget's frame in the host page, once it has navigated to the widget."""
    return eventually(lambda: next((f for f in page.frames if f"/w/{handle}" in f.url), None), timeout=5,
                      what=f"the widget's frame for {handle}", pause=lambda: page.wait_for_timeout(100))


def state(target, name, timeout=15_000):
    target.wait_for_selector(f"body[data-state={name}]", state="attached", timeout=timeout)


INBOUND_BYTES = """async () => {
  const stats = await window.callme.pc.getStats();
  let n = 0;
  stats.forEach(s => { if (s.type === "inbound-rtp") n += s.bytesReceived || 0; });
  return n;
}"""


def bytes_grow(target, timeout=10):
    """Media arrives: the peer connection's inbound bytes grow (polled until they do)."""
    first = target.evaluate(INBOUND_BYTES)
    return eventually(lambda: (now := target.evaluate(INBOUND_BYTES)) > first and now, timeout,
                      f"inbound media beyond {first} bytes", pause=lambda: target.wait_for_timeout(100))


PREVIEW_PAINTED = """() => { const v = document.querySelector('#preview');
  return v.readyState >= 2 && v.videoWidth > 0 && v.getBoundingClientRect().height > 0; }"""


def preview_painted(frame):
    """Wait until the camera preview shows a frame (and so has its final size in the layout)."""
    frame.wait_for_function(PREVIEW_PAINTED)
