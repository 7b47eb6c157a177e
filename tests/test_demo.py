"""``callme demo`` as a service manager runs it: it serves the example site pointing at its real
bind, and stopping it (SIGTERM, or its death) stops everything it started."""
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import requests

from .conftest import eventually
from .scenarios.live import free_port

pytestmark = pytest.mark.live


def descendants(pid):
    """The process ids below ``pid`` (children, grandchildren, ...), read from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def running(pid):
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def demo(tmp_path):
    """Start ``callme demo`` on free ports; yields (process, ports); killed if the test did not."""
    ports = {"bind": free_port(), "site": free_port(), "paypal": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PAYPAL_BASE_URL", "PUBLIC_URL")}
    env.update(CALLME_INSTANCE=str(tmp_path / "instance"), LOG_LEVEL="WARNING")
    log = open(tmp_path / "demo.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from callme.cli import main; main()", "demo", "--bind",
         f"127.0.0.1:{ports['bind']}", "--site-port", str(ports["site"]), "--paypal-port", str(ports["paypal"])],
        env=env, stdout=log, stderr=subprocess.STDOUT)

    def up():
        assert proc.poll() is None, (tmp_path / "demo.log").read_text()
        try:
            return requests.get(f"http://127.0.0.1:{ports['bind']}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        eventually(up, 60, "the demo to answer")
        eventually(lambda: answers(ports["site"]), 10, "the example site")
        proc.log_path = tmp_path / "demo.log"
        yield proc, ports
    finally:
        for pid in [*descendants(proc.pid), proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(5)
        log.close()


def test_the_example_site_points_at_the_real_bind(demo):
    proc, ports = demo
    page = requests.get(f"http://127.0.0.1:{ports['site']}/", timeout=5)
    assert page.status_code == 200
    sources = re.findall(r'<script[^>]*src="([^"]*embed\.js)"', page.text)
    assert sources == [f"http://127.0.0.1:{ports['bind']}/embed.js"]
    assert requests.get(sources[0], timeout=5).status_code == 200
    assert "5000" not in page.text
    # The site's other files come as they are.
    assert requests.get(f"http://127.0.0.1:{ports['site']}/site.css", timeout=5).status_code == 200


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_stopping_the_demo_stops_its_children(demo, how):
    proc, ports = demo
    children = descendants(proc.pid)
    assert children, "the demo started no gunicorn"
    proc.send_signal(how)
    if how != signal.SIGKILL:
        try:
            assert proc.wait(15) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError(proc.log_path.read_text()) from None
    for port in ports.values():
        eventually(lambda: not answers(port), 10, f"port {port} to close")
    eventually(lambda: not any(running(pid) for pid in children), 10, "the demo's children to exit")
