"""The in-process bus (channels, keys with a time-to-live) and its single-process lease."""
import logging
import os
import socket
import subprocess
import sys

import pytest
import sqlalchemy as sa

from callme.bus import LEASE_TTL_MS, InProcessBus, LeaseError, _pid_alive, claim_lease, holder_id
from callme.models import BusLease

from .conftest import Seconds, eventually


@pytest.fixture
def clock():
    return Seconds()


@pytest.fixture
def bus(clock):
    return InProcessBus(clock=clock)


# ---- channels -------------------------------------------------------------------------

def test_publish_reaches_every_subscriber_of_the_channel(bus):
    got_a, got_b, got_other = [], [], []
    bus.subscribe("call:1:visitor", got_a.append)
    bus.subscribe("call:1:visitor", got_b.append)
    bus.subscribe("call:1:expert", got_other.append)
    assert bus.publish("call:1:visitor", {"type": "accepted"}) == 2
    assert got_a == got_b == [{"type": "accepted"}]
    assert got_other == []


def test_publish_without_subscribers(bus):
    assert bus.publish("nobody", {"type": "x"}) == 0


def test_messages_arrive_in_order(bus):
    got = []
    bus.subscribe("c", got.append)
    for i in range(5):
        bus.publish("c", {"n": i})
    assert [m["n"] for m in got] == [0, 1, 2, 3, 4]


def test_unsubscribe(bus):
    got_a, got_b = [], []
    a = bus.subscribe("c", got_a.append)
    bus.subscribe("c", got_b.append)
    a.close()
    assert bus.publish("c", {"n": 1}) == 1
    assert got_a == [] and got_b == [{"n": 1}]
    a.close()  # closing twice is harmless
    assert bus.publish("c", {"n": 2}) == 1


def test_last_unsubscribe_forgets_the_channel(bus):
    sub = bus.subscribe("c", lambda m: None)
    sub.close()
    assert "c" not in bus._subs
    assert bus.publish("c", {}) == 0


def test_a_subscriber_may_unsubscribe_while_being_called(bus):
    got = []
    subs = {}

    def once(message):
        got.append(message)
        subs["s"].close()

    subs["s"] = bus.subscribe("c", once)
    bus.subscribe("c", got.append)
    assert bus.publish("c", {"n": 1}) == 2
    assert bus.publish("c", {"n": 2}) == 1
    assert got == [{"n": 1}, {"n": 1}, {"n": 2}]


def test_a_failing_subscriber_does_not_stop_the_others(bus, caplog, monkeypatch):
    # Alembic's fileConfig (migrations run in this process) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("callme.bus"), "disabled", False)
    got_before, got_after = [], []

    def broken(message):
        raise RuntimeError("subscriber bug")

    bus.subscribe("c", got_before.append)
    bus.subscribe("c", broken)
    bus.subscribe("c", got_after.append)
    with caplog.at_level(logging.ERROR, logger="callme.bus"):
        assert bus.publish("c", {"n": 1}) == 3
    assert got_before == got_after == [{"n": 1}]
    assert any("subscriber on c failed" in r.getMessage() and r.exc_info for r in caplog.records)


# ---- keys with a time-to-live ---------------------------------------------------------

def test_keys(bus, clock):
    assert bus.get_key("presence:1") is None
    bus.set_key("presence:1", "online", ttl=30)
    assert bus.get_key("presence:1") == "online"
    bus.delete_key("presence:1")
    assert bus.get_key("presence:1") is None
    bus.delete_key("presence:1")  # deleting a missing key is harmless


@pytest.mark.parametrize("after, value", [
    (0, "online"),
    (29.999, "online"),
    (30, None),      # the ttl is exclusive: expired at exactly 30 s
    (31, None),
])
def test_key_expires_after_its_ttl(bus, clock, after, value):
    bus.set_key("presence:1", "online", ttl=30)
    clock.now += after
    assert bus.get_key("presence:1") == value


def test_setting_a_key_again_renews_it(bus, clock):
    bus.set_key("k", "a", ttl=30)
    clock.now += 20
    bus.set_key("k", "b", ttl=30)
    clock.now += 20
    assert bus.get_key("k") == "b"
    clock.now += 10
    assert bus.get_key("k") is None


def test_an_expired_key_is_dropped(bus, clock):
    bus.set_key("k", "v", ttl=1)
    clock.now += 1
    assert bus.get_key("k") is None
    assert "k" not in bus._keys


def test_keys_are_independent(bus, clock):
    bus.set_key("a", 1, ttl=10)
    bus.set_key("b", 2, ttl=100)
    clock.now += 50
    assert (bus.get_key("a"), bus.get_key("b")) == (None, 2)


# ---- the single-process lease ---------------------------------------------------------

HOST = socket.gethostname()
NOW = 1_700_000_000_000


@pytest.fixture
def engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lease.sqlite'}")
    BusLease.__table__.create(engine)
    yield engine
    engine.dispose()


def lease(engine):
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT holder, renewed_ms FROM bus_lease")).all()
    return [tuple(r) for r in row]


def claim(engine, me, now):
    with engine.begin() as c:
        claim_lease(c, me, now)


def put(engine, holder, renewed_ms):
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO bus_lease (name, holder, renewed_ms) VALUES ('inprocess', :h, :t)"),
                  {"h": holder, "t": renewed_ms})


def test_holder_id_is_host_and_pid():
    assert holder_id() == f"{HOST}:{os.getpid()}"


def test_first_claim_takes_the_lease(engine):
    claim(engine, "me:1", NOW)
    assert lease(engine) == [("me:1", NOW)]


