"""Daily attendance (日次出欠) and the absence alerts the hub raises from it (school-reports.md): 7 consecutive
school days absent whatever the reason, 3 without contact; one alert per streak; 休業日 from the school's own
calendar; streaks across files, months and out-of-order arrivals; who can read the alert."""

from __future__ import annotations

from datetime import date

import pytest

from consent.model import Settings
from events.store import Quarantine
from services.projections.rosters import SchoolCalendar
from tests.helpers import at
from tests.schoolfiles import DAILY_HEADER, ES1_CODE, import_daily, kinds, list_child, school_days, setup, write_csv

pytestmark = pytest.mark.store

ABSENT, NO_CONTACT, PRESENT, LATE = ("欠席", "有"), ("欠席", "無"), ("出席", ""), ("遅刻", "")


@pytest.fixture
def world(hub, clock):
    clock.at = at("2026-06-30T18:00:00+09:00")
    setup(hub)
    list_child(hub, "c1", "0412")
    return hub


def daily_file(path, days: dict[date, tuple[str, str]], *, others: list[date] | None = None, era: bool = False):
    """Rows for the listed child (student 0412) on ``days``, and for a child who is not on the list (9999) on
    ``others`` (default: the same days): the school's calendar comes from every row."""
    rows = []
    for day in sorted(set(days) | set(others if others is not None else days)):
        written = f"R{day.year - 2018}.{day.month}.{day.day}" if era else day.isoformat()
        if day in days:
            status, contact = days[day]
            rows.append([ES1_CODE, "0412", written, status, contact, "体調不良" if status == "欠席" else ""])
        if others is None or day in others:
            rows.append([ES1_CODE, "9999", written, "出席", "", ""])
    return write_csv(path, DAILY_HEADER, rows)


def alerts(hub, child: str = "c1") -> list[tuple[str, str, int, str]]:
    return [
        (e["payload"]["reason"], e["payload"]["since"], e["payload"]["days"], e["at"][:10])
        for e in kinds(hub, child, "absence.alert")
    ]


def test_seven_school_days_absent_with_a_weekend_between_raise_one_alert(world, tmp_path):
    days = school_days(date(2026, 5, 11), date(2026, 5, 18))  # Mon 11 … Mon 18: 6 school days, Sat/Sun without rows
    first = import_daily(world, daily_file(tmp_path / "a.csv", {d: ABSENT for d in days}, era=True))
    assert (first.accepted, first.not_listed, first.alerts) == (6, 6, [])
    assert alerts(world) == []
    summary = import_daily(world, daily_file(tmp_path / "b.csv", {date(2026, 5, 19): ABSENT}))
    assert [(a["reason"], a["since"], a["days"], a["student_no"], a["outcome"]) for a in summary.alerts] == [
        ("consecutive_absence", "2026-05-11", 7, "0412", "accepted")
    ]
    (alert,) = kinds(world, "c1", "absence.alert")
    assert (alert["source"], alert["to"], alert["basis"]) == ("beppu-es-1", "beppu-center", "cwa-25-3")
    assert alert["at"] == "2026-05-19T00:00:00+09:00"  # the school day the streak reached 7
    calendar = world.store.peek(SchoolCalendar.create_id("beppu-es-1")).days
    assert "2026-05-16" not in calendar and "2026-05-19" in calendar


def test_a_streak_crossing_a_month_and_files(world, tmp_path):
    april = school_days(date(2026, 4, 27), date(2026, 4, 30))  # Mon 27 – Thu 30
    import_daily(world, daily_file(tmp_path / "april.csv", {d: ABSENT for d in april}))
    may = [date(2026, 5, 1), date(2026, 5, 7), date(2026, 5, 8)]  # 2–6 May: no rows at all (ゴールデンウィーク)
    summary = import_daily(world, daily_file(tmp_path / "may.csv", {d: ABSENT for d in may}))
    assert [(a["reason"], a["since"]) for a in summary.alerts] == [("consecutive_absence", "2026-04-27")]
    assert alerts(world) == [("consecutive_absence", "2026-04-27", 7, "2026-05-08")]


