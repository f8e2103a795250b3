"""CPU of cold timeline reads alone, on a store filled by ``bench.core`` (issue 16: the read's p99 is set by its
cold reads, whose CPU is the floor of their wall clock).

    TSUNAGU_KEYS_FILE=<the store's keys> .venv/bin/python -m bench.cold_reads --database postgresql://…?schema=core1m

Method (the session-6 section of ``docs/benchmarks.md`` measured it so): ``--hubs`` new hubs in this process, one
after the other; each reads the opener (its first read: connections, the registry, the hub's key) and then each
of the ``--probe-children`` probe children once, cold (loaded from its snapshot and the events after it). Reported:
the median of the cold reads' ``time.process_time`` (this process's CPU, not the machine's load) and of their wall
clock, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from bench.core import NOW, SETTINGS, readers_of
from services.hub import Hub
from services.runtime import tune_garbage_collector


def main() -> None:
    tune_garbage_collector()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--hubs", type=int, default=10)
    parser.add_argument("--probe-children", type=int, default=10)
    args = parser.parse_args()
    readers = readers_of(args.database, [f"p{i:07d}" for i in range(args.probe_children)])
    cpu, wall = [], []
    for _ in range(args.hubs):
        hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
        hub.timeline(org=readers[0][1], role="caseworker", child="b0000000", purpose="support")
        for child, center in readers:
            started, cpu_started = time.perf_counter(), time.process_time()
            timeline = hub.timeline(org=center, role="caseworker", child=child, purpose="support")
            cpu.append((time.process_time() - cpu_started) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
            assert timeline.allowed and len(timeline.entries) > 100
        hub.close()
    print(
        json.dumps(
            {
                "cold_reads": len(cpu),
                "cold_cpu_p50_ms": round(statistics.median(cpu), 2),
                "cold_wall_p50_ms": round(statistics.median(wall), 2),
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
