"""Monthly report import benchmark: a generated 100,000-row CSV through ``tsunagu import school-monthly``'s path.

    .venv/bin/python -m bench.import_monthly --database postgresql://postgres@127.0.0.1:55432/postgres
    .venv/bin/python -m bench.import_monthly --database sqlite:////tmp/bench.db --rows 5000

Method: ``--schools`` schools of one municipality, each with ``rows / schools`` listed children
(``target_list.assigned`` from the centre, published beforehand in another process and not timed). The CSV is written as schools
write it (CP932, CRLF, era months, a few full-width digits), with ``--not-listed`` of the rows (default 5%) for
children who are not on any list (counted, not stored). Timed: ``SchoolImporter.monthly`` on the file with the
hub publisher (parse, resolve through the target lists, publish in chunks of 1,000, index updates), exactly as
the CLI runs it. Then the same file again (every row unchanged: nothing published). Prints rows/s for both and
the peak RSS of the importing process (writing the file, importing it twice), as text and with ``--json`` as one
JSON object. Run it at two sizes to see whether memory is flat in the file's size.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path

from adapters.publisher import HubPublisher
from events.clock import JST
from services.hub import Hub
from services.publishing.ingest import MAX_BATCH
from services.runtime import tune_garbage_collector
from services.schools.imports import SchoolImporter

NOW = datetime(2026, 6, 5, 9, 0, tzinfo=JST)
HEADER = "学校コード,児童生徒番号,対象年月,授業日数,出席日数,欠席日数,うち連絡なし欠席日数,遅刻日数,早退日数,欠席理由,特記事項"
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def school_code(n: int) -> str:
    return f"B1442{n:08d}"


def setup(hub: Hub, schools: int, per_school: int) -> None:
    orgs = [{"id": "bench-center", "type": "municipal_center", "municipality": "442020"}]
    orgs += [
        {"id": f"bench-es-{s}", "type": "school", "municipality": "442020", "code": school_code(s)}
        for s in range(schools)
    ]
    hub.load_orgs(orgs)
    batch: list[dict] = []
    for s in range(schools):
        for n in range(per_school):
            # Policy version 2: only the centre of the child's residence lists it, so the child is registered first.
            batch.append(
                {
                    "id": f"bench-reg-{s}-{n}",
                    "kind": "child.registered",
                    "child": f"bench-c-{s}-{n}",
                    "source": "bench-center",
                    "basis": "internal",
                    "at": "2026-04-01T08:00:00+09:00",
                    "payload": {"residence": "442020"},
                }
            )
            batch.append(
                {
                    "id": f"bench-list-{s}-{n}",
                    "kind": "target_list.assigned",
                    "child": f"bench-c-{s}-{n}",
                    "source": "bench-center",
                    "basis": "cwa-25-3",
                    "to": f"bench-es-{s}",
                    "at": "2026-04-01T09:00:00+09:00",
                    "payload": {"school": f"bench-es-{s}", "student_no": f"{n:06d}", "from_month": "2026-04"},
                }
            )
            if len(batch) >= MAX_BATCH:
                _publish_all(hub, batch)
                batch = []
    if batch:
        _publish_all(hub, batch)


def _publish_all(hub: Hub, batch: list[dict]) -> None:
    """Publish the setup's ``batch``; the benchmark means nothing if any of it is refused."""
    refused = [r for r in hub.publish(batch) if r.outcome != "accepted"]
    if refused:
        raise SystemExit(f"benchmark setup refused: {refused[0]}")


def setup_elsewhere(database: str, schools: int, per_school: int) -> None:
    """``setup`` in a process of its own, so that the importing process's peak memory is the import's alone."""
    tune_garbage_collector()
    hub = Hub(database, clock=lambda: NOW)
    try:
        setup(hub, schools, per_school)
    finally:
        hub.close()


