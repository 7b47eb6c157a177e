"""Ratings in Chromium: after a paid call the visitor follows the end screen's "Rate this call",
rates with the keyboard-accessible star radios, and the rating shows on the expert's profile."""
import pytest

from ..conftest import eventually, stored_payment
from .browser import answered_call, state

pytestmark = [pytest.mark.browser, pytest.mark.webrtc, pytest.mark.live]


def test_after_a_paid_call_the_visitor_rates_and_the_profile_shows_it(browser, server, site, expert):
    expert_page, page, frame = answered_call(browser, site, server, expert)
    # 3 s into the call by the server's meter: the minute is billed, past the free 2 s.
    frame.wait_for_function("() => !/^0:0[0-2]$/.test(document.querySelector('#elapsed').textContent)")
    frame.click("#hangup")
    state(frame, "ended")
    call_id = frame.evaluate("() => window.callme.call_id")
    assert frame.locator("#rate").is_visible()
    eventually(lambda: stored_payment(server, call_id).state == "captured", what="the capture")

    with page.context.expect_page() as opened:
        frame.click("#rate")
    rate = opened.value
    rate.wait_for_load_state()
    assert "Rate your call with" in rate.inner_text("h1")
    rate.get_by_label("4 stars").check()
    rate.get_by_label("What was it like?", exact=False).fill("Clear <b>answers</b>, thank you.")
    rate.click("button[type=submit]")
    rate.wait_for_selector("#rate-done")
    # The link is spent: opening it again shows the published review, never a second form.
    rate.go_back()
    rate.reload()
    assert rate.locator("input[name=stars]").count() == 0

    rate.goto(f"{server.url}/{expert}")
    assert rate.inner_text("#rating-average") == "4.0"
    assert "1 rating" in rate.inner_text("#rating-count")
    section = rate.inner_text("#ratings-section")
    assert "Clear <b>answers</b>, thank you." in section and "paid call · 1 min" in section
    # The button on the page shows it too (the status it reads is cached for 5 s).
    rate.wait_for_function("() => /★ 4\\.0 \\(1\\)/.test(document.querySelector('callme-button')?.shadowRoot.textContent)",
                           timeout=15_000)
    rate.context.close()
    page.context.close()
    expert_page.context.close()
