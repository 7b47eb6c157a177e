"""A live callme server in a subprocess (gunicorn, gevent worker), as users run it,
and a loopback-only network namespace for tests that carry media."""
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time

import requests

from callme.cli import gunicorn_argv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLONE_NEWNET = 0x40000000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """gunicorn serving ``callme:create_app()`` on loopback with its own database."""

    def __init__(self, workdir, env=None, port=None):
        self.workdir = str(workdir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CALLME_INSTANCE": os.path.join(self.workdir, "instance"),
            "DATABASE_URL": "sqlite:///" + os.path.join(self.workdir, "callme.sqlite"),
            "SECRET_KEY": "live-test-secret",
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.proc = None
        self.log_path = os.path.join(self.workdir, f"server-{self.port}.log")

    @contextlib.contextmanager
    def db(self):
        """An app context on the server's database, for seeding and reading it from the test."""
        from callme import create_app
        from callme.extensions import db

        app = create_app({"SQLALCHEMY_DATABASE_URI": self.env["DATABASE_URL"],
                          "SECRET_KEY": self.env["SECRET_KEY"], "START_CLOCK": False, "TESTING": True})
        with app.app_context():
            try:
                yield app
            finally:
                db.session.remove()
                db.engine.dispose()

    def start(self, timeout=20, healthy=True):
        """Start and wait until it answers (200 on /healthz unless ``healthy`` is False)."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(gunicorn_argv(f"127.0.0.1:{self.port}"), cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_up(timeout, healthy)
        except BaseException:
            self.kill()  # never leave a half-started server behind
            raise
        return self

    def _wait_until_up(self, timeout, healthy):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                r = requests.get(self.url + "/healthz", timeout=1)
                if r.ok or not healthy:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log()}")

    def kill(self):
        """Kill the server hard, as a crash would (SIGKILL to master and worker)."""
        if self.proc and self.proc.poll() is None:
            for pid in _children(self.proc.pid) + [self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc:
            terminate(self.proc, on_timeout=self.kill)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-5000:]


def terminate(proc, timeout=10, on_timeout=None):
    """Stop a child process: SIGTERM, then (or ``on_timeout``) SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if on_timeout is not None:
            on_timeout()
        else:
            proc.kill()
            proc.wait(timeout)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@contextlib.contextmanager
def loopback_only():
    """Run the block in a fresh network namespace holding nothing but ``lo``.

    Subprocesses started inside (the server) join it too. Raises OSError when the
    kernel or our privileges do not allow a new network namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            import ifaddr

            addresses = {ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                         for adapter in ifaddr.get_adapters() for ip in adapter.ips}
            assert addresses <= {"127.0.0.1", "::1"}, f"namespace is not loopback-only: {addresses}"
            yield
        finally:
            if libc.setns(original, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original network namespace failed")
    finally:
        os.close(original)
