#!/usr/bin/env python
"""Public profile benchmark: the size of /<handle> and its time to first byte through a live
gunicorn (gevent) worker, against a ceiling: a bare Flask app on the same gunicorn returning a
static string of the same size.

    .venv/bin/python bench/profile.py            # 500 requests each
    .venv/bin/python bench/profile.py 2000 --concurrency 4

What it does, all on 127.0.0.1:
1. Migrates a fresh SQLite file, seeds one expert with a full profile (headline, bio,
   qualifications, languages, services, a photo processed as uploads are) and starts
   ``callme.cli.gunicorn_argv`` on a free port with its own instance and media folders.
2. Fetches the page once: its size as sent, and gzip-compressed (what a compressing proxy in
   front would send; callme itself does not compress).
3. Starts the reference: a Flask app whose one view returns a string of exactly that size, on
   the same gunicorn command line (gevent worker, one worker).
4. Sends N GET requests to each (after 20 to warm up) over keep-alive connections, with
   ``--concurrency`` clients at once, timing each request's first byte (the status line) and its
   last byte; prints p50/p99 of both, requests per second, and the ratios profile/reference.
Both servers are stopped at the end, whatever happens.
"""
import argparse
import gzip
import http.client
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "server"))
sys.path.insert(0, ROOT)

from callme.cli import gunicorn_argv  # noqa: E402
from tests.scenarios.live import terminate  # noqa: E402

SECRET = "bench-secret-key"
HANDLE = "ann"
WARMUP = 20

REFERENCE_APP = '''
import os
from flask import Flask

app = Flask(__name__)
BODY = "x" * int(os.environ["BENCH_BODY_SIZE"])


@app.get("/<handle>")
def page(handle):
    return BODY, 200, {"Content-Type": "text/html; charset=utf-8"}


@app.get("/healthz")
def healthz():
    return {"ok": True}
'''


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(workdir, env):
    """A migrated database with one expert, a full profile and a photo."""
    from flask_migrate import upgrade
    from PIL import Image

    from callme import create_app
    from callme.experts import profiles
    from callme.experts.accounts import create_expert
    from callme.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "SECRET_KEY": SECRET,
                      "START_CLOCK": False, "TESTING": True, "MEDIA_DIR": env["MEDIA_DIR"]})
    with app.app_context():
        upgrade()
        expert = create_expert(f"{HANDLE}@example.com", "bench-password", HANDLE, "Ann Example", 150, "USD", 60,
                               60, ("https://ann.example",))
        profiles.save_profile(expert, {
            "headline": "Immigration lawyer, 12 years in Amsterdam",
            "bio": "I help people move to the Netherlands: visas, residence permits, appeals.\n\n"
                   "Before a call, have your documents at hand; most questions take ten minutes.",
            "qualifications": ["LL.M., Leiden University", "Member of the Dutch Bar", "Certified mediator"],
            "languages": ["en", "nl", "de", "pt-BR"],
            "services": [{"name": "Visa check", "line": "Is your application complete before you send it?"},
                         {"name": "Appeals", "line": "When the answer was no: what to do within the deadline."},
                         {"name": "Family reunion", "line": "Bringing your partner and children."}],
            "timezone": "Europe/Amsterdam", "price": "1.50", "currency": "USD", "free_seconds": "60",
            "cap_minutes": "60", "allowed_origins": ["https://ann.example"],
        })
        photo = io.BytesIO()
        Image.radial_gradient("L").resize((800, 800)).convert("RGB").save(photo, "JPEG")
        profiles.replace_photo(expert, env["MEDIA_DIR"], photo.getvalue())
        db.session.remove()
        db.engine.dispose()


class Server:
    """gunicorn on a free loopback port; ``app`` is the WSGI app it serves ("module:callable")."""

    def __init__(self, app, env, log_path):
        self.port = free_port()
        self.argv = [*gunicorn_argv(f"127.0.0.1:{self.port}")[:-1], app]
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + open(self.log_path, errors="replace").read()[-3000:])
            try:
                status, _ = get(self.port, "/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self):
        if self.proc:
            terminate(self.proc)


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run(port, path, count, concurrency):
    """``count`` GETs with ``concurrency`` keep-alive clients: (first-byte times, total times, seconds)."""
    ttfb, total, errors = [], [], []
    lock = threading.Lock()
    left = [count]

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                start = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()  # returns once the status line and headers are in
                first = time.perf_counter()
                body = response.read()
                end = time.perf_counter()
                if response.status != 200 or not body:
                    errors.append(response.status)
                with lock:
                    ttfb.append(first - start)
                    total.append(end - start)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {sorted(set(errors))}")
    return ttfb, total, elapsed


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def figures(name, ttfb, total, elapsed):
    ms = lambda s: f"{s * 1000:.2f} ms"  # noqa: E731
    print(f"{name:<10} first byte p50 {ms(pct(ttfb, 50))}  p99 {ms(pct(ttfb, 99))}   "
          f"last byte p50 {ms(pct(total, 50))}  p99 {ms(pct(total, 99))}   {len(total) / elapsed:.0f} req/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("requests", type=int, nargs="?", default=500)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="callme-bench-profile-")
    env = {**os.environ, "CALLME_INSTANCE": os.path.join(workdir, "instance"),
           "DATABASE_URL": "sqlite:///" + os.path.join(workdir, "callme.sqlite"),
           "MEDIA_DIR": os.path.join(workdir, "media"), "SECRET_KEY": SECRET, "LOG_LEVEL": "WARNING",
           "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "server"), workdir])}
    servers = []
    try:
        seed(workdir, env)
        callme = Server(gunicorn_argv("")[-1], env, os.path.join(workdir, "callme.log"))  # callme as users run it
        servers.append(callme.start())
        status, page = get(callme.port, f"/{HANDLE}")
        assert status == 200 and b"og:image" in page and b"Immigration lawyer" in page, status
        size, gzipped = len(page), len(gzip.compress(page, 6))

        with open(os.path.join(workdir, "bench_reference_app.py"), "w") as f:
            f.write(textwrap.dedent(REFERENCE_APP))
        reference = Server("bench_reference_app:app", {**env, "BENCH_BODY_SIZE": str(size)},
                           os.path.join(workdir, "reference.log"))
        servers.append(reference.start())
        assert len(get(reference.port, f"/{HANDLE}")[1]) == size

        print(f"profile page /{HANDLE}: {size} bytes, {gzipped} bytes gzip-compressed (level 6)")
        print(f"{args.requests} requests each, {args.concurrency} client(s), keep-alive, after {WARMUP} to warm up; "
              f"gunicorn, 1 gevent worker, SQLite; {os.cpu_count()} CPUs")
        results = {}
        for name, server in (("profile", callme), ("reference", reference)):
            run(server.port, f"/{HANDLE}", WARMUP, 1)
            results[name] = run(server.port, f"/{HANDLE}", args.requests, args.concurrency)
            figures(name, *results[name])
        (p_ttfb, p_total, p_elapsed), (r_ttfb, r_total, r_elapsed) = results["profile"], results["reference"]
        print(f"ratio      first byte p50 {pct(p_ttfb, 50) / pct(r_ttfb, 50):.2f}x  "
              f"p99 {pct(p_ttfb, 99) / pct(r_ttfb, 99):.2f}x   "
              f"throughput {(len(p_total) / p_elapsed) / (len(r_total) / r_elapsed):.2f}x of the ceiling")
        print(f"mean first byte: profile {statistics.mean(p_ttfb) * 1000:.2f} ms, "
              f"reference {statistics.mean(r_ttfb) * 1000:.2f} ms")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
