"""Accessibility (WCAG 2.1 AA) in Debian's Chromium: axe-core on every page and state a person can
reach, focus that never drops to the page body, a small window at 400 % zoom, and a call placed with
the keyboard alone on both sides. Same live server, host site and loopback namespace as
test_browser.py (scenarios/conftest.py).

axe-core comes from PyPI (axe-playwright-python, in the test extras, which ships axe.min.js); it is
evaluated through the DevTools protocol, so the pages keep their strict CSP (script-src 'self').
"""
import pytest

from ..conftest import seed_expert
from .browser import (console, host_page, new_context, open_widget, preview_painted, start_call, state, visitor,
                      widget_frame, widget_opened)

pytestmark = [pytest.mark.browser, pytest.mark.webrtc, pytest.mark.live]

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_RUN = """async (include) => {
  // Colours are measured as they settle: let running transitions (a button changing colour) end.
  const finite = document.getAnimations().filter(a => a.effect?.getTiming().iterations !== Infinity);
  await Promise.all(finite.map(a => a.finished.catch(() => null)));
  const results = await axe.run(include ? {include} : document, {
    runOnly: {type: "tag", values: %s}, resultTypes: ["violations"], iframes: false,
    rules: {"label-content-name-mismatch": {enabled: true}},  // WCAG 2.5.3, experimental in axe
  });
  return results.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(" >> "), why: n.failureSummary, html: n.html.slice(0, 160)}))}));
}""" % WCAG_AA


def axe_violations(target, include=None):
    """axe-core's WCAG 2.1 A/AA violations in a page or frame (only `include`'s elements, if given)."""
    from axe_playwright_python.base import AXE_SCRIPT

    if not target.evaluate("() => typeof axe === 'object'"):
        target.evaluate(AXE_SCRIPT)
    return target.evaluate(AXE_RUN, include)


def assert_accessible(target, where, include=None):
    violations = axe_violations(target, include)
    report = "\n".join(f"{v['id']} ({v['impact']}): {v['help']}\n" + "\n".join(
        f"    {n['target']}: {n['why']}\n      {n['html']}" for n in v["nodes"]) for v in violations)
    assert violations == [], f"axe-core, {where}:\n{report}"


def focused(target):
    """The id (or tag) of the focused element of a page or frame, looking into shadow roots."""
    return target.evaluate("""() => {
      let el = document.activeElement;
      while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
      return el ? el.id || el.tagName.toLowerCase() : null;
    }""")


def in_view(target, selector):
    """Whether the element is wholly inside the viewport and on top there (not covered, not scrolled away)."""
    return target.evaluate("""(selector) => {
      const el = document.querySelector(selector), r = el.getBoundingClientRect();
      if (!r.width || r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) return false;
      return el.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
    }""", selector)


def where(target, selector):
    """For failure messages: the element's box and the viewport's height."""
    return target.evaluate("""(selector) => JSON.stringify(document.querySelector(selector).getBoundingClientRect())
      + ' in a viewport ' + innerHeight + ' px high'""", selector)


def tab_to(page, frame, element_id, limit=40):
    """Press Tab until the element with that id (in `frame`, or the page) has the focus."""
    for _ in range(limit):
        if focused(frame) == element_id and frame.evaluate("() => document.hasFocus()"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}; the focus is on {focused(frame)}")


def call_again(page, frame, expert_page):
    """From the widget's outcome screen: Try again, Call (PayPal approved), and the expert accepts."""
    frame.click("#retry")
    state(frame, "precall")
    frame.wait_for_function("() => !document.querySelector('#start-call').disabled")
    start_call(page, frame)
    expert_page.wait_for_selector("#incoming", state="visible")
    expert_page.click("#accept")


