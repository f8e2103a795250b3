"""CPU per published event and per timeline read, in one process: for comparing two versions of the code on a
loaded machine, where wall-clock figures swing by 2–3× (issue 16).

    .venv/bin/python -m bench.cpu_ab --database sqlite:////tmp/cpu.db

Method: the synthetic prefecture of ``bench.core`` (``bench/prefecture.py``): ``--probe-children`` children of
500 events, then background children up to ``--events``, through ``Hub.publish`` in batches of 1,000; then, in a
new hub in this process (empty aggregate cache), each probe child read once cold and ``--warm-reads`` times warm
through ``Hub.timeline`` (the policy decides every event, the access record is appended). Reported: this
process's CPU time (``time.process_time``: what the code costs, not what the machine's load adds) per published
event and per read (median and p99 of the warm reads, median of the cold ones); the database server's CPU is not
counted (SQLite runs in this process, so it is).
"""

from __future__ import annotations

import argparse
import json
import time

from bench.core import NOW, SETTINGS, fill, percentile, readers_of
from bench.prefecture import event_stream, make_prefecture
from services.hub import Hub
from services.runtime import tune_garbage_collector


def main() -> None:
    tune_garbage_collector()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--probe-children", type=int, default=10)
    parser.add_argument("--warm-reads", type=int, default=19)
    args = parser.parse_args()
    pref = make_prefecture()
    hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
    hub.load_orgs(pref.orgs)
    probes = args.probe_children * 500
    cpu = time.process_time()
    fill(hub, event_stream(pref, args.probe_children, 500, prefix="p", seed=1), probes, 1000)
    fill(hub, event_stream(pref, 10**7, 200, prefix="b", seed=2), args.events - probes, 1000)
    publish_cpu = time.process_time() - cpu
    hub.close()
    readers = readers_of(args.database, [f"p{i:07d}" for i in range(args.probe_children)])
    hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
    hub.timeline(org=readers[0][1], role="caseworker", child="b0000000", purpose="support")
    cold, warm = [], []
    for child, center in readers:
        for bucket in [cold] + [warm] * args.warm_reads:
            cpu = time.process_time()
            hub.timeline(org=center, role="caseworker", child=child, purpose="support")
            bucket.append((time.process_time() - cpu) * 1000)
    hub.close()
    print(
        json.dumps(
            {
                "events": args.events,
                "publish_cpu_us_per_event": round(publish_cpu / args.events * 1e6, 1),
                "read_cpu_ms_cold_p50": round(percentile(cold, 50), 2),
                "read_cpu_ms_warm_p50": round(percentile(warm, 50), 2),
                "read_cpu_ms_warm_p99": round(percentile(warm, 99), 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
