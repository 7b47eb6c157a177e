"""Test clients of a live server: the expert's login and console, a signaling participant's socket,
and the steps of a call as the widget and the console take them (``rtc.py`` adds real media)."""
import asyncio
import json

import requests
import websockets


def login(base_url, email, password):
    """Log an expert in; return the Cookie header value for the console socket."""
    s = requests.Session()
    r = s.post(base_url + "/api/v1/session", json={"email": email, "password": password}, timeout=5)
    r.raise_for_status()
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


class Socket:
    """A JSON frame socket with a buffer, so tests can wait for one frame type."""

    def __init__(self, ws):
        self.ws = ws
        self.frames = []
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url, cookie=None, origin=None):
        headers = {"Cookie": cookie} if cookie else {}
        ws = await websockets.connect(url, additional_headers=headers, origin=origin,
                                      compression=None, open_timeout=5)
        return cls(ws)

    async def _read(self):
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._new.set()

    async def send(self, kind, **data):
        await self.ws.send(json.dumps({"type": kind, **data}))

    async def wait(self, kind, timeout=10, after=0, where=None):
        """The first frame of ``kind`` at index >= ``after`` (for which ``where(frame)`` holds)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for frame in self.frames[after:]:
                if frame.get("type") == kind and (where is None or where(frame)):
                    return frame
            if self._reader.done():
                raise AssertionError(f"socket closed waiting for {kind!r}; got {self.frames}")
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind!r} frame within {timeout}s; got {self.frames}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except asyncio.TimeoutError:
                pass

    def of(self, kind):
        return [f for f in self.frames if f.get("type") == kind]

    async def close(self):
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    @property
    def closed(self):
        return self._reader.done()


async def hang_up(socket):
    """Hang up on ``socket`` and wait for the call's end; returns the ``ended`` frame."""
    await socket.send("hangup")
    return await socket.wait("ended")


async def close_all(*sockets):
    for s in sockets:
        await s.close()


# ---- a call's steps, as the widget and the console take them ------------------------------------

def live_order(server_url, emulator, handle, amount, currency="USD", approve=True):
    """POST /payments/orders against a live server and approve the hold; returns the order id."""
    r = requests.post(server_url + "/api/v1/payments/orders",
                      json={"expert": handle, "price": {"amount": amount, "currency": currency}}, timeout=10)
    assert r.status_code == 201, r.text
    order_id = r.json()["order_id"]
    if approve:
        emulator.approve(order_id)
    return order_id


def post_call(server, handle, price=150, currency="USD"):
    """POST /calls as the widget does: for a paid call, with a PayPal hold approved first."""
    body = {"expert": handle, "price": {"amount": price, "currency": currency}}
    if price:
        body["payment"] = {"order_id": live_order(server.url, server.emulator, handle, price, currency)}
    return requests.post(server.url + "/api/v1/calls", json=body, timeout=10)


def create_call(server, handle):
    r = post_call(server, handle)
    assert r.status_code == 201, r.text
    return r.json()


def status(server, handle):
    return requests.get(f"{server.url}/api/v1/experts/{handle}/status", timeout=5).json()["status"]


async def online_console(server, handle, cookie=None):
    cookie = cookie or login(server.url, f"{handle}@example.com", "password123")
    console = await Socket.open(server.ws + "/ws/console", cookie=cookie)
    await console.wait("hello")
    await console.send("presence", status="online")
    await console.wait("presence")
    return console


async def ringing_call(server, handle):
    """The expert's console online, a visitor's call created and its socket joined: it rings."""
    console = await online_console(server, handle)
    created = create_call(server, handle)
    visitor = await Socket.open(created["ws_url"])
    await visitor.send("hello", token=created["token"])
    await visitor.wait("welcome")
    ring = await console.wait("ring")
    assert ring["call_id"] == created["call_id"] and ring["price"] == 150
    return console, visitor, created


async def connected_call(server, handle):
    """``ringing_call`` accepted and the expert's socket joined: both see their peer."""
    console, visitor, created = await ringing_call(server, handle)
    await console.send("accept", call_id=created["call_id"])
    accepted = await console.wait("accepted")
    await visitor.wait("accepted")
    expert = await Socket.open(accepted["ws_url"])
    await expert.send("hello", token=accepted["token"])
    await expert.wait("welcome")
    await visitor.wait("peer")
    await expert.wait("peer")
    return console, visitor, expert, created, accepted


async def active_call(server, handle):
    """``connected_call`` with both peers reporting "connected": active, as the ``active`` frame says."""
    console, visitor, expert, created, accepted = await connected_call(server, handle)
    await visitor.send("state", connection="connected")
    await expert.send("state", connection="connected")
    active = await visitor.wait("active")
    return console, visitor, expert, created, active
