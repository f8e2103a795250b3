"""How the hub's processes run: settings of the Python runtime that every ``tsunagu`` command applies.

Garbage collection. The hub keeps recently used streams in memory (the aggregate cache of ``events.store``: up to
5,000 children, index streams, rosters), on the order of a million objects that CPython's cyclic garbage
collector tracks. With CPython's default thresholds (700, 10, 10) a young collection runs every 700 allocations
and a full one whenever the objects that survived grew by a quarter, and a full collection walks every tracked
object: publishing 200,000 events spent 24 s of 85 s in 75 full collections, and single reads waited up to
0.9 s for one (``bench/core.py``, docs/benchmarks.md). Publishing (accepted, duplicate or rejected), reading
and importing leave no reference cycles (``tests/test_runtime.py``; exceptions kept as values are kept without
their tracebacks, whose frames would refer back to them): what they drop is freed by reference counting at
once, and the collector has nothing to find there. So the hub collects young objects every 50,000 allocations
and considers a full collection 140 times less often than the default; cycles made elsewhere (a request that
fails with a traceback) are still collected, later.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 10)


def tune_garbage_collector() -> None:
    """Apply ``GC_THRESHOLDS`` to this process (see the module docstring)."""
    gc.set_threshold(*GC_THRESHOLDS)
