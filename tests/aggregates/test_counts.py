"""The planners' counts (issue 17 §1): kept in step with the log, equal to the figures rebuilt from the log, and
equal to a count made directly from the accepted events of a random world (hypothesis) by an oracle written
here on its own."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.clock import JST
from events.sealing import DataKeys
from services.aggregates import figures as figures_module
from services.aggregates.figures import (
    correct,
    erased_lines,
    kept,
    month_range,
    placed,
    rebuild,
    resolve_levels,
)
from services.hub import Hub
from services.projections.municipal_counts import CASE_GROUPS, MunicipalMonth, ReportLines, report_line_key
from tests.consent.test_policy_properties import PROPERTY_SETTINGS

pytestmark = pytest.mark.store

ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "cB", "type": "municipal_center", "municipality": "100002", "prefecture": "10"},
    {"id": "cC", "type": "municipal_center", "municipality": "100003", "prefecture": "10"},
    {"id": "s1", "type": "school", "regime": "public", "municipality": "100001"},
    {"id": "n1", "type": "nursery", "regime": "private"},
    {"id": "h1", "type": "health_center", "regime": "public"},
    {"id": "jA", "type": "child_guidance_center", "prefecture": "10", "covers": ["100001", "100002", "100003"]},
]
CENTRES = {"cA": "100001", "cB": "100002", "cC": "100003"}
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
CHILDREN = ["c1", "c2", "c3", "c4", "c5"]


def at(day: int) -> str:
    return (T0 + timedelta(days=day)).isoformat()


def registrations(homes: dict[str, str]) -> list[dict[str, Any]]:
    """Each child of ``homes`` registered by its home centre, in that centre's municipality."""
    return [
        {
            "id": f"r-{child}",
            "kind": "child.registered",
            "child": child,
            "source": home,
            "basis": "internal",
            "at": at(0),
            "payload": {"residence": CENTRES[home]},
        }
        for child, home in homes.items()
    ]


@st.composite
def event_of(draw: Any, n: int, homes: dict[str, str], kinds: list[str] | None = None) -> dict[str, Any]:
    child = draw(st.sampled_from(CHILDREN))
    home = homes[child]
    case = draw(st.sampled_from(["K1", "K2", "K3", "K4"]))
    kind = draw(
        st.sampled_from(
            kinds
            or [
                "case.registered",
                "case.reviewed",
                "case.closed",
                "case.transferred",
                "concern.reported",
                "absence.alert",
                "plan.created",
                "plan.revised",
                "emergency.declared",
                "target_list.assigned",
                "target_list.removed",
                "attendance.monthly",
                "attendance.monthly",
            ]
        )
    )
    raw: dict[str, Any] = {"id": f"e{n}", "kind": kind, "child": child, "source": home, "basis": "internal"}
    raw["at"] = at(draw(st.integers(0, 150)))
    if kind == "case.registered":
        raw["payload"] = {
            "case": case,
            "category": draw(st.sampled_from(["youhogo", "youshien", "tokutei_ninpu"])),
            "case_type": draw(st.sampled_from(sorted(CASE_GROUPS))),
        }
    elif kind == "case.reviewed":
        raw["payload"] = {"case": case, "decision": "継続"}
        next_review = draw(st.none() | st.integers(0, 200), label="next review")
        if next_review is not None:
            raw["payload"]["next_review"] = (T0 + timedelta(days=next_review)).date().isoformat()
    elif kind == "case.closed":
        raw["payload"] = {"case": case, "reason": "改善", "meeting": "M"}
    elif kind == "case.transferred":
        raw["payload"] = {"case": case, "to": draw(st.sampled_from(sorted(set(CENTRES) - {home})))}
    elif kind == "concern.reported":
        raw |= {"source": draw(st.sampled_from(["s1", "n1", "h1"])), "basis": "cwa-21-10-5", "to": home}
        raw["payload"] = {"summary": "気づき"}
    elif kind == "absence.alert":
        raw |= {"source": "s1", "basis": "cwa-25-3", "to": home}
        raw["payload"] = {"reason": draw(st.sampled_from(["consecutive_absence", "no_contact", "injury"]))}
    elif kind == "plan.created":
        raw["payload"] = {"plan": f"P{child}", "version": 1, "wishes": "w", "issues": "i", "supports": "s"}
    elif kind == "plan.revised":
        version = draw(st.integers(2, 4))
        raw["payload"] = {"plan": f"P{child}", "version": version, "wishes": "w", "issues": "i", "supports": "s"}
    elif kind.startswith("target_list."):
        raw |= {"to": "s1", "basis": "cwa-25-3"}
        raw["payload"] = {"school": "s1", "student_no": f"{child}-{draw(st.integers(1, 2))}"}
        from_month = draw(st.sampled_from([None, "2026-04", "2026-05", "2026-07"]), label="from month")
        if from_month:
            raw["payload"]["from_month"] = from_month
    elif kind == "attendance.monthly":
        raw |= {"source": "s1", "to": home, "basis": "cwa-25-3"}
        month = draw(st.sampled_from(["2026-04", "2026-05", "2026-06", "2026-07", "2026-08"]), label="month")
        raw["payload"] = {"month": month, "school_days": 20, "attended": 20, "absent": 0, "absent_without_contact": 0}
    else:
        raw["payload"] = {"reason": "緊急"}
    return raw


