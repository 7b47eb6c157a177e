"""Presence: each open console counts (defect 10); the expert is offline only when the last
one leaves or stops renewing."""
import pytest

from callme.bus import InProcessBus
from callme.calls.presence import Presence

from .conftest import Seconds


@pytest.fixture
def seconds():
    return Seconds()


@pytest.fixture
def presence(seconds):
    return Presence(InProcessBus(clock=seconds), ttl=30)


def test_closing_one_of_two_consoles_leaves_the_expert_online(presence):
    presence.set(7, "console-a", True)
    presence.set(7, "console-b", True)
    assert presence.online(7)
    presence.set(7, "console-a", False)
    assert presence.online(7)
    presence.set(7, "console-b", False)
    assert not presence.online(7)


def test_a_console_that_stops_renewing_expires_alone(presence, seconds):
    presence.set(7, "console-a", True)
    presence.set(7, "console-b", True)
    seconds.now += 20
    presence.set(7, "console-b", True)  # b renews, a has gone silent (a crashed tab)
    seconds.now += 10
    assert presence.online(7)
    seconds.now += 20
    assert not presence.online(7)


def test_experts_are_independent(presence):
    presence.set(7, "c", True)
    assert presence.online(7) and not presence.online(8)
    presence.set(8, "c", False)  # going offline without ever being online is harmless
    assert presence.online(7) and not presence.online(8)


@pytest.mark.parametrize("steps, online", [
    ([("a", True)], True),
    ([("a", True), ("a", True)], True),
    ([("a", True), ("a", False)], False),
    ([("a", True), ("b", True), ("b", False)], True),
    ([("a", True), ("b", True), ("a", False), ("b", False)], False),
    ([("a", True), ("b", True), ("a", False), ("a", False)], True),  # a twice does not remove b
])
def test_status_is_any_console_alive(presence, steps, online):
    for console, on in steps:
        presence.set(7, console, on)
    assert presence.online(7) is online


def test_service_status_counts_consoles(service, make_expert):
    expert = make_expert()
    service.set_presence(expert.id, True, connection="a")
    service.set_presence(expert.id, True, connection="b")
    service.set_presence(expert.id, False, connection="a")
    assert service.status(expert.id) == "online"
    service.set_presence(expert.id, False, connection="b")
    assert service.status(expert.id) == "offline"


def test_every_change_is_announced_with_the_resulting_status(app, service, make_expert):
    expert = make_expert()
    heard = []
    app.extensions["callme.bus"].subscribe(f"expert:{expert.id}", heard.append)
    service.set_presence(expert.id, True, connection="a")
    service.set_presence(expert.id, True, connection="b")
    service.set_presence(expert.id, False, connection="a")
    service.set_presence(expert.id, False, connection="b")
    assert [m["status"] for m in heard] == ["online", "online", "online", "offline"]
