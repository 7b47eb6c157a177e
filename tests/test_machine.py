"""The call state machine as tables: (state, event) -> (state, end reason, effects), the
compare-and-set transition, and each state's next deadline from its stored fields alone."""
import itertools
import random
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from callme.calls import machine
from callme.calls.machine import (ACCEPTED, ACTIVE, CREATED, ENDED, EVENTS, RINGING, TRANSITIONS, Deadline,
                                  EndReason, IllegalTransition, deadlines, due, due_clause, next_deadline, step,
                                  transition)
from callme.extensions import db
from callme.models import CALL_STATES, Call

ENDS_RING = ("ended", "ring_ended", "presence")
ENDS_CALL = ("ended", "call_ended", "presence")

# Every (state, event) that does something; every other pair is refused (None).
TABLE = [
    (CREATED, "join", RINGING, None, ("ring", "presence")),
    (CREATED, "expire", ENDED, "expired", ENDS_RING),
    (CREATED, "silence", ENDED, "silence", ENDS_RING),
    (CREATED, "hangup:visitor", ENDED, "cancelled", ENDS_RING),
    (RINGING, "accept", ACCEPTED, None, ("accepted", "ring_ended")),
    (RINGING, "decline", ENDED, "declined", ENDS_RING),
    (RINGING, "ring_timeout", ENDED, "missed", ENDS_RING),
    (RINGING, "silence", ENDED, "silence", ENDS_RING),
    (RINGING, "hangup:visitor", ENDED, "cancelled", ENDS_RING),
    (ACCEPTED, "connected", ACTIVE, None, ("active",)),
    (ACCEPTED, "connect_timeout", ENDED, "failed", ENDS_CALL),
    (ACCEPTED, "silence", ENDED, "silence", ENDS_CALL),
    (ACCEPTED, "hangup:visitor", ENDED, "hangup", ENDS_CALL),
    (ACCEPTED, "hangup:expert", ENDED, "hangup", ENDS_CALL),
    (ACTIVE, "cap", ENDED, "cap", ENDS_CALL),
    (ACTIVE, "silence", ENDED, "silence", ENDS_CALL),
    (ACTIVE, "hangup:visitor", ENDED, "hangup", ENDS_CALL),
    (ACTIVE, "hangup:expert", ENDED, "hangup", ENDS_CALL),
]
ALL_EVENTS = sorted({event for _, event in EVENTS} | {"hangup:expert", "bogus"})


@pytest.mark.parametrize("state, event, to, reason, effects", TABLE)
def test_step(state, event, to, reason, effects):
    assert step(state, event) == machine.Step(to, reason and EndReason(reason), effects)


@pytest.mark.parametrize("state, event", [
    (state, event) for state, event in itertools.product(CALL_STATES, ALL_EVENTS)
    if (state, event) not in {(row[0], row[1]) for row in TABLE}
])
def test_everything_else_is_refused(state, event):
    assert step(state, event) is None


def test_the_table_covers_the_machine():
    assert set(EVENTS) == {(row[0], row[1]) for row in TABLE}
    assert set(TRANSITIONS) == set(CALL_STATES)
    for (state, _), done in EVENTS.items():
        assert done.to in TRANSITIONS[state]
        assert (done.reason is None) == (done.to != ENDED)


def test_end_reasons_keep_their_wire_strings():
    assert [r.value for r in EndReason] == ["hangup", "cancelled", "declined", "missed", "expired", "failed",
                                            "cap", "silence"]
    assert {r.value for r in EndReason} == {row[3] for row in TABLE if row[3]}


# ---- transition: compare-and-set -------------------------------------------------------------

@pytest.fixture
def row(make_expert):
    def make(state=CREATED):
        expert = make_expert(price=0)
        call = Call(expert_id=expert.id, state=state, price_minor=0, currency="USD", free_seconds=60,
                    cap_minutes=60, created_ms=0)
        db.session.add(call)
        db.session.commit()
        return call.id
    return make


def test_transition_wins_once(row):
    call_id = row()
    assert transition(call_id, CREATED, RINGING, rung_ms=5) is True
    db.session.commit()
    assert transition(call_id, CREATED, RINGING, rung_ms=9) is False  # somebody moved it first
    db.session.commit()
    call = db.session.get(Call, call_id)
    db.session.refresh(call)
    assert (call.state, call.rung_ms) == (RINGING, 5)


@pytest.mark.parametrize("from_state, to_state", [
    (CREATED, ACCEPTED), (CREATED, ACTIVE), (RINGING, ACTIVE), (ACTIVE, RINGING), (ENDED, CREATED),
    (ENDED, ENDED), (ACCEPTED, RINGING),
])
def test_transition_refuses_what_the_machine_forbids(row, from_state, to_state):
    call_id = row(from_state)
    with pytest.raises(IllegalTransition):
        transition(call_id, from_state, to_state)
    db.session.rollback()
    assert db.session.get(Call, call_id).state == from_state