def write_file(path: Path, schools: int, per_school: int, not_listed: float) -> int:
    rows = 0
    extra_every = int(1 / not_listed) if not_listed > 0 else 0
    with path.open("w", encoding="cp932", newline="") as f:
        f.write(HEADER + "\r\n")
        for s in range(schools):
            for n in range(per_school):
                absent = n % 6
                days = f"19,{19 - absent},{absent},{absent // 2},{n % 3},0"
                if n % 10 == 0:
                    days = days.translate(FULL_WIDTH)
                note = "服装の汚れが続く" if n % 50 == 0 else ""
                f.write(f"{school_code(s)},{n:06d},令和8年5月,{days},体調不良,{note}\r\n")
                rows += 1
                if extra_every and rows % extra_every == 0:
                    f.write(f"{school_code(s)},X{n:06d},R8.5,19,19,0,0,,,,\r\n")
                    rows += 1
    return rows


def main() -> None:
    tune_garbage_collector()  # as every tsunagu command does (services/runtime.py)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="sqlite:///FILE or postgresql://… (should be empty)")
    parser.add_argument("--rows", type=int, default=100_000, help="listed rows in the file (default 100,000)")
    parser.add_argument("--schools", type=int, default=100)
    parser.add_argument("--not-listed", type=float, default=0.05, help="share of extra rows for unlisted children")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    per_school = max(1, args.rows // args.schools)

    started = time.perf_counter()
    setting_up = multiprocessing.get_context("spawn").Process(
        target=setup_elsewhere, args=(args.database, args.schools, per_school)
    )
    setting_up.start()
    setting_up.join()
    if setting_up.exitcode != 0:
        raise SystemExit(f"setting up the target lists failed (exit {setting_up.exitcode})")
    setup_seconds = time.perf_counter() - started
    hub = Hub(args.database, clock=lambda: NOW)
    try:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "monthly.csv"
            rows = write_file(path, args.schools, per_school, args.not_listed)
            size = path.stat().st_size
            importer = SchoolImporter(hub.store, HubPublisher(hub), now=NOW)
            started, cpu = time.perf_counter(), time.process_time()
            first = importer.monthly(path, name=path.name)
            first_seconds, first_cpu = time.perf_counter() - started, time.process_time() - cpu
            started = time.perf_counter()
            again = importer.monthly(path, name=path.name)
            again_seconds = time.perf_counter() - started
    finally:
        hub.close()
    result = {
        "database": args.database.split("@")[-1],
        "rows": rows,
        "file_bytes": size,
        "schools": args.schools,
        "setup_seconds": round(setup_seconds, 2),
        "import": {
            "seconds": round(first_seconds, 2),
            "rows_per_second": round(rows / first_seconds),
            "cpu_us_per_row": round(first_cpu / rows * 1e6),
            "accepted": first.accepted,
            "not_listed": first.not_listed,
            "rejected": first.rejected_total,
        },
        "resend": {
            "seconds": round(again_seconds, 2),
            "rows_per_second": round(rows / again_seconds),
            "unchanged": again.unchanged,
            "accepted": again.accepted,
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    assert first.accepted == per_school * args.schools and first.rejected_total == 0, first.to_dict()
    assert again.unchanged == first.accepted and again.accepted == 0, again.to_dict()
    if args.json:
        print(json.dumps(result))
        return
    print(f"{rows} rows ({size / 1e6:.1f} MB, {args.schools} schools) on {result['database']}")
    print(f"  setup (target lists, not timed): {setup_seconds:.1f} s")
    print(
        f"  import: {first_seconds:.1f} s, {result['import']['rows_per_second']} rows/s "
        f"(accepted {first.accepted}, not listed {first.not_listed})"
    )
    print(
        f"  resend: {again_seconds:.1f} s, {result['resend']['rows_per_second']} rows/s (unchanged {again.unchanged})"
    )
    print(f"  peak RSS: {result['peak_rss_mb']} MB")
    print(
        f"  this process's CPU: {result['import']['cpu_us_per_row']} µs per row; load average {result['load_average']}"
    )


if __name__ == "__main__":
    main()
