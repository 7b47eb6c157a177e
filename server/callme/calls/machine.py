"""The call state machine: states, what may follow what, why a call ends, and when.

Every change of a call's state goes through ``transition``, a compare-and-set UPDATE that
refuses what ``TRANSITIONS`` does not allow, so that of two connections (or workers) racing
on one call only one moves it. ``step`` says what an event does to a call in a given state
(its next state, its end reason, the events to publish); ``deadlines`` says, from a call's
stored clock fields alone, what happens to it next and when. The clock selects due calls with
the same rules (``due_clause``) that it then acts on (``due``).
"""
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from ..extensions import db
from ..models import Call
from .metering import MINUTE_MS

CREATED, RINGING, ACCEPTED, ACTIVE, ENDED = "created", "ringing", "accepted", "active", "ended"
OPEN = (CREATED, RINGING, ACCEPTED, ACTIVE)
UNANSWERED = (CREATED, RINGING)

TRANSITIONS = {
    CREATED: {RINGING, ENDED},
    RINGING: {ACCEPTED, ENDED},
    ACCEPTED: {ACTIVE, ENDED},
    ACTIVE: {ENDED},
    ENDED: set(),
}


class EndReason(StrEnum):
    """Why a call ended, as the ``ended`` frame, the console and the receipt say it."""

    HANGUP = "hangup"        # a participant hung up an accepted or active call
    CANCELLED = "cancelled"  # the visitor hung up before the expert answered
    DECLINED = "declined"    # the expert declined the ring
    MISSED = "missed"        # nobody answered within RING_TIMEOUT
    EXPIRED = "expired"      # the visitor's socket never joined within JOIN_TIMEOUT
    FAILED = "failed"        # accepted, but the peers never both connected within CONNECT_TIMEOUT
    CAP = "cap"              # the longest call the terms allow
    SILENCE = "silence"      # a side sent no heartbeat for SILENCE_GRACE; ``by`` names it


