"""How the hub's processes run: settings of the Python runtime that every ``tsunagu`` command applies.

Garbage collection. The hub keeps recently used streams in memory (the aggregate cache of ``events.store``: up to
5,000 children, index streams, rosters), on the order of a million objects that CPython's cyclic garbage
collector tracks. With CPython's default thresholds (700, 10, 10) a full collection, which walks every tracked
object, is considered after every 70,000 allocations and runs whenever the objects that survived grew by a
quarter: publishing 200,000 events spent 24 s of 85 s in 75 full collections, and single reads waited up to
0.9 s for one (``bench/core.py``, docs/benchmarks.md). The young collections are cheap (under 2 ms each, even
beside a full cache) and stay as they are; full collections are considered a hundred times less often.

That loses nothing because the hub's hot paths make no reference cycles: publishing (accepted, duplicate or
rejected), reading and importing drop what they made to reference counting, which frees it at once
(``tests/cli/test_runtime.py``; exceptions kept as values are kept without their tracebacks, whose frames would
refer back to them). Cycles made elsewhere (a request that fails with a traceback) are still collected, by
the young collections when they die young and by the rarer full ones otherwise.

The thresholds are a setting of the process, not inherited by the processes it starts: uvicorn starts each API
worker of ``tsunagu serve --workers N`` (``services.http.asgi.app_from_env``) as a new interpreter (multiprocessing's
*spawn*), so each worker applies them itself (``start_serving_process``), as the CLI does for its own process.

**The startup heap frozen** (``freeze_startup_heap``): once an API process has opened its hub and built its app,
what it holds then (modules, classes, the registry, the app's routes: ~70,000–125,000 tracked objects) is moved out of the
collector's generations (``gc.freeze``), so that every later full collection walks only what was made since (the
aggregate cache) instead of that too. Measured on a read process holding 10 probe children and 300 background
children (docs/benchmarks.md, "The cold read, session 10"): a full collection 137–141 → 96–102 ms of CPU, the
resident memory not larger. Why it is right: frozen objects are still freed by reference counting when they are
dropped; only a reference cycle through them that becomes garbage later is never collected, with what it refers
to when it dies, so what it can keep is bounded by the startup heap and such cycles, not a growing amount (the
s10-load review counted 12 of 123,799 frozen objects become cyclic garbage over reads, refusals, a 401 and an
erasure; none of the frozen heap was a child's content: nothing is read before the freeze). The young collections, which a read pays, are
unchanged by it (they never walk the old generation).
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (700, 10, 1000)  # CPython's defaults but the last: (700, 10, 10)


def tune_garbage_collector() -> None:
    """Apply ``GC_THRESHOLDS`` to this process (see the module docstring)."""
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_startup_heap() -> None:
    """**The startup heap frozen** (see the module docstring): what this process holds now, once collected, is left
    out of every later collection (``gc.freeze``). Called once by a serving process, when its hub is open and its
    app built and before it serves anything (``services.http.asgi.served_app``, for a worker of ``app_from_env`` and
    for ``tsunagu serve``'s one process), never on a path that runs again."""
    gc.collect()  # the startup's own garbage first: it must be freed, not frozen
    gc.freeze()


def start_serving_process() -> None:
    """What a serving process applies at its start, before it opens its hub: ``GC_THRESHOLDS`` (a spawned API
    worker does not inherit them from ``tsunagu serve``; see the module docstring)."""
    tune_garbage_collector()
