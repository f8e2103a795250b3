"""What the hub's PostgreSQL sessions are waiting on, sampled during a load (issue 16 item 2 through HTTP: "measure
where the waiting is").

    .venv/bin/python -m bench.pg_waits postgresql://postgres@127.0.0.1:PORT/postgres --seconds 14

Every 20 ms, ``pg_stat_activity`` of the client backends (not this one) with, for each, the lock it waits for
(``pg_locks`` not granted) and the sessions blocking it (``pg_blocking_pids``). Prints, per state, wait and
statement (its first 40 characters), the mean number of backends in it over the samples, then the same for the
blocked sessions and what their blockers were doing; and a summary: backends waiting for the events table's lock,
for a stream's advisory lock, in a transaction waiting for the client (holding the events table's lock or only
the streams'), and running. Run it beside ``bench.http_saturate`` (the URL is in the bench's PostgreSQL directory,
``postmaster.pid``, line 4 the port), as ``docs/benchmarks.md`` ("The wait of two API processes") did.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter

import psycopg

SAMPLE = """
SELECT a.pid, a.state, coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''), left(a.query, 40),
       pg_blocking_pids(a.pid),
       (SELECT string_agg(DISTINCT l.locktype || ':' || l.mode, ',') FROM pg_locks l
        WHERE l.pid = a.pid AND NOT l.granted)
FROM pg_stat_activity a WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
"""
TABLE_LOCK_STATEMENTS = ("LOCK TABLE", "NOTIFY", 'INSERT INTO "public"."tsunagu_events"', "SELECT notification_id")


def one_line(query: str | None) -> str:
    return re.sub(r"\s+", " ", query or "")[:40]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=14)
    options = parser.parse_args()
    states: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    summary: Counter[str] = Counter()
    samples = 0
    with psycopg.connect(options.url, autocommit=True) as conn:
        end = time.monotonic() + options.seconds
        while time.monotonic() < end:
            rows = conn.execute(SAMPLE).fetchall()
            samples += 1
            by_pid = {row[0]: row for row in rows}
            for _pid, state, wait_type, wait, query, blockers, waiting in rows:
                if state == "idle":
                    continue
                statement = one_line(query)
                states[f"{state} | {wait_type}:{wait} | {waiting or ''} | {statement}"] += 1
                if wait == "relation" and wait_type == "Lock":
                    summary["waiting for the events table's lock"] += 1
                elif wait == "advisory":
                    summary["waiting for a stream's lock"] += 1
                elif state == "idle in transaction" and statement.startswith(TABLE_LOCK_STATEMENTS):
                    summary["in a transaction, waiting for the client, holding the events table's lock"] += 1
                elif state == "idle in transaction":
                    summary["in a transaction, waiting for the client (the streams' locks only)"] += 1
                else:
                    summary["running (or waiting for something else)"] += 1
                for blocker in blockers or []:
                    other = by_pid.get(blocker)
                    if other is not None:
                        blocked[
                            f"{waiting} blocked by [{other[1]} | {other[2]}:{other[3]} | {one_line(other[4])}]"
                        ] += 1
            time.sleep(0.02)
    print(f"samples {samples}; mean backends")
    for key, count in states.most_common(25):
        print(f"{count / samples:7.2f}  {key}")
    print("--- blocked, and what the blocker was doing")
    for key, count in blocked.most_common(15):
        print(f"{count / samples:7.2f}  {key}")
    print("--- summary")
    for key, count in summary.most_common():
        print(f"{count / samples:7.2f}  {key}")


if __name__ == "__main__":
    main()
