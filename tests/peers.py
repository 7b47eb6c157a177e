"""Test clients: an expert console, a signaling participant and a real aiortc peer."""
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

    async def wait(self, kind, timeout=10, after=0):
        """The first frame of ``kind`` at index >= ``after``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for frame in self.frames[after:]:
                if frame.get("type") == kind:
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
