"""Core benchmarks (issue 2): publish throughput, timeline read latency at two store sizes, replay throughput.

    .venv/bin/python -m bench.core --database postgresql://postgres@127.0.0.1:55432/postgres --sizes 10000,1000000

Method: a synthetic prefecture (bench/prefecture.py). First ``--probe-children`` children with exactly
``--probe-events`` events each are published, then background children (200 events each) until the store holds
the first size; reads are measured; the store is filled to the next size and reads are measured again. Publishing
goes through ``Hub.publish`` (validation, admission, idempotency index, one transaction per batch), reads through
``Hub.timeline`` (policy + access record appended before returning), replay through ``audit.verify``. The HTTP
layer is not included. Each read phase opens a NEW hub (empty aggregate cache) and reads every probe child
twice: the first read is cold (the child's stream is loaded from the database), the second warm.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from datetime import datetime
from pathlib import Path

from bench.prefecture import JST, event_stream, make_prefecture
from consent.model import Settings
from events.store import ChildRecord
from services.hub import Hub

SETTINGS = Settings(joint_ledger=True)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=JST)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fill(hub: Hub, stream, count: int, batch: int) -> tuple[int, float]:
    published, elapsed, chunk = 0, 0.0, []
    for envelope in stream:
        chunk.append(envelope)
        if len(chunk) == batch or published + len(chunk) == count:
            started = time.perf_counter()
            results = hub.publish(chunk)
            elapsed += time.perf_counter() - started
            bad = [r for r in results if r.outcome != "accepted"]
            if bad:
                raise SystemExit(f"benchmark data rejected: {bad[0]}")
            published += len(chunk)
            chunk = []
            if published >= count:
                break
    return published, elapsed


def measure_reads(database: str, pref, probes: list[str]) -> dict:
    hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
    cold, warm = [], []
    readers = []
    for child in probes:
        record = hub.store.peek(ChildRecord.create_id(child))
        first = record.entries[0]
        readers.append((child, first.source))
    for child, center in readers:
        for bucket in (cold, warm):
            started = time.perf_counter()
            timeline = hub.timeline(org=center, role="caseworker", child=child, purpose="support")
            bucket.append((time.perf_counter() - started) * 1000)
            assert timeline.allowed and timeline.entries
    hub.close()
    both = cold + warm
    return {"reads": len(both), "p50_ms": round(percentile(both, 50), 2), "p99_ms": round(percentile(both, 99), 2),
            "cold_p50_ms": round(percentile(cold, 50), 2), "cold_p99_ms": round(percentile(cold, 99), 2),
            "warm_p50_ms": round(percentile(warm, 50), 2), "warm_p99_ms": round(percentile(warm, 99), 2),
            "mean_ms": round(statistics.mean(both), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--probe-children", type=int, default=100)
    parser.add_argument("--probe-events", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--out", default="bench/out/core.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    pref = make_prefecture()
    hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
    hub.load_orgs(pref.orgs)
    results: dict = {"database": args.database.split("@")[-1], "batch": args.batch, "phases": []}

    probe_total = args.probe_children * args.probe_events
    published, elapsed = fill(hub, event_stream(pref, args.probe_children, args.probe_events, prefix="p", seed=1),
                              probe_total, args.batch)
    probes = [f"p{i:07d}" for i in range(args.probe_children)]
    background = event_stream(pref, 10**7, 200, prefix="b", seed=2)
    in_store = published
    total_elapsed = elapsed
    for size in sizes:
        n, t = fill(hub, background, size - in_store, args.batch)
        in_store += n
        total_elapsed += t
        phase = {"events_in_store": in_store, "publish_events_per_s": round(in_store / total_elapsed)}
        phase.update(measure_reads(args.database, pref, probes))
        results["phases"].append(phase)
        print(json.dumps(phase), flush=True)
    hub.close()

    hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
    started = time.perf_counter()
    report = hub.verify()
    seconds = time.perf_counter() - started
    hub.close()
    assert report.ok, report.to_dict()
    results["replay"] = {"records": report.records, "seconds": round(seconds, 2),
                         "records_per_s": round(report.records / seconds),
                         "events_evaluated_per_s": round(report.records * args.probe_events / seconds)}
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(results["replay"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
