#!/usr/bin/env python
"""Signaling benchmark: N simulated calls through one live gunicorn (gevent) worker on SQLite.

    .venv/bin/python bench/signaling.py 100
    .venv/bin/python bench/signaling.py 1000 --window 20 --concurrency 50

What it does, all on 127.0.0.1:
1. Seeds N experts into a fresh SQLite file (one password hash computed once and copied
   into every row), starts ``callme.cli.gunicorn_argv`` on a free port with its own
   instance folder, and raises the open-file limit for itself and the server.
2. Every expert logs in (POST /api/v1/session), opens its console and goes online.
3. N calls are set up with bounded concurrency: visitor POST /api/v1/calls, call socket
   hello, ring, accept, expert call socket hello, offer/answer/candidate relayed, both
   report ``connected``, both receive ``active``. -> calls set up per second.
4. Every socket (console + 2 call sockets per call) sends a heartbeat each second.
   During the window each visitor sends a ``candidate`` carrying a timestamp once a
   second; the expert echoes it back -> relay round trip p50/p99. The worker's RSS
   (VmRSS, before any socket vs. all open) and its CPU (utime+stime) are read from /proc.
5. Every visitor hangs up and must receive ``ended``; the server is stopped (always).

The calls are free (price 0), so no PayPal hold is involved: the figures are signaling's own.

The client runs in this process: its CPU use, its event loop's lag and the CPU used by everything
else on the machine are printed too, because on a 2-core machine they compete with the worker.

By default the server is ``callme:create_app()`` exactly as users run it. ``--db-pool unlimited``
serves bench/server_app.py instead: the same app with no limit on SQLAlchemy's pool (sockets
hold a pooled connection only while they handle a frame; this shows what waiting for one costs).
``--diagnose`` logs the clock tick's duration and garbage collections in the worker;
``--timeline`` prints per-second figures of the window.
"""
import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "server"))

from callme.cli import gunicorn_argv  # noqa: E402

PASSWORD = "bench-password"
# Free calls: this measures signaling. A paid call adds its PayPal hold before the ring (order,
# approval, authorization), which bench/widget.py times in the browser against the emulator.
PRICE = 0
CURRENCY = "USD"
SECRET = "bench-secret-key"
HEARTBEAT = json.dumps({"type": "heartbeat"})
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOG_RECORD = re.compile(r"\b(ERROR|CRITICAL)\b|WORKER TIMEOUT|Too many open files")
LOG_STAMP = re.compile(r"^\[?\d{4}-\d\d-\d\d [\d:,]+( \+0000\])? ")
LOG_EXCEPTION = re.compile(r"^[\w.]+(Error|Exception|Timeout)\w*: ")


class BenchError(Exception):
    pass


# ---- the server ------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(needed, soft)
    if want > hard:
        try:  # only root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def seed(workdir, n, fast_hash):
    """Schema by migrations, N experts bench0..bench{N-1} sharing one password hash, plus one
    expert 'benchslow' with the default (slow) hash for the login-cost probe."""
    os.environ["CALLME_INSTANCE"] = os.path.join(workdir, "instance")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import sqlalchemy as sa
    from flask_migrate import upgrade
    from werkzeug.security import generate_password_hash

    from callme import create_app
    from callme.cli import create_expert
    from callme.extensions import db
    from callme.models import Expert, utcnow

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(workdir, "callme.sqlite"),
                      "SECRET_KEY": SECRET, "START_CLOCK": False, "TESTING": True})
    with app.app_context():
        upgrade()
        create_expert("benchslow@example.com", PASSWORD, "benchslow", "Bench Slow", PRICE, CURRENCY)
        first = create_expert("bench0@example.com", PASSWORD, "bench0", "Bench 0", PRICE, CURRENCY)
        if fast_hash:
            first.password_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
            db.session.commit()
        base = {"password_hash": first.password_hash, "price_minor": PRICE, "currency": CURRENCY,
                "free_seconds": first.free_seconds, "cap_minutes": first.cap_minutes, "allowed_origins": []}
        rows = [{**base, "email": f"bench{i}@example.com", "handle": f"bench{i}", "display_name": f"Bench {i}",
                 "created_at": utcnow()} for i in range(1, n)]
        if rows:
            db.session.execute(sa.insert(Expert), rows)
            db.session.commit()
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Expert))
        db.session.remove()
        db.engine.dispose()
    return count


