"""Heartbeat bookkeeping: each participant's last sign of life, exact in memory, persisted in
batches. It decides nothing; the lifecycle reads it to find silent sides."""
import threading

import sqlalchemy as sa

from ..extensions import db
from ..models import Call

ROLES = ("visitor", "expert")


class Heartbeats:
    def __init__(self):
        self._lock = threading.Lock()
        self._seen = {}        # (call_id, role) -> last heartbeat, ms
        self._dirty = set()    # (call_id, role) whose heartbeat is not persisted yet

    def record(self, call_id, role, now):
        """Note a sign of life at ``now`` (persisted by the next ``flush``); return ``now``."""
        with self._lock:
            self._seen[(call_id, role)] = now
            self._dirty.add((call_id, role))
        return now

    def flush(self):
        """Persist the latest heartbeats in one statement per role."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            values = [(c, r, self._seen[(c, r)]) for c, r in dirty if (c, r) in self._seen]
        table = Call.__table__
        for role in ROLES:
            rows = [{"cid": c, "seen": t} for c, r, t in values if r == role]
            if rows:
                db.session.execute(
                    table.update().where(table.c.id == sa.bindparam("cid"), table.c.state != "ended")
                    .values({f"{role}_seen_ms": sa.bindparam("seen")}),
                    rows,
                )
        if values:
            db.session.commit()

    def seen_of(self, call):
        """Last heartbeat per joined role: the exact in-memory one or the persisted one."""
        with self._lock:
            mem = {r: self._seen.get((call.id, r)) for r in ROLES}
        stored = {"visitor": call.visitor_seen_ms, "expert": call.expert_seen_ms}
        seen = {}
        for role in ROLES:
            values = [t for t in (mem[role], stored[role]) if t is not None]
            if values:
                seen[role] = max(values)
        return seen

    def forget(self, call_id):
        with self._lock:
            for role in ROLES:
                self._seen.pop((call_id, role), None)
                self._dirty.discard((call_id, role))
