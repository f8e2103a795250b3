"""What the view log costs (security review, issue 16): the bytes written per view, and what a child's audit
(``Auditing.reads_of_child``, the 開示 report) costs, on a store with many views of many children.

    TSUNAGU_KEYS_FILE=/tmp/vlc-keys.pem .venv/bin/python -m bench.view_log_cost --cases 2000 --views 200

Builds (once; ``--reuse`` after) the city of ``bench/ledger_scale.py`` with ``--cases`` open cases, copies it, and
makes ``--views`` ledger pages of 50 rows as the centre's caseworker (each consults every child of the centre and
shows 50; pages 1, 2, … in turn, so the shown children vary), in this process. Then: the bytes of the view log's events
the views stored (the view records, and the consulted sets where they exist), per view; and
the time of ``reads_of_child`` and ``disclosure_report`` for a child counted by every view and shown by few,
``--repeat`` times (median); ``audit verify --child`` of that child (``verify(store, child=…)``, median); and one
``audit verify`` of the whole store (``--no-verify``: not, for the big stores). Runs on the code it is imported with
(copy it into an older tree to compare). On the stores of ``bench/ledger_scale.py``:
``--database /tmp/tsunagu-ledger-scale-{cases}.db --reuse``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from bench.ledger_scale import CENTRE, NOW, build
from consent.model import Settings
from services.audit.queries import Period
from services.audit.replay import verify
from services.audit.service import Auditing
from services.audit.trail import Actor
from services.casework.ledger import CaseViews
from services.casework.ledger_query import LedgerQuery
from services.hub import Hub, SettableClock


def written(hub: Hub, after: int) -> tuple[int, int]:
    """(bytes, events) of the view log (view records, consulted sets) stored after notification ``after``."""
    size = count = 0
    start = after + 1
    while True:
        page = hub.store.recorder.select_notifications(start, 500)
        for n in page:
            if n.topic.startswith("services.reading.view_log:"):
                size += len(n.state)
                count += 1
        if len(page) < 500:
            return size, count
        start = page[-1].id + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", default="/tmp/tsunagu-view-log-{cases}.db")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--no-verify", action="store_true", help="skip the whole store's verify")
    args = parser.parse_args()
    built = Path(args.database.format(cases=args.cases))
    if not args.reuse:
        built.unlink(missing_ok=True)
        build(f"sqlite:///{built}", args.cases)
    run = built.with_suffix(".run.db")
    for stale in (run, Path(f"{run}-wal"), Path(f"{run}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(built, run)
    hub = Hub(f"sqlite:///{run}", settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    views = CaseViews(hub)
    pages = max(1, args.cases // 50)
    first = views.ledger(CENTRE, LedgerQuery({"page": "1", "per_page": "50"}), role="caseworker", user="bench")
    before = hub.store.log_position()
    started = time.perf_counter()
    for n in range(args.views):
        query = LedgerQuery({"page": str(2 + n % (pages - 1)), "per_page": "50"})
        views.ledger(CENTRE, query, role="caseworker", user="bench")
    views_s = time.perf_counter() - started
    size, events = written(hub, before)
    child = first.rows[0].child  # shown by the first page only, counted by every view
    auditing = Auditing(hub.store, hub.clock)
    actor = Actor("bench-audit", "bench", "cli")
    reads, report, one = [], [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        child_verified = verify(hub.store, child=child)
        one.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        found = auditing.reads_of_child(child, Period(), actor=actor)
        reads.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        disclosed = auditing.disclosure_report(child, actor=actor)
        report.append((time.perf_counter() - t) * 1000)
    lines = sum(len(o.consulted) for o in disclosed.organisations)
    t = time.perf_counter()
    verified = None if args.no_verify else hub.verify()
    verify_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "cases": args.cases,
                "views": args.views,
                "view_ms": round(views_s * 1000 / args.views, 1),
                "bytes_per_view": size // args.views,
                "events_stored": events,
                "reads_of_child_ms": round(statistics.median(reads), 1),
                "disclosure_ms": round(statistics.median(report), 1),
                "consulted_found": len(found.consulted),
                "disclosure_lines": lines,
                "verify_child_ms": round(statistics.median(one), 1),
                "verify_child_ok": child_verified.ok,
                "verify_child_view_records": child_verified.view_records,
                "log_position": hub.store.log_position(),
                **(
                    {}
                    if verified is None
                    else {"verify_s": round(verify_s, 1), "verify_ok": verified.ok, "access_records": verified.records}
                ),
            }
        ),
        flush=True,
    )
    hub.close()


if __name__ == "__main__":
    main()
