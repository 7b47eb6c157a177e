"""Fixed-window rate limits ("count/seconds"), in memory; a shared store comes with Redis.

``make_limiter`` chooses the limiter from configuration.
"""
import threading
import time


def parse_rule(rule):
    count, _, seconds = str(rule).partition("/")
    return int(count), int(seconds or 60)


class RateLimiter:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._windows = {}
        self._lock = threading.Lock()

    def hit(self, key, rule):
        """Count one attempt; return seconds to wait (0 when allowed)."""
        limit, period = parse_rule(rule)
        now = self.clock()
        window = int(now // period)
        with self._lock:
            if len(self._windows) > 100_000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= limit:
                return max(1, int((window + 1) * period - now))
            self._windows[key] = (start, count + 1)
            return 0


def make_limiter(config):
    """The rate limiter the configuration asks for: in memory until a shared store exists."""
    return RateLimiter()