def test_the_same_holder_renews(engine):
    claim(engine, "me:1", NOW)
    claim(engine, "me:1", NOW + 10_000)
    assert lease(engine) == [("me:1", NOW + 10_000)]


@pytest.mark.parametrize("other", [
    "otherhost:1",              # another machine: cannot tell if it lives, so it counts as alive
    f"{HOST}:{os.getppid()}",   # a live process on this host
    f"{HOST}:notapid",
])
def test_a_live_holder_is_not_taken_over(engine, other):
    put(engine, other, NOW)
    for age in (0, LEASE_TTL_MS - 1):
        with pytest.raises(LeaseError) as e:
            claim(engine, holder_id(), NOW + age)
        assert other in str(e.value) and "REDIS_URL" in str(e.value)
    assert lease(engine) == [(other, NOW)]


@pytest.mark.parametrize("age", [LEASE_TTL_MS, LEASE_TTL_MS + 1, 10 * LEASE_TTL_MS])
def test_a_stale_holder_is_taken_over(engine, age):
    put(engine, "otherhost:1", NOW)
    claim(engine, holder_id(), NOW + age)
    assert lease(engine) == [(holder_id(), NOW + age)]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_process_on_this_host_is_taken_over(engine):
    pid = _dead_pid()
    assert not _pid_alive(pid)
    put(engine, f"{HOST}:{pid}", NOW)
    claim(engine, holder_id(), NOW + 1)  # fresh, but its process is gone
    assert lease(engine) == [(holder_id(), NOW + 1)]


def test_a_zombie_holder_counts_as_dead(engine):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        eventually(lambda: _stat_state(proc.pid) == "Z", what="the child to exit, not reaped yet")
        assert not _pid_alive(proc.pid)
        put(engine, f"{HOST}:{proc.pid}", NOW)
        claim(engine, holder_id(), NOW + 1)
        assert lease(engine) == [(holder_id(), NOW + 1)]
    finally:
        proc.wait()


def _stat_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def test_pid_alive():
    assert _pid_alive(os.getpid())
    assert _pid_alive(os.getppid())
    assert not _pid_alive(_dead_pid())


def test_a_lost_compare_and_set_is_refused(engine, monkeypatch):
    """Two processes read the same stale row; the one whose UPDATE finds it changed loses."""
    put(engine, "otherhost:1", NOW)
    with engine.begin() as c:
        real_execute = c.execute
        calls = []

        def execute(statement, *args, **kwargs):
            calls.append(str(statement))
            if str(statement).startswith("UPDATE"):
                # Somebody else took the stale lease between our read and our write.
                real_execute(sa.text("UPDATE bus_lease SET holder = 'thief:2', renewed_ms = :t"), {"t": NOW + 1})
            return real_execute(statement, *args, **kwargs)

        monkeypatch.setattr(c, "execute", execute)
        with pytest.raises(LeaseError):
            claim_lease(c, holder_id(), NOW + LEASE_TTL_MS + 5)
    assert lease(engine) == [("thief:2", NOW + 1)]


def test_a_concurrent_first_claim_is_refused(engine, monkeypatch):
    with engine.begin() as c:
        real_execute = c.execute

        def execute(statement, *args, **kwargs):
            if str(statement).startswith("INSERT"):
                real_execute(sa.text("INSERT INTO bus_lease (name, holder, renewed_ms) "
                                     "VALUES ('inprocess', 'racer:3', :t)"), {"t": NOW})
            return real_execute(statement, *args, **kwargs)

        monkeypatch.setattr(c, "execute", execute)
        with pytest.raises(LeaseError):
            claim_lease(c, holder_id(), NOW)


# ---- the factory, and what it says about several processes (defect 15) ----------------

def test_make_bus_gives_the_in_process_bus_whatever_redis_url_says():
    from callme.bus import make_bus

    for config in ({}, {"REDIS_URL": None}, {"REDIS_URL": "redis://127.0.0.1:6379/0"}):
        bus = make_bus(config)
        assert isinstance(bus, InProcessBus) and bus.several_processes is False


@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:6379/0"])
def test_serve_refuses_several_workers_without_a_shared_bus(app, runner, monkeypatch, redis_url):
    import flask_migrate

    started = []
    monkeypatch.setattr(os, "execv", lambda *argv: started.append(argv))
    monkeypatch.setattr(flask_migrate, "upgrade", lambda *a, **k: None)
    app.config["REDIS_URL"] = redis_url
    result = runner.invoke(args=["serve", "--workers", "2"])
    assert result.exit_code == 2 and started == []
    assert "one worker" in result.output and "in-process" in result.output
    if redis_url:
        assert "REDIS_URL" in result.output  # says why setting it does not help


def test_the_in_process_bus_holds_the_lease_itself(app):
    from callme.extensions import db

    bus = app.extensions["callme.bus"]
    bus.hold_lease()
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT holder FROM bus_lease")).scalar() == holder_id()


# ---- sets whose members expire one by one (presence per console) ----------------------

def test_members_expire_one_by_one(bus, clock):
    bus.add_member("presence:1", "a", ttl=30)
    clock.now += 10
    bus.add_member("presence:1", "b", ttl=30)
    assert bus.members("presence:1") == {"a", "b"}
    clock.now += 20
    assert bus.members("presence:1") == {"b"}
    bus.remove_member("presence:1", "b")
    assert bus.members("presence:1") == set()
    bus.remove_member("presence:1", "b")  # removing twice is harmless
    assert "presence:1" not in bus._sets
