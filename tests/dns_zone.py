"""A real DNS server for the domain checks: dnslib's DNSServer on 127.0.0.1 (a free UDP port),
answering from a zone each test edits (``zone.txt[name] = [...]``)."""
import contextlib
import socket
import threading
import time

from dnslib import QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zone(BaseResolver):
    """TXT records by name; ``names`` that exist without a TXT record; ``silent`` names answered
    too late (a timeout)."""

    def __init__(self):
        self.txt, self.names, self.silent = {}, set(), set()
        self.queries = []
        self._lock = threading.Lock()

    def resolve(self, request, handler):
        qname = str(request.q.qname).rstrip(".").lower()
        with self._lock:
            self.queries.append((qname, QTYPE[request.q.qtype]))
            texts = list(self.txt.get(qname, ()))
            exists = qname in self.names or qname in self.txt
            silent = qname in self.silent
        if silent:
            time.sleep(1.5)
        reply = request.reply()
        if not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for text in texts:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(text), ttl=1))
        elif request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=1))
        return reply


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving_zone():
    """A running DNS server (a test file's ``dns_zone`` fixture); ``zone.resolver`` is the
    DNS_RESOLVER setting that reaches it."""
    zone = Zone()
    port = free_udp_port()
    server = DNSServer(zone, address="127.0.0.1", port=port, logger=DNSLogger("-request,-reply,-truncated,-data",
                                                                              prefix=False, logf=lambda s: None))
    server.start_thread()
    zone.resolver = f"127.0.0.1:{port}"
    try:
        yield zone
    finally:
        server.stop()
        server.server.server_close()
