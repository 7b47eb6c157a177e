"""Debian's Chromium driven by Playwright, and a static host page on a second origin."""
import functools
import http.server
import os
import shutil
import threading

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
