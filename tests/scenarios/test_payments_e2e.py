"""A paid call end to end: the visitor's PayPal hold, a real call between two aiortc peers
through a live gunicorn server, the capture of exactly the metered amount at PayPal (the
emulator, through the real SDK), and the emulator's books and callme's ledger agreeing to
the cent. Loopback only: the server, the emulator and the peers share a namespace holding
nothing but ``lo``."""
import asyncio
import time

import pytest
import requests

from callme.calls import metering
from callme.money.currency import from_paypal_value

from ..conftest import money_rows, paypal_app_of, stored_call, stored_payment

pytestmark = [pytest.mark.webrtc, pytest.mark.live]


def hold(server, paypal):
    """What the widget does before calling: the order, the payer's approval in the popup."""
    r = requests.post(server.url + "/api/v1/payments/orders", timeout=10,
                      json={"expert": "ray", "price": {"amount": 150, "currency": "USD"}})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["amount"] == {"amount": 4500, "currency": "USD"}  # 30 minutes x 1.50
    # The approval link is PayPal's page (the emulator's here), for this very order.
    page = requests.get(order["approve_url"], timeout=10)
    assert page.status_code == 200 and order["order_id"] in page.text
    paypal.approve(order["order_id"])
    return order["order_id"]


async def paid_call(server, order_id):
    """The call refused without the hold (no ring), then made with it, up to media connected."""
    from .rtc import start_call

    console, visitor, expert, created, _ = await start_call(server, order_id, refuse_unpaid=True)
    return console, visitor, expert, created


def books_in_minor(paypal, client_id):
    books = paypal.books(client_id)
    captured = sum(from_paypal_value(c["amount"]["value"], "USD") for c in books["captures"])
    return books, captured


def test_paid_call_captures_exactly_the_metered_amount(media_server, paypal):
    order_id = hold(media_server, paypal)

    async def scenario():
        console, visitor, expert, created = await paid_call(media_server, order_id)
        t_active = time.monotonic()
        await visitor.wait_for_packets(0)
        await expert.wait_for_packets(0)
        # Past the 2 s free threshold, far from any boundary, by the server's meter.
        await visitor.socket.wait("meter", where=lambda meter: meter["elapsed_ms"] >= 3_200)
        await visitor.socket.send("hangup")
        measured_ms = (time.monotonic() - t_active) * 1000
        ended = await visitor.socket.wait("ended")
        for p in (visitor, expert):
            await p.close()
        await console.close()
        return measured_ms, ended

    measured_ms, ended = asyncio.run(scenario())
    call, rows = stored_call(media_server, ended["call_id"])
    expected = metering.bill(metering.Terms(150, "USD", 2, 30), 0, int(measured_ms))
    assert (call.billed_minutes, call.amount_minor) == (expected.minutes, expected.amount_minor) == (1, 150)
    assert ended["amount"] == 150
    payment = stored_payment(media_server, ended["call_id"])
    assert payment.state == "captured" and payment.captured_minor == 150
    assert [(r.kind, r.amount_minor) for r in rows] == [("hold", 4500), ("capture", 150), ("void", 4350)]
    # PayPal's books: one capture of exactly 1.50, final, against this call's authorization.
    books, captured = books_in_minor(paypal, paypal_app_of(media_server, "ray"))
    assert captured == 150 == sum(amount for _, amount, _ in money_rows(rows))
    assert [c["id"] for c in books["captures"]] == [payment.capture_id]
    auth = next(a for a in books["authorizations"] if a["id"] == payment.authorization_id)
    assert auth["status"] == "CAPTURED"
    # The receipt says the same.
    r = requests.get(f"{media_server.url}/api/v1/calls/{ended['call_id']}", params={"receipt": ended["receipt"]},
                     timeout=10)
    assert r.json()["amount"] == 150
    assert r.json()["payment"] == {"state": "captured", "amount": 4500, "captured": 150,
                                   "capture_id": payment.capture_id, "currency": "USD"}


def test_paid_call_inside_the_free_threshold_voids_the_hold(media_server, paypal):
    order_id = hold(media_server, paypal)

    async def scenario():
        console, visitor, expert, created = await paid_call(media_server, order_id)
        await expert.wait_for_packets(0)
        await expert.socket.send("hangup")
        ended = await visitor.socket.wait("ended")
        for p in (visitor, expert):
            await p.close()
        await console.close()
        return ended

    ended = asyncio.run(scenario())
    assert ended["amount"] == 0
    call, rows = stored_call(media_server, ended["call_id"])
    assert [(r.kind, r.amount_minor) for r in rows] == [("hold", 4500), ("void", 4500)]
    payment = stored_payment(media_server, ended["call_id"])
    books, captured = books_in_minor(paypal, paypal_app_of(media_server, "ray"))
    assert captured == 0 and books["captures"] == []
    assert next(a for a in books["authorizations"] if a["id"] == payment.authorization_id)["status"] == "VOIDED"