def test_a_late_arrival_ends_the_streak(world, tmp_path):
    days = school_days(date(2026, 5, 11), date(2026, 5, 25))  # 11 school days
    marks = {d: ABSENT for d in days}
    marks[days[5]] = LATE  # 遅刻 on the sixth day: 5 + 5 absent, never 7 in a row
    summary = import_daily(world, daily_file(tmp_path / "d.csv", marks))
    assert summary.alerts == [] and alerts(world) == []


def test_suspension_and_bereavement_count_as_days_not_attended(world, tmp_path):
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    marks = {d: ABSENT for d in days}
    marks[days[2]], marks[days[3]] = ("出席停止", ""), ("忌引", "")
    import_daily(world, daily_file(tmp_path / "d.csv", marks))
    assert alerts(world) == [("consecutive_absence", "2026-05-11", 7, "2026-05-19")]


def test_sending_the_days_again_raises_no_second_alert(world, tmp_path):
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    path = daily_file(tmp_path / "d.csv", {d: ABSENT for d in days})
    assert len(import_daily(world, path).alerts) == 1
    position = world.store.log_position()
    again = import_daily(world, path)
    assert (again.accepted, again.unchanged, again.alerts) == (0, 7, [])
    assert world.store.log_position() == position
    # The streak goes on: still the same streak, still one alert.
    more = import_daily(
        world, daily_file(tmp_path / "more.csv", {date(2026, 5, 20): ABSENT, date(2026, 5, 21): ABSENT})
    )
    assert more.alerts == [] and len(alerts(world)) == 1
    # Older days arriving late make the same streak start earlier: still no second alert.
    older = import_daily(world, daily_file(tmp_path / "older.csv", {date(2026, 5, 8): ABSENT}))
    assert older.alerts == [] and len(alerts(world)) == 1


def test_a_new_streak_after_attending_gets_its_own_alert(world, tmp_path):
    first = school_days(date(2026, 5, 11), date(2026, 5, 19))
    second = school_days(date(2026, 5, 21), date(2026, 5, 29))
    marks = {d: ABSENT for d in first + second} | {date(2026, 5, 20): PRESENT}
    import_daily(world, daily_file(tmp_path / "d.csv", marks))
    assert [a[:2] for a in alerts(world)] == [
        ("consecutive_absence", "2026-05-11"),
        ("consecutive_absence", "2026-05-21"),
    ]


def test_three_school_days_absent_without_contact(world, tmp_path):
    summary = import_daily(
        world,
        daily_file(
            tmp_path / "a.csv",
            {
                date(2026, 5, 11): NO_CONTACT,
                date(2026, 5, 12): NO_CONTACT,
                date(2026, 5, 13): ABSENT,  # contact: ends it
                date(2026, 5, 14): NO_CONTACT,
                date(2026, 5, 15): NO_CONTACT,
            },
        ),
    )
    assert summary.alerts == []
    summary = import_daily(world, daily_file(tmp_path / "b.csv", {date(2026, 5, 18): NO_CONTACT}))  # after a weekend
    assert [(a["reason"], a["since"], a["days"]) for a in summary.alerts] == [("no_contact", "2026-05-14", 3)]
    assert alerts(world) == [("no_contact", "2026-05-14", 3, "2026-05-18")]


def test_days_arriving_out_of_order_complete_the_streak(world, tmp_path):
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    assert import_daily(world, daily_file(tmp_path / "late.csv", {d: ABSENT for d in days[4:]})).alerts == []
    summary = import_daily(world, daily_file(tmp_path / "early.csv", {d: ABSENT for d in days[:4]}))
    assert [(a["reason"], a["since"]) for a in summary.alerts] == [("consecutive_absence", "2026-05-11")]


