"""What the sweep of destructions owed (``events.store.HubStore.destroy_keys_owed``) costs when a store opens, on a
store with many events: the common case, nothing owed, and the rare one, an erasure stored whose keys live on.

    .venv/bin/python -m bench.erasures_owed --database sqlite:////tmp/owed.db --events 30000

Method: the synthetic prefecture of ``bench.core`` (``bench/prefecture.py``), ``--events`` events of children of
60 events through ``Hub.publish`` (skipped when the store holds events already); then, in this process, the
sweep run ``--runs`` times with nothing owed, timed by this process's CPU (``time.process_time``) and the wall
clock (median and p99); then one child's erasure stored without its keys destroyed (``HubStore.shred`` stopped,
as a process dying between the commit and the destruction), the aggregate cache emptied (as a process that has
just opened the store) and one sweep timed, which finishes that erasure. The database server's CPU is not counted (SQLite runs in this process,
so it is)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.core import NOW, SETTINGS, fill, percentile
from bench.prefecture import event_stream, make_prefecture
from events.store import HubStore
from services.hub import Hub


class StoppedBeforeTheDestruction(BaseException):
    """The erasure's process ending between its commit and the destruction of the keys."""


def timed(call: Any, runs: int) -> dict[str, float]:
    cpu, wall = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {
        "cpu_ms_median": round(percentile(cpu, 50) * 1000, 3),
        "wall_ms_median": round(percentile(wall, 50) * 1000, 3),
        "wall_ms_p99": round(percentile(wall, 99) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    pref = make_prefecture()
    hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
    if not hub.store.registry().orgs:
        hub.load_orgs(pref.orgs)
    stream = list(event_stream(pref, args.events // 60, 60, prefix="o", seed=3))
    if hub.store.log_position() < args.events:
        fill(hub, iter(stream), len(stream), 1000)
    out: dict[str, Any] = {"events_in_store": hub.store.log_position()}
    out["nothing_owed"] = timed(hub.store.destroy_keys_owed, args.runs)
    child = next(e for e in stream if e["kind"] == "case.registered")
    erasure = {
        "id": f"owed-erasure-{child['child']}", "kind": "child.erased", "child": child["child"],
        "source": child["source"], "basis": "internal", "at": NOW.isoformat(), "payload": {"reason": "bench"},
    }  # fmt: skip

    def stopped(self: HubStore, child: str) -> int:
        raise StoppedBeforeTheDestruction(child)

    shred, HubStore.shred = HubStore.shred, stopped  # type: ignore[method-assign]
    try:
        hub.publish([erasure])
    except StoppedBeforeTheDestruction:
        pass
    finally:
        HubStore.shred = shred  # type: ignore[method-assign]
    hub.store._forget_cached()  # as a process that has just opened the store
    started, started_cpu = time.perf_counter(), time.process_time()
    finished = hub.store.destroy_keys_owed()
    out["one_owed"] = {
        "finished": finished,
        "cpu_ms": round((time.process_time() - started_cpu) * 1000, 3),
        "wall_ms": round((time.perf_counter() - started) * 1000, 3),
        "owed_after": len(hub.store.keys.destructions_owed()),
    }
    hub.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
