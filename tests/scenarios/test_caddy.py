"""A custom domain end to end, with the real parts: Debian's Caddy (examples/custom-domain/
Caddyfile.test: on-demand certificates from its internal CA, asking callme first), a live callme
(gunicorn) and a real DNS server (dnslib) holding the TXT record. Everything on loopback: the
client connects to 127.0.0.1 and names the domain in SNI and Host."""
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest
import requests

from ..conftest import eventually, seed_expert
from ..dns_zone import serving_zone
from .live import ROOT, free_port, terminate

ANN, BOB = "ann-law.test", "bob-law.test"
CADDYFILE = os.path.join(ROOT, "examples", "custom-domain", "Caddyfile.test")


@pytest.fixture
def dns_zone():
    """A real DNS server on loopback whose records the test edits."""
    with serving_zone() as zone:
        yield zone


@pytest.fixture
def caddy_bin():
    path = shutil.which("caddy")
    if path:
        return path
    if os.geteuid() == 0:
        pytest.fail("caddy is not installed: scripts/test installs Debian's package (apt-get install -y caddy)")
    pytest.skip("Debian's caddy is not installed and we are not root (scripts/test installs it as root)")


class Caddy:
    def __init__(self, binary, workdir, app_port):
        self.https_port, self.http_port = free_port(), free_port()
        self.storage = os.path.join(workdir, "caddy-storage")
        home = os.path.join(workdir, "caddy-home")
        os.makedirs(home, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "XDG_DATA_HOME": home,
               "XDG_CONFIG_HOME": home, "CALLME_ADDR": f"127.0.0.1:{app_port}", "HTTP_PORT": str(self.http_port),
               "HTTPS_PORT": str(self.https_port), "CADDY_STORAGE": self.storage}
        self.log_path = os.path.join(workdir, "caddy.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([binary, "run", "--config", CADDYFILE, "--adapter", "caddyfile"],
                                         cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def root_cert(self):
        return os.path.join(self.storage, "pki", "authorities", "local", "root.crt")

    def wait_until_up(self, timeout=20):
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"caddy exited: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
            except OSError:
                return False
            return os.path.exists(self.root_cert)
        eventually(up, timeout=timeout, what="caddy listening with its internal CA")

    def context(self):
        """Trusts Caddy's internal root and nothing else."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.root_cert)
        return context

    def get(self, host, path="/"):
        """GET https://host:port/path, connecting to 127.0.0.1 with SNI and Host = host."""
        context = self.context()
        conn = http.client.HTTPSConnection(host, self.https_port, context=context, timeout=10)
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=10)
        try:
            conn.sock = context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def handshake_fails(self, host):
        try:
            self.get(host)
        except (ssl.SSLError, ConnectionError):
            return True
        return False

    def stop(self):
        terminate(self.proc)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]


def csrf_of(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(server, email, password="password123"):
    """A browser session on callme's own host (127.0.0.1: PUBLIC_URL is unset, as in production
    behind this Caddyfile's callme.example block it would be set)."""
    browser = requests.Session()
    csrf = csrf_of(browser.get(server.url + "/login", timeout=10).text)
    r = browser.post(server.url + "/login", data={"csrf": csrf, "email": email, "password": password}, timeout=10)
    assert r.ok and "/login" not in r.url, r.text[:500]
    return browser


def domain_state(server, name):
    from callme.experts.domains import CustomDomain
    from callme.extensions import db

    with server.db():
        return db.session.scalar(db.select(CustomDomain.state).filter_by(domain=name))


def test_a_verified_domain_gets_a_certificate_and_the_experts_page(caddy_bin, live_factory, dns_zone,
                                                                    tmp_path):
    server = live_factory(env={"DNS_RESOLVER": dns_zone.resolver, "DNS_TIMEOUT": "1", "DOMAIN_RECHECK": "2",
                               "DOMAIN_HOST_CACHE": "0"})
    seed_expert(server, "ann", price=0)
    seed_expert(server, "bob", price=0)
    caddy = Caddy(caddy_bin, str(tmp_path), server.port)
    pages = {}
    try:
        caddy.wait_until_up()

        # Ann adds her domain on her page, Bob his; neither is verified yet.
        for handle, name in (("ann", ANN), ("bob", BOB)):
            browser = pages[handle] = log_in(server, f"{handle}@example.com")
            page = browser.get(server.url + "/dashboard/domains", timeout=10).text
            r = browser.post(server.url + "/dashboard/domains", data={"csrf": csrf_of(page), "domain": name},
                             timeout=10)
            assert r.ok and f"_callme-challenge.{name}" in r.text
        assert domain_state(server, ANN) in ("pending", "failed")
        assert caddy.handshake_fails(ANN), "a certificate for a domain not verified yet"
        assert caddy.handshake_fails("nobody.test")

        # Ann publishes the TXT record and checks now: verified, certificate issued, page served.
        page = pages["ann"].get(server.url + "/dashboard/domains", timeout=10).text
        token = re.search(r'<code class="record-value">([A-Za-z0-9_-]{30,})</code>', page).group(1)
        dns_zone.txt[f"_callme-challenge.{ANN}"] = [token]
        domain_id = re.search(r'action="/dashboard/domains/(\d+)/check"', page).group(1)
        r = pages["ann"].post(f"{server.url}/dashboard/domains/{domain_id}/check", data={"csrf": csrf_of(page)},
                              timeout=10)
        assert r.ok and 'data-state="verified"' in r.text
        status, kind, body = caddy.get(ANN, "/")
        assert status == 200 and kind.startswith("text/html") and "Ann" in body
        assert caddy.get(ANN, "/w/ann")[0] == 200
        assert caddy.get(ANN, "/embed.js")[0] == 200

        # Nothing else of callme's, and nobody else's page, on Ann's domain.
        for path in ("/bob", "/w/bob", "/dashboard", "/dashboard/domains", "/login", "/console",
                     f"/_internal/tls-ask?domain={ANN}"):
            status, kind, body = caddy.get(ANN, path)
            assert status == 404 and kind.startswith("text/plain") and "Bob" not in body, path
        # Bob's domain is still pending: no certificate.
        assert caddy.handshake_fails(BOB)

        # The record goes away: the background re-check fails the domain, which is no longer served.
        del dns_zone.txt[f"_callme-challenge.{ANN}"]
        eventually(lambda: domain_state(server, ANN) == "failed", timeout=20, what="the re-check to fail it")
        status, kind, body = caddy.get(ANN, "/")  # Caddy keeps the certificate it has; callme refuses
        assert status == 404 and "Ann" not in body
    except BaseException:
        print(caddy.log())
        print(server.log())
        raise
    finally:
        for browser in pages.values():
            browser.close()
        caddy.stop()