def jst(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(JST)


def month_end(month: str) -> date:
    year, m = int(month[:4]), int(month[5:])
    return date(year + (m == 12), m % 12 + 1, 1) - timedelta(days=1)


class Oracle:
    """The counts of a few measures, straight from the accepted events: flows per month, and the levels at the
    end of any month asked for, found by looking at every case at that instant."""

    def __init__(self, accepted: list[dict[str, Any]]):
        self.flows = flows(accepted, self)

    waits: list[tuple[str, date, datetime | None]]  # (municipality, first day overdue, end of the wait or None)
    opened: list[tuple[str, datetime, datetime | None]]  # (municipality, registered, closed or transferred)

    lines: dict[tuple[str, str], dict[str, Any]]  # (child, centre) -> {listings: [...], received: {month: day}}

    def levels(self, where: str, month: str) -> dict[str, int]:
        end = month_end(month)
        overdue = sum(
            1 for w, start, stop in self.waits if w == where and start <= end and (stop is None or stop.date() > end)
        )
        out = {"reviews.overdue": overdue, "reports.expected": 0, "reports.on_time": 0, "reports.late": 0}
        out["reports.missing"] = 0
        for (_, centre), line in self.lines.items():
            if CENTRES[centre] != where:
                continue
            for listing in line["listings"]:
                covers = [m for m in month_range("2026-01", month) if listing["from"] <= m < (listing["end"] or "9")]
                if month in covers:
                    out["reports.expected"] += 1
                    came = line["received"].get(month)
                    if came is not None:
                        after = month_range(month, "2027-12")[1]
                        on_time = came.strftime("%Y-%m") <= month or (
                            came.strftime("%Y-%m") == after and came.day <= 10
                        )
                        out["reports.on_time" if on_time else "reports.late"] += 1
                # missing at the end of ``month``: a covered month before it, its report not come by then
                out["reports.missing"] += sum(
                    1 for m in covers if m < month and (m not in line["received"] or line["received"][m] > end)
                )
        return out

    def months(self, where: str) -> dict[str, dict[str, int]]:
        return {m: c for (w, m), c in self.flows.items() if w == where}


def flows(accepted: list[dict[str, Any]], found: Oracle) -> dict[tuple[str, str], dict[str, int]]:
    """The flows (and ``open``'s changes) per (municipality, month); the waits for reviews into ``found``."""
    flows: dict[tuple[str, str], dict[str, int]] = {}
    cases: dict[str, dict[str, Any]] = {}
    plans: dict[str, dict[str, Any]] = {}
    found.waits = []
    found.opened = []
    found.lines = {}

    def wait(case: dict[str, Any], since: datetime, decided: str | None) -> None:
        due = date.fromisoformat(decided) if decided else (since + timedelta(days=91)).date()
        case["wait"] = len(found.waits)
        found.waits.append((case["where"], due + timedelta(days=1), None))

    def stop(case: dict[str, Any], at: datetime) -> None:
        where, start, _ = found.waits[case["wait"]]
        found.waits[case["wait"]] = (where, start, at)

    def add(where: str, month: str, key: str, n: int = 1) -> None:
        cell = flows.setdefault((where, month), {})
        cell[key] = cell.get(key, 0) + n

    for raw in accepted:
        when = jst(raw["at"])
        month = when.strftime("%Y-%m")
        kind, payload = raw["kind"], raw["payload"]
        if kind == "case.registered" and payload["case"] not in cases:
            cases[payload["case"]] = {
                "where": CENTRES[raw["source"]],
                "by": raw["source"],
                "state": "open",
                "rev": "",
                "since": when,
            }
            wait(cases[payload["case"]], when, None)
            add(CENTRES[raw["source"]], month, "cases.registered")
            add(CENTRES[raw["source"]], month, "open", 1)
        elif kind.startswith("case.") and kind != "case.registered":
            case = cases.get(payload["case"])
            if case is None or case["by"] != raw["source"] or case["state"] != "open":
                continue
            if kind == "case.reviewed":
                if case["rev"] != month:
                    case["rev"] = month
                    add(case["where"], month, "reviews.cases")
                days = (when.date() - case["since"].date()).days
                if days >= 0:
                    add(case["where"], month, "reviews.intervals")
                    add(case["where"], month, f"reviews.interval:days={days}")
                case["since"] = when
                stop(case, when)
                wait(case, when, payload.get("next_review"))
            elif kind == "case.closed":
                stop(case, when)
                case["state"] = "closed"
                add(case["where"], month, "cases.closed")
                add(case["where"], month, "open", -1)
            elif kind == "case.transferred":
                stop(case, when)
                case["state"] = "transferred"
                add(case["where"], month, "transfers.sent")
                add(case["where"], month, "open", -1)
                add(CENTRES[payload["to"]], month, "cases.transferred_in")
        elif kind.startswith("target_list."):
            line = found.lines.setdefault((raw["child"], raw["source"]), {"listings": [], "received": {}})
            number = payload["student_no"]
            open_one = [x for x in line["listings"] if x["number"] == number and x["end"] is None]
            if kind == "target_list.assigned":  # a new listing replaces the open one of the number
                line["listings"] = [x for x in line["listings"] if x not in open_one]
                line["listings"].append({"number": number, "from": payload.get("from_month") or month, "end": None})
            else:
                for x in open_one:
                    x["end"] = month
        elif kind == "attendance.monthly":
            line = found.lines.setdefault((raw["child"], raw["to"]), {"listings": [], "received": {}})
            line["received"].setdefault(payload["month"], when.date())
        elif kind == "concern.reported":
            add(CENTRES[raw["to"]], month, "concerns")
        elif kind == "absence.alert":
            add(CENTRES[raw["to"]], month, f"alerts:reason={payload['reason']}")
        elif kind == "plan.created":
            add(CENTRES[raw["source"]], month, "plans.created")
            if payload["plan"] not in plans:
                plans[payload["plan"]] = {"at": when, "by": raw["source"], "reviewed": False}
                add(CENTRES[raw["source"]], (when + timedelta(days=91)).strftime("%Y-%m"), "plans.review_due")
        elif kind == "plan.revised":
            plan = plans[payload["plan"]]
            if not plan["reviewed"] and plan["at"] <= when <= plan["at"] + timedelta(days=91):
                plan["reviewed"] = True
                deadline = (plan["at"] + timedelta(days=91)).strftime("%Y-%m")
                add(CENTRES[plan["by"]], deadline, "plans.reviewed_in_91_days")
        elif kind == "emergency.declared":
            add(CENTRES[raw["source"]], month, "emergencies.declared")
    return flows


def expected(found: Oracle, where: str, months: list[str]) -> dict[str, dict[str, int]]:
    """The oracle's figures of ``where`` for ``months`` (in order, from its first): flows, open cases and the
    levels at each month's end; nothing for a month with nothing."""
    out: dict[str, dict[str, int]] = {}
    open_cases = 0
    flows = found.months(where)
    for month in months:
        cell = dict(flows.get(month, {}))
        open_cases += cell.pop("open", 0)
        cell["cases.open"] = open_cases
        cell |= found.levels(where, month)
        out[month] = {k: v for k, v in cell.items() if v}
    return out


ORACLE_KEYS = {
    "cases.registered",
    "cases.closed",
    "cases.transferred_in",
    "cases.open",
    "reviews.cases",
    "transfers.sent",
    "concerns",
    "plans.created",
    "plans.review_due",
    "plans.reviewed_in_91_days",
    "emergencies.declared",
    "reviews.overdue",
    "reviews.intervals",
    "reports.expected",
    "reports.on_time",
    "reports.late",
    "reports.missing",
}


def comparable(figures: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {
        month: {
            k: v
            for k, v in counts.items()
            if (k in ORACLE_KEYS or k.startswith(("alerts:reason=", "reviews.interval:"))) and v
        }
        for month, counts in figures.items()
    }


@settings(max_examples=15, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_the_kept_counts_equal_the_rebuilt_ones_and_a_count_straight_from_the_events(data):
    hub = Hub("sqlite:///:memory:")
    try:
        hub.load_orgs(ORGS)
        homes = {child: data.draw(st.sampled_from(sorted(CENTRES)), label=f"home {child}") for child in CHILDREN}
        hub.publish(registrations(homes))
        accepted: list[dict[str, Any]] = []
        n = 0
        for _ in range(data.draw(st.integers(1, 5), label="publishes")):
            batch = []
            for _ in range(data.draw(st.integers(1, 8), label="batch")):
                n += 1
                batch.append(data.draw(event_of(n, homes), label="event"))
            results = hub.publish(batch)
            accepted += [raw for raw, result in zip(batch, results, strict=True) if result.outcome == "accepted"]
        rebuilt = rebuild(hub.store)
        found = Oracle(accepted)
        for where in CENTRES.values():
            figures = kept(hub.store, where)
            assert figures == resolve_levels(rebuilt.get(where, {}))
            # every month from the first with a count to the last (a month ahead too: a plan's 91 days, a review's
            # due day), the levels carried through quiet months
            months = sorted({*figures, *found.months(where)})
            months = month_range(months[0], months[-1]) if months else []
            assert {m: comparable(figures).get(m, {}) for m in months} == expected(found, where, months)
        assert correct(hub.store) == 0  # nothing to correct: kept == rebuilt
    finally:
        hub.close()


def test_correct_brings_counts_that_drifted_back_to_the_log():
    hub = Hub("sqlite:///:memory:")
    try:
        hub.load_orgs(ORGS)
        hub.publish(
            [
                {"id": "r1", "kind": "child.registered", "child": "c1", "source": "cA", "basis": "internal",
                 "at": at(0), "payload": {"residence": "100001"}},
                {"id": "k1", "kind": "case.registered", "child": "c1", "source": "cA", "basis": "internal",
                 "at": at(1), "payload": {"case": "K1", "category": "youhogo", "case_type": "neglect"}},
            ]
        )  # fmt: skip
        month = hub.store.get_or_none(MunicipalMonth.create_id("100001", "2026-04"))
        month.count(deltas={"cases.registered": 5, "alerts": 2})  # drift (as a store written before the counts)
        hub.store.save(month)
        assert kept(hub.store, "100001")["2026-04"]["cases.registered"] == 6
        assert correct(hub.store) == 1
        assert kept(hub.store, "100001") == resolve_levels(rebuild(hub.store)["100001"])
        assert kept(hub.store, "100001")["2026-04"]["cases.registered"] == 1
    finally:
        hub.close()


@st.composite
def report_event_of(draw: Any, n: int, homes: dict[str, str]) -> dict[str, Any]:
    """A target-list event, a monthly report or a child's erasure (消去), of a random child."""
    raw = draw(event_of(n, homes, ["target_list.assigned", "target_list.removed", "attendance.monthly"]))
    if draw(st.integers(0, 5), label="erase") == 0:
        child = raw["child"]
        return {"id": f"e{n}", "kind": "child.erased", "child": child, "source": homes[child], "basis": "internal",
                "at": raw["at"], "payload": {"reason": "保存期間の満了"}}  # fmt: skip
    return raw


def school_file(n: int, month: str, homes: dict[str, str], data: Any) -> list[dict[str, Any]]:
    """A school's monthly file as the import publishes it (a chunk): s1's report for ``month`` of every child to
    its centre, in one publish, sent on one day (the month after, or later)."""
    day = data.draw(st.integers(1, 60), label="file sent, days after the month")
    sent = datetime.fromisoformat(f"{month}-01T10:00:00+09:00") + timedelta(days=31 + day)
    return [
        {"id": f"f{n}-{child}", "kind": "attendance.monthly", "child": child, "source": "s1", "to": home,
         "basis": "cwa-25-3", "at": sent.isoformat(),
         "payload": {"month": month, "school_days": 20, "attended": 20, "absent": 0, "absent_without_contact": 0}}
        for child, home in homes.items()
    ]  # fmt: skip


@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_after_erasures_the_report_figures_stay_as_counted_and_the_rebuild_agrees(data):
    """Target lists, monthly reports (a school's whole file in one publish among them, as the import sends it, and
    months sent again) and children's erasures in random batches, counted on the report lines of
    ``municipal_counts.ReportLines``: an erasure moves no figure (the
    kept figures equal the oracle's count of every accepted event, erased or not: an erased child's line stays
    under the hub's key), and the rebuild from the log equals them (``figures.ErasedLines``: fails when the rebuild
    counts only the log, which lost the erased events' school and month), but for ``reports.received`` in the cells
    ``correct`` keeps as kept; so ``correct`` moves nothing, whatever the sequence (a month reported twice before
    an erasure included)."""
    hub = Hub("sqlite:///:memory:")
    try:
        hub.load_orgs(ORGS)
        homes = {child: data.draw(st.sampled_from(sorted(CENTRES)), label=f"home {child}") for child in CHILDREN}
        hub.publish(
            [
                {"id": f"r-{child}", "kind": "child.registered", "child": child, "source": home, "basis": "internal",
                 "at": at(0), "payload": {"residence": CENTRES[home]}}
                for child, home in homes.items()
            ]
        )  # fmt: skip
        batches: list[list[dict[str, Any]]] = []
        n = 0
        for _ in range(data.draw(st.integers(1, 6), label="publishes")):
            batch = []
            if data.draw(st.integers(0, 3), label="a school's file") == 0:
                batch = school_file(n, data.draw(st.sampled_from(["2026-04", "2026-05", "2026-06"])), homes, data)
                n += len(batch)
            for _ in range(data.draw(st.integers(0 if batch else 1, 8), label="batch")):
                n += 1
                batch.append(data.draw(report_event_of(n, homes), label="event"))
            results = hub.publish(batch)
            batches.append([raw for raw, result in zip(batch, results, strict=True) if result.outcome == "accepted"])
        erased = erased_lines(hub.store)
        rebuilt = rebuild(hub.store, erased=erased)
        received_as_kept = erased.received_as_kept()
        found = Oracle([raw for batch in batches for raw in batch if raw["kind"] != "child.erased"])
        for where in CENTRES.values():
            figures = kept(hub.store, where)
            months = sorted({*figures, *found.months(where)})
            months = month_range(months[0], months[-1]) if months else []
            assert {m: comparable(figures).get(m, {}) for m in months} == expected(found, where, months)
            # through the same last month, months with nothing left out: a line rebuilt from its state has no month
            # whose counts only came and went (an arrival counted, then taken back by a removal), which the kept
            # counts list, empty (a month before any other) or carrying the levels (a month after)
            last = max([*figures, *placed(rebuilt.get(where, {}))], default=None)
            figures = {m: c for m, c in kept(hub.store, where, through=last).items() if c}
            again = {m: c for m, c in resolve_levels(rebuilt.get(where, {}), through=last).items() if c}
            figures, again = (  # the one figure the rebuild cannot recount, kept as kept (``ErasedLines``)
                {
                    m: rest
                    for m, c in f.items()
                    if (
                        rest := {
                            k: v for k, v in c.items() if k != "reports.received" or (where, m) not in received_as_kept
                        }
                    )
                }
                for f in (figures, again)
            )
            assert figures == again
        assert correct(hub.store) == 0  # no month's figure moved
    finally:
        hub.close()


def monthly_report(n: int, month: str, day: str) -> dict[str, Any]:
    """Child a1's monthly report from s1 to cA for ``month``, sent on ``day`` (JST)."""
    return {"id": f"m{n}", "kind": "attendance.monthly", "child": "a1", "source": "s1", "to": "cA", "basis": "cwa-25-3",
            "at": f"{day}T09:00:00+09:00",
            "payload": {"month": month, "school_days": 20, "attended": 20, "absent": 0, "absent_without_contact": 0}}  # fmt: skip


def listed_and_erased(hub: Hub, reports_before: list[dict[str, Any]]) -> None:
    """a1 listed at s1 from April, ``reports_before`` sent one publish each, a1 erased (消去) on 1 June, and
    June reported on 8 July (readable)."""
    hub.load_orgs(ORGS)
    steps = [
        [{"id": "r", "kind": "child.registered", "child": "a1", "source": "cA", "basis": "internal",
          "at": "2026-04-01T09:00:00+09:00", "payload": {"residence": "100001"}}],
        [{"id": "t1", "kind": "target_list.assigned", "child": "a1", "source": "cA", "to": "s1", "basis": "cwa-25-3",
          "at": "2026-04-02T09:00:00+09:00", "payload": {"school": "s1", "student_no": "001", "from_month": "2026-04"}}],
        *([report] for report in reports_before),
        [{"id": "x", "kind": "child.erased", "child": "a1", "source": "cA", "basis": "internal",
          "at": "2026-06-01T09:00:00+09:00", "payload": {"reason": "保存期間の満了"}}],
        [monthly_report(9, "2026-06", "2026-07-08")],
    ]  # fmt: skip
    for step in steps:
        assert [r.outcome for r in hub.publish(step)] == ["accepted"]


def test_a_month_reported_twice_before_the_erasure_is_left_as_counted_by_correct():
    """The review's ``twice.py`` (s7-import M1): April reported twice (the school's corrected file) before a1's
    erasure, June readable after it. ``correct`` moves nothing: before, the rebuild placed the second erased
    report on the line's next month received, June, whose figure a readable report gave (April 2 -> 1, June
    1 -> 2)."""
    hub = Hub("sqlite:///:memory:")
    try:
        listed_and_erased(hub, [monthly_report(1, "2026-04", "2026-05-08"), monthly_report(2, "2026-04", "2026-05-20")])
        before = kept(hub.store, "100001", through="2026-08")
        assert before["2026-04"]["reports.received"] == 2 and before["2026-06"]["reports.received"] == 1
        assert correct(hub.store) == 0
        assert kept(hub.store, "100001", through="2026-08") == before
    finally:
        hub.close()


def test_after_an_upgrade_from_before_the_counts_the_next_correct_moves_nothing(monkeypatch):
    """The review's ``upgraded.py`` (s7-import M2): a store written before the counts kept no report line, so the
    upgrade's ``correct`` (simulated here: ``figures.kept_line`` finds none, as on such a store) saves an erased
    child's line from its readable events only (June). The next ``correct`` (a later format bump) finds that
    line and moves nothing: before, it took June for the erased April report and counted June's twice.

    Written as code before session 9 wrote it: June, published after the erasure, under a new live key (since then
    it is sealed under a key destroyed from the start, ``events.sealing.DataKeys.ensure``, and no event of the
    line is readable; such a store also keeps its lines, so the upgrade simulated here cannot happen to it)."""
    hub = Hub("sqlite:///:memory:")
    try:
        with monkeypatch.context() as older_code:
            older_code.setattr(DataKeys, "_select_erased", lambda keys, cursor, hashes: set())
            listed_and_erased(hub, [monthly_report(1, "2026-04", "2026-05-08")])
        with monkeypatch.context() as patched:
            patched.setattr(figures_module, "kept_line", lambda store, place: None)
            correct(hub.store)
        lines = hub.store.peek(ReportLines.create_id("s1", "cA"))
        line = lines.lines[report_line_key("s1", "a1", "cA")]
        assert list(line["received"]) == ["2026-06"]  # the upgrade's line: readable events only
        before = kept(hub.store, "100001", through="2026-08")
        assert correct(hub.store) == 0
        assert kept(hub.store, "100001", through="2026-08") == before
    finally:
        hub.close()
