"""Core benchmarks (issue 2): publish throughput, timeline read latency at two store sizes, replay throughput.

    .venv/bin/python -m bench.core --database postgresql://postgres@127.0.0.1:55432/postgres --sizes 10000,1000000

Method: a synthetic prefecture (bench/prefecture.py). First ``--probe-children`` children with exactly
``--probe-events`` events each are published, then background children (200 events each) until the store holds
the first size; reads are measured; the store is filled to the next size and reads are measured again. Publishing
goes through ``Hub.publish`` (validation, admission, the register of envelope ids, one transaction per batch), reads through
``Hub.timeline`` (policy + access record appended before returning), replay through ``audit.verify``. The HTTP
layer is not included. Each read phase runs in a process of its own (as the API runs beside the ingest worker;
``--reads-in-this-process`` reads in the publishing process instead) with a new hub (empty aggregate cache):
one read of a background child (the process's first read: registry, connections; reported apart), then every
probe child once cold (its stream is loaded from the database) and ``--warm-reads`` times warm. p50/p99 are over
all those reads. Python's garbage collector pauses during reads are recorded (``slowest_read_gc_ms``), and the slowest
read's CPU time and start (``slowest_read_cpu_ms``, ``slowest_read_began``, UTC): a read whose CPU is far below its
time waited, and its start can be matched against the server's log (checkpoints are logged with their times).

``--publishers M`` (M > 1): the background fill to each size is published by M processes at once, as M ingest
workers of one consumer group would (each its own children: prefix ``m<size index><worker>``, its own seed; one
``Hub`` each, on the same database); they start together (a barrier, after opening their hubs) and the phase's
``fill_events_per_s`` is its events over the time from the first start to the last finish. The probe children are
published first by this process alone, as with M = 1, and are not in that figure. ``fill_cpu_us_per_event`` is
the M processes' CPU together; with ``--postgres-data DIR`` (the cluster's data directory, on this machine)
``server_cpu_us_per_event`` is the server's (the postmaster and its backends, from ``/proc``) over the same
time. With M = 1 nothing changes (``fill_*`` are reported for the background fill of this process too).
``--partition`` says which children each publisher gets, as the consumer group's partition key would:
``children`` (default: any child of any municipality, so every publisher writes to every centre's shared indexes:
the service desks, the municipal months, the published children) or ``municipality`` (publisher k only children
of every M-th municipality, from the k-th: a centre's indexes are written by one publisher, the 児童相談所's and the
health centre's by several). ``conflicts`` counts the publishes that lost a race and were tried again, ``busy``
the batches that lost them for the whole time budget (``events.retry``: ``Busy``), which a publisher here takes
again after the pause, as the Kafka worker does (``services.feeds.kafka_worker``); their CPU is counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import resource
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.prefecture import JST, event_stream, make_prefecture
from consent.model import Settings
from events.problems import Busy
from events.retry import _RETRYING
from events.store import ChildRecord
from services.hub import Hub
from services.runtime import tune_garbage_collector

SETTINGS = Settings(joint_ledger=True)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=JST)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


CPU = {"publish": 0.0}  # this process's CPU seconds spent in Hub.publish (the database server's are not counted)
# this process's publishes tried again after losing a race (events.retry's statistics), and given up as Busy
CONFLICTS = {"retried": 0, "busy": 0}


def server_cpu_seconds(data_dir: str | None) -> float:
    """The CPU seconds of a PostgreSQL cluster on this machine so far: its postmaster's own and those of its
    children, running (``/proc/<pid>/stat``) and exited (the postmaster's ``cutime`` and ``cstime``); 0 without a
    data directory."""
    if not data_dir:
        return 0.0
    postmaster = Path(data_dir, "postmaster.pid").read_text().split()[0]
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile (its time is in the postmaster's cutime once reaped)
            continue
        pid, ppid = stat.parent.name, fields[1]
        if pid == postmaster:
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def publish_share(
    database: str, prefix: str, seed: int, count: int, batch: int, municipalities: list[str] | None, start, results
) -> None:
    """One of ``fill_in_processes``' publishers: its own children (``prefix``; of ``municipalities`` only, when
    given), ``count`` events, in a hub of its own; waits at ``start`` for the others, then reports (events, first
    moment, last moment, its CPU seconds, conflicts) or, if it fails, the error."""
    try:
        tune_garbage_collector()
        pref = make_prefecture()
        if municipalities is not None:
            pref.municipalities = municipalities
        hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
        start.wait()
        began, cpu = time.time(), time.process_time()
        published, _ = fill(hub, event_stream(pref, 10**7, 200, prefix=prefix, seed=seed), count, batch)
        results.put((published, began, time.time(), time.process_time() - cpu, CONFLICTS["retried"], CONFLICTS["busy"]))
        hub.close()
    except BaseException as error:  # noqa: BLE001 (reported to the parent, which would otherwise wait for ever)
        start.abort()
        results.put(f"{type(error).__name__}: {error}")
        raise


def fill_in_processes(
    database: str, count: int, publishers: int, batch: int, phase: int, data_dir: str | None, partition: str
) -> dict:
    """Publish ``count`` background events with ``publishers`` processes at once (see the module): events, the
    seconds from the first start to the last finish, the publishers' CPU seconds and the server's, and how many
    publishes were tried again."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(publishers + 1), context.Queue()
    shares = [count // publishers + (k < count % publishers) for k in range(publishers)]
    codes = make_prefecture().municipalities
    workers = [
        context.Process(
            target=publish_share,
            args=(
                database,
                f"m{phase}{k}",
                100 + 10 * phase + k,
                shares[k],
                batch,
                codes[k::publishers] if partition == "municipality" else None,
                start,
                results,
            ),
        )
        for k in range(publishers)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    server = server_cpu_seconds(data_dir)
    done = [results.get() for _ in workers]
    server = server_cpu_seconds(data_dir) - server
    for worker in workers:
        worker.join()
    failed = [d for d in done if isinstance(d, str)]
    if failed:
        raise SystemExit(f"a publisher failed: {failed[0]}")
    return {
        "events": sum(d[0] for d in done),
        "seconds": max(d[2] for d in done) - min(d[1] for d in done),
        "cpu": sum(d[3] for d in done),
        "server_cpu": server,
        "conflicts": sum(d[4] for d in done),
        "busy": sum(d[5] for d in done),
    }


def fill(hub: Hub, stream, count: int, batch: int) -> tuple[int, float]:
    published, elapsed, chunk = 0, 0.0, []
    for envelope in stream:
        chunk.append(envelope)
        if len(chunk) == batch or published + len(chunk) == count:
            started, cpu = time.perf_counter(), time.process_time()
            while True:
                try:
                    results = hub.publish(chunk)
                    break
                except Busy as busy:  # the batch lost its races for the whole budget: as the Kafka worker does
                    CONFLICTS["busy"] += 1  # (services.feeds.kafka_worker), taken again after the pause
                    time.sleep(busy.retry_after)
                finally:
                    CONFLICTS["retried"] += _RETRYING.statistics.get("attempt_number", 1) - 1  # this thread's last
            elapsed += time.perf_counter() - started
            CPU["publish"] += time.process_time() - cpu
            bad = [r for r in results if r.outcome != "accepted"]
            if bad:
                raise SystemExit(f"benchmark data rejected: {bad[0]}")
            published += len(chunk)
            chunk = []
            if published >= count:
                break
    return published, elapsed


class GcPauses:
    """Python's garbage collector pauses (``gc.callbacks``), to tell a slow read from a collection during it."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def since(self, mark: int) -> float:
        return sum(seconds for _, seconds in self.pauses[mark:])


GC = GcPauses()


def readers_of(database: str, probes: list[str]) -> list[tuple[str, str]]:
    """Each probe child with its centre (the source of its registration), learnt in a hub of its own, so that the
    hub that measures has loaded nothing."""
    hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
    try:
        return [(child, hub.store.peek(ChildRecord.create_id(child)).entries[0].source) for child in probes]
    finally:
        hub.close()


def measure_reads_elsewhere(database: str, readers: list[tuple[str, str]], warm_reads: int, opener: str) -> dict:
    """``measure_reads`` in a new process, as the API runs beside the ingest worker: its memory holds what it
    read, not the publisher's cache."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(measure_reads, (database, readers, warm_reads, opener))


def measure_reads(database: str, readers: list[tuple[str, str]], warm_reads: int, opener: str) -> dict:
    """A new hub (a process that has read nothing: empty aggregate cache) reads ``opener`` once (its first read
    also loads the registry, opens database connections and unwraps the hub's key; reported apart), then each
    probe child once cold (its stream loaded from the database) and ``warm_reads`` times warm."""
    tune_garbage_collector()
    hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
    started = time.perf_counter()
    hub.timeline(org=readers[0][1], role="caseworker", child=opener, purpose="support")
    first_read_ms = (time.perf_counter() - started) * 1000
    cold, warm = [], []
    cpu: dict[int, list[float]] = {id(cold): [], id(warm): []}  # this process's CPU ms per read
    # the slowest read: ms, of which garbage collection ms, this process's CPU ms, when it began (UTC, to match
    # against the server's log: a checkpoint's lines carry their times), cold or warm
    slowest: tuple[float, float, float, str, str] = (0.0, 0.0, 0.0, "", "")
    for child, center in readers:
        for bucket in [cold] + [warm] * warm_reads:
            mark = len(GC.pauses)
            began = datetime.now(UTC).isoformat(timespec="milliseconds")
            started, cpu_started = time.perf_counter(), time.process_time()
            timeline = hub.timeline(org=center, role="caseworker", child=child, purpose="support")
            bucket.append((time.perf_counter() - started) * 1000)
            cpu[id(bucket)].append((time.process_time() - cpu_started) * 1000)
            kind = "cold" if bucket is cold else "warm"
            slowest = max(slowest, (bucket[-1], GC.since(mark) * 1000, cpu[id(bucket)][-1], began, kind))
            assert timeline.allowed and len(timeline.entries) > 100
    hub.close()
    both = cold + warm
    return {
        "reads": len(both),
        "p50_ms": round(percentile(both, 50), 2),
        "p99_ms": round(percentile(both, 99), 2),
        "cold_p50_ms": round(percentile(cold, 50), 2),
        "cold_p99_ms": round(percentile(cold, 99), 2),
        "warm_p50_ms": round(percentile(warm, 50), 2),
        "warm_p99_ms": round(percentile(warm, 99), 2),
        "cold_cpu_p50_ms": round(percentile(cpu[id(cold)], 50), 2),
        "warm_cpu_p50_ms": round(percentile(cpu[id(warm)], 50), 2),
        "mean_ms": round(statistics.mean(both), 2),
        "first_read_after_start_ms": round(first_read_ms, 2),
        "slowest_read_ms": round(slowest[0], 2),
        "slowest_read_gc_ms": round(slowest[1], 2),
        "slowest_read_cpu_ms": round(slowest[2], 2),  # far below its ms: it waited (a lock, the server's I/O)
        "slowest_read_began": slowest[3],
        "slowest_read_was": slowest[4],
        "objects_tracked_by_gc": len(gc.get_objects()),
    }


def main() -> None:
    tune_garbage_collector()  # as every tsunagu command does (services/runtime.py)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--probe-children", type=int, default=20)
    parser.add_argument("--probe-events", type=int, default=500)
    parser.add_argument("--warm-reads", type=int, default=9, help="warm reads of each probe child after its cold one")
    parser.add_argument(
        "--reads-in-this-process",
        action="store_true",
        help="read in the publishing process (its cache full of what it published) instead of in "
        "a process of their own",
    )
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--read-phases",
        type=int,
        default=1,
        help="read phases at each size, each in a new process (the second and later: a restarted API process, "
        "which finds what earlier processes left in the store, such as the children's snapshots)",
    )
    parser.add_argument(
        "--reads-only",
        action="store_true",
        help="publish nothing: measure the read phases on the store as it is (filled by an earlier run with the "
        "same --probe-children), to alternate two versions of the code on one store",
    )
    parser.add_argument(
        "--publishers",
        type=int,
        default=1,
        help="processes publishing the background fill at once, each its own children (M ingest workers)",
    )
    parser.add_argument(
        "--postgres-data",
        help="the PostgreSQL cluster's data directory on this machine: report its CPU during the fill",
    )
    parser.add_argument(
        "--partition",
        choices=["children", "municipality"],
        default="children",
        help="with --publishers: each publisher any children, or only those of its own municipalities",
    )
    parser.add_argument("--out", default="bench/out/core.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    results: dict = {"database": args.database.split("@")[-1], "batch": args.batch, "phases": []}
    probes = [f"p{i:07d}" for i in range(args.probe_children)]
    if args.reads_only:
        hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
        stored = hub.store.log_position()
        hub.close()
        for n in range(args.read_phases):
            phase = {
                "stored_events": stored,
                "read_phase": n + 1,
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
            phase.update(
                measure_reads_elsewhere(args.database, readers_of(args.database, probes), args.warm_reads, "b0000000")
            )
            results["phases"].append(phase)
            print(json.dumps(phase), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
        return

    pref = make_prefecture()
    hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
    hub.load_orgs(pref.orgs)

    probe_total = args.probe_children * args.probe_events
    published, elapsed = fill(
        hub, event_stream(pref, args.probe_children, args.probe_events, prefix="p", seed=1), probe_total, args.batch
    )
    background = event_stream(pref, 10**7, 200, prefix="b", seed=2)
    opener = "b0000000" if args.publishers == 1 else "m000000000"  # the first background child
    in_store = published
    total_elapsed = elapsed
    for index, size in enumerate(sizes):
        if args.publishers == 1:
            cpu, server, retried, busy = (
                CPU["publish"],
                server_cpu_seconds(args.postgres_data),
                CONFLICTS["retried"],
                CONFLICTS["busy"],
            )
            n, t = fill(hub, background, size - in_store, args.batch)
            filled: dict[str, float] = {"events": n, "seconds": t, "cpu": CPU["publish"] - cpu}
            filled["server_cpu"] = server_cpu_seconds(args.postgres_data) - server
            filled["conflicts"] = CONFLICTS["retried"] - retried
            filled["busy"] = CONFLICTS["busy"] - busy
        else:
            filled = fill_in_processes(
                args.database, size - in_store, args.publishers, args.batch, index, args.postgres_data, args.partition
            )
            n, t = int(filled["events"]), filled["seconds"]
            CPU["publish"] += filled["cpu"]
        in_store += n
        total_elapsed += t
        phase = {
            "events_in_store": in_store,
            "publishers": args.publishers,
            "partition": args.partition if args.publishers > 1 else None,
            "conflicts": int(filled["conflicts"]),
            "busy": int(filled["busy"]),
            "publish_events_per_s": round(in_store / total_elapsed),
            "publish_cpu_us_per_event": round(CPU["publish"] / in_store * 1e6),
            "fill_events": n,
            "fill_events_per_s": round(n / t) if t else None,
            "fill_cpu_us_per_event": round(filled["cpu"] / n * 1e6, 1) if n else None,
            "server_cpu_us_per_event": round(filled["server_cpu"] / n * 1e6, 1) if n and args.postgres_data else None,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        measure = measure_reads if args.reads_in_this_process else measure_reads_elsewhere
        for n in range(args.read_phases):
            measured = dict(phase, read_phase=n + 1)
            measured.update(measure(args.database, readers_of(args.database, probes), args.warm_reads, opener=opener))
            measured["reads_in"] = "the publishing process" if args.reads_in_this_process else "a process of their own"
            results["phases"].append(measured)
            print(json.dumps(measured), flush=True)
    hub.close()

    hub = Hub(args.database, settings=SETTINGS, clock=lambda: NOW)
    started = time.perf_counter()
    report = hub.verify()
    seconds = time.perf_counter() - started
    hub.close()
    assert report.ok, report.to_dict()
    results["replay"] = {
        "records": report.records,
        "seconds": round(seconds, 2),
        "records_per_s": round(report.records / seconds),
        "events_evaluated_per_s": round(report.records * args.probe_events / seconds),
    }
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(results["replay"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
