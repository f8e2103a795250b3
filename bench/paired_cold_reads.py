"""Cold timeline reads of two codes, paired read for read (the method of session 8 and 9, kept here since
``/tmp/read9`` is gone): the CPU of each cold read and of the named parts inside it, for main and a branch.

    TSUNAGU_KEYS_FILE=<the stores' keys> .venv/bin/python -m bench.paired_cold_reads \\
        --main-code /tmp/main --main-db 'postgresql://…?schema=core_main' \\
        --branch-code . --branch-db 'postgresql://…?schema=core_branch' --rounds 10

Method: two long-lived worker processes, one per code (``PYTHONPATH`` at the code's tree, e.g. ``git archive main``
unpacked), each on its own store filled by its own code's ``bench.core`` (the same synthetic prefecture), so that
each reads heads its own code wrote. Each round each worker makes a new hub and reads the opener (its first read:
connections, the registry, the hub's key); then each probe child is read cold by one worker and then the other,
the order alternated from child to child and round to round. Reported: the medians of ``time.process_time`` of
``Hub.timeline`` for each code, the median and mean of the paired differences (branch − main), and the medians of
the parts, inclusive: ``loading`` (``HubStore.read_child``), ``recording`` (``TimelineReader.record``) and, inside
the recording, making the record (``access_record``), its chain hash (``new_record_chain_hash``), sealing
(``SealingMapper.to_stored_event``) and opening the head (``SealingMapper.to_domain_events``), where the codes have
them. Wrapping the parts costs both codes alike. The load average at the start and end of each round."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

CHILDREN = [f"p{i:07d}" for i in range(10)]


def worker(database: str) -> None:
    """One code's worker: commands on stdin, one JSON line each (``hub``, ``read``, ``quit``); answers on stdout."""
    import events.sealing as sealing
    import services.reading.timeline as timeline
    from bench.core import NOW, SETTINGS, readers_of
    from events.store import HubStore
    from services.hub import Hub
    from services.runtime import tune_garbage_collector

    tune_garbage_collector()
    parts: dict[str, float] = {}
    recording = [False]

    def timed(owner: Any, name: str, label: str, *, inside_recording: bool = False, marks: bool = False) -> None:
        original = getattr(owner, name, None)
        if original is None:  # a part this code does not have
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if inside_recording and not recording[0]:
                return original(*args, **kwargs)
            if marks:
                recording[0] = True
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                parts[label] = parts.get(label, 0.0) + (time.process_time() - started) * 1000
                if marks:
                    recording[0] = False

        setattr(owner, name, wrapper)

    timed(timeline.TimelineReader, "record", "recording", marks=True)
    timed(timeline, "access_record", "making the record", inside_recording=True)
    timed(timeline, "new_record_chain_hash", "chain hash", inside_recording=True)
    timed(sealing.SealingMapper, "to_stored_event", "sealing", inside_recording=True)
    timed(sealing.SealingMapper, "to_domain_events", "opening the head", inside_recording=True)
    timed(HubStore, "read_child", "loading")

    readers = dict(readers_of(database, CHILDREN))
    hub = None
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "hub":
            if hub is not None:
                hub.close()
            hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
            hub.timeline(org=readers[CHILDREN[0]], role="caseworker", child="b0000000", purpose="support")
            print(json.dumps({"ok": True}), flush=True)
        elif command["op"] == "read":
            assert hub is not None
            parts.clear()
            child = command["child"]
            started = time.process_time()
            read = hub.timeline(org=readers[child], role="caseworker", child=child, purpose="support")
            cpu = (time.process_time() - started) * 1000
            assert read.allowed and len(read.entries) > 100
            print(json.dumps({"cpu": cpu, "parts": dict(parts)}), flush=True)
        else:
            break
    if hub is not None:
        hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--main-code", required=True)
    parser.add_argument("--main-db", required=True)
    parser.add_argument("--branch-code", required=True)
    parser.add_argument("--branch-db", required=True)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    codes = {"main": (args.main_code, args.main_db), "branch": (args.branch_code, args.branch_db)}
    workers = {
        name: subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", db],  # this file, the code from PYTHONPATH
            cwd=os.path.abspath(code),
            env=dict(os.environ, PYTHONPATH=os.path.abspath(code)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, (code, db) in codes.items()
    }

    def ask(name: str, command: dict[str, Any]) -> dict[str, Any]:
        process = workers[name]
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(command) + "\n")
        process.stdin.flush()
        answer: dict[str, Any] = json.loads(process.stdout.readline())
        return answer

    reads: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for name in codes:
            ask(name, {"op": "hub"})
        for i, child in enumerate(CHILDREN):
            for name in ("main", "branch") if (i + r) % 2 == 0 else ("branch", "main"):
                reads[name].append(ask(name, {"op": "read", "child": child}))
        loads.append(os.getloadavg()[0])
    for process in workers.values():
        assert process.stdin is not None
        process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        process.stdin.flush()
        process.wait()
    differences = [b["cpu"] - m["cpu"] for m, b in zip(reads["main"], reads["branch"], strict=True)]
    labels = sorted({label for name in codes for read in reads[name] for label in read["parts"]})
    print(
        json.dumps(
            {
                "reads_each": len(reads["main"]),
                "load_average": [round(min(loads), 2), round(max(loads), 2)],
                **{f"{name}_cpu_p50_ms": round(statistics.median(r["cpu"] for r in reads[name]), 2) for name in codes},
                "difference_p50_ms": round(statistics.median(differences), 2),
                "difference_mean_ms": round(statistics.mean(differences), 2),
                "parts_p50_ms (main, branch)": {
                    label: [
                        round(statistics.median(r["parts"].get(label, 0.0) for r in reads[name]), 3) for name in codes
                    ]
                    for label in labels
                },
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # a worker, started by main() with its code's tree on PYTHONPATH
        if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
            sys.path.pop(0)  # run as a file: bench/ itself is not where the code is imported from
        worker(sys.argv[2])
    else:
        main()
