"""The product as people use it, in Debian's Chromium: the expert's own site embeds the
button from callme's origin, a visitor calls, the expert answers in the console, media
flows between the two browsers, the meter runs, and the end screen shows what the ledger
holds. Loopback only; screenshots go to tests/artifacts/ (and docs/ when DOCS_SHOTS=1).
"""
import os
import re
import shutil

import pytest

from ..conftest import eventually, money_rows, paypal_app_of, seed_expert, stored_call, stored_payment
from .browser import (ROOT, answered_call, bytes_grow, console, launch, open_widget, preview_painted, start_call,
                      state, visitor, widget_frame, widget_opened)

pytestmark = [pytest.mark.browser, pytest.mark.webrtc, pytest.mark.live]

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


def shot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path)
    if os.environ.get("DOCS_SHOTS"):
        shutil.copy(path, os.path.join(ROOT, "docs", f"{name}.png"))


def test_call_from_the_experts_own_site(browser, server, site, expert):
    expert_page = console(browser, server, expert)
    shot(expert_page, "console-online")
    page = visitor(browser, site, server, expert)
    shot(page, "button")
    frame = open_widget(page, server, expert)
    assert "$1.50" in frame.inner_text("#price")
    preview_painted(frame)
    shot(page, "precall")

    popup = start_call(page, frame, pay="look")
    assert "Pay 90.00 USD to" in popup.inner_text("#summary")  # the hold: 60 min cap x $1.50
    shot(popup, "paypal")
    assert "$90.00" in frame.inner_text("#paying-hold")
    shot(page, "paying")
    assert expert_page.locator("#incoming").is_hidden()  # nobody rings before PayPal approved
    with popup.expect_event("close"):
        popup.click("#approve")
    state(frame, "ringing")
    expert_page.wait_for_selector("#incoming", state="visible")
    shot(expert_page, "console-ringing")
    expert_page.click("#accept")

    state(frame, "active")
    expert_page.wait_for_function("() => window.callme.state === 'active'")
    assert frame.evaluate("() => window.callme.pc.connectionState") == "connected"
    assert expert_page.evaluate("() => window.callme.pc.connectionState") == "connected"
    bytes_grow(frame)
    bytes_grow(expert_page)
    # The meter: free time first, then the running cost from the server's meter frames.
    frame.wait_for_function("() => document.querySelector('#cost').textContent.includes('$1.50')")
    assert re.match(r"\d+:\d\d", frame.inner_text("#elapsed"))
    shot(page, "incall")
    shot(expert_page, "console-incall")
    # 3 s into the call by the server's meter: the minute is billed, far from the free 2 s.
    frame.wait_for_function("() => !/^0:0[0-2]$/.test(document.querySelector('#elapsed').textContent)")

    frame.click("#hangup")
    state(frame, "ended")
    call_id = frame.evaluate("() => window.callme.call_id")
    call, rows = stored_call(server, call_id)
    assert call.end_reason == "hangup" and call.ended_by == "visitor"
    assert [(a, c) for _, a, c in money_rows(rows)] == [(call.amount_minor, "USD")] == [(150, "USD")]
    assert frame.inner_text("#ended-amount").strip() == "$1.50"
    shot(page, "ended")
    # PayPal captured exactly that, once, and the ledger says the same to the cent.
    payment = stored_payment(server, call_id)  # stored_call above waited for PayPal's answer
    assert (payment.state, payment.captured_minor) == ("captured", 150)
    books = server.emulator.books(paypal_app_of(server, expert))
    assert [(c["id"], c["amount"]) for c in books["captures"] if c["id"] == payment.capture_id] == [
        (payment.capture_id, {"currency_code": "USD", "value": "1.50"})]
    _, rows = stored_call(server, call_id)
    assert [(r.kind, r.amount_minor) for r in rows] == [("hold", 9000), ("capture", 150), ("void", 8850)]
    # The receipt the end screen links to, in the browser, with PayPal's capture id.
    with page.context.expect_page() as opened:
        frame.click("#receipt")
    receipt = opened.value
    receipt.wait_for_load_state()
    text = receipt.inner_text("body")
    assert "$1.50" in text and payment.capture_id in text, text
    shot(receipt, "receipt")
    receipt.close()
    expert_page.wait_for_selector("#summary", state="visible")
    assert "$1.50" in expert_page.inner_text("#summary-amount")
    shot(expert_page, "console-summary")
    # The expert's dashboard: today's earnings and the call, with its receipt.
    expert_page.goto(f"{server.url}/dashboard")
    today = expert_page.inner_text(".totals[data-currency=USD] [data-period=today] dd")
    assert today == "$1.50", today
    row = expert_page.locator(f"#calls tr[data-call='{call_id}']")
    assert "$1.50" in row.inner_text() and "paid" in row.inner_text(), row.inner_text()
    assert expert_page.locator("#all-settled").is_visible()
    shot(expert_page, "dashboard")
    # The host page heard every step, with the amount the ledger holds.
    events = page.evaluate("() => window.events")
    assert [e["name"] for e in events][:3] == ["opened", "started", "ended"]
    assert events[2]["detail"]["amount"] == 150 and events[2]["detail"]["currency"] == "USD"
    frame.click("#close")
    page.wait_for_function("() => window.events.some(e => e.name === 'closed')")
    page.context.close()
    expert_page.context.close()