def test_axe_on_every_page_and_state(browser, server, site, expert):
    pages = []
    login = new_context(browser).new_page()
    pages.append(login)
    login.goto(server.url + "/login")
    assert_accessible(login, "login page")
    login.goto(f"{server.url}/{expert}")
    login.wait_for_function("() => /Offline/.test(document.querySelector('callme-button')?.shadowRoot.textContent)")
    assert_accessible(login, "profile page, expert offline")

    expert_page = console(browser, server, expert, online=False)
    pages.append(expert_page)
    assert_accessible(expert_page, "console, offline")
    expert_page.click("#presence-toggle")
    expert_page.wait_for_selector("#presence[data-status=online]")
    assert_accessible(expert_page, "console, online")

    page = visitor(browser, site, server, expert)
    pages.append(page)
    frame = open_widget(page, server, expert)
    assert_accessible(page, "host page: the buttons and the overlay", include=[["callme-button"], ["callme-dialog"]])
    assert_accessible(frame, "widget, pre-call")
    popup = start_call(page, frame, pay="look")
    assert_accessible(frame, "widget, waiting for PayPal")
    with popup.expect_event("close"):
        popup.click("#cancel")
    state(frame, "precall")
    frame.wait_for_selector("#notice", state="visible")
    assert_accessible(frame, "widget, pre-call with the PayPal notice")

    start_call(page, frame)
    state(frame, "ringing")
    expert_page.wait_for_selector("#incoming", state="visible")
    assert_accessible(frame, "widget, ringing")
    assert_accessible(expert_page, "console, ringing")
    expert_page.click("#decline")
    state(frame, "declined")
    assert_accessible(frame, "widget, declined")
    expert_page.wait_for_selector("#notice", state="visible")
    assert_accessible(expert_page, "console, after declining")

    call_again(page, frame, expert_page)
    state(frame, "active")
    state(expert_page, "active")
    frame.wait_for_function("() => document.querySelector('#cost').textContent.includes('$')")
    assert_accessible(frame, "widget, in call")
    assert_accessible(expert_page, "console, in call")
    frame.click("#hangup")
    state(frame, "ended")
    assert_accessible(frame, "widget, ended")
    expert_page.wait_for_selector("#summary", state="visible")
    assert_accessible(expert_page, "console, call summary")

    expert_page.goto(f"{server.url}/dashboard")
    expert_page.wait_for_selector("#calls tr[data-call]")
    assert_accessible(expert_page, "dashboard, with a call")
    login.goto(f"{server.url}/{expert}")
    login.wait_for_selector("callme-button")
    assert_accessible(login, "profile page")
    for p in pages:
        p.context.close()


def test_keyboard_only_call(browser, server, site, expert):
    """Tab, Enter and Space only: the expert goes online and answers; the visitor goes from the
    host page's button through pre-call and PayPal to the call, and hangs up (Escape first: it
    says how, and puts the focus on Hang up)."""
    expert_page = console(browser, server, expert, online=False)
    tab_to(expert_page, expert_page, "presence-toggle")
    expert_page.keyboard.press("Space")
    expert_page.wait_for_selector("#presence[data-status=online]")

    page = visitor(browser, site, server, expert)
    page.wait_for_function("() => /Online/.test(document.querySelector('callme-button')?.shadowRoot.textContent)")
    for _ in range(20):
        if focused(page) == "button":  # inside the first callme-button's shadow root
            break
        page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.tagName") == "CALLME-BUTTON"
    page.keyboard.press("Enter")
    page.wait_for_selector("callme-dialog iframe")
    assert focused(page) == "button"  # the overlay's Close button
    frame = widget_frame(page, expert)
    frame.wait_for_function("() => !document.querySelector('#start-call').disabled")
    tab_to(page, frame, "start-call")
    with page.context.expect_page() as opened:
        page.keyboard.press("Enter")
    popup = opened.value
    popup.wait_for_selector("#approve")
    tab_to(popup, popup, "approve")
    with popup.expect_event("close"):
        popup.keyboard.press("Enter")

    state(frame, "ringing")
    expert_page.wait_for_selector("#incoming", state="visible")
    assert focused(expert_page) == "accept"  # the ring puts the focus on Accept
    expert_page.keyboard.press("Enter")
    state(frame, "active")
    state(expert_page, "active")

    page.keyboard.press("Escape")
    frame.wait_for_selector("#call-hint", state="visible")
    assert "Hang up" in frame.inner_text("#call-hint")
    assert focused(frame) == "hangup"
    # Escape ended nothing: the server's meter goes on after it (the shown time moves on).
    elapsed = frame.inner_text("#elapsed")
    frame.wait_for_function("(before) => document.querySelector('#elapsed').textContent !== before", arg=elapsed)
    assert frame.evaluate("() => document.body.dataset.state") == "active"
    page.keyboard.press("Enter")
    state(frame, "ended")
    assert focused(frame) == "ended-title"
    expert_page.wait_for_selector("#summary", state="visible")
    tab_to(expert_page, expert_page, "summary-done")
    expert_page.keyboard.press("Enter")
    state(expert_page, "idle")
    assert focused(expert_page) == "presence-toggle"  # not the page body
    page.context.close()
    expert_page.context.close()