def test_a_school_day_without_the_childs_row_ends_the_streak_until_the_row_arrives(world, tmp_path):
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    missing = days[3]  # the school sent rows that day, but none for the child
    summary = import_daily(
        world, daily_file(tmp_path / "a.csv", {d: ABSENT for d in days if d != missing}, others=days)
    )
    assert summary.alerts == []
    summary = import_daily(world, daily_file(tmp_path / "b.csv", {missing: ABSENT}))
    assert [a["since"] for a in summary.alerts] == ["2026-05-11"]


def test_a_corrected_day_supersedes_and_can_end_a_streak(world, tmp_path):
    days = school_days(date(2026, 5, 11), date(2026, 5, 18))
    import_daily(world, daily_file(tmp_path / "a.csv", {d: ABSENT for d in days}))
    summary = import_daily(world, daily_file(tmp_path / "fix.csv", {days[2]: PRESENT}))
    assert (summary.superseded, summary.accepted) == (1, 0)
    daily = [e for e in kinds(world, "c1", "attendance.daily") if e["payload"]["date"] == days[2].isoformat()]
    assert daily[1]["payload"]["supersedes"] == daily[0]["id"]
    import_daily(world, daily_file(tmp_path / "next.csv", {date(2026, 5, 19): ABSENT}))
    assert alerts(world) == []  # 2 + 5 absent around a day attended: no 7-day streak


def test_bad_daily_rows_are_kept_with_their_reasons(world, tmp_path):
    path = write_csv(
        tmp_path / "d.csv",
        DAILY_HEADER,
        [
            [ES1_CODE, "0412", "R8.5.32", "欠席", "無", ""],
            [ES1_CODE, "0412", "2026-05-12", "休み", "無", ""],
            [ES1_CODE, "0412", "2026-05-13", "欠席", "", ""],
            [ES1_CODE, "0412", "2026-07-01", "欠席", "無", ""],
            [ES1_CODE, "9999", "2026-05-14", "休み", "", ""],  # not on the list: not kept, even when broken
        ],
    )
    summary = import_daily(world, path)
    assert (summary.rejected_total, summary.not_listed) == (4, 1)
    assert [p["message_ja"] for r in summary.rejected for p in r["problems"]] == [
        "2行目「日付」: 「R8.5.32」という日付はありません",
        "3行目「出欠」: 「休み」は使えません（出席、欠席、遅刻、早退、出席停止、忌引、忌引き のどれか）",
        "4行目「連絡有無」: 欠席の日は連絡有無（有／無）を入力してください",
        "5行目「日付」: 2026-07-01 は未来の日付です",
    ]
    assert [h["raw"]["line"] for h in world.store.peek(Quarantine.create_id("beppu-es-1")).held] == [2, 3, 4, 5]


def test_the_alert_reaches_the_centre_and_under_the_joint_ledger_the_covering_jiso(make_hub, clock, tmp_path):
    clock.at = at("2026-06-30T18:00:00+09:00")
    hub = setup(make_hub(settings=Settings(joint_ledger=True)))
    hub.publish(
        [
            {
                "id": "r1",
                "kind": "child.registered",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-01T09:00:00+09:00",
                "payload": {"residence": "442020"},
            },
            {
                "id": "k1",
                "kind": "case.registered",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-10T09:00:00+09:00",
                "payload": {"case": "K-1", "category": "youhogo", "case_type": "abuse_neglect"},
            },
        ]
    )
    list_child(hub, "c1", "0412")
    list_child(hub, "c2", "0413")  # c2 has no case: its alert stays with the centre
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    rows = [[ES1_CODE, no, d.isoformat(), "欠席", "無", ""] for d in days for no in ("0412", "0413")]
    summary = import_daily(hub, write_csv(tmp_path / "d.csv", DAILY_HEADER, rows))
    assert len(summary.alerts) == 4  # 2 children × (7 days, 3 days without contact)

    def seen(org: str, role: str, child: str) -> dict[str, str]:
        read = hub.timeline(org=org, role=role, child=child, purpose="support")
        return {e.payload["reason"]: e.rule for e in read.entries if e.kind == "absence.alert"}

    assert seen("beppu-center", "caseworker", "c1") == {"consecutive_absence": "DIRECT", "no_contact": "DIRECT"}
    assert seen("chuo-jiso", "caseworker", "c1") == {"consecutive_absence": "LEDGER", "no_contact": "LEDGER"}
    assert seen("chuo-jiso", "caseworker", "c2") == {}
    assert seen("beppu-es-1", "teacher", "c1") == {"consecutive_absence": "OWN", "no_contact": "OWN"}
    assert seen("beppu-es-2", "teacher", "c1") == {}
    assert seen("oita-center", "caseworker", "c1") == {}