@pytest.mark.parametrize("outcome", ["declined", "missed"])
def test_declined_and_missed_calls(browser, server, site, expert, outcome):
    expert_page, page, frame = widget_opened(browser, site, server, expert)
    start_call(page, frame)
    state(frame, "ringing")
    expert_page.wait_for_selector("#incoming", state="visible")
    if outcome == "declined":
        expert_page.click("#decline")
    state(frame, outcome, timeout=10_000)  # missed: RING_TIMEOUT is 3 s in the live config
    assert frame.locator("#outcome").is_visible() and frame.locator("#retry").is_visible()
    # Bookings do not exist yet: nothing offers one.
    assert "book" not in frame.inner_text("#outcome-panel").lower() and frame.locator("#book-later").count() == 0
    shot(page, outcome)
    expert_page.wait_for_selector("#incoming", state="hidden")
    call, rows = stored_call(server, frame.evaluate("() => window.callme.call_id"))
    assert call.end_reason == outcome and call.amount_minor == 0 and money_rows(rows) == []
    frame.click("#retry")
    state(frame, "precall")
    page.context.close()
    expert_page.context.close()


def calls_and_payments(server):
    """How many calls the live server has, and its payments' states, oldest first."""
    from callme.extensions import db
    from callme.models import Call, Payment

    with server.db():
        return (db.session.scalar(db.select(db.func.count(Call.id))),
                db.session.scalars(db.select(Payment.state).order_by(Payment.id)).all())


def test_paypal_cancelled_or_window_closed(browser, server, site, expert):
    """Cancelling in PayPal, or closing its window, goes back to pre-call: no ring, nothing held."""
    calls_before, _ = calls_and_payments(server)
    expert_page, page, frame = widget_opened(browser, site, server, expert)
    start_call(page, frame, pay="cancel")
    state(frame, "precall")
    assert "Nothing was charged" in frame.inner_text("#notice")
    popup = start_call(page, frame, pay="look")
    popup.close()
    state(frame, "precall")
    assert "not approved" in frame.inner_text("#notice")
    shot(page, "paypal-not-approved")
    popup = start_call(page, frame, pay="look")
    with popup.expect_event("close"):
        frame.click("#cancel")  # the widget's own Cancel closes the PayPal window
    state(frame, "precall")
    assert expert_page.locator("#incoming").is_hidden()
    calls, states = calls_and_payments(server)
    assert calls == calls_before  # no call was created, so nobody rang
    assert states[-3:] == ["created"] * 3  # three orders, none authorized: nothing is held
    page.context.close()
    expert_page.context.close()


