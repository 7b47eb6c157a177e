"""What the browser side costs: embed.js bytes, the widget's JS+CSS bytes, and the time
from a click to a connected call in Debian's Chromium (median of N runs).

    .venv/bin/python bench/widget.py [--runs 10]

Runs inside a loopback-only network namespace (as root), like the WebRTC tests.
"""
import argparse
import gzip
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.scenarios.browser import HostSite, launch, new_context  # noqa: E402
from tests.conftest import _live_factory, seed_expert, start_emulator  # noqa: E402
from tests.scenarios.live import loopback_only  # noqa: E402

AUTO_ACCEPT = """() => new MutationObserver(() => {
  const b = document.querySelector('#accept');
  if (b && b.offsetParent) b.click();
}).observe(document.body, {subtree: true, attributes: true, childList: true})"""


def gz(data):
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def sizes():
    with open(os.path.join(ROOT, "embed", "embed.js"), "rb") as f:
        embed = f.read()
    widget_dir = os.path.join(ROOT, "widget")
    files = sorted(n for n in os.listdir(widget_dir) if n.endswith((".js", ".css")))
    total = 0
    for name in files:
        with open(os.path.join(widget_dir, name), "rb") as f:
            total += gz(f.read())
    print(f"embed.js: {len(embed)} bytes raw, {gz(embed)} bytes gzip -9 (budget 2112)")
    print(f"widget JS+CSS: {len(files)} files, {total} bytes gzip -9 in all ({', '.join(files)})")


def timings(runs):
    from playwright.sync_api import sync_playwright

    work = tempfile.mkdtemp(prefix="callme-widget-bench-")
    site = HostSite(tempfile.mkdtemp(dir=work))
    paypal = start_emulator()
    start, servers = _live_factory(work, paypal)
    server = start(env={"SILENCE_GRACE": "30", "RING_TIMEOUT": "30"})
    seed_expert(server, origins=(site.origin,))
    with open(os.path.join(ROOT, "examples", "expert-site", "index.html")) as f:
        page_url = site.write("index.html", f.read().replace("http://127.0.0.1:5000", server.url))
    open_ms, paypal_ms, connect_ms = [], [], []
    try:
        with sync_playwright() as p:
            browser = launch(p)
            expert = new_context(browser).new_page()
            expert.goto(server.url + "/login")
            expert.fill("input[name=email]", "ray@example.com")
            expert.fill("input[name=password]", "password123")
            expert.click("button[type=submit]")
            expert.wait_for_url("**/console")
            expert.click("#presence-toggle")
            expert.wait_for_selector("#presence[data-status=online]")
            expert.evaluate(AUTO_ACCEPT)
            for _ in range(runs):
                ctx = new_context(browser)
                page = ctx.new_page()
                page.goto(page_url)
                button = page.locator("callme-button button").first
                page.wait_for_function("() => /Online/.test(document.querySelector('callme-button').shadowRoot.textContent)")
                t0 = page.evaluate("() => performance.timeOrigin + performance.now()")
                button.click()
                frame = None
                while frame is None:
                    frame = next((f for f in page.frames if "/w/ray" in f.url), None)
                    page.wait_for_timeout(5)
                frame.wait_for_function("() => !document.querySelector('#start-call').disabled")
                t1 = frame.evaluate("() => performance.timeOrigin + performance.now()")
                frame.evaluate("""() => { window.__t = null; const pc0 = () => window.callme.pc;
                  const check = () => { const pc = pc0(); if (pc && pc.connectionState === 'connected') {
                    window.__t = performance.timeOrigin + performance.now(); } else setTimeout(check, 2); };
                  window.__check = check; }""")
                # A paid call: the click opens the PayPal window (the emulator's approval page).
                with ctx.expect_page() as opened:
                    go = frame.evaluate("() => performance.timeOrigin + performance.now()")
                    frame.click("#start-call")
                popup = opened.value
                popup.wait_for_selector("#approve")
                shown = popup.evaluate("() => performance.timeOrigin + performance.now()")
                frame.evaluate("() => window.__check()")
                approved = popup.evaluate("() => performance.timeOrigin + performance.now()")
                popup.click("#approve")
                frame.wait_for_function("() => window.__t", timeout=20_000)
                t2 = frame.evaluate("() => window.__t")
                open_ms.append(t1 - t0)
                paypal_ms.append(shown - go)
                connect_ms.append(t2 - approved)
                frame.click("#hangup")
                frame.wait_for_selector("body[data-state=ended]", state="attached")
                ctx.close()
                expert.wait_for_function("() => window.callme.state !== 'active'")
                expert.wait_for_timeout(300)
                if expert.locator("#summary-done").is_visible():
                    expert.click("#summary-done")
            browser.close()
    finally:
        for s in servers:
            s.stop()
        paypal.stop()
        site.close()
    print(f"host-page click -> widget ready (iframe loaded, devices open): median {statistics.median(open_ms):.0f} ms "
          f"(min {min(open_ms):.0f}, max {max(open_ms):.0f}, n={runs})")
    for label, values in (
            ("'Call' click -> PayPal approval page shown (order created, popup navigated)", paypal_ms),
            ("PayPal 'approve' click -> visitor's peer connection connected (authorize, ring, expert "
             "auto-accepts in the console)", connect_ms)):
        print(f"{label}: median {statistics.median(values):.0f} ms (min {min(values):.0f}, max {max(values):.0f}, "
              f"n={runs})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    sizes()
    with loopback_only():
        timings(args.runs)


if __name__ == "__main__":
    main()
