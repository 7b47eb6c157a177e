"""A real WebRTC participant: an aiortc peer connection driven by callme's signaling.

Test-only plumbing lives here: aioice is told to gather on loopback (inside the test's
loopback-only namespace it would otherwise find no address at all).
"""
import asyncio
import time

import requests

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import candidate_from_sdp

from .peers import Socket, login

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def rtc_configuration(ice_servers):
    """Exactly the servers callme handed out: an empty list, never aiortc's public default."""
    return RTCConfiguration(iceServers=[RTCIceServer(**s) for s in ice_servers])


class Participant:
    """One side of a call: a socket (replaceable on reconnect) and a peer connection."""

    def __init__(self, role, ws_url, token, ice_servers):
        self.role, self.ws_url, self.token = role, ws_url, token
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.pc.addTrack(AudioStreamTrack())
        self.sink = MediaBlackhole()
        self.socket = None
        self.connected = asyncio.Event()
        self._tasks = []
        self.offered = False

        @self.pc.on("track")
        def on_track(track):
            self.sink.addTrack(track)
            asyncio.ensure_future(self.sink.start())

        @self.pc.on("connectionstatechange")
        async def on_state():
            if self.pc.connectionState == "connected":
                self.connected.set()
            if self.socket and not self.socket.closed:
                await self.socket.send("state", connection=self.pc.connectionState)

    async def join(self):
        """Open the call socket with the latest token; return the welcome frame."""
        self.socket = await Socket.open(self.ws_url)
        await self.socket.send("hello", token=self.token)
        welcome = await self.socket.wait("welcome")
        self.token = welcome["token"]
        for task in self._tasks:
            task.cancel()
        self._tasks = [asyncio.create_task(self._pump(self.socket)), asyncio.create_task(self._beat(self.socket))]
        if self.pc.connectionState == "connected":
            await self.socket.send("state", connection="connected")
        return welcome

    async def drop(self):
        """Lose the socket abruptly (no hang-up), as a network blip would."""
        for task in self._tasks:
            task.cancel()
        self.socket.ws.transport.abort()
        await asyncio.gather(self.socket._reader, return_exceptions=True)

    async def _beat(self, socket):
        while not socket.closed:
            await socket.send("heartbeat")
            await asyncio.sleep(1)

    async def _pump(self, socket):
        seen = 0
        while not socket.closed:
            await socket._new.wait()
            socket._new.clear()
            frames, seen = socket.frames[seen:], len(socket.frames)
            for frame in frames:
                await self._on_frame(socket, frame)

    async def _on_frame(self, socket, frame):
        kind = frame["type"]
        if kind == "token":
            self.token = frame["token"]
        elif kind == "peer" and frame["present"] and self.role == "visitor" and not self.offered:
            self.offered = True
            await self.pc.setLocalDescription(await self.pc.createOffer())
            await socket.send("offer", sdp=self.pc.localDescription.sdp)
        elif kind == "offer":
            await self.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await socket.send("answer", sdp=self.pc.localDescription.sdp)
        elif kind == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer"))
        elif kind == "candidate" and frame["candidate"]:
            candidate = candidate_from_sdp(frame["candidate"].split(":", 1)[1])
            candidate.sdpMid, candidate.sdpMLineIndex = frame.get("sdpMid"), frame.get("sdpMLineIndex")
            await self.pc.addIceCandidate(candidate)

    async def packets_received(self):
        stats = await self.pc.getStats()
        return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")

    async def wait_for_packets(self, more_than=0, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (n := await self.packets_received()) > more_than:
                return n
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.role}: no audio packets beyond {more_than} within {timeout}s")

    async def close(self):
        for task in self._tasks:
            task.cancel()
        if self.socket:
            await self.socket.close()
        await self.sink.stop()
        await self.pc.close()


async def start_call(server, order_id, refuse_unpaid=False):
    """Ray's console goes online, a visitor calls with the approved PayPal order, Ray accepts,
    media connects. With ``refuse_unpaid`` a call without the order is tried first: 402, no ring.
    Returns (console, visitor, expert, created, active)."""
    console = await Socket.open(server.ws + "/ws/console", cookie=login(server.url, "ray@example.com", "password123"))
    await console.send("presence", status="online")
    await console.wait("presence")
    body = {"expert": "ray", "price": {"amount": 150, "currency": "USD"}}
    if refuse_unpaid:
        r = requests.post(server.url + "/api/v1/calls", json=body, timeout=10)
        assert r.status_code == 402 and r.json()["error"] == "payment_required"
        assert not console.of("ring")  # no hold, no ring
    r = requests.post(server.url + "/api/v1/calls", json={**body, "payment": {"order_id": order_id}}, timeout=10)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["ice_servers"] == []
    visitor = Participant("visitor", created["ws_url"], created["token"], created["ice_servers"])
    await visitor.join()
    ring = await console.wait("ring")
    await console.send("accept", call_id=ring["call_id"])
    accepted = await console.wait("accepted")
    expert = Participant("expert", accepted["ws_url"], accepted["token"], accepted["ice_servers"])
    await expert.join()
    await asyncio.wait_for(asyncio.gather(visitor.connected.wait(), expert.connected.wait()), 15)
    active = await visitor.socket.wait("active")
    await expert.socket.wait("active")
    return console, visitor, expert, created, active
