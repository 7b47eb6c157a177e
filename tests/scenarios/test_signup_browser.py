"""A newcomer in Debian's Chromium: from the landing page through sign-up, the local mailbox's link
and the login to the console, with axe-core (WCAG 2.1 AA) on each new page on the way. The live
server sends no mail (no SMTP host): the mailbox page, opened with its key, holds the link.
Screenshots (landing, signup, mailbox) go to tests/artifacts/ (docs/ with DOCS_SHOTS=1)."""
import pytest

from callme.web.signup import mailbox_url

from .browser import new_context
from .test_a11y import assert_accessible
from .test_browser import shot

pytestmark = [pytest.mark.browser, pytest.mark.live]


def test_sign_up_verify_and_log_in(browser, server):
    page = new_context(browser).new_page()
    page.goto(server.url + "/")
    assert "Sell your time" in page.inner_text("h1")
    assert_accessible(page, "landing page")
    shot(page, "landing")
    page.click("main >> text=Sign up as an expert")
    page.wait_for_selector("form[action='/signup']")
    assert_accessible(page, "sign-up form")
    shot(page, "signup")

    page.fill("input[name=email]", "zoe@example.com")
    page.fill("input[name=name]", "Zoe Example")
    page.fill("input[name=handle]", "zoe")
    page.fill("input[name=password]", "short")
    page.click("form[action='/signup'] button[type=submit]")
    # The browser's own check (minlength) stops it first; the server says the same if it gets there.
    assert page.evaluate("() => document.querySelector('input[name=password]').validity.tooShort")
    page.fill("input[name=password]", "zoe's long password")
    page.click("form[action='/signup'] button[type=submit]")
    page.wait_for_selector("#notice-message")
    assert page.inner_text("h1") == "Check your inbox"
    assert_accessible(page, "sign-up, mail sent")

    page.goto(server.url + "/login")
    page.fill("input[name=email]", "zoe@example.com")
    page.fill("input[name=password]", "zoe's long password")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_selector("#resend-link")
    assert "Confirm your email address first" in page.inner_text("#login-error")
    assert_accessible(page, "login refused: address not confirmed")

    with server.db() as app:
        url = mailbox_url(app.config, server.url)
    page.goto(url)
    page.wait_for_selector("article[data-to='zoe@example.com']")
    assert_accessible(page, "local mailbox")
    shot(page, "mailbox")
    page.click("article[data-to='zoe@example.com'] .mail-links a >> nth=0")
    page.wait_for_selector("#notice-title")
    assert page.inner_text("h1") == "Address confirmed"
    assert_accessible(page, "address confirmed")

    page.click("main a[href='/login']")
    page.wait_for_selector("form[action='/login']")
    page.fill("input[name=email]", "zoe@example.com")
    page.fill("input[name=password]", "zoe's long password")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/console")
    page.goto(server.url + "/dashboard/email")
    assert "zoe@example.com" in page.inner_text("#current-email")
    assert_accessible(page, "email change page")
    page.context.close()