class Server:
    def __init__(self, workdir, port, env_extra, unlimited_pool=False, diagnose=False):
        self.port = port
        self.argv = gunicorn_argv(f"127.0.0.1:{port}")
        if unlimited_pool or diagnose:
            assert self.argv[-1] == "callme:create_app()", self.argv
            self.argv[-1:] = ["--pythonpath", os.path.join(ROOT, "bench"), "server_app:create_app()"]
            env_extra = {"BENCH_POOL": "unlimited" if unlimited_pool else "default",
                         "BENCH_DIAGNOSE": "1" if diagnose else "0", **env_extra}
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(workdir, "server.log")
        self.env = {
            **os.environ,
            "CALLME_INSTANCE": os.path.join(workdir, "instance"),
            "DATABASE_URL": "sqlite:///" + os.path.join(workdir, "callme.sqlite"),
            "SECRET_KEY": SECRET,
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_CALLS": "1000000/60", "RATE_LIMIT_RINGS": "1000000/60", "RATE_LIMIT_LOGIN": "1000000/60",
            "METER_INTERVAL": "1", "HEARTBEAT_PERSIST": "5",
            **env_extra,
        }
        self.proc = None

    def start(self, timeout=30):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise BenchError(f"server did not start:\n{self.log_tail()}")
        while not self.workers() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def workers(self):
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self.workers()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            for pid in children + [self.proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(10)
        for pid in children:  # a worker that outlived its master
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, chars=4000):
        return self.log_text()[-chars:]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_parts_kb(pid):
    parts = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                parts[line.split(":")[0]] = int(line.split()[1])
    return parts


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rpartition(")")[2].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def machine_busy_s():
    """CPU seconds all processes on the machine spent busy (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def self_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---- the clients -----------------------------------------------------------------------

async def http(port, method, path, body=None, cookie=None, timeout=30):
    """One HTTP/1.1 request on a fresh loopback connection (as a new visitor's would be)."""
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            data = json.dumps(body).encode() if body is not None else b""
            head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n")
            if cookie:
                head += f"Cookie: {cookie}\r\n"
            writer.write(head.encode() + b"\r\n" + data)
            raw = await reader.read()
        finally:
            writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
        if ("transfer-encoding", "chunked") in headers:
            payload = _unchunk(payload)
        return status, headers, payload
    return await asyncio.wait_for(go(), timeout)


def _unchunk(data):
    out, pos = b"", 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return out
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


class Peer:
    """A JSON frame socket: frames kept per type, waiters woken per type, async handlers."""

    COUNT_ONLY = ("meter", "token")

    def __init__(self, ws, stats):
        self.ws = ws
        self.stats = stats
        self.frames = {}
        self.waiters = {}
        self.handlers = {}
        self.counts = Counter()
        self.closed = False
        self.close_reason = None
        self.reader = asyncio.create_task(self._read())
        self.beater = None

    @classmethod
    async def open(cls, url, stats, cookie=None, timeout=30):
        ws = await websockets.connect(url, additional_headers={"Cookie": cookie} if cookie else None,
                                      compression=None, open_timeout=timeout, ping_interval=None,
                                      close_timeout=5, max_queue=None)
        stats["sockets_opened"] += 1
        return cls(ws, stats)

    async def _read(self):
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                self.counts[kind] += 1
                if kind == "error":
                    self.stats["error_frames"] += 1
                    self.stats.setdefault("error_codes", Counter())[frame.get("code")] += 1
                handler = self.handlers.get(kind)
                if handler is not None and await handler(frame):
                    continue
                if kind in self.COUNT_ONLY:
                    continue
                self.frames.setdefault(kind, []).append(frame)
                for fut in self.waiters.pop(kind, ()):
                    if not fut.done():
                        fut.set_result(None)
        except websockets.ConnectionClosed as e:
            self.close_reason = str(e)
        finally:
            self.closed = True
            for futs in self.waiters.values():
                for fut in futs:
                    if not fut.done():
                        fut.set_result(None)
            self.waiters.clear()

    async def send(self, kind, **data):
        await self.ws.send(json.dumps({"type": kind, **data}))

    async def wait(self, kind, timeout, match=None):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while True:
            frames = self.frames.get(kind, ())
            for frame in frames[seen:]:
                if match is None or match(frame):
                    return frame
            seen = len(frames)
            if self.closed:
                raise BenchError(f"socket closed waiting for {kind!r} ({self.close_reason}); "
                                 f"errors: {self.frames.get('error', [])[:2]}")
            left = deadline - loop.time()
            if left <= 0:
                raise BenchError(f"no {kind!r} within {timeout}s; got {dict(self.counts)}; "
                                 f"errors: {self.frames.get('error', [])[:2]}")
            fut = loop.create_future()
            self.waiters.setdefault(kind, []).append(fut)
            try:
                await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                pass

    def start_heartbeat(self, interval):
        self.beater = asyncio.create_task(self._beat(interval))

    async def _beat(self, interval):
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.random() * interval)
        due = loop.time()
        while not self.closed:
            try:
                await self.ws.send(HEARTBEAT)
            except websockets.ConnectionClosed:
                return
            self.stats["heartbeats"] += 1
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def close(self):
        if self.beater:
            self.beater.cancel()
        try:
            await asyncio.wait_for(self.ws.close(), 10)
        except (asyncio.TimeoutError, OSError):
            pass
        await asyncio.gather(self.reader, return_exceptions=True)