class IllegalTransition(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    """What an event does: the state after it, the end reason, the events published."""

    to: str
    reason: EndReason | None = None
    effects: tuple = ()


def _ended(reason, was):
    """An end publishes ``ended`` to the peers and tells the console how the ring or call ended."""
    return Step(ENDED, reason, ("ended", "ring_ended" if was in UNANSWERED else "call_ended", "presence"))


# (state, event) -> the step; anything else is refused. The timed events (expire, ring_timeout,
# connect_timeout, cap, silence) come from ``deadlines``; the rest from the participants.
EVENTS = {
    (CREATED, "join"): Step(RINGING, None, ("ring", "presence")),
    (RINGING, "accept"): Step(ACCEPTED, None, ("accepted", "ring_ended")),
    (ACCEPTED, "connected"): Step(ACTIVE, None, ("active",)),
    (CREATED, "expire"): _ended(EndReason.EXPIRED, CREATED),
    (RINGING, "ring_timeout"): _ended(EndReason.MISSED, RINGING),
    (ACCEPTED, "connect_timeout"): _ended(EndReason.FAILED, ACCEPTED),
    (ACTIVE, "cap"): _ended(EndReason.CAP, ACTIVE),
    (RINGING, "decline"): _ended(EndReason.DECLINED, RINGING),
    **{(state, "silence"): _ended(EndReason.SILENCE, state) for state in OPEN},
    # Only the visitor is in a call before it is accepted: hanging up then cancels it.
    **{(state, "hangup:visitor"): _ended(EndReason.CANCELLED, state) for state in UNANSWERED},
    **{(state, f"hangup:{role}"): _ended(EndReason.HANGUP, state)
       for state in (ACCEPTED, ACTIVE) for role in ("visitor", "expert")},
}


def step(state, event):
    """The step ``event`` takes from ``state``; None when it does not apply (the caller refuses)."""
    found = EVENTS.get((state, event))
    assert found is None or found.to in TRANSITIONS[state]
    return found


def transition(call_id, from_state, to_state, **values):
    """Move a call from ``from_state`` to ``to_state`` unless somebody moved it first; no commit.

    Raises IllegalTransition for a move the machine forbids; returns True when this caller won.
    """
    if to_state not in TRANSITIONS[from_state]:
        raise IllegalTransition(f"call {call_id}: {from_state} -> {to_state} is not allowed")
    done = db.session.execute(
        sa.update(Call).where(Call.id == call_id, Call.state == from_state).values(state=to_state, **values))
    return done.rowcount == 1


# ---- deadlines -------------------------------------------------------------------------------

# When each open state runs out, from the call's stored clock fields, and the event it fires.
# ``c`` is a call row, or the Call class itself: the same arithmetic then builds the SQL that
# selects the calls whose deadline has passed.
RUNS_OUT = {
    CREATED: (lambda c, cfg: c.created_ms + min(cfg["JOIN_TIMEOUT"], cfg["CALL_TOKEN_TTL"]) * 1000, "expire"),
    RINGING: (lambda c, cfg: c.rung_ms + cfg["RING_TIMEOUT"] * 1000, "ring_timeout"),
    ACCEPTED: (lambda c, cfg: c.accepted_ms + cfg["CONNECT_TIMEOUT"] * 1000, "connect_timeout"),
    ACTIVE: (lambda c, cfg: c.active_ms + c.cap_minutes * MINUTE_MS, "cap"),
}


def silent_after(last_ms, cfg):
    """When a side last heard at ``last_ms`` counts as gone (a number, or SQL for a column)."""
    return last_ms + cfg["SILENCE_GRACE"] * 1000


@dataclass(frozen=True)
class Deadline:
    at_ms: int             # when it happens
    event: str             # the event it fires (see EVENTS)
    end_ms: int = None     # for an end: when the call counts as ended (what is billed up to)
    by: str = None         # for silence: the silent side
    last_ms: int = 0       # for silence: its last heartbeat (the earlier one goes first)
    moves_ms: int = None   # for "connected": when the call became active


def deadlines(call, cfg, started_ms, seen):
    """Everything that will happen to an open call by itself, from its stored state.

    ``started_ms``: when this server started; nobody counts as silent before a restarted server
    gave the peers a grace period to reconnect, and nobody has failed to connect before they
    could report it again. ``seen``: last heartbeat per joined side.
    """
    state = call.state
    if state not in RUNS_OUT:
        return []
    grace_from_start = silent_after(started_ms, cfg)
    found = []
    if state == ACCEPTED and call.visitor_connected_ms is not None and call.expert_connected_ms is not None:
        # Both said connected but the call never became active (a crash in between): it is
        # active from the later report, now.
        both = max(call.visitor_connected_ms, call.expert_connected_ms)
        found.append(Deadline(both, "connected", moves_ms=both))
    at, event = RUNS_OUT[state]
    when = at(call, cfg)
    if state == ACTIVE:
        found.append(Deadline(when, event, end_ms=when))
    else:
        # A time-out ends a call that was never active: nothing is billed, whenever it is.
        floor = grace_from_start if state == ACCEPTED else when
        found.append(Deadline(max(when, floor), event, end_ms=max(when, floor)))
    floor = max(grace_from_start, silent_after(call.created_ms, cfg))
    for role, last in seen.items():
        if last is not None:
            # The deadline waits for the floor; the bill never does: it ends at the last sign of life.
            found.append(Deadline(max(silent_after(last, cfg), floor), "silence",
                                  end_ms=max(last, call.active_ms or last), by=role, last_ms=last))
    return found


# Of deadlines at the same moment, which wins: the state's own, then the cap, then silence.
RANK = {"connected": 0, "expire": 1, "ring_timeout": 1, "connect_timeout": 1, "cap": 2, "silence": 3}


def next_deadline(call, cfg, started_ms, seen):
    """The first thing that will happen to an open call by itself (a Deadline), or None."""
    found = deadlines(call, cfg, started_ms, seen)
    return min(found, key=lambda d: (d.at_ms, RANK[d.event], d.last_ms, d.by or "")) if found else None


def due(call, cfg, started_ms, seen, now):
    """The deadline to act on now, or None: the one that fell first, as if no tick was ever late."""
    first = next_deadline(call, cfg, started_ms, seen)
    return first if first is not None and first.at_ms <= now else None


def due_clause(cfg, started_ms, now):
    """SQL for the open calls whose ``due`` may be something: a superset, decided per call after.

    The database narrows them down (so a tick costs little however many calls are open) with
    the same ``RUNS_OUT`` and ``silent_after`` the per-call decision uses; the exact in-memory
    heartbeats and the restart floor are applied per call.
    """
    conditions = [(Call.state == state) & (at(Call, cfg) <= now) for state, (at, _) in RUNS_OUT.items()]
    conditions.append((Call.state == ACCEPTED) & Call.visitor_connected_ms.isnot(None)
                      & Call.expert_connected_ms.isnot(None))
    if silent_after(started_ms, cfg) <= now:
        conditions.append(Call.state.in_(OPEN) & (
            (silent_after(Call.visitor_seen_ms, cfg) <= now) | (silent_after(Call.expert_seen_ms, cfg) <= now)))
    return sa.or_(*conditions)
