"""``callme demo``: callme with a demo expert, the example expert site and a PayPal emulator.

Everything the demo starts stops with it: SIGTERM (a service manager), SIGINT (Ctrl-C) or
SIGHUP stop gunicorn, the site server and the emulator; if the demo itself dies without a word
(SIGKILL), Linux sends gunicorn SIGTERM (PR_SET_PDEATHSIG).
"""
import ctypes
import functools
import http.server
import os
import re
import signal
import subprocess
import sys
import threading

import click
from flask import current_app

from ..cli import gunicorn_argv
from ..experts.accounts import create_expert
from ..extensions import db
from ..models import Expert

SITE = os.path.join("examples", "expert-site")
# The loader's address in the example page, whatever it says there.
EMBED_SRC = re.compile(r'(<script[^>]*\bsrc=")[^"]*/embed\.js(")')
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """The demo was asked to stop by a signal."""


def run(bind, site_port, paypal_port):
    """Serve the demo until gunicorn exits or a signal stops it; then stop everything."""
    from flask_migrate import upgrade

    upgrade()
    base = f"http://{browser_host(bind)}"
    site_origins = [f"http://127.0.0.1:{site_port}", f"http://localhost:{site_port}"]
    ray = demo_expert(site_origins)
    emulator = server = httpd = None
    previous = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}
    try:
        if not current_app.config.get("PAYPAL_BASE_URL"):
            emulator = start_emulator(ray, paypal_port)
        httpd = serve_site(site_port, base)
        env = {**os.environ, "CALLME_INSTANCE": current_app.instance_path,
               "SECRET_KEY": current_app.config["SECRET_KEY"], "PAYPAL_BASE_URL": current_app.config["PAYPAL_BASE_URL"]}
        server = subprocess.Popen(gunicorn_argv(bind), env=env, preexec_fn=_die_with_parent())
        click.echo(banner(base, site_port))
        code = _wait(server)
        if code:
            raise SystemExit(code)
    except (Stopped, KeyboardInterrupt):
        pass
    finally:
        for sig in STOP_SIGNALS:  # a second SIGTERM must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if emulator is not None:
            emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(process):
    """Wait for a child, in short steps: a signal the kernel hands to one of the server threads
    runs its handler only once the main thread is back in Python, never while it blocks in waitpid."""
    while True:
        try:
            return process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass


def _stop(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def browser_host(bind):
    """host:port of ``--bind`` as a browser reaches it (0.0.0.0 listens on loopback too)."""
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def demo_expert(site_origins):
    """Ray, created on the first run; the example site's origins are always his."""
    ray = db.session.scalar(db.select(Expert).filter_by(handle="ray"))
    if not ray:
        return create_expert("ray@example.com", "demo-password", "ray", "Ray Demo", 30, "USD", origins=site_origins)
    missing = [o for o in site_origins if o not in (ray.allowed_origins or [])]
    if missing:  # another --site-port than last time
        ray.allowed_origins = [*(ray.allowed_origins or []), *missing]
        db.session.commit()
    return ray


def start_emulator(ray, port):
    from ..money.paypal import set_paypal_credentials
    from .paypal_emulator import PayPalEmulator

    emulator = PayPalEmulator().start(host="127.0.0.1", port=port)
    current_app.config["PAYPAL_BASE_URL"] = emulator.url
    # The emulator forgets everything when it stops: give ray's app back to it each time.
    emulator.add_app("demo-ray", "demo-ray-secret", merchant_name="Ray Demo")
    emulator.add_webhook("demo-ray", "WH-DEMO-RAY")
    if ray.paypal_client_id != "demo-ray":
        set_paypal_credentials(ray, "demo-ray", "demo-ray-secret", "sandbox", "WH-DEMO-RAY", current_app.config)
    return emulator


def serve_site(port, base):
    """Serve the example expert site on a second origin, its snippet pointing at ``base``."""
    directory = os.path.join(current_app.config["ASSETS_DIR"], SITE)
    handler = functools.partial(SiteHandler, directory=directory, embed_src=f"{base}/embed.js")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="demo-site", daemon=True).start()
    return httpd


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; HTML pages get the loader's real address (the file says 127.0.0.1:5000)."""

    def __init__(self, *args, embed_src, **kwargs):
        self.embed_src = embed_src
        super().__init__(*args, **kwargs)

    def do_GET(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if not path.endswith(".html") or not os.path.isfile(path):
            return super().do_GET()
        with open(path, encoding="utf-8") as f:
            page = EMBED_SRC.sub(lambda m: m.group(1) + self.embed_src + m.group(2), f.read()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format, *args):
        pass


def _die_with_parent():
    """A preexec_fn that has Linux send the child SIGTERM when the demo dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, PR_SET_PDEATHSIG = os.getpid(), 1

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the demo died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec


def banner(base, site_port):
    return f"""
callme is running.
  As the visitor, open the expert's own site:  http://127.0.0.1:{site_port}/
  or the expert's callme page:                  {base}/ray
  As the expert, log in and go online:          {base}/login   (ray@example.com / demo-password)
  The expert's earnings and PayPal settings:    {base}/dashboard
  Public status (JSON):                         {base}/api/v1/experts/ray/status
  API description:                              {base}/api/v1/openapi.json
  PayPal (emulated unless PAYPAL_BASE_URL):     {current_app.config["PAYPAL_BASE_URL"]}
{_mailbox_line(base)}Press Ctrl-C to stop.
"""


def _mailbox_line(base):
    """Where sign-up and reset mail can be read while no SMTP server is set (MAIL_SMTP_HOST)."""
    from ..web.signup import mailbox_open, mailbox_url

    config = current_app.config
    if config.get("MAIL_SMTP_HOST"):
        return f"  Mail goes out through:                        {config['MAIL_SMTP_HOST']}\n"
    if not mailbox_open(config):
        return ""
    return f"  Mail (kept here, no SMTP server set):         {mailbox_url(config, base)}\n"
