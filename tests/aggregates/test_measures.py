"""The measures of ``aggregates.md`` that need a month ahead or are not counts (issue 17, what was left): reviews
overdue at month end (a level, the ledger's due day), the median days between reviews (shown for another
municipality only over at least 5 intervals), and plans reviewed within 91 days of creation (a share kept as two
counts), on a crafted world whose figures are worked out by hand."""

from __future__ import annotations

from datetime import datetime

import pytest

from events.clock import JST
from services.aggregates.figures import correct, kept
from services.aggregates.service import Aggregates
from services.hub import Hub, SettableClock
from services.projections.municipal_counts import median_days

pytestmark = pytest.mark.store

ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "cB", "type": "municipal_center", "municipality": "100002", "prefecture": "10"},
    {"id": "pf", "type": "prefecture_office", "prefecture": "10"},
]


def event(n: str, kind: str, child: str, source: str, day: str, **payload) -> dict:
    return {
        "id": n,
        "kind": kind,
        "child": child,
        "source": source,
        "basis": "internal",
        "at": f"2026-{day}T10:00:00+09:00",
        "payload": payload,
    }


def plan(n: str, kind: str, day: str, version: int) -> dict:
    return event(n, kind, "a1", "cA", day, plan=n[:2], version=version, wishes="w", issues="i", supports="s")


@pytest.fixture
def hub():
    hub = Hub("sqlite:///:memory:", clock=SettableClock(datetime(2026, 12, 1, 9, tzinfo=JST)))
    hub.load_orgs(ORGS)
    review = {"decision": "継続"}
    items = [
        event("ra", "child.registered", "a1", "cA", "03-01", residence="100001"),
        event("rb", "child.registered", "b1", "cB", "03-01", residence="100002"),
        # cA: registered 1 April, due 1 July (91 days), overdue from 2 July; reviewed 10 August (131 days), the
        # next review decided for 30 September, overdue from 1 October
        event("ka", "case.registered", "a1", "cA", "04-01", case="KA", category="youshien", case_type="upbringing"),
        event("va", "case.reviewed", "a1", "cA", "08-10", case="KA", next_review="2026-09-30", **review),
        # cB: reviews 10, 10, 10, 20 and 30 days apart; closed in July (its wait ends before it is overdue)
        event("kb", "case.registered", "b1", "cB", "04-01", case="KB", category="youshien", case_type="upbringing"),
        *(
            event(f"v{i}", "case.reviewed", "b1", "cB", day, case="KB", **review)
            for i, day in enumerate(["04-11", "04-21", "05-01", "05-21", "06-20"])
        ),
        event("cb", "case.closed", "b1", "cB", "07-15", case="KB", reason="改善", meeting="M"),
        # plans of cA: P1 created 10 April, revised 1 June (in 91 days: to 10 July); P2 created 1 May, revised
        # 1 September (123 days); both plans' 91 days end in July
        plan("P1-1", "plan.created", "04-10", 1),
        plan("P1-2", "plan.revised", "06-01", 2),
        plan("P2-1", "plan.created", "05-01", 1),
        plan("P2-2", "plan.revised", "09-01", 2),
    ]
    results = hub.publish(items)
    assert [r.outcome for r in results] == ["accepted"] * len(items), [r.problems for r in results]
    yield hub
    hub.close()


def test_reviews_overdue_at_month_end_follow_the_ledgers_due_day(hub):
    figures = kept(hub.store, "100001", through="2026-11")
    overdue = {month: figures[month].get("reviews.overdue", 0) for month in figures}
    assert overdue == {
        "2026-04": 0,
        "2026-05": 0,
        "2026-06": 0,
        "2026-07": 1,  # due 1 July, not reviewed by the end of July
        "2026-08": 0,  # reviewed 10 August
        "2026-09": 0,  # due 30 September: overdue only from 1 October
        "2026-10": 1,
        "2026-11": 1,
    }
    assert all(not m.get("reviews.overdue") for m in kept(hub.store, "100002", through="2026-11").values())


def test_plans_reviewed_within_91_days_are_two_counts_of_the_month_the_91_days_end(hub):
    figures = kept(hub.store, "100001")
    assert figures["2026-07"]["plans.review_due"] == 2
    assert figures["2026-07"]["plans.reviewed_in_91_days"] == 1
    assert not any(figures[m].get("plans.review_due") for m in figures if m != "2026-07")


def test_the_median_days_between_reviews_is_shown_over_5_intervals_and_never_summed(hub):
    aggregates = Aggregates(hub.store, hub.clock)
    table = aggregates.table(org="pf", user="県 企画", measure="reviews.median_days", first="2026-04", last="2026-08")
    assert table.total == "median" and table.total_ja == "期間の中央値" and table.totals_row_ja == "全体"
    labels = [[e.label for e in row] for row in table.entries]
    assert labels[0] == ["－", "－", "－", "－", "秘匿", "秘匿"]  # cA: one interval (131 days), in August
    assert labels[1] == ["秘匿", "秘匿", "秘匿", "－", "－", "10"]  # cB: 2, 2, 1 a month; over the period 5
    assert labels[2] == ["秘匿", "秘匿", "秘匿", "－", "秘匿", "15"]  # all six: 10 10 10 20 30 131 -> (10 + 20) / 2
    own = aggregates.table(org="cA", user="市 担当", measure="reviews.median_days", first="2026-08", last="2026-08")
    assert [e.label for e in own.entries[0]] == ["131", "131"]  # its own median, whatever the number behind it
    assert [e.label for e in own.entries[1]] == ["－", "－"]  # cB had no review in August
    rows = own.as_rows()
    assert rows[0][-1] == "期間の中央値" and rows[-1][0] == "全体"


