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
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (700, 10, 1000)  # CPython's defaults but the last: (700, 10, 10)


def tune_garbage_collector() -> None:
    """Apply ``GC_THRESHOLDS`` to this process (see the module docstring)."""
    gc.set_threshold(*GC_THRESHOLDS)
