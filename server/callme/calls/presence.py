"""Presence: an expert is online while at least one of their consoles says so.

Each open console is one member of the expert's presence set on the bus, renewed by the
console and expiring alone after ``PRESENCE_TTL``: closing one of two consoles leaves the
expert online, a crashed tab stops counting once its member expires.
"""


def presence_key(expert_id):
    return f"presence:{expert_id}"


class Presence:
    def __init__(self, bus, ttl):
        self.bus, self.ttl = bus, ttl

    def set(self, expert_id, connection, online):
        """One console (``connection``) says online (and renews that) or offline."""
        if online:
            self.bus.add_member(presence_key(expert_id), connection, ttl=self.ttl)
        else:
            self.bus.remove_member(presence_key(expert_id), connection)

    def online(self, expert_id):
        return bool(self.bus.members(presence_key(expert_id)))
