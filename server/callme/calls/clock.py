"""The server's clock: a background loop that acts on due calls, publishes the meters of
active calls, and retries payments whose capture or void failed.

It starts with the first request a process serves (never at import or in the CLI), so a
pre-forking server starts one per worker. It first asks the bus for the right to serve
(the in-process bus holds a database lease so that a second process is refused loudly).
"""
import gc
import logging
import threading
import time

import sqlalchemy as sa

from . import frames
from .lifecycle import call_channel
from .metering import Terms, due_warnings
from ..bus import LeaseError
from ..extensions import db
from ..models import Call

log = logging.getLogger(__name__)

LEASE_RENEW_S = 10
RETRY_LEASE_S = 5
METER_BATCH = 100


class Clock:
    def __init__(self, app, service, bus, settler=None):
        """``settler`` retries due payments (``payments.Settler``); None: nothing retried."""
        self.app, self.service, self.bus, self.settler = app, service, bus, settler
        self._lock = threading.Lock()
        self._thread = None
        self._stop = threading.Event()
        self.fatal = None
        self._refused_at = 0.0
        self._warned = {}        # call_id -> seconds-before-cap already warned
        self._payments_ms = 0

    def ensure_started(self):
        """Start the loop once; raise LeaseError if the bus refuses this process."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            # A refused process asks again now and then: the holder may have died elsewhere.
            if self.fatal and time.monotonic() - self._refused_at < RETRY_LEASE_S:
                raise LeaseError(self.fatal)
            try:
                self._hold_lease()
            except LeaseError as e:
                self.fatal, self._refused_at = str(e), time.monotonic()
                log.critical("%s", e)
                raise
            self.fatal = None
            # What exists now (the app, its modules) lives as long as the process: keep it out of
            # every full collection, whose pauses grow with the objects it has to walk.
            gc.freeze()
            self._thread = threading.Thread(target=self._run, name="callme-clock", daemon=True)
            self._thread.start()

    def _hold_lease(self):
        with self.app.app_context():
            self.bus.hold_lease()

    def stop(self):
        self._stop.set()

    def tick(self):
        """One beat: due calls, meters, mail retries, and the payment-retry job when its interval is over."""
        now = self.service.clock()
        self.service.tick()
        self.publish_meters(now)
        self.app.extensions["callme.mail"].tick()  # mail that failed, retried (notify/outbox.py)
        if self.settler is not None and now - self._payments_ms >= self.app.config["PAYMENTS_RETRY_INTERVAL"] * 1000:
            self._payments_ms = now
            self.retry_payments()

    def retry_payments(self):
        """Captures and voids that failed before, when their backoff is over: in the background
        (PayPal may be slow or down, the clock must not wait), inline in tests."""
        self.settler.retry_due()

    def publish_meters(self, now):
        """A meter event (and a due cap warning) on the channels of every active call."""
        warnings = self.app.config["CAP_WARNINGS"]
        db.session.expire_all()
        rows = db.session.execute(
            sa.select(Call.id, Call.active_ms, Call.price_minor, Call.currency, Call.free_seconds,
                      Call.cap_minutes).where(Call.state == "active")).all()
        for gone in set(self._warned) - {row.id for row in rows}:
            del self._warned[gone]
        for n, row in enumerate(rows, 1):
            terms = Terms.of(row)
            if now >= row.active_ms + terms.cap_ms:
                continue  # the cap ends it at this tick or the next
            sent = self._warned.setdefault(row.id, set())
            due = due_warnings(terms, row.active_ms, now, warnings, sent)
            sent.update(w for w in warnings if due and w >= due[0])
            messages = [frames.metered(terms, row.active_ms, now)]
            messages += [frames.cap_warning(seconds, row.cap_minutes) for seconds in due]
            for role in ("visitor", "expert"):
                for message in messages:
                    self.bus.publish(call_channel(row.id, role), message)
            if n % METER_BATCH == 0:
                # Let relays and heartbeats in between batches: under gevent a burst of a
                # thousand sends would otherwise hold the worker for tens of milliseconds.
                time.sleep(0)

    def _run(self):
        interval = self.app.config["METER_INTERVAL"]
        last_lease = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with self.app.app_context():
                    self.tick()
                if started - last_lease >= LEASE_RENEW_S:
                    self._hold_lease()
                    last_lease = started
            except LeaseError as e:
                with self._lock:
                    self.fatal, self._refused_at, self._thread = str(e), time.monotonic(), None
                log.critical("%s", e)
                return
            except Exception:
                log.exception("clock tick failed")
            self._stop.wait(max(0.05, interval - (time.monotonic() - started)))