# ---- deadlines -----------------------------------------------------------------------------------

CFG = {"JOIN_TIMEOUT": 10, "CALL_TOKEN_TTL": 120, "RING_TIMEOUT": 30, "CONNECT_TIMEOUT": 60, "SILENCE_GRACE": 30}
T0 = 1_700_000_000_000
LONG_AGO = T0 - 3_600_000  # the server started long before


def call_of(state, **fields):
    values = dict(id="c", state=state, created_ms=T0, rung_ms=None, accepted_ms=None, active_ms=None,
                  cap_minutes=60, visitor_connected_ms=None, expert_connected_ms=None,
                  visitor_seen_ms=None, expert_seen_ms=None)
    return SimpleNamespace(**{**values, **fields})


@pytest.mark.parametrize("call, seen, started, expected", [
    # Each state's own time-out, from the field that started its clock.
    (call_of(CREATED), {}, LONG_AGO, Deadline(T0 + 10_000, "expire", end_ms=T0 + 10_000)),
    (call_of(CREATED), {}, T0 + 5_000, Deadline(T0 + 10_000, "expire", end_ms=T0 + 10_000)),
    (call_of(RINGING, rung_ms=T0 + 1_000), {"visitor": T0 + 20_000}, LONG_AGO,
     Deadline(T0 + 31_000, "ring_timeout", end_ms=T0 + 31_000)),
    (call_of(ACCEPTED, accepted_ms=T0 + 5_000), {"visitor": T0 + 60_000, "expert": T0 + 60_000}, LONG_AGO,
     Deadline(T0 + 65_000, "connect_timeout", end_ms=T0 + 65_000)),
    (call_of(ACTIVE, active_ms=T0 + 9_000, cap_minutes=2), {"visitor": T0 + 120_000, "expert": T0 + 120_000},
     LONG_AGO, Deadline(T0 + 129_000, "cap", end_ms=T0 + 129_000)),
    # Silence comes first: its deadline is after the grace, its end is the last heartbeat.
    (call_of(RINGING, rung_ms=T0 + 20_000), {"visitor": T0 + 1_000}, LONG_AGO,
     Deadline(T0 + 31_000, "silence", end_ms=T0 + 1_000, by="visitor", last_ms=T0 + 1_000)),
    (call_of(ACTIVE, active_ms=T0), {"visitor": T0 + 50_000, "expert": T0 + 40_000}, LONG_AGO,
     Deadline(T0 + 70_000, "silence", end_ms=T0 + 40_000, by="expert", last_ms=T0 + 40_000)),
    # A side silent since before the call became active bills nothing: its end is the start.
    (call_of(ACTIVE, active_ms=T0 + 10_000), {"visitor": T0}, LONG_AGO,
     Deadline(T0 + 30_000, "silence", end_ms=T0 + 10_000, by="visitor", last_ms=T0)),
    # A restart postpones silence (and the connect time-out), never what is billed.
    (call_of(ACTIVE, active_ms=T0), {"visitor": T0 + 50_000}, T0 + 100_000,
     Deadline(T0 + 130_000, "silence", end_ms=T0 + 50_000, by="visitor", last_ms=T0 + 50_000)),
    (call_of(ACCEPTED, accepted_ms=T0), {}, T0 + 100_000,
     Deadline(T0 + 130_000, "connect_timeout", end_ms=T0 + 130_000)),
    # Both sides said connected, the call never became active (a crash): it does, from the later one.
    (call_of(ACCEPTED, accepted_ms=T0, visitor_connected_ms=T0 + 2_000, expert_connected_ms=T0 + 3_000), {},
     T0 + 100_000, Deadline(T0 + 3_000, "connected", moves_ms=T0 + 3_000)),
    (call_of(ENDED), {"visitor": T0}, LONG_AGO, None),
])
def test_next_deadline(call, seen, started, expected):
    assert next_deadline(call, CFG, started, seen) == expected


def test_a_created_call_expires_with_its_token_if_that_is_shorter():
    assert next_deadline(call_of(CREATED), {**CFG, "CALL_TOKEN_TTL": 5}, LONG_AGO, {}).at_ms == T0 + 5_000