def test_focus_and_notice_after_paypal_cancelled(browser, server, site, expert):
    """Cancelled in PayPal, the widget is back at pre-call with a notice: the focus is on it, in view."""
    expert_page, page, frame = widget_opened(browser, site, server, expert)
    start_call(page, frame, pay="cancel")
    state(frame, "precall")
    frame.wait_for_function("() => document.activeElement?.id === 'notice'")
    assert "Nothing was charged" in frame.inner_text("#notice")
    assert in_view(frame, "#notice")
    page.keyboard.press("Tab")  # and Call is the next stop
    assert focused(frame) == "start-call"
    page.context.close()
    expert_page.context.close()


def test_console_ringing_words_title_and_focus_after_decline(browser, server, site, expert):
    expert_page = console(browser, server, expert)
    title = expert_page.title()
    page = visitor(browser, site, server, expert)
    frame = open_widget(page, server, expert)
    start_call(page, frame)
    expert_page.wait_for_selector("#incoming", state="visible")
    assert expert_page.inner_text("#presence").startswith("Ringing")  # not "Busy: in a call"
    assert expert_page.title() == "☎ Incoming call · " + title
    # Steady, not blinking: for 1.2 s (the time is the point here) every title the page sets is the
    # same, as an observer of each change sees it (two samples could fall on either side of a blink).
    expert_page.evaluate("""() => { window.titles = [];
      new MutationObserver(() => window.titles.push(document.title)).observe(document.querySelector('title'),
        {childList: true, characterData: true, subtree: true}); }""")
    expert_page.wait_for_timeout(1200)
    assert set(expert_page.evaluate("() => window.titles")) <= {"☎ Incoming call · " + title}
    assert expert_page.title() == "☎ Incoming call · " + title
    expert_page.click("#decline")
    state(frame, "declined")
    expert_page.wait_for_selector("#incoming", state="hidden")
    assert focused(expert_page) == "presence-toggle"
    assert expert_page.title() == title
    assert expert_page.inner_text("#presence").startswith("Online")

    call_again(page, frame, expert_page)
    state(expert_page, "active")
    assert expert_page.inner_text("#presence").startswith("Busy: in a call")
    assert expert_page.title() == "In call · " + title
    frame.click("#hangup")
    state(expert_page, "ended")
    assert expert_page.title() == title
    page.context.close()
    expert_page.context.close()


def test_console_preview_follows_presence(browser, server, expert):
    """The preview of the button says what visitors see now, not what they saw at page load."""
    expert_page = console(browser, server, expert, online=False)
    preview = "() => document.querySelector('#embed-preview callme-button')?.shadowRoot.textContent || ''"
    expert_page.wait_for_function(f"() => /Offline/.test(({preview})())")
    expert_page.click("#presence-toggle")
    expert_page.wait_for_function(f"() => /Online/.test(({preview})())", timeout=5000)  # not at the next 30 s poll
    expert_page.click("#presence-toggle")
    expert_page.wait_for_function(f"() => /Offline/.test(({preview})())", timeout=5000)
    assert expert_page.locator("#embed-preview callme-button").count() == 1
    expert_page.context.close()


@pytest.mark.parametrize("width, height", [(320, 256), (640, 512)], ids=["400%", "200%"])
def test_small_window_keeps_call_and_hang_up_in_view(browser, server, site, width, height):
    """1280 x 1024 at 400 % (and 200 %) zoom is a 320 x 256 (640 x 512) CSS px window: the camera
    preview must not push Call out of it, nor the video Hang up."""
    handle = f"zoom{width}"
    seed_expert(server, handle=handle, price=0, free_seconds=2, origins=(site.origin,))
    expert_page = console(browser, server, handle)
    ctx = new_context(browser, viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.goto(host_page(site, server, handle))
    frame = open_widget(page, server, handle)
    preview_painted(frame)  # the camera preview has its size: Call is where it stays
    assert in_view(frame, "#start-call"), where(frame, "#start-call")
    frame.click("#start-call")
    expert_page.wait_for_selector("#incoming", state="visible")
    expert_page.click("#accept")
    state(frame, "active")
    assert in_view(frame, "#hangup"), where(frame, "#hangup")
    frame.click("#hangup")
    state(frame, "ended")
    ctx.close()
    expert_page.context.close()
