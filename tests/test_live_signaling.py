"""Signaling through a live gunicorn server: ring, accept, relay, meter, end (no media)."""
import asyncio

import pytest
import requests

from .conftest import seed_expert
from .peers import Socket, login

pytestmark = pytest.mark.live


async def online_console(server, email="ray@example.com"):
    console = await Socket.open(server.ws + "/ws/console", cookie=login(server.url, email, "password123"))
    await console.wait("hello")
    await console.send("presence", status="online")
    await console.wait("presence")
    return console


def create_call(server, handle="ray", price=150, currency="USD"):
    r = requests.post(server.url + "/api/v1/calls",
                      json={"expert": handle, "price": {"amount": price, "currency": currency}}, timeout=5)
    assert r.status_code == 201, r.text
    return r.json()


async def connect_call(server):
    """Visitor calls, expert accepts; both joined. Return (console, visitor, expert, created)."""
    console = await online_console(server)
    created = create_call(server)
    visitor = await Socket.open(created["ws_url"])
    await visitor.send("hello", token=created["token"])
    await visitor.wait("welcome")
    ring = await console.wait("ring")
    assert ring["call_id"] == created["call_id"]
    await console.send("accept", call_id=created["call_id"])
    accepted = await console.wait("accepted")
    await visitor.wait("accepted")
    expert = await Socket.open(accepted["ws_url"])
    await expert.send("hello", token=accepted["token"])
    await expert.wait("welcome")
    await visitor.wait("peer")
    await expert.wait("peer")
    return console, visitor, expert, created


def test_ring_accept_relay_meter_hangup(live_factory):
    server = live_factory()
    seed_expert(server)

    async def scenario():
        console, visitor, expert, created = await connect_call(server)
        await visitor.send("offer", sdp="v=0 offer")
        assert (await expert.wait("offer"))["sdp"] == "v=0 offer"
        await expert.send("answer", sdp="v=0 answer")
        assert (await visitor.wait("answer"))["sdp"] == "v=0 answer"
        await expert.send("candidate", candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid="0",
                          sdpMLineIndex=0)
        assert (await visitor.wait("candidate"))["sdpMid"] == "0"
        await visitor.send("state", connection="connected")
        await expert.send("state", connection="connected")
        active = await visitor.wait("active")
        assert active["amount"] == 0
        meter = await expert.wait("meter")
        assert meter["currency"] == "USD"
        await asyncio.sleep(2.5)
        await visitor.send("hangup")
        ended = await visitor.wait("ended")
        assert (await expert.wait("ended"))["amount"] == ended["amount"]
        assert ended["reason"] == "hangup" and ended["by"] == "visitor"
        assert ended["minutes"] == 1 and ended["amount"] == 150
        r = requests.get(f"{server.url}/api/v1/calls/{created['call_id']}", params={"receipt": ended["receipt"]})
        assert r.json()["amount"] == 150 and r.json()["state"] == "ended"
        for s in (console, visitor, expert):
            await s.close()

    asyncio.run(scenario())
