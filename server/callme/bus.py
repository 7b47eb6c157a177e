"""The bus: every piece of state shared between connections goes through it.

Channels carry JSON-able dicts to subscribers; keys with a time-to-live hold short-lived
facts (a call's pending offer); sets whose members expire one by one hold presence (one
member per open console). ``InProcessBus`` serves one process. A second process on the
same database with an in-process bus would split calls between two rooms that never meet,
so the in-process bus holds a lease in the database and a second holder is refused loudly.
``make_bus`` chooses the bus from configuration.
"""
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod

log = logging.getLogger(__name__)


class Subscription:
    def __init__(self, bus, channel, callback):
        self.bus, self.channel, self.callback = bus, channel, callback

    def close(self):
        self.bus._unsubscribe(self)


class Bus(ABC):
    # Whether processes that share the database may each hold one of these and meet through it.
    several_processes = False

    @abstractmethod
    def publish(self, channel, message): ...

    @abstractmethod
    def subscribe(self, channel, callback): ...

    @abstractmethod
    def _unsubscribe(self, subscription): ...

    @abstractmethod
    def set_key(self, key, value, ttl): ...

    @abstractmethod
    def get_key(self, key): ...

    @abstractmethod
    def delete_key(self, key): ...

    @abstractmethod
    def add_member(self, key, member, ttl):
        """Add (or renew) one member of a set; it expires alone after ``ttl`` seconds."""

    @abstractmethod
    def remove_member(self, key, member): ...

    @abstractmethod
    def members(self, key):
        """The set's members that have not expired."""

    def hold_lease(self):
        """Take or renew this process's right to serve; raise LeaseError if it has none.

        A bus that several processes share needs no lease: this one does nothing.
        """


class InProcessBus(Bus):
    def __init__(self, clock=time.monotonic, engine=None, wall_ms=None):
        """``engine`` gives the database engine the lease lives in (called in an app context)."""
        self.clock = clock
        self._engine = engine
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._subs = {}
        self._keys = {}
        self._sets = {}
        self._lock = threading.Lock()

    def publish(self, channel, message):
        with self._lock:
            callbacks = [s.callback for s in self._subs.get(channel, ())]
        for callback in callbacks:
            try:
                callback(message)
            except Exception:  # one broken subscriber must not stop the others
                log.exception("bus subscriber on %s failed", channel)
        return len(callbacks)

    def subscribe(self, channel, callback):
        sub = Subscription(self, channel, callback)
        with self._lock:
            self._subs.setdefault(channel, []).append(sub)
        return sub

    def _unsubscribe(self, subscription):
        with self._lock:
            subs = self._subs.get(subscription.channel, [])
            if subscription in subs:
                subs.remove(subscription)
            if not subs:
                self._subs.pop(subscription.channel, None)

    def set_key(self, key, value, ttl):
        with self._lock:
            self._keys[key] = (value, self.clock() + ttl)

    def get_key(self, key):
        with self._lock:
            item = self._keys.get(key)
            if item is None:
                return None
            if item[1] <= self.clock():
                del self._keys[key]
                return None
            return item[0]

    def delete_key(self, key):
        with self._lock:
            self._keys.pop(key, None)

    def add_member(self, key, member, ttl):
        with self._lock:
            self._sets.setdefault(key, {})[member] = self.clock() + ttl

    def remove_member(self, key, member):
        with self._lock:
            members = self._sets.get(key, {})
            members.pop(member, None)
            if not members:
                self._sets.pop(key, None)

    def members(self, key):
        now = self.clock()
        with self._lock:
            members = self._sets.get(key, {})
            for member in [m for m, until in members.items() if until <= now]:
                del members[member]
            if not members:
                self._sets.pop(key, None)
            return set(members)

    def hold_lease(self):
        """Only one process may serve a database with this bus: take or renew the lease."""
        if self._engine is None:
            return
        with self._engine().begin() as connection:
            claim_lease(connection, holder_id(), self._wall_ms())


class LeaseError(RuntimeError):
    pass


LEASE_TTL_MS = 30_000


def holder_id():
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid):
    """True for a running process; a zombie (killed, not yet reaped) counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_lease(connection, me, now_ms):
    """Take or renew the single-process lease; raise LeaseError if a live process has it."""
    import sqlalchemy as sa

    row = connection.execute(sa.text("SELECT holder, renewed_ms FROM bus_lease WHERE name = 'inprocess'")).first()
    if row is not None and row.holder != me and row.renewed_ms + LEASE_TTL_MS > now_ms:
        host, _, pid = row.holder.rpartition(":")
        if not (host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))):
            raise LeaseError(
                f"Another callme process ({row.holder}) already serves this database with the "
                "in-process bus. Run one worker: several need a shared bus, which callme does not have yet "
                "(REDIS_URL does not provide one)."
            )
    if row is None:
        try:
            connection.execute(sa.text("INSERT INTO bus_lease (name, holder, renewed_ms) VALUES ('inprocess', :h, :t)"),
                               {"h": me, "t": now_ms})
        except sa.exc.IntegrityError:
            raise LeaseError("Another callme process took the in-process bus lease at the same moment.") from None
        return
    # Compare-and-set: of two processes that read the same stale row, only one wins.
    done = connection.execute(
        sa.text("UPDATE bus_lease SET holder = :h, renewed_ms = :t "
                "WHERE name = 'inprocess' AND holder = :old AND renewed_ms = :old_t"),
        {"h": me, "t": now_ms, "old": row.holder, "old_t": row.renewed_ms},
    )
    if done.rowcount != 1:
        raise LeaseError("Another callme process took the in-process bus lease at the same moment.")


def make_bus(config, engine=None):
    """The bus the configuration asks for. Only the in-process one exists so far: a shared
    (Redis) bus is still to come, so ``REDIS_URL`` does not change the answer yet."""
    return InProcessBus(engine=engine)
