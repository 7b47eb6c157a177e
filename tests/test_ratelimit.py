"""Fixed-window rate limits, driven by an injected clock."""
import threading

import pytest

from callme.ratelimit import RateLimiter, parse_rule

from .conftest import Seconds


@pytest.mark.parametrize("rule, parsed", [
    ("10/60", (10, 60)),
    ("1/1", (1, 1)),
    ("1000/3600", (1000, 3600)),
    ("5", (5, 60)),          # seconds default to a minute
    ("5/", (5, 60)),
    (" 7/30", (7, 30)),
])
def test_parse_rule(rule, parsed):
    assert parse_rule(rule) == parsed


@pytest.mark.parametrize("rule", ["", "ten/60", "10/minute", "1.5/60", "/60"])
def test_parse_rule_refuses_nonsense(rule):
    with pytest.raises(ValueError):
        parse_rule(rule)


@pytest.mark.parametrize("rule, start, hits, waits", [
    # Within one window: `count` allowed, then the seconds left in the window.
    ("3/60", 0.0, 5, [0, 0, 0, 60, 60]),
    ("3/60", 45.0, 4, [0, 0, 0, 15]),
    ("1/60", 59.5, 2, [0, 1]),          # under a second left: wait at least 1
    ("2/10", 1_000.0, 3, [0, 0, 10]),
    ("1/3600", 1_800.0, 2, [0, 1_800]),
    ("0/60", 10.0, 2, [50, 50]),        # a zero budget refuses everything
])
def test_hits_in_one_window(rule, start, hits, waits):
    limiter = RateLimiter(clock=Seconds(start))
    assert [limiter.hit("ip:1", rule) for _ in range(hits)] == waits


def test_a_new_window_resets_the_count():
    clock = Seconds(10.0)
    limiter = RateLimiter(clock=clock)
    assert [limiter.hit("k", "2/60") for _ in range(3)] == [0, 0, 50]
    clock.now = 59.999
    assert limiter.hit("k", "2/60") == 1
    clock.now = 60.0
    assert [limiter.hit("k", "2/60") for _ in range(3)] == [0, 0, 60]


def test_refused_attempts_do_not_extend_the_wait():
    clock = Seconds(0.0)
    limiter = RateLimiter(clock=clock)
    limiter.hit("k", "1/60")
    for t in (1, 2, 30):
        clock.now = t
        assert limiter.hit("k", "1/60") == 60 - t
    clock.now = 60
    assert limiter.hit("k", "1/60") == 0


def test_keys_are_independent():
    limiter = RateLimiter(clock=Seconds(0.0))
    assert limiter.hit("calls:10.0.0.1", "1/60") == 0
    assert limiter.hit("calls:10.0.0.1", "1/60") == 60
    assert limiter.hit("calls:10.0.0.2", "1/60") == 0
    assert limiter.hit("rings:1", "1/60") == 0


def test_concurrent_hits_never_exceed_the_budget():
    limiter = RateLimiter(clock=Seconds(0.0))
    results = []
    lock = threading.Lock()

    def worker():
        for _ in range(50):
            wait = limiter.hit("k", "100/60")
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(0) == 100 and len(results) == 400


def test_old_windows_are_pruned_when_the_table_grows(monkeypatch):
    clock = Seconds(0.0)
    limiter = RateLimiter(clock=clock)
    for i in range(100_001):
        limiter._windows[f"old:{i}"] = (0, 1)
    clock.now = 120.0
    assert limiter.hit("new", "1/60") == 0
    assert list(limiter._windows) == ["new"]


def test_default_clock_is_monotonic():
    import time

    assert RateLimiter().clock is time.monotonic


def test_make_limiter_gives_the_memory_limiter():
    from callme.ratelimit import make_limiter

    assert isinstance(make_limiter({}), RateLimiter)
    assert isinstance(make_limiter({"REDIS_URL": "redis://127.0.0.1:6379/0"}), RateLimiter)