def test_offline_expert_cannot_be_called(browser, server, site, expert):
    page = visitor(browser, site, server, expert)
    button = page.locator(f"callme-button[data-expert={expert}] button").first
    page.wait_for_function("() => /Offline/.test(document.querySelector('callme-button').shadowRoot.textContent)")
    assert button.get_attribute("aria-disabled") == "true"
    shot(page, "button-offline")
    button.dispatch_event("click")  # a person can still press it; nothing must open
    # embed.js opens its dialog inside the click handler, which has run when dispatch_event returns.
    assert page.locator("callme-dialog").count() == 0
    assert page.evaluate("() => window.events.map(e => e.name)") == []
    # Even straight to the API, the call is refused while the expert is offline.
    frame_url = f"{server.url}/w/{expert}?origin={site.origin}"
    page.goto(frame_url)
    assert page.evaluate(f"""async () => (await fetch("/api/v1/calls", {{method: "POST",
        headers: {{"Content-Type": "application/json"}},
        body: JSON.stringify({{expert: "{expert}", price: {{amount: 150, currency: "USD"}}}})}})).status""") == 409
    page.context.close()


def test_device_permission_denied(playwright, server, site, expert):
    """Without the fake-UI flag nobody grants the camera or microphone: the widget says so."""
    browser = launch(playwright, without=("--use-fake-ui-for-media-stream",))
    try:
        console_page = console(browser, server, expert)
        page = visitor(browser, site, server, expert)
        page.locator(f"callme-button[data-expert={expert}] button").first.click()
        frame = widget_frame(page, expert)
        frame.wait_for_selector("#device-error", state="visible")
        assert frame.is_disabled("#start-call")
        assert frame.inner_text("#device-error").strip()
        # A disabled Call says why, beside it and as its description.
        assert frame.locator("#start-why").is_visible() and "microphone" in frame.inner_text("#start-why")
        assert frame.get_attribute("#start-call", "aria-describedby") == "start-why"
        shot(page, "device-denied")
        # "Audio only" cannot help while the microphone is blocked too: the message says so.
        frame.check("#audio-only")
        frame.wait_for_function("() => /microphone is blocked too/.test(document.querySelector('#device-error').textContent)")
        assert frame.is_disabled("#start-call") and frame.locator("#start-why").is_visible()
        # Once the microphone is allowed, audio only enables Call.
        page.context.grant_permissions(["microphone"], origin=site.origin)
        frame.click("#device-retry")
        frame.wait_for_function("() => !document.querySelector('#start-call').disabled")
        assert frame.locator("#device-error").is_hidden() and frame.locator("#start-why").is_hidden()
        console_page.context.close()
    finally:
        browser.close()


def own_server(live_factory, paypal, site, handle):
    """A live server of the test's own (it is killed and restarted), with one expert who lists the site."""
    server = live_factory(emulator=paypal)
    seed_expert(server, handle=handle, price=150, free_seconds=2, origins=(site.origin,))
    return server


def test_socket_dropped_and_restored_mid_call(browser, browser_paypal, live_factory, site):
    """The server is killed mid-call and comes back: both sides show "reconnecting" and the call goes on."""
    server = own_server(live_factory, browser_paypal, site, "phoenix")
    expert_page, page, frame = answered_call(browser, site, server, "phoenix")
    server.kill()
    state(frame, "reconnecting")
    assert frame.locator("#reconnecting").is_visible()
    shot(page, "reconnecting")
    live_factory(port=server.port, seed=False, emulator=browser_paypal)
    state(frame, "active", timeout=20_000)
    expert_page.wait_for_function("() => window.callme.state === 'active'", timeout=20_000)
    assert frame.evaluate("() => window.callme.pc.connectionState") == "connected"
    bytes_grow(frame)
    frame.wait_for_function("() => document.querySelector('#cost').textContent.includes('$1.50')")
    frame.click("#hangup")
    state(frame, "ended")
    call, rows = stored_call(server, frame.evaluate("() => window.callme.call_id"))
    assert call.end_reason == "hangup" and [a for _, a, _ in money_rows(rows)] == [150]
    page.context.close()
    expert_page.context.close()