class Relay:
    """Relay probes: visitor sends 'bench-ping <seq> <t_ns>', the expert echoes 'bench-pong'."""

    def __init__(self):
        self.measuring = False
        self.sent = 0
        self.rtt_ms = []
        self.rtt_sent_ns = []
        self.one_way_sent_ns = []
        self.one_way_ms = []

    def candidate(self, word, seq, t_ns):
        return {"candidate": f"candidate:1 1 udp 2122260223 127.0.0.1 9 typ host {word} {seq} {t_ns}",
                "sdpMid": "0", "sdpMLineIndex": 0}

    def wire(self, visitor, expert):
        async def on_expert(frame):
            parts = frame["candidate"].split()
            if len(parts) < 3 or parts[-3] != "bench-ping":
                return False
            if self.measuring:
                self.one_way_ms.append((time.perf_counter_ns() - int(parts[-1])) / 1e6)
                self.one_way_sent_ns.append(int(parts[-1]))
            try:
                await expert.send("candidate", **self.candidate("bench-pong", parts[-2], parts[-1]))
            except websockets.ConnectionClosed:
                pass
            return True

        async def on_visitor(frame):
            parts = frame["candidate"].split()
            if len(parts) < 3 or parts[-3] != "bench-pong":
                return False
            sent_ns = int(parts[-1])
            if sent_ns >= self.window_start_ns:
                self.rtt_ms.append((time.perf_counter_ns() - sent_ns) / 1e6)
                self.rtt_sent_ns.append(sent_ns)
            return True

        expert.handlers["candidate"] = on_expert
        visitor.handlers["candidate"] = on_visitor

    async def probe(self, visitor, interval, end):
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.random() * interval)
        seq = 0
        while loop.time() < end and not visitor.closed:
            seq += 1
            try:
                await visitor.send("candidate", **self.candidate("bench-ping", seq, time.perf_counter_ns()))
            except websockets.ConnectionClosed:
                return
            self.sent += 1
            await asyncio.sleep(interval)


class Call:
    def __init__(self, index):
        self.index = index
        self.handle = f"bench{index}"
        self.cookie = None
        self.console = None
        self.visitor = None
        self.expert = None
        self.call_id = None
        self.setup_s = None
        self.created_at = None
        self.active_at = None


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# ---- the run ---------------------------------------------------------------------------

