"""Signaling through a live gunicorn server (no media): ring, accept, decline, time-outs,
presence, silence, and every bad frame and token on the sockets."""
import asyncio
import itertools
import json

import pytest
import requests


from ..conftest import money_rows, seed_expert, stored_call
from .peers import (Socket, active_call, close_all, connected_call, create_call, hang_up, login, online_console,
                    post_call, ringing_call, status)

pytestmark = pytest.mark.live
_n = itertools.count(1)


@pytest.fixture
def handle(live_server):
    """A fresh expert on the shared live server."""
    name = f"sig{next(_n)}"
    seed_expert(live_server, handle=name, price=150, free_seconds=2)
    return name


def test_ring_accept_relay_meter_hangup(live_server, handle):
    server = live_server

    async def scenario():
        console, visitor, expert, created, _ = await connected_call(server, handle)
        assert status(server, handle) == "busy"
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
        # Past the free 2 s, by the server's own meter; then the hang-up.
        await visitor.wait("meter", where=lambda meter: meter["elapsed_ms"] >= 2_500)
        await visitor.send("hangup")
        ended = await visitor.wait("ended")
        assert (await expert.wait("ended"))["amount"] == ended["amount"]
        assert ended["reason"] == "hangup" and ended["by"] == "visitor"
        assert ended["minutes"] == 1 and ended["amount"] == 150
        r = requests.get(f"{server.url}/api/v1/calls/{created['call_id']}", params={"receipt": ended["receipt"]})
        assert r.json()["amount"] == 150 and r.json()["state"] == "ended"
        assert [f["status"] for f in console.of("presence")][:2] == ["online", "busy"]  # went online, then rung
        await console.wait("call_ended")
        assert (await console.wait("presence", after=len(console.frames) - 1))["status"] == "online"
        await close_all(console, visitor, expert)

    asyncio.run(scenario())
    assert status(server, handle) == "offline"  # the console closed


@pytest.mark.parametrize("outcome", ["declined", "missed", "cancelled"])
def test_calls_that_never_connect_cost_nothing(live_server, handle, outcome):
    server = live_server

    async def scenario():
        console, visitor, created = await ringing_call(server, handle)
        if outcome == "declined":
            await console.send("decline", call_id=created["call_id"])
        elif outcome == "cancelled":
            await visitor.send("hangup")
        # "missed": nobody answers within RING_TIMEOUT (3 s in the live config)
        ended = await visitor.wait("ended", timeout=8)
        ring_ended = await console.wait("ring_ended", timeout=8)
        await close_all(console, visitor)
        return ended, ring_ended

    ended, ring_ended = asyncio.run(scenario())
    assert ended["reason"] == outcome == ring_ended["reason"]
    assert ended["amount"] == 0
    call, rows = stored_call(server, ended["call_id"])
    assert call.state == "ended" and call.amount_minor == 0 and money_rows(rows) == []


def test_offline_and_busy_experts_refuse_calls(live_server, handle):
    server = live_server
    assert status(server, handle) == "offline"
    r = post_call(server, handle)
    assert r.status_code == 409 and r.json()["error"] == "expert_offline"

    async def scenario():
        console, visitor, created = await ringing_call(server, handle)
        assert status(server, handle) == "busy"
        r = post_call(server, handle)
        assert r.status_code == 409 and r.json()["error"] == "expert_busy"
        await console.send("presence", status="offline")
        await console.wait("presence", after=2)
        await hang_up(visitor)
        await close_all(console, visitor)

    asyncio.run(scenario())
    assert status(server, handle) == "offline"


def test_silent_side_ends_the_call_at_its_last_heartbeat(live_server, handle):
    server = live_server

    async def scenario():
        console, visitor, expert, created, _ = await active_call(server, handle)

        async def beat():
            while True:
                await visitor.send("heartbeat")
                await asyncio.sleep(0.5)  # the visitor's heartbeat interval
        beating = asyncio.create_task(beat())
        # A second into the call (by the server's meter) the expert's last heartbeat, recorded (acked)...
        await expert.wait("meter", where=lambda meter: meter["elapsed_ms"] >= 1_000)
        mark = len(expert.frames)
        await expert.send("heartbeat")
        await expert.wait("ack", after=mark)
        expert.ws.transport.abort()  # ...then the expert vanishes; the visitor keeps beating
        ended = await visitor.wait("ended", timeout=10)
        beating.cancel()
        await close_all(console, visitor, expert)
        return ended

    ended = asyncio.run(scenario())
    assert ended["reason"] == "silence" and ended["by"] == "expert"
    call, rows = stored_call(server, ended["call_id"])
    assert call.ended_ms == call.expert_seen_ms
    assert 1000 <= call.billed_ms <= 2500  # from active to the expert's last sign of life
    assert call.amount_minor == (150 if call.billed_ms >= 2000 else 0)


