"""Real calls between two aiortc peers through a live gunicorn server, loopback only.

The server rings, relays, meters and settles; the media is real (Opus over SRTP on
127.0.0.1). Each test runs in a network namespace that holds nothing but ``lo``.
"""
import asyncio
import time

import pytest

from callme.calls import metering

from ..conftest import money_rows, paypal_app_of, stored_call
from .peers import live_order

pytestmark = [pytest.mark.webrtc, pytest.mark.live]


async def start_call(server):
    """A paid call from Ray's site, up to both peers connected (rtc.start_call)."""
    from . import rtc

    return await rtc.start_call(server, live_order(server.url, server.emulator, "ray", 150))


async def hang_up_at(participant, elapsed_ms, t_active):
    """Hang up once the server's meter has passed ``elapsed_ms`` of the call; returns the length of
    the call by our own clock, from ``t_active`` to the hang-up."""
    await participant.socket.wait("meter", where=lambda meter: meter["elapsed_ms"] >= elapsed_ms)
    await participant.socket.send("hangup")
    return (time.monotonic() - t_active) * 1000


async def finish(console, *participants):
    for p in participants:
        await p.close()
    await console.close()


def test_real_call_is_billed_to_the_cent(media_server):
    async def scenario():
        console, visitor, expert, created, active = await start_call(media_server)
        t_active = time.monotonic()
        # Audio flows both ways.
        await visitor.wait_for_packets(0)
        await expert.wait_for_packets(0)
        meter = await visitor.socket.wait("meter")
        assert meter["currency"] == "USD" and meter["price"] == 150
        # 3.2 s into the call by the server's meter: past the free 2 s, far from any boundary.
        late = await visitor.socket.wait("meter", where=lambda meter: meter["elapsed_ms"] >= 3_200)
        n_v, n_e = await visitor.packets_received(), await expert.packets_received()
        assert n_v > 50 and n_e > 50, (n_v, n_e)
        assert late["minutes"] == 1 and late["amount"] == 150 and late["free_left_ms"] == 0
        await visitor.socket.send("hangup")
        measured_ms = (time.monotonic() - t_active) * 1000
        ended = await visitor.socket.wait("ended")
        assert (await expert.socket.wait("ended"))["amount"] == ended["amount"]
        assert (await console.wait("call_ended"))["call_id"] == created["call_id"]
        await finish(console, visitor, expert)
        return measured_ms, ended

    measured_ms, ended = asyncio.run(scenario())
    call, rows = stored_call(media_server, ended["call_id"])
    terms = metering.Terms(150, "USD", 2, call.cap_minutes)
    # The server's clock and ours agree to within a few hundred ms, far from any boundary.
    assert abs(call.billed_ms - measured_ms) < 500, (call.billed_ms, measured_ms)
    expected = metering.bill(terms, 0, int(measured_ms))
    assert (call.billed_minutes, call.amount_minor) == (expected.minutes, expected.amount_minor) == (1, 150)
    assert money_rows(rows) == [("capture", 150, "USD")]
    assert ended["reason"] == "hangup" and ended["by"] == "visitor" and ended["amount"] == 150


def test_call_ended_inside_free_threshold_costs_nothing(media_server):
    async def scenario():
        console, visitor, expert, created, active = await start_call(media_server)
        await expert.wait_for_packets(0)
        await expert.socket.send("hangup")
        ended = await visitor.socket.wait("ended")
        await finish(console, visitor, expert)
        return ended

    ended = asyncio.run(scenario())
    assert ended["amount"] == 0 and ended["minutes"] == 0 and ended["by"] == "expert"
    call, rows = stored_call(media_server, ended["call_id"])
    assert call.billed_ms < 2000 and call.amount_minor == 0 and money_rows(rows) == []
    assert [r.kind for r in rows] == ["hold", "void"]  # the hold released in full


def test_dropped_socket_reconnects_and_the_call_goes_on(media_server):
    async def scenario():
        console, visitor, expert, created, active = await start_call(media_server)
        t_active = time.monotonic()
        gone_at = (await visitor.socket.wait("meter"))["elapsed_ms"]
        await visitor.drop()
        await expert.socket.wait("peer", where=lambda peer: not peer["present"])  # the server saw it go
        # Media is peer to peer: it keeps flowing while signaling is down.
        before = await expert.packets_received()
        await expert.wait_for_packets(before)
        # The expert's meter runs on 1.5 s after the drop (inside SILENCE_GRACE, 3 s): the call goes on.
        await expert.socket.wait("meter", where=lambda meter: meter["elapsed_ms"] >= gone_at + 1_500)
        assert not expert.socket.of("ended")
        visitor.token = created["token"]  # the very token the call was created with
        welcome = await visitor.join()
        assert welcome["state"] == "active"
        measured_ms = await hang_up_at(visitor, 4_500, t_active)
        ended = await expert.socket.wait("ended")
        await finish(console, visitor, expert)
        return measured_ms, ended

    measured_ms, ended = asyncio.run(scenario())
    assert ended["reason"] == "hangup"
    call, rows = stored_call(media_server, ended["call_id"])
    assert abs(call.billed_ms - measured_ms) < 500
    assert [amount for _, amount, _ in money_rows(rows)] == [150]


def test_killed_and_restarted_server_loses_no_billed_time(media_server, paypal, live_factory):
    async def scenario():
        console, visitor, expert, created, active = await start_call(media_server)
        t_active = time.monotonic()
        await visitor.socket.wait("meter", where=lambda meter: meter["elapsed_ms"] >= 1_000)
        media_server.kill()  # SIGKILL: no clean shutdown, nothing flushed on the way out
        # Both sockets see the server go before anyone reconnects.
        await asyncio.wait_for(asyncio.gather(visitor.socket._reader, expert.socket._reader), 5)
        restarted = live_factory(port=media_server.port, seed=False, emulator=paypal)
        assert restarted.port == media_server.port
        await asyncio.gather(visitor.join(), expert.join())
        measured_ms = await hang_up_at(visitor, 5_000, t_active)
        ended = await visitor.socket.wait("ended")
        await finish(console, visitor, expert)
        return measured_ms, ended

    measured_ms, ended = asyncio.run(scenario())
    call, rows = stored_call(media_server, ended["call_id"])
    # Every second from "active" to the hang-up is billed, the time the server was down included.
    assert abs(call.billed_ms - measured_ms) < 700, (call.billed_ms, measured_ms)
    assert money_rows(rows) == [("capture", 150, "USD")]
    # Captured once, by the restarted server, and PayPal's books say the same.
    captures = paypal.books(paypal_app_of(media_server, "ray"))["captures"]
    assert [c["amount"]["value"] for c in captures] == ["1.50"]
