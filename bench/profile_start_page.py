"""Where the start page's time goes (issue 16 item 1): ``casebook.overview`` and the page's two inquiry counts, in
this process on a copy of a store built by ``bench/ledger_scale.py``, warm, timed and then profiled with
pyinstrument (``pip install -e '.[bench]'``)::

    TSUNAGU_KEYS_FILE=… .venv/bin/python -m bench.profile_start_page --database /tmp/tsunagu-ledger-scale-5000.db
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench.ledger_scale import CENTRE, NOW
from consent.model import Settings
from events.clock import JST
from services.hub import Hub, SettableClock
from services.web import casebook
from services.web.pages import Inquiries, org_inquiries
from services.web.session import Person


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="/tmp/tsunagu-ledger-scale-5000.db", help="a SQLite file (copied)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from pyinstrument import Profiler

    built = Path(args.database)
    run = built.with_suffix(".profile.db")
    for stale in (run, Path(f"{run}-wal"), Path(f"{run}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(built, run)
    hub = Hub(f"sqlite:///{run}", settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    person = Person(name="ベンチ", subject="bench", org=CENTRE, role="caseworker", roles=("caseworker",))
    today = hub.clock().astimezone(JST).date()

    def view() -> None:  # what services.web.pages.start computes
        casebook.overview(hub, person, today)
        Inquiries(hub).overdue_count(person.org)
        sum(
            1
            for i in org_inquiries(hub.store, person.org).inquiries.values()
            if i["member"] == person.org and not i["answered_at"]
        )

    try:
        view()
        view()
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            view()
            times.append(round((time.perf_counter() - started) * 1000, 1))
        print("start page in process, ms:", times)
        profiler = Profiler(interval=0.001)
        profiler.start()
        for _ in range(3):
            view()
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
    finally:
        hub.close()


if __name__ == "__main__":
    main()
