"""callme's app as ``bench/signaling.py`` serves it with ``--db-pool unlimited`` or ``--diagnose``.

It calls ``callme.create_app()`` unchanged, except:

* ``BENCH_POOL=unlimited``: SQLAlchemy's ``max_overflow=-1``. Sockets give their pooled
  connection back while they wait for a frame, so the default pool (5 + 10 overflow) does not
  cap the open sockets; lifting the limit shows what waiting for a connection costs under load.
* ``BENCH_DIAGNOSE=1``: log each clock tick's duration (``Clock.tick``: due calls, meters,
  payment retries) and each slow or full garbage collection (``BENCHDIAG ...`` lines on stderr,
  summarised by the benchmark). Measurement only.
* ``BENCH_PROFILE=<file>`` (set it in the environment; the benchmark has no flag for it): run
  the worker under cProfile (greenlets share one thread, so one profile sees them all; own time
  per function is meaningful, cumulative time is not) and write the stats to <file> every 5 s.
"""
import gc
import os
import sys
import time

from callme import create_app as _create_app
from callme.config import Config


def _diagnose():
    from callme.calls.clock import Clock

    tick = Clock.tick

    def timed_tick(self):
        t = time.perf_counter()
        try:
            return tick(self)
        finally:
            print(f"BENCHDIAG tick {(time.perf_counter() - t) * 1000:.1f} ms", file=sys.stderr, flush=True)

    Clock.tick = timed_tick
    started = {}

    def on_gc(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            ms = (time.perf_counter() - started.pop("t")) * 1000
            if info["generation"] == 2 or ms >= 20:
                print(f"BENCHDIAG gc gen{info['generation']} {ms:.1f} ms collected={info['collected']} "
                      f"objects={len(gc.get_objects()) if info['generation'] == 2 else '-'}",
                      file=sys.stderr, flush=True)

    gc.callbacks.append(on_gc)


def _profile(path):
    import cProfile

    import gevent

    profiler = cProfile.Profile()
    profiler.enable()

    def dump():
        while True:
            gevent.sleep(5)
            profiler.dump_stats(path)  # disables the profiler
            profiler.enable()

    gevent.spawn(dump)


def create_app():
    config = {}
    if os.environ.get("BENCH_PROFILE"):
        _profile(os.environ["BENCH_PROFILE"])
    if os.environ.get("BENCH_POOL") == "unlimited":
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {**Config.SQLALCHEMY_ENGINE_OPTIONS, "max_overflow": -1}
    if os.environ.get("BENCH_DIAGNOSE") == "1":
        _diagnose()
    return _create_app(config or None)