def test_connected_state_re_reported_after_a_restart(browser, browser_paypal, live_factory, site):
    """Defect 1: the server dies after both peers reported `connected` but before it recorded it.
    After the restart both clients say their peer connection's state again (after every welcome),
    so the call becomes active and is billed instead of ending `failed` while the peers talk free."""
    from callme.extensions import db
    from callme.models import Call

    server = own_server(live_factory, browser_paypal, site, "lazarus")
    expert_page, page, frame = answered_call(browser, site, server, "lazarus")
    call_id = frame.evaluate("() => window.callme.call_id")
    server.kill()
    with server.db():  # as if the crash came before the server stored either report
        db.session.execute(db.update(Call).where(Call.id == call_id).values(
            state="accepted", active_ms=None, visitor_connected_ms=None, expert_connected_ms=None))
        db.session.commit()
    live_factory(port=server.port, seed=False, emulator=browser_paypal)
    eventually(lambda: stored_call(server, call_id)[0].state == "active", what="the call to become active",
               pause=lambda: page.wait_for_timeout(100))
    frame.wait_for_function("() => document.querySelector('#cost').textContent.includes('$1.50')", timeout=20_000)
    frame.click("#hangup")
    state(frame, "ended")
    call, rows = stored_call(server, call_id)
    assert (call.end_reason, call.amount_minor) == ("hangup", 150)
    assert [a for _, a, _ in money_rows(rows)] == [150]
    page.context.close()
    expert_page.context.close()


def test_unlisted_site_cannot_embed(browser, server, stranger, expert):
    """CORS refuses the status to a site the expert did not list, and frame-ancestors the widget."""
    page = browser.new_page()
    url = stranger.write("page.html", f"""<!doctype html><title>stranger</title>
<div data-callme-expert="{expert}"></div>
<iframe id="direct" src="{server.url}/w/{expert}?origin={stranger.origin}"></iframe>
<script async src="{server.url}/embed.js"></script>""")
    # Chromium says on the console that frame-ancestors refused the widget's frame.
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text, timeout=10_000):
        page.goto(url)
        page.wait_for_function(
            "() => /Unavailable/.test(document.querySelector('callme-button')?.shadowRoot.textContent)")
        fetched = page.evaluate(f"""() => fetch("{server.url}/api/v1/experts/{expert}/status")
            .then(r => "read " + r.status, e => "refused " + e.name)""")
        assert fetched == "refused TypeError"
    framed = [f for f in page.frames if f != page.main_frame]
    assert all(not f.url.startswith(server.url) or f.evaluate("() => !document.body?.dataset.state")
               for f in framed)
    shot(page, "stranger")
    page.context.close()


def test_narrow_screen_full_screen_overlay(browser, server, site, expert):
    expert_page = console(browser, server, expert)
    page = visitor(browser, site, server, expert, width=320)
    open_widget(page, server, expert)
    box = page.locator("callme-dialog dialog").bounding_box()
    assert box["width"] >= 318, box
    shot(page, "precall-320")
    page.keyboard.press("Escape")
    page.wait_for_function("() => window.events.some(e => e.name === 'closed')")
    focused = page.evaluate("() => document.activeElement?.tagName")
    assert focused == "CALLME-BUTTON"
    page.context.close()
    expert_page.context.close()


def test_no_test_hook_without_the_flag(browser, server, site, expert):
    """`window.callme` (state, call id, peer connection) is for tests that ask for it (every other
    test here does, through ``new_context``), not for real pages."""
    expert_page = console(browser, server, expert, test_hook=False)  # its script ran: it went online
    page = visitor(browser, site, server, expert, test_hook=False)
    frame = open_widget(page, server, expert)  # the widget's script ran: it reached pre-call
    assert frame.evaluate("() => typeof window.callme") == "undefined"
    assert expert_page.evaluate("() => typeof window.callme") == "undefined"
    page.context.close()
    expert_page.context.close()
