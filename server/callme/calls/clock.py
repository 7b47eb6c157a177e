"""The server's clock: a background loop that runs the call service's ``tick``.

It starts with the first request a process serves (never at import or in the CLI), so a
pre-forking server starts one per worker. With the in-process bus it first takes the
database lease that keeps a second process from serving the same calls.
"""
import gc
import logging
import threading
import time

from ..bus import InProcessBus, LeaseError, claim_lease, holder_id
from ..extensions import db

log = logging.getLogger(__name__)

LEASE_RENEW_S = 10
RETRY_LEASE_S = 5


class Clock:
    def __init__(self, app, service, bus):
        self.app, self.service, self.bus = app, service, bus
        self._lock = threading.Lock()
        self._thread = None
        self._stop = threading.Event()
        self.fatal = None
        self._refused_at = 0.0

    def ensure_started(self):
        """Start the loop once; raise LeaseError if another process owns the in-process bus."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            # A refused process asks again now and then: the holder may have died elsewhere.
            if self.fatal and time.monotonic() - self._refused_at < RETRY_LEASE_S:
                raise LeaseError(self.fatal)
            try:
                self._renew_lease()
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

    def _renew_lease(self):
        if not isinstance(self.bus, InProcessBus):
            return
        with self.app.app_context():
            with db.engine.begin() as connection:
                claim_lease(connection, holder_id(), int(time.time() * 1000))

    def stop(self):
        self._stop.set()

    def _run(self):
        interval = self.app.config["METER_INTERVAL"]
        last_lease = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with self.app.app_context():
                    self.service.tick()
                    self.service.refresh_tokens()
                if started - last_lease >= LEASE_RENEW_S:
                    self._renew_lease()
                    last_lease = started
            except LeaseError as e:
                with self._lock:
                    self.fatal, self._refused_at, self._thread = str(e), time.monotonic(), None
                log.critical("%s", e)
                return
            except Exception:
                log.exception("clock tick failed")
            self._stop.wait(max(0.05, interval - (time.monotonic() - started)))
