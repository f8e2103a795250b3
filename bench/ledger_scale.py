"""Views at centre scale (issue 16 item 1): the progress ledger, the joint ledger and the agenda of a city's centre.

    .venv/bin/python -m bench.ledger_scale --cases 500,5000 [--database sqlite:////tmp/ledger.db]

A city (``bench/prefecture.py`` with one municipality: one こども家庭センター, 200 schools and 100 nurseries, the
児童相談所 ``jiso-0`` covering it) with ``--cases`` children, each with one open 要対協 case and about 24 events
(registration, target list, a year of monthly reports and daily attendance, concerns, notes, shares, reviews, a
plan and its consent, the 児相's ledger updates for abuse cases). Then, as the centre's caseworker through the
application service the API and the web pages call (``CaseViews``; the HTTP layer is not included), warm (each
view once before timing): the ledger's first page of 50, a filter change (open cases with alerts or concerns), a
sort change (by case number, descending), each ``--repeat`` times (p50, p95); the agenda of a meeting with about
100 cases due; the CSV of every row; the joint ledger's first page as ``jiso-0``. Every view records its reads.

Runs on the code it is imported with: on a tree without ``CaseViews.ledger`` (before issue 16) the pages are the
whole ledger (``progress_ledger``: every child read and recorded) filtered and paged as the web page did then.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bench.prefecture import JST, event_stream, make_prefecture
from consent.model import Settings
from services.casework.ledger import CaseViews
from services.hub import Hub, SettableClock

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=JST)
CENTRE, JISO = "center-442001", "jiso-0"
FIRST = {}
FILTER = {"status": "open", "alerts": "any"}
SORT = {"sort": "case", "order": "desc"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def build(database: str, cases: int) -> Hub:
    pref = make_prefecture(municipalities=1, schools_per=200, nurseries_per=100)
    hub = Hub(database, settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    hub.load_orgs(pref.orgs)
    chunk: list[dict[str, Any]] = []
    for envelope in event_stream(pref, cases, 24, prefix="city"):
        chunk.append(envelope)
        if len(chunk) == 500:
            bad = [r for r in hub.publish(chunk) if r.outcome != "accepted"]
            assert not bad, bad[0].to_dict()
            chunk = []
    if chunk:
        hub.publish(chunk)
    return hub


def page_view(views: CaseViews, org: str, params: dict[str, str], joint: bool = False) -> int:
    """One page of 50 as the web ledger shows it; how many rows it shows."""
    if hasattr(views, "ledger"):
        from services.casework.ledger_query import LedgerQuery

        return len(views.ledger(org, LedgerQuery(params), joint=joint).rows)
    from services.web.centre import PAGE_SIZE  # before: the whole ledger, then a page
    from services.web.centre import LedgerQuery as WebQuery

    whole = views.joint_ledger(org) if joint else views.progress_ledger(org)
    rows = WebQuery(params).apply(whole.rows, NOW.date())
    return len(rows[:PAGE_SIZE])


def csv_view(hub: Hub, views: CaseViews) -> int:
    from services.web.centre import ledger_csv

    if hasattr(views, "ledger"):
        from services.casework.ledger_query import LedgerQuery

        rows = views.ledger(CENTRE, LedgerQuery({}, per_page=None)).rows
    else:
        rows = views.progress_ledger(CENTRE).rows
    return len(ledger_csv(rows, lambda i: i))


def timed(call, repeat: int) -> dict[str, float]:
    call()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 95), 1)}


def meeting_day(views: CaseViews, due: int) -> date:
    """A meeting day on which about ``due`` open cases are due for review."""
    rows = views.progress_ledger(CENTRE, states={"open"}).rows
    days = sorted(date.fromisoformat(r.next_review) for r in rows)
    return days[min(due, len(days)) - 1]


def measure(database: str, cases: int, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    hub = build(database, cases)
    built = time.perf_counter() - started
    views = CaseViews(hub)
    on = meeting_day(views, 100)
    out: dict[str, Any] = {"cases": cases, "build_s": round(built, 1), "meeting_day": on.isoformat()}
    out["first_page"] = timed(lambda: page_view(views, CENTRE, FIRST), repeat)
    out["filter_change"] = timed(lambda: page_view(views, CENTRE, FILTER), repeat)
    out["sort_change"] = timed(lambda: page_view(views, CENTRE, SORT), repeat)
    agenda = views.agenda(CENTRE, on)
    out["agenda_cases"] = len(agenda.attention) + len(agenda.confirmation)
    out["agenda"] = timed(lambda: views.agenda(CENTRE, on), max(3, repeat // 4))
    out["csv_all_rows"] = timed(lambda: csv_view(hub, views), 3)
    out["joint_first_page"] = timed(lambda: page_view(views, JISO, FIRST, joint=True), repeat)
    hub.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="500,5000")
    parser.add_argument("--database", default="sqlite:////tmp/tsunagu-ledger-scale-{cases}.db")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    results = []
    for cases in [int(c) for c in args.cases.split(",")]:
        database = args.database.format(cases=cases)
        if database.startswith("sqlite:///") and not database.endswith(":memory:"):
            Path(database[len("sqlite:///") :]).unlink(missing_ok=True)
        results.append(measure(database, cases, args.repeat))
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