def test_a_late_tick_decides_as_a_timely_one_would():
    """Silence at 70 s and the cap at 180 s, seen by a tick at 185 s: silence fell first."""
    call = call_of(ACTIVE, active_ms=T0, cap_minutes=3)
    seen = {"visitor": T0 + 70_000, "expert": T0 + 40_000}
    assert due(call, CFG, LONG_AGO, seen, T0 + 185_000).event == "silence"
    # The cap fell first when the last heartbeat was within the grace of it.
    seen = {"visitor": T0 + 170_000, "expert": T0 + 175_000}
    assert due(call, CFG, LONG_AGO, seen, T0 + 205_000) == Deadline(T0 + 180_000, "cap", end_ms=T0 + 180_000)


G = 30_000


@pytest.mark.parametrize("seen, now, floor, expected", [
    # (rows of the former metering.silent_since: the silent side's last heartbeat, or None)
    ({}, T0, 0, None),
    ({"visitor": None, "expert": None}, T0 + 10 * G, 0, None),
    ({"visitor": T0, "expert": T0}, T0 + G - 1, 0, None),          # within the grace
    ({"visitor": T0, "expert": T0 + 10}, T0 + G, 0, T0),            # exactly at the grace
    ({"visitor": T0, "expert": T0 + G}, T0 + G + 1, 0, T0),         # one side silent
    ({"visitor": T0 + G, "expert": T0}, T0 + G + 1, 0, T0),         # the other side
    ({"visitor": T0, "expert": T0 - 5_000}, T0 + G, 0, T0 - 5_000),  # both: the earliest
    ({"visitor": T0, "expert": None}, T0 + G, 0, T0),               # a side never seen is ignored
    # The floor (a restart) postpones the deadline ...
    ({"visitor": T0}, T0 + G + 1, T0 + 10_000, None),
    ({"visitor": T0}, T0 + 10_000 + G - 1, T0 + 10_000, None),
    # ... but never the billing end: the last heartbeat is returned, not the floor.
    ({"visitor": T0}, T0 + 10_000 + G, T0 + 10_000, T0),
    ({"visitor": T0, "expert": T0 + 20_000}, T0 + 20_000 + G, T0 + 10_000, T0),
    # A floor before the heartbeat changes nothing.
    ({"visitor": T0}, T0 + G, T0 - 1, T0),
])
def test_silence(seen, now, floor, expected):
    call = call_of(ACTIVE, created_ms=T0 - 20_000, active_ms=T0 - 20_000, cap_minutes=600)
    found = due(call, CFG, floor, seen, now)
    assert (found.end_ms if found else None) == expected
    if found:
        assert found.event == "silence" and seen[found.by] == expected


def test_the_query_selects_every_call_the_tick_would_act_on(make_expert):
    """``due_clause`` (SQL) and ``due`` (per call) are one rule: nothing due is left out."""
    rng = random.Random(8)
    expert_ids = [make_expert(price=0).id for _ in range(4)]
    made = []
    for n in range(400):
        state = rng.choice(machine.OPEN)
        t = lambda: T0 + rng.randrange(0, 400_000)  # noqa: E731
        fields = dict(created_ms=T0, rung_ms=t(), accepted_ms=t(), active_ms=t(),
                      cap_minutes=rng.choice((1, 2, 5)),
                      visitor_seen_ms=rng.choice((None, t())), expert_seen_ms=rng.choice((None, t())),
                      visitor_connected_ms=rng.choice((None, t())), expert_connected_ms=rng.choice((None, t())))
        made.append(Call(id=f"c{n}", expert_id=expert_ids[n % 4], state=ENDED, price_minor=0, currency="USD",
                         free_seconds=60, **fields))
    db.session.add_all(made)
    db.session.commit()
    # The one-open-call index allows one open call per expert: open them a few at a time.
    for start in range(0, len(made), 4):
        batch = made[start:start + 4]
        states = {c.id: rng.choice(machine.OPEN) for c in batch}
        for call_id, state in states.items():
            db.session.execute(sa.update(Call).where(Call.id == call_id).values(state=state))
        db.session.commit()
        for now, started in ((T0 + 200_000, LONG_AGO), (T0 + 450_000, T0 + 300_000), (T0 + 50_000, T0)):
            selected = set(db.session.scalars(sa.select(Call.id).where(due_clause(CFG, started, now))))
            for call in batch:
                db.session.refresh(call)
                seen = {r: v for r, v in (("visitor", call.visitor_seen_ms), ("expert", call.expert_seen_ms))
                        if v is not None}
                if due(call, CFG, started, seen, now) is not None:
                    assert call.id in selected, (call.state, now, started)
        db.session.execute(sa.update(Call).where(Call.id.in_(list(states))).values(state=ENDED))
        db.session.commit()


def test_deadlines_of_an_ended_call_are_none():
    assert deadlines(call_of(ENDED), CFG, LONG_AGO, {"visitor": T0}) == []