BAD_CALL_FRAMES = [
    (b"\x00\x01", "bad_frame"),
    ("not json", "bad_json"),
    ("[1, 2]", "bad_frame"),
    ('{"sdp": "x"}', "unknown_type"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": "offer"}', "bad_frame"),
    ('{"type": "offer", "sdp": 5}', "bad_frame"),
    ('{"type": "candidate", "candidate": "c", "sdpMLineIndex": true}', "bad_frame"),
    ('{"type": "state", "connection": "happy"}', "bad_frame"),
    ('{"type": "heartbeat", "extra": 1}', "bad_frame"),
    (json.dumps({"type": "offer", "sdp": "x" * 70_000}), "frame_too_large"),
    ('{"type": "hello", "token": "again"}', "out_of_turn"),
]


def test_bad_frames_get_error_frames_and_change_nothing(live_server, handle):
    server = live_server

    async def scenario():
        console, visitor, expert, created, _ = await connected_call(server, handle)
        for raw, code in BAD_CALL_FRAMES:
            mark = len(visitor.frames)
            await visitor.ws.send(raw)
            error = await visitor.wait("error", after=mark)
            assert error["code"] == code, (raw[:40], error)
        # Nothing was relayed, the call is still accepted, and the socket still works.
        assert not expert.of("offer") and not expert.of("error")
        await visitor.send("offer", sdp="v=0 fine")
        assert (await expert.wait("offer"))["sdp"] == "v=0 fine"
        for raw, code in [('{"type": "presence", "status": "away"}', "bad_frame"), ("{]", "bad_json"),
                          ('{"type": "accept", "call_id": 7}', "bad_frame"),
                          ('{"type": "accept", "call_id": "nope"}', "call_not_found"),
                          (json.dumps({"type": "accept", "call_id": created["call_id"]}), "not_ringing")]:
            mark = len(console.frames)
            await console.ws.send(raw)
            assert (await console.wait("error", after=mark))["code"] == code
        call, _ = stored_call(server, created["call_id"])
        assert call.state == "accepted"
        await hang_up(visitor)
        await close_all(console, visitor, expert)

    asyncio.run(scenario())


def test_relay_before_the_peer_joins_is_out_of_turn(live_server, handle):
    async def scenario():
        console, visitor, created = await ringing_call(live_server, handle)
        await visitor.send("offer", sdp="v=0")
        assert (await visitor.wait("error"))["code"] == "out_of_turn"
        await hang_up(visitor)
        await close_all(console, visitor)

    asyncio.run(scenario())


def test_tokens_on_sockets(live_server, handle):
    """Wrong call, garbage, replay after the end: an error frame and the socket is closed."""
    server = live_server

    async def hello(url, token):
        s = await Socket.open(url)
        await s.send("hello", token=token)
        error = await s.wait("error")
        await asyncio.wait_for(s._reader, 5)  # the server closes it
        return error["code"]

    async def scenario():
        console, visitor, created = await ringing_call(server, handle)
        other_url = created["ws_url"].rsplit("/", 1)[0] + "/someothercall"
        assert await hello(other_url, created["token"]) == "token_wrong_call"
        assert await hello(created["ws_url"], created["token"][:-2] + "xx") == "token_invalid"
        s = await Socket.open(created["ws_url"])
        await s.send("heartbeat")
        assert (await s.wait("error"))["code"] == "out_of_turn"
        await s.close()
        await hang_up(visitor)
        assert await hello(created["ws_url"], created["token"]) == "call_ended"
        await close_all(console, visitor)

    asyncio.run(scenario())


def test_console_refuses_strangers(live_server, handle):
    async def scenario():
        s = await Socket.open(live_server.ws + "/ws/console")
        assert (await s.wait("error"))["code"] == "not_logged_in"
        await s.close()
        cookie = login(live_server.url, f"{handle}@example.com", "password123")
        s = await Socket.open(live_server.ws + "/ws/console", cookie=cookie, origin="https://evil.example")
        assert (await s.wait("error"))["code"] == "origin_not_allowed"
        await s.close()

    asyncio.run(scenario())


def test_second_process_on_the_same_database_is_refused_loudly(live_factory):
    first = live_factory()
    seed_expert(first, handle="solo")
    assert requests.get(first.url + "/api/v1/experts/solo/status").status_code == 200
    second = live_factory(seed=False, healthy=False)
    r = requests.get(second.url + "/api/v1/experts/solo/status")
    assert r.status_code == 503 and r.json()["error"] == "misconfigured"
    assert "REDIS_URL" in r.json()["message"]
    assert requests.get(first.url + "/api/v1/experts/solo/status").status_code == 200


def test_many_open_sockets_do_not_drain_the_database_pool(live_server):
    """More sockets than the pool has connections (5 + 10 overflow): each still gets served."""
    handles = [f"crowd{i}" for i in range(24)]
    for h in handles:
        seed_expert(live_server, handle=h)

    # Log in first: a blocking login inside the event loop would stall the other handshakes.
    cookies = {h: login(live_server.url, f"{h}@example.com", "password123") for h in handles}

    async def scenario():
        consoles = await asyncio.wait_for(
            asyncio.gather(*(online_console(live_server, h, cookies[h]) for h in handles)), 20)
        assert all(status(live_server, h) == "online" for h in handles)
        visitors = []
        for h in handles[:5]:  # calls ring while every console holds its socket open
            created = create_call(live_server, h)
            visitor = await Socket.open(created["ws_url"])
            await visitor.send("hello", token=created["token"])
            visitors.append(visitor)
        for c in consoles[:5]:
            await asyncio.wait_for(c.wait("ring"), 10)
        for v in visitors:
            await hang_up(v)
        await close_all(*consoles, *visitors)

    asyncio.run(scenario())


def test_closing_one_of_two_consoles_leaves_the_expert_online(live_server, handle):
    """Defect 10: presence counts consoles; offline only when the last one leaves."""
    async def scenario():
        cookie = login(live_server.url, f"{handle}@example.com", "password123")
        first = await online_console(live_server, handle, cookie)
        second = await online_console(live_server, handle, cookie)
        assert status(live_server, handle) == "online"
        mark = len(second.frames)  # before the close: its announcement may come at once
        await first.close()
        await second.wait("presence", after=mark)  # the close was heard
        assert status(live_server, handle) == "online"
        await second.close()
        for _ in range(50):
            if status(live_server, handle) == "offline":
                break
            await asyncio.sleep(0.05)
        assert status(live_server, handle) == "offline"

    asyncio.run(scenario())


def test_answer_or_candidate_before_any_offer_is_out_of_turn(live_server, handle):
    """Defect 11: the documented order (offer, then answer; candidates after an offer) is enforced."""
    async def scenario():
        console, visitor, expert, created, _ = await connected_call(live_server, handle)
        for sender, raw in [(expert, {"type": "answer", "sdp": "v=0 early"}),
                            (expert, {"type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
                            (visitor, {"type": "candidate", "candidate": "candidate:2 1 udp 1 127.0.0.1 9 typ host"})]:
            mark = len(sender.frames)
            await sender.ws.send(json.dumps(raw))
            assert (await sender.wait("error", after=mark))["code"] == "out_of_turn"
        await visitor.send("offer", sdp="v=0 offer")
        assert (await expert.wait("offer"))["sdp"] == "v=0 offer"
        mark = len(visitor.frames)
        await visitor.send("answer", sdp="v=0 own")  # nobody answers their own offer
        assert (await visitor.wait("error", after=mark))["code"] == "out_of_turn"
        await expert.send("answer", sdp="v=0 answer")
        assert (await visitor.wait("answer"))["sdp"] == "v=0 answer"
        assert [f["sdp"] for f in visitor.of("answer")] == ["v=0 answer"]
        assert not visitor.of("candidate") and not expert.of("candidate")
        await hang_up(visitor)
        await close_all(console, visitor, expert)

    asyncio.run(scenario())


def test_heartbeats_are_acked_and_a_hangup_bills_to_its_ack_plus_offset(live_server, handle):
    """Defect 14: every heartbeat and state frame is answered with the time recorded for it; a
    hang-up carrying that ack and the client's offset since is billed to ack + offset."""
    async def scenario():
        console, visitor, expert, created, _ = await connected_call(live_server, handle)
        mark = len(visitor.frames)
        await visitor.send("state", connection="connected")
        assert isinstance((await visitor.wait("ack", after=mark))["seen_ms"], int)
        await expert.send("state", connection="connected")
        active = await visitor.wait("active")
        await visitor.wait("meter", where=lambda meter: meter["elapsed_ms"] >= 500)
        mark = len(visitor.frames)
        await visitor.send("heartbeat")
        ack = await visitor.wait("ack", after=mark)
        assert ack["seen_ms"] >= active["started_ms"]
        # The server's clock is past ack + 300 ms (its meter says so), so the hang-up arrives later
        # than the moment it claims: billed to the claim, not to its arrival.
        since_active = ack["seen_ms"] - active["started_ms"]
        await visitor.wait("meter", where=lambda meter: meter["elapsed_ms"] >= since_active + 800)
        mark = len(visitor.frames)
        await visitor.send("hangup", ack_ms=ack["seen_ms"], since_ack_ms="soon")
        assert (await visitor.wait("error", after=mark))["code"] == "bad_frame"
        await visitor.send("hangup", ack_ms=ack["seen_ms"], since_ack_ms=300)
        ended = await visitor.wait("ended")
        await close_all(console, visitor, expert)
        return ended, ack["seen_ms"], active["started_ms"]

    ended, seen_ms, started_ms = asyncio.run(scenario())
    call, _ = stored_call(live_server, ended["call_id"])
    assert call.ended_ms == seen_ms + 300
    assert ended["duration_ms"] == seen_ms + 300 - started_ms