def test_without_the_joint_ledger_the_jiso_does_not_see_the_alert(make_hub, clock, tmp_path):
    clock.at = at("2026-06-30T18:00:00+09:00")
    hub = setup(make_hub(settings=Settings(joint_ledger=False)))
    hub.publish(
        [
            {
                "id": "k1",
                "kind": "case.registered",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-10T09:00:00+09:00",
                "payload": {"case": "K-1", "category": "youhogo", "case_type": "abuse_neglect"},
            }
        ]
    )
    list_child(hub, "c1", "0412")
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    import_daily(
        hub,
        write_csv(
            tmp_path / "d.csv", DAILY_HEADER, [[ES1_CODE, "0412", d.isoformat(), "欠席", "有", ""] for d in days]
        ),
    )
    assert len(kinds(hub, "c1", "absence.alert")) == 1
    read = hub.timeline(org="chuo-jiso", role="caseworker", child="c1", purpose="support")
    assert [e for e in read.entries if e.kind == "absence.alert"] == []


def test_through_a_transport_that_only_queues_the_alerts_come_from_the_files_rows(world, tmp_path):
    """With a log transport (Kafka) the hub stores the envelopes later: the import cannot read this file's days
    back from the hub, so streaks are found from the rows themselves, and what is queued is what the hub would
    have stored directly."""
    from services.publishing.ingest import PublishResult
    from services.schools.imports import SchoolImporter

    class Queue:  # hands envelopes over, like a transport, and delivers them when asked
        def __init__(self):
            self.queued: list[dict] = []

        def publish(self, envelopes):
            self.queued += envelopes
            return [PublishResult(i, e["id"], "queued") for i, e in enumerate(envelopes)]

    queue = Queue()
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    summary = SchoolImporter(world.store, queue, now=world.clock()).daily(
        daily_file(tmp_path / "d.csv", {d: NO_CONTACT for d in days})
    )
    assert (summary.accepted, summary.queued) == (7, 7)
    assert [(a["reason"], a["outcome"]) for a in summary.alerts] == [
        ("consecutive_absence", "queued"),
        ("no_contact", "queued"),
    ]
    assert kinds(world, "c1", "attendance.daily") == []  # nothing stored yet
    assert {r.outcome for r in world.publish(queue.queued)} == {"accepted"}  # the worker delivers them
    assert alerts(world) == [
        ("consecutive_absence", "2026-05-11", 7, "2026-05-19"),
        ("no_contact", "2026-05-11", 3, "2026-05-13"),
    ]
    again = import_daily(world, daily_file(tmp_path / "d.csv", {d: NO_CONTACT for d in days}))
    assert (again.unchanged, again.alerts) == (7, [])


def test_daily_import_through_the_cli(tmp_path):
    import json

    from typer.testing import CliRunner

    from services.cli.root import app
    from services.hub import Hub

    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    try:
        setup(hub)
        list_child(hub, "c1", "0412")
    finally:
        hub.close()
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    path = daily_file(tmp_path / "d.csv", {d: ABSENT for d in days})
    result = CliRunner().invoke(app, ["import", "school-daily", str(path), "--database", database, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["accepted"], summary["not_listed"], summary["status"]) == (7, 7, "ok")
    assert [(a["student_no"], a["reason"], a["since"]) for a in summary["alerts"]] == [
        ("0412", "consecutive_absence", "2026-05-11")
    ]
    table = CliRunner().invoke(app, ["import", "school-daily", str(path), "--database", database])
    assert table.exit_code == 0 and "変更なし" in table.output and "連続欠席の通知" not in table.output