async def run(args, server):
    port = server.port
    ws_base = f"ws://127.0.0.1:{port}"
    stats = Counter()
    failures = Counter()
    step = args.step_timeout
    calls = [Call(i) for i in range(args.calls)]
    sem = asyncio.Semaphore(args.concurrency)
    worker = server.workers()[0]
    results = {"worker_pid": worker}

    def fail(stage, exc):
        key = f"{stage}: {type(exc).__name__}: {str(exc)[:160] or repr(exc)}"
        failures[key] += 1

    def give_up():
        """Past --max-failures the remaining steps are skipped, so a broken server ends the run soon."""
        if sum(failures.values()) > args.max_failures:
            stats["skipped"] += 1
            return True
        return False

    # Login cost with the default password hash (a few sequential logins, nothing else running).
    slow = []
    for _ in range(3):
        t = time.perf_counter()
        status, _, body = await http(port, "POST", "/api/v1/session",
                                     {"email": "benchslow@example.com", "password": PASSWORD})
        if status == 200:
            slow.append((time.perf_counter() - t) * 1000)
    results["login_default_hash_ms"] = statistics.median(slow) if slow else float("nan")

    # 1. Experts log in (HTTP only).
    async def login(call):
        async with sem:
            if give_up():
                return
            try:
                status, headers, body = await http(port, "POST", "/api/v1/session",
                                                   {"email": f"{call.handle}@example.com", "password": PASSWORD},
                                                   timeout=step)
                if status != 200:
                    raise BenchError(f"login {status} {body[:200]!r}")
                cookies = [v.split(";", 1)[0] for k, v in headers if k == "set-cookie"]
                call.cookie = "; ".join(cookies)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                fail("login", e)

    t = time.perf_counter()
    await asyncio.gather(*(login(c) for c in calls))
    results["login_rate"] = sum(1 for c in calls if c.cookie) / (time.perf_counter() - t)

    await asyncio.sleep(1)
    rss_before = rss_kb(worker)
    results["rss_before_kb"] = rss_before
    results["rss_parts_before"] = rss_parts_kb(worker)
    results["fds_before"] = open_fds(worker)

    # 2. Consoles open and go online.
    async def console(call):
        async with sem:
            if give_up():
                return
            try:
                peer = await Peer.open(ws_base + "/ws/console", stats, cookie=call.cookie, timeout=step)
                call.console = peer
                await peer.wait("hello", step)
                peer.start_heartbeat(args.heartbeat)
                await peer.send("presence", status="online")
                await peer.wait("presence", step, match=lambda f: f.get("status") == "online")
            except Exception as e:  # noqa: BLE001
                fail("console", e)
                if call.console is not None:
                    await call.console.close()
                    call.console = None

    t = time.perf_counter()
    cpu0 = cpu_s(worker)
    await asyncio.gather(*(console(c) for c in calls if c.cookie))
    elapsed = time.perf_counter() - t
    results["console_rate"] = sum(1 for c in calls if c.console) / elapsed

    # 3. Calls set up.
    relay = Relay()
    relay.window_start_ns = float("inf")

    async def setup(call):
        async with sem:
            if give_up():
                return
            stage = "start"
            try:
                t0 = time.perf_counter()
                stage = "create"
                status, _, body = await http(port, "POST", "/api/v1/calls",
                                             {"expert": call.handle, "price": {"amount": PRICE, "currency": CURRENCY}},
                                             timeout=step)
                if status != 201:
                    raise BenchError(f"create {status} {body[:200]!r}")
                created = json.loads(body)
                call.created_at = t0
                call.call_id = cid = created["call_id"]
                stage = "visitor join"
                visitor = call.visitor = await Peer.open(created["ws_url"], stats, timeout=step)
                await visitor.send("hello", token=created["token"])
                await visitor.wait("welcome", step)
                visitor.start_heartbeat(args.heartbeat)
                stage = "ring/accept"
                await call.console.wait("ring", step, match=lambda f: f.get("call_id") == cid)
                await call.console.send("accept", call_id=cid)
                accepted = await call.console.wait("accepted", step, match=lambda f: f.get("call_id") == cid)
                await visitor.wait("accepted", step)
                stage = "expert join"
                expert = call.expert = await Peer.open(accepted["ws_url"], stats, timeout=step)
                await expert.send("hello", token=accepted["token"])
                await expert.wait("welcome", step)
                expert.start_heartbeat(args.heartbeat)
                present = lambda f: f.get("present") is True  # noqa: E731
                await asyncio.gather(visitor.wait("peer", step, present), expert.wait("peer", step, present))
                relay.wire(visitor, expert)
                stage = "relay"
                await visitor.send("offer", sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench offer\r\n")
                await expert.wait("offer", step)
                await expert.send("answer", sdp="v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=bench answer\r\n")
                await visitor.wait("answer", step)
                await expert.send("candidate", candidate="candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host",
                                  sdpMid="0", sdpMLineIndex=0)
                await visitor.send("candidate", candidate="candidate:1 1 udp 2122260223 127.0.0.1 40001 typ host",
                                   sdpMid="0", sdpMLineIndex=0)
                await asyncio.gather(visitor.wait("candidate", step), expert.wait("candidate", step))
                stage = "active"
                await visitor.send("state", connection="connected")
                await expert.send("state", connection="connected")
                await asyncio.gather(visitor.wait("active", step), expert.wait("active", step))
                call.active_at = time.perf_counter()
                call.setup_s = call.active_at - t0
            except Exception as e:  # noqa: BLE001
                fail(f"setup ({stage})", e)

    ready = [c for c in calls if c.console]
    cpu0, client0 = cpu_s(worker), self_cpu_s()
    t = time.perf_counter()
    await asyncio.gather(*(setup(c) for c in ready))
    elapsed = time.perf_counter() - t
    done = [c for c in calls if c.setup_s is not None]
    if done:
        span = max(c.active_at for c in done) - min(c.created_at for c in done)
        results["setup_rate"] = len(done) / span
        results["setup_p50_ms"] = pct([c.setup_s * 1000 for c in done], 50)
        results["setup_p99_ms"] = pct([c.setup_s * 1000 for c in done], 99)
    results["setup_worker_cpu"] = (cpu_s(worker) - cpu0) / elapsed * 100 if done else float("nan")
    results["setup_client_cpu"] = (self_cpu_s() - client0) / elapsed * 100 if done else float("nan")
    results["calls_up"] = len(done)

    # 4. The window: everything open, heartbeats every second, relay probes.
    if not done:
        args.window = args.settle = 0
    await asyncio.sleep(args.settle)
    open_sockets = sum(1 for c in calls for p in (c.console, c.visitor, c.expert) if p and not p.closed)
    results["open_sockets"] = open_sockets
    loop = asyncio.get_running_loop()
    hb0 = stats["heartbeats"]
    cpu0, client0, t0 = cpu_s(worker), self_cpu_s(), time.perf_counter()
    busy0 = machine_busy_s()
    relay.window_start_ns = time.perf_counter_ns()
    relay.measuring = True
    end = loop.time() + args.window
    probes = [asyncio.create_task(relay.probe(c.visitor, args.probe_interval, end)) for c in done]
    rss_samples = []
    health_ms = []

    async def health():
        while loop.time() < end:
            t = time.perf_counter()
            try:
                status, _, _ = await http(port, "GET", "/healthz", timeout=step)
                if status == 200:
                    health_ms.append((time.perf_counter() - t) * 1000)
                else:
                    stats["healthz_failed"] += 1
            except Exception:  # noqa: BLE001
                stats["healthz_failed"] += 1
            await asyncio.sleep(0.25)

    lag_ms = []

    async def client_lag():
        """How late the client's own event loop wakes up: stalls here are not the server's."""
        while loop.time() < end:
            t = loop.time()
            await asyncio.sleep(0.05)
            lag_ms.append((t, (loop.time() - t - 0.05) * 1000))

    probes.append(asyncio.create_task(health()))
    probes.append(asyncio.create_task(client_lag()))
    cpu_per_second = []
    last_cpu = cpu_s(worker)
    while loop.time() < end:
        await asyncio.sleep(min(1.0, max(0.0, end - loop.time())))
        rss_samples.append(rss_kb(worker))
        now_cpu = cpu_s(worker)
        cpu_per_second.append((now_cpu - last_cpu) * 100)
        last_cpu = now_cpu
    await asyncio.gather(*probes)
    window = time.perf_counter() - t0
    window = max(window, 1e-9)
    results["worker_cpu"] = (cpu_s(worker) - cpu0) / window * 100 if done else float("nan")
    results["client_cpu"] = (self_cpu_s() - client0) / window * 100 if done else float("nan")
    results["other_cpu"] = ((machine_busy_s() - busy0) / window * 100 - results["worker_cpu"]
                            - results["client_cpu"]) if done else float("nan")
    results["heartbeats_per_s"] = (stats["heartbeats"] - hb0) / window if done else 0
    rss_open = rss_samples[-1] if rss_samples else rss_kb(worker)
    results["rss_parts_open"] = rss_parts_kb(worker)
    results["fds_open"] = open_fds(worker)
    results["rss_open_kb"] = rss_open
    results["rss_max_kb"] = max(rss_samples) if rss_samples else rss_open
    results["rss_per_socket_kb"] = (rss_open - rss_before) / open_sockets if open_sockets else float("nan")
    await asyncio.sleep(2)  # late echoes
    relay.measuring = False
    results["relay_sent"] = relay.sent
    results["relay_received"] = len(relay.rtt_ms)
    results["relay_p50_ms"] = pct(relay.rtt_ms, 50)
    results["relay_p99_ms"] = pct(relay.rtt_ms, 99)
    results["relay_max_ms"] = max(relay.rtt_ms) if relay.rtt_ms else float("nan")
    results["one_way_p50_ms"] = pct(relay.one_way_ms, 50)
    results["relay_over_100ms"] = sum(1 for v in relay.rtt_ms if v > 100)
    per_second = {}
    for sent_ns, rtt in zip(relay.rtt_sent_ns, relay.rtt_ms):
        second = int((sent_ns - relay.window_start_ns) // 1_000_000_000)
        per_second[second] = max(per_second.get(second, 0), rtt)
    results["relay_max_per_second"] = [per_second.get(i, float("nan")) for i in range(int(args.window))]
    per_second = {}
    for sent_ns, ms in zip(relay.one_way_sent_ns, relay.one_way_ms):
        second = int((sent_ns - relay.window_start_ns) // 1_000_000_000)
        per_second[second] = max(per_second.get(second, 0), ms)
    results["one_way_max_per_second"] = [per_second.get(i, float("nan")) for i in range(int(args.window))]
    per_second = {}
    for t, ms in lag_ms:
        second = int(t - (end - args.window))
        per_second[second] = max(per_second.get(second, 0), ms)
    results["client_lag_per_second"] = [per_second.get(i, float("nan")) for i in range(int(args.window))]
    results["worker_cpu_per_second"] = cpu_per_second
    results["healthz_p50_ms"] = pct(health_ms, 50)
    results["healthz_max_ms"] = max(health_ms) if health_ms else float("nan")
    results["closed_during_window"] = sum(1 for c in done for p in (c.console, c.visitor, c.expert) if p.closed)
    results["meters_received"] = sum(c.visitor.counts["meter"] + c.expert.counts["meter"] for c in done)

    # 5. Hang up; every visitor must get 'ended'.
    async def hangup(call):
        async with sem:
            try:
                await call.visitor.send("hangup")
                await asyncio.gather(call.visitor.wait("ended", step), call.expert.wait("ended", step))
            except Exception as e:  # noqa: BLE001
                fail("hangup", e)

    await asyncio.gather(*(hangup(c) for c in done))
    ended = [c for c in done if c.visitor.frames.get("ended")]
    results["ended"] = len(ended)
    results["ended_reasons"] = Counter(c.visitor.frames["ended"][0].get("reason") for c in ended)

    async def leave(call):
        async with sem:
            for peer in (call.visitor, call.expert):
                if peer:
                    await peer.close()
            if call.console:
                try:
                    await call.console.send("presence", status="offline")
                except websockets.ConnectionClosed:
                    pass
                await call.console.close()

    await asyncio.gather(*(leave(c) for c in calls))
    results["worker_pids_after"] = server.workers()
    results["failures"] = failures
    results["stats"] = stats
    return results


def report(args, res, server_log):
    lines = server_log.splitlines()
    records = [line for line in lines if LOG_RECORD.search(line)]
    exceptions = Counter(line[:170] for line in lines if LOG_EXCEPTION.match(line))
    boots = sum(1 for line in lines if "Booting worker" in line)
    restarted = boots > 1 or res.get("worker_pids_after") != [res["worker_pid"]]
    failures = res["failures"]
    stats = res["stats"]
    lost = res["relay_sent"] - res["relay_received"]
    errors = (sum(failures.values()) + stats["skipped"] + stats["error_frames"] + (res["calls_up"] - res["ended"])
              + len(records) + (1 if restarted else 0))
    f = lambda v, d=1: "nan" if v != v else f"{v:.{d}f}"  # noqa: E731
    print()
    print(f"calls={args.calls} setup_rate={f(res.get('setup_rate', float('nan')))} calls/s "
          f"relay_p50={f(res['relay_p50_ms'])} ms relay_p99={f(res['relay_p99_ms'])} ms "
          f"rss_per_socket={f(res['rss_per_socket_kb'])} KB worker_cpu={f(res['worker_cpu'], 0)}% errors={errors}")
    print(f"  set up:    {res['calls_up']}/{args.calls} calls active, per call p50 {f(res.get('setup_p50_ms', float('nan')))} ms "
          f"p99 {f(res.get('setup_p99_ms', float('nan')))} ms (concurrency {args.concurrency}); "
          f"worker {f(res['setup_worker_cpu'], 0)}% / client {f(res['setup_client_cpu'], 0)}% of a core")
    print(f"  experts:   logins {f(res['login_rate'], 0)}/s (seeded hash: {'pbkdf2 1000 rounds' if args.fast_hash else 'default'}), "
          f"consoles online {f(res['console_rate'], 0)}/s; one login with the default scrypt hash: "
          f"{f(res['login_default_hash_ms'], 0)} ms")
    print(f"  window:    {args.window:g} s, {res['open_sockets']} sockets open, {f(res['heartbeats_per_s'], 0)} heartbeats/s, "
          f"{res['meters_received']} meter frames received, {res['closed_during_window']} sockets closed")
    print(f"  relay:     {res['relay_received']}/{res['relay_sent']} round trips ({lost} not back by 2 s after the window), "
          f"p50 {f(res['relay_p50_ms'], 2)} ms p99 {f(res['relay_p99_ms'], 2)} ms max {f(res['relay_max_ms'], 1)} ms; "
          f"one way p50 {f(res['one_way_p50_ms'], 2)} ms; {res['relay_over_100ms']} over 100 ms")
    if args.timeline:
        for label, key in (("slowest round trip (ms)", "relay_max_per_second"),
                           ("slowest visitor->expert (ms)", "one_way_max_per_second"),
                           ("client loop lag, max (ms)", "client_lag_per_second"),
                           ("worker CPU (% of a core)", "worker_cpu_per_second")):
            print(f"    per second: {label:<29}" + " ".join(f(v, 0) for v in res[key]))
    print(f"  http:      GET /healthz every 0.25 s during the window: p50 {f(res['healthz_p50_ms'], 1)} ms "
          f"max {f(res['healthz_max_ms'], 0)} ms, {res['stats']['healthz_failed']} failed")
    print(f"  worker:    pid {res['worker_pid']}, RSS {res['rss_before_kb'] / 1024:.1f} MB before sockets -> "
          f"{res['rss_open_kb'] / 1024:.1f} MB open (max {res['rss_max_kb'] / 1024:.1f} MB), "
          f"CPU {f(res['worker_cpu'], 0)}% of a core; client CPU {f(res['client_cpu'], 0)}%; "
          f"everything else on the machine {f(res['other_cpu'], 0)}% (of {os.cpu_count()} cores)")
    before, after = res["rss_parts_before"], res["rss_parts_open"]
    per = max(res["open_sockets"], 1)
    print("             per socket: " + ", ".join(f"{k} {(after.get(k, 0) - before.get(k, 0)) / per:.1f} KB"
                                             for k in ("RssAnon", "RssFile", "RssShmem"))
          + f"; open fds {res['fds_before']} -> {res['fds_open']} "
            f"({(res['fds_open'] - res['fds_before']) / per:.2f} per socket)")
    print(f"  ended:     {res['ended']}/{res['calls_up']} visitors got 'ended' {dict(res['ended_reasons'])}")
    print(f"  errors:    {sum(failures.values())} client failures, {stats['skipped']} steps skipped after "
          f"--max-failures, {stats['error_frames']} error frames {dict(stats.get('error_codes', {}))}, "
          f"{len(records)} ERROR/CRITICAL records in the server log, worker restarted: {'yes' if restarted else 'no'}")
    for key, count in failures.most_common(8):
        print(f"    {count} x {key}")
    for line, count in Counter(LOG_STAMP.sub("", r) for r in records).most_common(5):
        print(f"    log {count} x {line[:200]}")
    for line, count in exceptions.most_common(5):
        print(f"    log {count} x {line}")
    ticks = [float(m.group(1)) for m in re.finditer(r"BENCHDIAG tick ([\d.]+) ms", server_log)]
    gcs = re.findall(r"BENCHDIAG gc gen(\d) ([\d.]+) ms collected=\d+ objects=(\S+)", server_log)
    if ticks:
        print(f"  diagnose:  clock tick (every METER_INTERVAL, blocks the worker): {len(ticks)} ticks, "
              f"p50 {f(pct(ticks, 50), 0)} ms, p99 {f(pct(ticks, 99), 0)} ms, max {f(max(ticks), 0)} ms")
    if gcs:
        full = [(float(ms), objs) for gen, ms, objs in gcs if gen == "2"]
        slow = [float(ms) for gen, ms, _ in gcs if gen != "2"]
        print(f"             full garbage collections: {len(full)}, "
              + ", ".join(f"{ms:.0f} ms ({objs} objects)" for ms, objs in full[-6:])
              + (f"; {len(slow)} younger ones over 20 ms, max {max(slow):.0f} ms" if slow else ""))
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("calls", type=int, help="number of simultaneous calls (3 sockets each)")
    parser.add_argument("--window", type=float, default=20, help="measurement window in seconds (default 20)")
    parser.add_argument("--concurrency", type=int, default=50, help="calls being set up at once (default 50)")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats per socket")
    parser.add_argument("--probe-interval", type=float, default=1.0, help="seconds between relay probes per call")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between set-up and the window")
    parser.add_argument("--step-timeout", type=float, default=30.0, help="time-out of each protocol step")
    parser.add_argument("--timeout", type=float, default=900.0, help="the whole run's time limit")
    parser.add_argument("--default-hash", dest="fast_hash", action="store_false",
                        help="seed experts with werkzeug's default (scrypt) hash instead of a cheap pbkdf2 one")
    parser.add_argument("--max-failures", type=int, default=20,
                        help="after this many failed steps the remaining ones are skipped (default 20)")
    parser.add_argument("--db-pool", choices=("default", "unlimited"), default="default",
                        help="'unlimited' serves bench/server_app.py instead of callme:create_app(): the same "
                             "app with SQLAlchemy's max_overflow=-1 (default: the app as users run it)")
    parser.add_argument("--diagnose", action="store_true",
                        help="serve bench/server_app.py, which logs clock tick durations and slow garbage "
                             "collections in the worker; they are summarised at the end")
    parser.add_argument("--timeline", action="store_true", help="print per-second figures of the window")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, server log)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra server setting")
    args = parser.parse_args()
    if args.calls < 1 or args.calls > 20000:
        parser.error("calls must be between 1 and 20000")

    def on_term(signum, frame):
        raise KeyboardInterrupt  # so that the finally below stops the server

    signal.signal(signal.SIGTERM, on_term)
    limit = raise_nofile(3 * args.calls + 1000)
    if limit < 3 * args.calls + 100:
        print(f"warning: open-file limit {limit} is low for {3 * args.calls} sockets", file=sys.stderr)
    workdir = tempfile.mkdtemp(prefix="callme-bench-")
    server = None
    errors = 1
    try:
        t = time.perf_counter()
        count = seed(workdir, args.calls, args.fast_hash)
        print(f"seeded {count} experts in {time.perf_counter() - t:.1f} s; open-file limit {limit}; {workdir}",
              flush=True)
        extra = dict(item.split("=", 1) for item in args.env)
        server = Server(workdir, free_port(), extra, unlimited_pool=args.db_pool == "unlimited",
                        diagnose=args.diagnose).start()
        app = server.argv[-1] + (" (SQLAlchemy pool unlimited)" if args.db_pool == "unlimited" else
                                 " (diagnostics only)" if args.diagnose else " (as users run it)")
        print(f"server {server.url} master {server.proc.pid} worker {server.workers()} app {app}", flush=True)
        res = asyncio.run(asyncio.wait_for(run(args, server), args.timeout))
        server.stop()
        errors = report(args, res, server.log_text())
    finally:
        if server is not None:
            server.stop()
        if errors and server is not None:
            print(f"server log: {server.log_path}", file=sys.stderr)
        if args.keep or errors:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