def test_the_median_of_counted_days():
    assert median_days({}, "d=") is None
    assert median_days({"d=3": 1}, "d=") == 3
    assert median_days({"d=3": 1, "d=10": 1}, "d=") == 6.5
    assert median_days({"d=1": 2, "d=7": 1, "d=9": 2, "x": 40}, "d=") == 7


def test_correct_finds_nothing_to_correct(hub):
    assert correct(hub.store) == 0


REPORTS_ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "s1", "type": "school", "regime": "public", "municipality": "100001"},
    {"id": "pf", "type": "prefecture_office", "prefecture": "10"},
]


def monthly(n: str, month: str, day: str) -> dict:
    payload = {"month": month, "school_days": 20, "attended": 20, "absent": 0, "absent_without_contact": 0}
    return {
        "id": n, "kind": "attendance.monthly", "child": "a1", "source": "s1", "to": "cA", "basis": "cwa-25-3",
        "at": f"2026-{day}T10:00:00+09:00", "payload": payload,
    }  # fmt: skip


def listing(n: str, kind: str, day: str) -> dict:
    return {
        "id": n, "kind": kind, "child": "a1", "source": "cA", "to": "s1", "basis": "cwa-25-3",
        "at": f"2026-{day}T10:00:00+09:00", "payload": {"school": "s1", "student_no": "001", "from_month": "2026-04"},
    }  # fmt: skip


def test_monthly_reports_expected_on_time_late_and_missing_at_month_end_as_the_overdue_list_counts_them():
    from datetime import date

    from services.schools.overdue import overdue_reports

    hub = Hub("sqlite:///:memory:", clock=SettableClock(datetime(2026, 11, 1, 9, tzinfo=JST)))
    try:
        hub.load_orgs(REPORTS_ORGS)
        items = [
            event("ra", "child.registered", "a1", "cA", "03-01", residence="100001"),
            listing("l1", "target_list.assigned", "04-05"),  # from April
            monthly("m4", "2026-04", "05-08"),  # on time (due 10 May)
            monthly("m5", "2026-05", "06-20"),  # late
            # June: never
            monthly("m7", "2026-07", "09-02"),  # late, after the month after
            monthly("m8", "2026-08", "09-05"),  # on time
            listing("l2", "target_list.removed", "09-15"),  # covers April to August
        ]
        results = hub.publish(items)
        assert [r.outcome for r in results] == ["accepted"] * len(items), [r.problems for r in results]
        figures = kept(hub.store, "100001", through="2026-10")
        table = {
            month: tuple(figures[month].get(f"reports.{k}", 0) for k in ("expected", "on_time", "late", "missing"))
            for month in figures
        }
        assert table == {
            "2026-04": (1, 1, 0, 0),
            "2026-05": (1, 0, 1, 0),  # April's report came in May: not missing at the end of May
            "2026-06": (1, 0, 0, 0),
            "2026-07": (1, 0, 1, 1),  # June's missing at the end of July
            "2026-08": (1, 1, 0, 2),  # June's and July's
            "2026-09": (0, 0, 0, 1),  # July's and August's came in September; June's still missing
            "2026-10": (0, 0, 0, 1),
        }
        # the hub's own overdue list says the same now
        assert len(overdue_reports(hub.store, hub.settings, reader="cA", today=date(2026, 10, 31))) == 1
        # on time under the due day in force: with the 3rd, August's report (5 September) is late
        assert kept(hub.store, "100001", due_day=3)["2026-08"].get("reports.late") == 1
        assert correct(hub.store) == 0
    finally:
        hub.close()


def test_a_listing_removed_before_its_first_month_expects_nothing():
    hub = Hub("sqlite:///:memory:", clock=SettableClock(datetime(2026, 11, 1, 9, tzinfo=JST)))
    try:
        hub.load_orgs(REPORTS_ORGS)
        later = listing("l1", "target_list.assigned", "04-05")
        later["payload"]["from_month"] = "2026-07"
        items = [
            event("ra", "child.registered", "a1", "cA", "03-01", residence="100001"),
            later,
            listing("l2", "target_list.removed", "05-10"),
        ]
        assert [r.outcome for r in hub.publish(items)] == ["accepted"] * 3
        figures = kept(hub.store, "100001", through="2026-10")
        assert {m: c.get("reports.expected", 0) for m, c in figures.items() if c.get("reports.expected")} == {}
        assert not any(c.get("reports.missing") for c in figures.values())
    finally:
        hub.close()
