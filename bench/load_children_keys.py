"""A view's cold load of many children from their snapshots, with each child's key fetched with its snapshot
(``HubStore.load_children``) or read on its own when the snapshot is opened (``ChildSnapshots.load_many`` without
the children's ids, as views loaded before session 8): wall clock, CPU and statements, in a new process.

    .venv/bin/python -m bench.ledger_scale --cases 2000 --database URL --build-only
    .venv/bin/python -m bench.ledger_scale --cases 2000 --database URL --reuse --take-snapshots
    .venv/bin/python -m bench.load_children_keys URL with|without      # alternate, each in a new process
"""

import json
import sys
import time

import psycopg

from bench.ledger_scale import NOW
from consent.model import Settings
from events.store import ChildRecord
from services.hub import Hub, SettableClock

mode = sys.argv[2]
hub = Hub(sys.argv[1], settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
children = [f"city{i:07d}" for i in range(2000)]
n = {"stmts": 0}
orig = psycopg.Cursor.execute


def counting(self, *a, **k):
    n["stmts"] += 1
    return orig(self, *a, **k)


psycopg.Cursor.execute = counting
t0, c0 = time.perf_counter(), time.process_time()
streams = {ChildRecord.create_id(c): c for c in children}
if mode == "with":
    recs, _ = hub.store.load_children(streams)
else:
    loaded = hub.store.child_snapshots.load_many(list(streams))
    recs = {stream: found.record for stream, found in loaded.items()}
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(
    json.dumps(
        {
            "mode": mode,
            "wall_ms": round(wall * 1000),
            "cpu_ms": round(cpu * 1000),
            "stmts": n["stmts"],
            "from_snapshot": hub.store.child_snapshots.loaded_from_snapshot,
            "n": len(recs),
        }
    )
)
hub.close()
