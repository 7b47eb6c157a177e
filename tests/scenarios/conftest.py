"""Fixtures of the scenario suites, once: a live server for real media (aiortc peers), and for the
browser suites (test_browser.py, test_a11y.py) Debian's Chromium in a loopback-only namespace, the
expert's own site, one live server and PayPal emulator per module, and a fresh expert per test.
The live-server factories are in tests/conftest.py."""
import itertools
import os
import shutil

import pytest

from ..conftest import _live_factory, loopback_namespace, seed_expert, start_emulator
from .browser import ROOT, HostSite, have_chromium, launch


@pytest.fixture
def media_server(isolated, paypal, live_factory):
    """A live server of the test's own in the loopback-only namespace, with Ray: 1.50 USD a minute,
    the first 2 s free, a 30-minute cap, PayPal connected at the namespace's emulator."""
    server = live_factory(emulator=paypal)
    seed_expert(server, handle="ray", price=150, free_seconds=2, cap_minutes=30)
    return server


# ---- browsers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser_namespace():
    """The module's loopback-only network namespace (``isolated``, for a whole browser module)."""
    if not have_chromium():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it when run as root)")
    yield from loopback_namespace()


@pytest.fixture(scope="module")
def playwright(browser_namespace):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    browser = launch(playwright)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def site(browser_namespace, tmp_path_factory):
    """The expert's own website, on an origin of its own (localhost, not 127.0.0.1)."""
    site = HostSite(tmp_path_factory.mktemp("site"))
    shutil.copy(os.path.join(ROOT, "examples", "expert-site", "site.css"), site.directory)
    yield site
    site.close()


@pytest.fixture(scope="module")
def stranger(browser_namespace, tmp_path_factory):
    """A site the expert never listed."""
    site = HostSite(tmp_path_factory.mktemp("stranger"))
    yield site
    site.close()


@pytest.fixture(scope="module")
def browser_paypal(browser_namespace):
    """The PayPal emulator, inside the namespace with the server and the browsers (``paypal``,
    for a whole browser module)."""
    emulator = start_emulator()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def server(browser_namespace, site, browser_paypal, tmp_path_factory):
    """The browser module's live server, shared by its tests (each seeds its own expert)."""
    start, servers = _live_factory(tmp_path_factory.mktemp("browser-live"), browser_paypal)
    server = start()
    yield server
    for s in servers:
        s.stop()


_handles = (f"expert{i}" for i in itertools.count(1))


@pytest.fixture
def expert(server, site):
    """A fresh expert on the module's server, who lists the test site; returns the handle."""
    handle = next(_handles)
    seed_expert(server, handle=handle, price=150, free_seconds=2, origins=(site.origin,))
    return handle
