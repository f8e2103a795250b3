"""Monthly reports from schools and nurseries (school-reports.md): reading what schools send, resolving the
child through the school's target list, corrections, quarantine, and overdue reports."""

from __future__ import annotations

import json
import os
import tracemalloc
from datetime import date

import pytest
from typer.testing import CliRunner

from adapters.csvfile import CsvReader, FileRefused
from adapters.publisher import HubPublisher
from adapters.school import MONTHLY_COLUMNS
from consent.model import Settings
from events.problems import PublishResult
from events.store import AccessLog, Quarantine
from services.audit.replay import access_records
from services.cli.root import app
from services.hub import Hub
from services.projections.rosters import MonthlyReports, SchoolRoster
from services.schools.imports import SchoolImporter
from services.schools.overdue import overdue_counts, overdue_reports
from services.web.casebook import listed_children
from tests.helpers import at
from tests.schoolfiles import (
    ES1_CODE,
    ES2_CODE,
    MONTHLY_HEADER,
    NURSERY_CODE,
    import_monthly,
    kinds,
    list_child,
    setup,
    unlist_child,
    write_csv,
)

pytestmark = [pytest.mark.store, pytest.mark.http]


@pytest.fixture
def world(hub, clock):
    clock.at = at("2026-06-05T09:00:00+09:00")
    setup(hub)
    list_child(hub, "c1", "2026-0412")
    list_child(hub, "c2", "2026-0518")
    return hub


def monthly_row(
    student_no: str = "2026-0412", month: str = "2026-05", days=(19, 15, 4, 2), code: str = ES1_CODE, notes: str = ""
) -> list:
    school_days, attended, absent, no_contact = days
    return [code, student_no, month, school_days, attended, absent, no_contact, "", "", "", notes]


def overdue(hub: Hub, reader: str, today: str, month: str | None = None) -> list[tuple[str, str, str]]:
    """The overdue lines computed afresh, checked equal to the hub's lines kept per school (``OverdueLines``,
    kept across the imports and listings between calls)."""
    day = date.fromisoformat(today)
    found = overdue_reports(hub.store, hub.settings, reader=reader, today=day, month=month)
    kept = overdue_reports(hub.store, hub.settings, reader=reader, today=day, month=month, kept=hub.overdue_lines)
    assert kept == found
    return [(r.school, r.month, r.student_no) for r in found]


# --- Reading what schools send ------------------------------------------------------------------------------


def test_cp932_file_with_era_dates_full_width_digits_and_crlf_is_accepted(world, tmp_path):
    header = [
        "特記事項",
        "対象年月",
        "児童生徒番号",
        "学校コード",
        "うち連絡なし欠席日数",
        "欠席日数",
        "出席日数",
        "授業日数",
    ]
    path = write_csv(
        tmp_path / "定期報告.csv",
        header,
        [
            ["服装の汚れが続く", "令和8年4月", "２０２６－０４１２", ES1_CODE, "２", "４", "１５", "１９"],
            ["", "R8.5", "2026-0518", ES1_CODE, 0, 1, 18, 19],
        ],
    )
    assert b"\r\n" in path.read_bytes() and "令和".encode("cp932") in path.read_bytes()
    summary = import_monthly(world, path)
    assert (summary.encoding, summary.accepted, summary.rejected_total, summary.warnings) == ("cp932", 2, 0, [])
    april = kinds(world, "c1", "attendance.monthly")
    assert len(april) == 1
    assert april[0]["payload"] == {
        "month": "2026-04",
        "school_days": 19,
        "attended": 15,
        "absent": 4,
        "absent_without_contact": 2,
        "notes": "服装の汚れが続く",
        "student_no": "2026-0412",
    }
    assert (april[0]["source"], april[0]["to"], april[0]["basis"]) == ("beppu-es-1", "beppu-center", "cwa-25-3")
    read = world.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support")
    assert {e.kind: e.rule for e in read.entries}["attendance.monthly"] == "DIRECT"
    other = world.timeline(org="oita-center", role="caseworker", child="c1", purpose="support")
    assert "attendance.monthly" not in [e.kind for e in other.entries]


@pytest.mark.parametrize("bom", [True, False], ids=["utf8-bom", "utf8"])
def test_utf8_with_or_without_bom(world, tmp_path, bom):
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [monthly_row(), monthly_row("2026-0518", "令和8年5月")],
        encoding="utf-8",
        bom=bom,
        newline="\n",
    )
    summary = import_monthly(world, path)
    assert summary.encoding == ("utf-8-sig" if bom else "utf-8")
    assert (summary.accepted, summary.rejected_total) == (2, 0)
    assert kinds(world, "c2", "attendance.monthly")[0]["payload"]["month"] == "2026-05"


def test_unknown_columns_are_ignored_with_a_warning_and_blank_trailing_rows_skipped(world, tmp_path):
    path = write_csv(
        tmp_path / "m.csv", [*MONTHLY_HEADER, "担任メモ"], [[*monthly_row(), "家庭訪問予定"]], trailing_blank=3
    )
    summary = import_monthly(world, path)
    assert (summary.rows, summary.accepted) == (1, 1)
    assert [w["message_ja"] for w in summary.warnings] == [
        "1行目（見出し）「担任メモ」は様式にない列のため無視しました"
    ]
    assert "家庭訪問予定" not in json.dumps(kinds(world, "c1", "attendance.monthly"), ensure_ascii=False)


def test_a_header_without_rows_is_accepted_with_a_warning(world, tmp_path):
    summary = import_monthly(world, write_csv(tmp_path / "m.csv", MONTHLY_HEADER, [], trailing_blank=2))
    assert (summary.status, summary.rows) == ("ok", 0)
    assert [w["code"] for w in summary.warnings] == ["no_rows"]


def test_a_title_line_above_the_header_is_skipped(world, tmp_path):
    path = tmp_path / "m.csv"
    write_csv(path, MONTHLY_HEADER, [monthly_row()])
    path.write_bytes("令和8年5月分 定期報告（第一小学校）\r\n".encode("cp932") + path.read_bytes())
    summary = import_monthly(world, path)
    assert summary.accepted == 1
    assert summary.warnings[0]["code"] == "title_line_skipped"


def test_nursery_reports_with_its_facility_code(hub, clock, tmp_path):
    clock.at = at("2026-06-05T09:00:00+09:00")
    setup(hub)
    list_child(hub, "c9", "N-0007", school="beppu-ns-1")
    header = ["施設コード", "園児番号", "対象年月", "開所日数", "登園日数", "欠席日数", "うち連絡なし欠席日数"]
    summary = import_monthly(
        hub, write_csv(tmp_path / "n.csv", header, [[NURSERY_CODE, "N-0007", "R8.5", 21, 20, 1, 0]])
    )
    assert summary.accepted == 1
    assert kinds(hub, "c9", "attendance.monthly")[0]["source"] == "beppu-ns-1"


# --- Rows that cannot be accepted -----------------------------------------------------------------------------


def test_broken_rows_get_a_japanese_error_per_row_and_column_and_are_kept_in_quarantine(world, tmp_path):
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [
            monthly_row(month="R8.13"),  # line 2: not a month
            monthly_row(month="2026-07"),  # line 3: in the future (today is 2026-06-05)
            monthly_row(days=(19, 16, 4, 2)),  # line 4: 16 + 4 > 19
            monthly_row(days=(19, 15, 4, 5)),  # line 5: 連絡なし 5 > 欠席 4
            monthly_row(days=(19, "十五", 4, 2)),  # line 6: not a number
            monthly_row(code="B999999999999"),  # line 7: unknown school code
            monthly_row(student_no="", month="2026-04"),  # line 8: no student number
            monthly_row(days=(19, 15, -1, 0)),  # line 9: negative
            monthly_row(month="2026-04", days=(40, 15, 4, 2)),  # line 10: more school days than April has
        ],
    )
    summary = import_monthly(world, path)
    assert (summary.accepted, summary.rejected_total, summary.status) == (0, 9, "rejected")
    by_line = {r["line"]: [p["message_ja"] for p in r["problems"]] for r in summary.rejected}
    assert by_line[2] == ["2行目「対象年月」: 「R8.13」は年月として読めません（例: 2026-04、2026/4、令和8年4月、R8.4）"]
    assert by_line[3] == ["3行目「対象年月」: 2026年7月はまだ来ていません（未来の年月です）"]
    assert by_line[4] == ["4行目「出席日数」: 出席日数（16）と欠席日数（4）の合計が授業日数（19）を超えています"]
    assert by_line[5] == ["5行目「うち連絡なし欠席日数」: うち連絡なし（5）が欠席日数（4）を超えています"]
    assert by_line[6] == ["6行目「出席日数」: 「十五」は数ではありません。0 以上の整数を入力してください"]
    assert by_line[7] == ["7行目「学校コード」: 学校コード「B999999999999」の学校・園はハブに登録されていません"]
    assert by_line[8] == ["8行目「児童生徒番号」: 空欄です"]
    assert by_line[9][0].startswith("9行目「欠席日数」: 「-1」は数ではありません")
    assert by_line[10][0].startswith("10行目「授業日数」: 40 は大きすぎます")
    assert kinds(world, "c1", "attendance.monthly") == []  # nothing half-accepted
    held = world.store.peek(Quarantine.create_id("beppu-es-1")).held
    assert sorted(h["raw"]["line"] for h in held) == [2, 3, 4, 5, 6, 8, 9, 10]
    assert held[0]["raw"]["row"]["対象年月"] == "R8.13" and held[0]["problems"][0]["field"] == "対象年月"
    unknown = world.store.peek(Quarantine.create_id("school-code:B999999999999")).held
    assert [h["raw"]["line"] for h in unknown] == [7]

    # Sending the same file again keeps each row once; the corrected file is accepted.
    import_monthly(world, path)
    assert len(world.store.peek(Quarantine.create_id("beppu-es-1")).held) == 8
    fixed = write_csv(tmp_path / "fixed.csv", MONTHLY_HEADER, [monthly_row(month="R8.4"), monthly_row()])
    summary = import_monthly(world, fixed)
    assert (summary.accepted, summary.rejected_total) == (2, 0)


def test_rows_for_children_not_on_the_list_are_counted_and_not_stored(world, tmp_path):
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [
            monthly_row(student_no="2026-9999", notes="他の児童の記録"),
            monthly_row(student_no="2026-9998", days=(19, 30, 4, 2)),  # broken, and not on the list: not kept either
            monthly_row(student_no="2026-0412", code=ES2_CODE),  # c1 is on school 1's list, not school 2's
            monthly_row(month="2026-03"),  # c1 is listed from April
        ],
    )
    before = world.store.log_position()
    summary = import_monthly(world, path)
    assert (summary.not_listed, summary.accepted, summary.rejected_total) == (4, 0, 0)
    assert world.store.log_position() == before
    for source in ("beppu-es-1", "beppu-es-2"):
        assert world.store.peek(Quarantine.create_id(source)) is None
    assert "他の児童の記録" not in json.dumps(summary.to_dict(), ensure_ascii=False)


def test_a_missing_required_column_refuses_the_file(world, tmp_path):
    header = [h for h in MONTHLY_HEADER if h != "出席日数"]
    summary = import_monthly(world, write_csv(tmp_path / "m.csv", header, [monthly_row()[:4] + monthly_row()[5:]]))
    assert summary.status == "refused"
    assert summary.refused[0]["message_ja"] == "1行目（見出し）: 必須の列「出席日数」がありません"
    assert kinds(world, "c1", "attendance.monthly") == []


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "ファイルが空です"),
        (b"\r\n\r\n", "ファイルが空です"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "PNG 画像"),
        (b"PK\x03\x04" + b"\x00" * 100, "Excel（.xlsx）"),
        ("これは報告書ではありません\r\n特になし\r\n".encode("cp932"), "見出し"),
        ("学校コード,児童生徒番号\r\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_files_that_are_not_readable_csv_are_refused_with_a_clear_message(world, tmp_path, content, words):
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    summary = import_monthly(world, path)
    assert summary.status == "refused" and summary.rows == 0
    assert words in summary.refused[0]["message_ja"], summary.refused


@pytest.mark.parametrize("kind", ["binary", "text"])
def test_a_50_mb_garbage_file_is_refused_without_reading_it_into_memory(world, tmp_path, kind):
    path = tmp_path / "garbage.csv"
    chunk = os.urandom(1 << 20) if kind == "binary" else b"A" * (1 << 20)  # text: one endless line
    with path.open("wb") as f:
        for _ in range(50):
            f.write(chunk)
    assert path.stat().st_size == 50 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FileRefused) as refused:
            CsvReader(path, MONTHLY_COLUMNS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # refused from its first megabyte; how fast: bench.timings (docs/benchmarks.md)
    assert refused.value.problems[0].code == ("not_csv" if kind == "binary" else "line_too_long")
    summary = import_monthly(world, path)
    assert summary.status == "refused" and world.store.peek(Quarantine.create_id("beppu-es-1")) is None


def test_a_long_file_is_streamed(tmp_path):
    """Reading a file row by row keeps memory flat however long the file is."""
    path = tmp_path / "long.csv"
    with path.open("w", encoding="cp932", newline="") as f:
        f.write(",".join(MONTHLY_HEADER) + "\r\n")
        for n in range(20_000):
            f.write(",".join(map(str, monthly_row(student_no=f"S{n:06d}"))) + "\r\n")
    assert path.stat().st_size > 900_000
    tracemalloc.start()
    try:
        with CsvReader(path, MONTHLY_COLUMNS) as reader:
            count = sum(1 for _ in reader)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 20_000 and peak < 300_000, peak  # a fraction of the file


def test_undecodable_characters_late_in_a_file_reject_that_row_only(world, tmp_path):
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [monthly_row(student_no=f"X{n:05d}") for n in range(2000)] + [monthly_row(notes="XX")],
    )
    data = path.read_bytes()
    assert len(data) > 64 * 1024  # past what is looked at to tell the encoding
    path.write_bytes(data.replace(b",XX\r\n", b",\x82\xff\r\n"))  # not CP932: a broken export
    summary = import_monthly(world, path)
    assert (summary.encoding, summary.not_listed, summary.rejected_total) == ("cp932", 2000, 1)
    assert summary.rejected[0]["problems"][0]["message_ja"] == (
        "2002行目「特記事項」: 文字化けしています（Shift_JIS（CP932）として読めない文字があります）"
    )


def test_a_broken_byte_in_the_middle_row_of_a_small_cp932_file_rejects_that_row_only(tmp_path):
    """A three-row CP932 export whose middle row holds a byte sequence CP932 does not have: once the whole file
    was refused as 'neither UTF-8 nor Shift_JIS'; now that row gets its row-numbered error and is kept for
    correction, and the other two rows are imported (through the real command)."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    try:
        setup(hub)
        for child, student_no in [("c1", "2026-0412"), ("c2", "2026-0518"), ("c3", "2026-0601")]:
            list_child(hub, child, student_no)
    finally:
        hub.close()
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [
            monthly_row("2026-0412", "R8.5", notes="特になし"),
            monthly_row("2026-0518", "R8.5", notes="XX"),
            monthly_row("2026-0601", "R8.5", notes="保健室登校"),
        ],
    )
    data = path.read_bytes()
    assert data.count(b",XX\r\n") == 1 and len(data) < 1024
    path.write_bytes(data.replace(b",XX\r\n", b",\x82\xff\r\n"))  # 0x82 0xFF: no such CP932 character
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("cp932")

    result = CliRunner().invoke(app, ["import", "school-monthly", str(path), "--database", database, "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.output)
    assert (summary["encoding"], summary["accepted"], summary["rejected_total"]) == ("cp932", 2, 1), summary
    [row] = summary["rejected"]
    assert row["line"] == 3 and [p["message_ja"] for p in row["problems"]] == [
        "3行目「特記事項」: 文字化けしています（Shift_JIS（CP932）として読めない文字があります）"
    ]
    hub = Hub(database)
    try:
        held = hub.store.peek(Quarantine.create_id("beppu-es-1")).held
        assert [h["raw"]["line"] for h in held] == [3]
        assert [e["payload"]["notes"] for e in kinds(hub, "c3", "attendance.monthly")] == ["保健室登校"]
        assert len(kinds(hub, "c1", "attendance.monthly")) == 1 and kinds(hub, "c2", "attendance.monthly") == []
    finally:
        hub.close()


def test_cells_beyond_the_header_are_reported(world, tmp_path):
    path = write_csv(tmp_path / "m.csv", MONTHLY_HEADER, [monthly_row() + ["余分"]])
    summary = import_monthly(world, path)
    assert summary.rejected[0]["problems"][0]["message_ja"].startswith("2行目: 見出しより多い列に値があります")


def test_a_caller_s_open_file_is_left_open(tmp_path):
    import io

    buffer = io.BytesIO(",".join(MONTHLY_HEADER).encode("cp932") + b"\r\n" + b"a,b,c,1,1,0,0,,,,\r\n")
    with CsvReader(buffer, MONTHLY_COLUMNS) as reader:
        assert [r.line for r in reader] == [2]
    assert not buffer.closed


# --- Re-sending and correcting -------------------------------------------------------------------------------


def test_sending_the_same_file_again_changes_nothing(world, tmp_path):
    path = write_csv(tmp_path / "m.csv", MONTHLY_HEADER, [monthly_row(), monthly_row("2026-0518")])
    assert import_monthly(world, path).accepted == 2
    position = world.store.log_position()
    again = import_monthly(world, path)
    assert (again.accepted, again.superseded, again.unchanged) == (0, 0, 2)
    assert world.store.log_position() == position
    # The same content written differently (era month, full-width digits) is the same report.
    same = write_csv(tmp_path / "same.csv", MONTHLY_HEADER, [monthly_row(month="令和8年5月", days=("１９", 15, 4, 2))])
    assert import_monthly(world, same).unchanged == 1
    assert world.store.log_position() == position


def test_a_corrected_row_supersedes_the_earlier_report_and_the_log_keeps_both(world, tmp_path):
    first = import_monthly(world, write_csv(tmp_path / "a.csv", MONTHLY_HEADER, [monthly_row(days=(19, 15, 4, 2))]))
    assert first.accepted == 1
    corrected = write_csv(tmp_path / "b.csv", MONTHLY_HEADER, [monthly_row(days=(19, 14, 5, 3))])
    summary = import_monthly(world, corrected)
    assert (summary.accepted, summary.superseded) == (0, 1)
    reports = kinds(world, "c1", "attendance.monthly")
    assert len(reports) == 2
    assert reports[1]["payload"]["supersedes"] == reports[0]["id"] and reports[1]["id"] != reports[0]["id"]
    assert reports[1]["payload"]["absent"] == 5
    latest = world.store.peek(MonthlyReports.create_id("beppu-es-1", "2026-05")).latest("c1", "beppu-center")
    assert (latest.id, latest.versions) == (reports[1]["id"], 2)
    read = world.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support")
    assert [e.id for e in read.entries if e.kind == "attendance.monthly"] == [reports[0]["id"], reports[1]["id"]]
    assert import_monthly(world, corrected).unchanged == 1  # the correction sent again: nothing new
    # Sending the first version again is a change back: it supersedes the correction.
    back = import_monthly(world, tmp_path / "a.csv")
    assert back.superseded == 1
    assert kinds(world, "c1", "attendance.monthly")[2]["payload"]["supersedes"] == reports[1]["id"]


def test_two_rows_for_the_same_child_and_month_in_one_file(world, tmp_path):
    summary = import_monthly(
        world,
        write_csv(
            tmp_path / "m.csv",
            MONTHLY_HEADER,
            [monthly_row(days=(19, 15, 4, 2)), monthly_row(days=(19, 15, 4, 1)), monthly_row(days=(19, 15, 4, 1))],
        ),
    )
    assert (summary.accepted, summary.superseded, summary.unchanged) == (1, 1, 1)
    first, second = kinds(world, "c1", "attendance.monthly")
    assert second["payload"]["supersedes"] == first["id"]


def test_a_correction_in_a_later_chunk_of_the_same_file_supersedes_what_the_earlier_chunk_stored(world, tmp_path):
    """Chunks are published while the next rows are read (``services.schools.imports``): a row is planned only
    once the chunk before it is stored, so a later row for the same child and month names what was stored."""
    list_child(world, "c3", "2026-0601")
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [
            monthly_row(days=(19, 15, 4, 2)),
            monthly_row("2026-0518"),
            monthly_row("2026-0601"),
            monthly_row(days=(19, 14, 5, 2)),
            monthly_row("2026-0518"),
        ],
    )
    summary = SchoolImporter(world.store, HubPublisher(world), now=world.clock(), chunk=1).monthly(path)
    assert (summary.accepted, summary.superseded, summary.unchanged) == (3, 1, 1)
    first, second = kinds(world, "c1", "attendance.monthly")
    assert second["payload"]["supersedes"] == first["id"] and second["payload"]["attended"] == 14
    assert len(kinds(world, "c2", "attendance.monthly")) == 1


@pytest.mark.parametrize("chunk", [1, 1000], ids=["a chunk per row", "one chunk"])
def test_a_row_the_hub_refused_is_not_named_as_corrected_by_a_later_row(world, tmp_path, chunk):
    """A row that passes the file's checks but not the hub's (a note over the 20,000 characters an event may
    carry) is rejected with its line; a later row for the same child and month is a first report, not a
    correction of a report that was never stored, whether it came in the same chunk or a later one."""
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [monthly_row(notes="長" * 20_001), monthly_row("2026-0518"), monthly_row(notes="服装の汚れ")],
        encoding="utf-8",
    )
    summary = SchoolImporter(world.store, HubPublisher(world), now=world.clock(), chunk=chunk).monthly(path)
    assert (summary.accepted, summary.superseded, summary.rejected_total) == (2, 0, 1)
    assert summary.rejected[0]["line"] == 2 and summary.rejected[0]["problems"][0]["code"] == "text_too_long"
    (report,) = kinds(world, "c1", "attendance.monthly")
    assert "supersedes" not in report["payload"] and report["payload"]["notes"] == "服装の汚れ"


class QueuingPublisher:
    """A transport like Kafka: it hands envelopes over and says ``queued``; the hub stores them later."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def publish(self, envelopes):
        self.sent += envelopes
        return [PublishResult(i, e["id"], "queued") for i, e in enumerate(envelopes)]


@pytest.mark.parametrize("chunk", [1, 1000], ids=["a chunk per row", "one chunk"])
def test_through_a_transport_a_later_correction_names_the_report_queued_before_it(world, tmp_path, chunk):
    """Reports handed to Kafka are not in the hub's index until the worker stores them: a correction later in
    the file, however many chunks later, names the report it corrects all the same."""
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [monthly_row(days=(19, 15, 4, 2)), monthly_row("2026-0518"), monthly_row(days=(19, 14, 5, 2))],
    )
    publisher = QueuingPublisher()
    summary = SchoolImporter(world.store, publisher, now=world.clock(), chunk=chunk).monthly(path)
    assert (summary.accepted, summary.superseded, summary.queued) == (2, 1, 3)
    first, correction = [e for e in publisher.sent if e["child"] == "c1"]
    assert "supersedes" not in first["payload"] and correction["payload"]["supersedes"] == first["id"]


# --- Target lists ---------------------------------------------------------------------------------------------


def test_the_roster_follows_assignments_and_removals(world):
    list_child(world, "c3", "2026-0600", at="2026-05-20T09:00:00+09:00", from_month=None)
    unlist_child(world, "c2", "2026-0518", at="2026-06-02T10:00:00+09:00")
    roster = world.store.peek(SchoolRoster.create_id("beppu-es-1"))
    (c3,) = roster.of("2026-0600")
    assert (c3.child, c3.centre, c3.from_month) == ("c3", "beppu-center", "2026-05")  # the month of assignment
    (c2,) = roster.of("2026-0518")
    assert c2.covers_month("2026-05") and not c2.covers_month("2026-06")
    assert c2.covers_day(date(2026, 6, 1)) and not c2.covers_day(date(2026, 6, 2))


def test_a_list_from_a_school_is_not_a_target_list(world):
    result = world.publish(
        [
            {
                "id": "self-list",
                "kind": "target_list.assigned",
                "child": "c7",
                "source": "beppu-es-1",
                "basis": "cwa-25-3",
                "to": "beppu-center",
                "at": "2026-05-01T09:00:00+09:00",
                "payload": {"school": "beppu-es-1", "student_no": "2026-0777"},
            }
        ]
    )
    # policy version 2: only the centre of residence (or a covering 児相) lists a child; a school cannot
    assert result[0].outcome == "rejected" and result[0].problems[0].code == "not_authorised"
    assert world.store.peek(SchoolRoster.create_id("beppu-es-1")).of("2026-0777") == []


# --- Overdue reports ------------------------------------------------------------------------------------------


def test_a_missing_month_is_overdue_after_the_due_day_not_before(world, tmp_path):
    import_monthly(
        world,
        write_csv(
            tmp_path / "april.csv", MONTHLY_HEADER, [monthly_row(month="2026-04"), monthly_row("2026-0518", "2026-04")]
        ),
    )
    assert overdue(world, "beppu-center", "2026-05-10") == []  # April is due by 10 May
    assert overdue(world, "beppu-center", "2026-06-10") == []  # May is due by 10 June: on the day, not overdue
    assert overdue(world, "beppu-center", "2026-06-11") == [
        ("beppu-es-1", "2026-05", "2026-0412"),
        ("beppu-es-1", "2026-05", "2026-0518"),
    ]
    assert overdue(world, "beppu-center", "2026-06-11", month="2026-04") == []
    import_monthly(world, write_csv(tmp_path / "may.csv", MONTHLY_HEADER, [monthly_row()]))
    import_monthly(world, write_csv(tmp_path / "may2.csv", MONTHLY_HEADER, [monthly_row(days=(19, 16, 3, 0))]))
    assert overdue(world, "beppu-center", "2026-06-11") == [("beppu-es-1", "2026-05", "2026-0518")]


def test_the_due_day_is_a_setting(make_hub, clock, tmp_path):
    clock.at = at("2026-06-05T09:00:00+09:00")
    hub = setup(make_hub(settings=Settings(monthly_report_due_day=5)))
    list_child(hub, "c1", "2026-0412", from_month="2026-05")
    assert overdue(hub, "beppu-center", "2026-06-05") == []
    assert overdue(hub, "beppu-center", "2026-06-06") == [("beppu-es-1", "2026-05", "2026-0412")]


def test_a_removed_listing_stops_expectations(world, clock):
    clock.at = at("2026-06-16T09:00:00+09:00")
    unlist_child(world, "c2", "2026-0518", at="2026-06-15T10:00:00+09:00")
    missing = overdue(world, "beppu-center", "2026-08-20")
    assert ("beppu-es-1", "2026-07", "2026-0412") in missing
    assert [m for _, m, s in missing if s == "2026-0518"] == ["2026-04", "2026-05"]


def test_the_lines_kept_per_school_follow_listings_reports_and_the_day(world, tmp_path):
    """``OverdueLines`` (the start page's overdue counts): each call after a change gives what a fresh computation
    gives (``overdue`` checks both), a listing added or removed, a report received, the month due moving on."""
    assert len(overdue(world, "beppu-center", "2026-05-20")) == 2
    list_child(world, "c5", "2026-0001")
    assert ("beppu-es-1", "2026-04", "2026-0001") in overdue(world, "beppu-center", "2026-05-20")
    import_monthly(world, write_csv(tmp_path / "april.csv", MONTHLY_HEADER, [monthly_row(month="2026-04")]))
    assert ("beppu-es-1", "2026-04", "2026-0412") not in overdue(world, "beppu-center", "2026-05-20")
    assert ("beppu-es-1", "2026-05", "2026-0412") in overdue(world, "beppu-center", "2026-06-11")
    unlist_child(world, "c2", "2026-0518", at="2026-06-05T10:00:00+09:00")
    assert [m for _, m, s in overdue(world, "beppu-center", "2026-06-11") if s == "2026-0518"] == ["2026-04", "2026-05"]
    _, listed = overdue_counts(
        world.store, world.settings, world.overdue_lines, reader="beppu-center", today=date(2026, 6, 11)
    )
    assert listed == listed_children(world, "beppu-center") and set(listed) == {"c1", "c5"}  # the start page's
    assert {key[2] for key in world.overdue_lines._kept} == {"2026-05"}  # April's lines dropped when May was due


def test_each_school_sees_its_own_list_and_each_centre_its_own_lists(world):
    list_child(world, "c5", "2026-0001", school="beppu-es-2")
    list_child(world, "c6", "2026-0002", school="beppu-es-2", centre="oita-center")
    today = "2026-05-20"
    assert overdue(world, "beppu-es-1", today) == [
        ("beppu-es-1", "2026-04", "2026-0412"),
        ("beppu-es-1", "2026-04", "2026-0518"),
    ]
    assert overdue(world, "beppu-es-2", today) == [
        ("beppu-es-2", "2026-04", "2026-0001"),
        ("beppu-es-2", "2026-04", "2026-0002"),
    ]
    assert [s for s, _, _ in overdue(world, "beppu-center", today)] == ["beppu-es-1", "beppu-es-1", "beppu-es-2"]
    assert overdue(world, "oita-center", today) == [("beppu-es-2", "2026-04", "2026-0002")]
    assert overdue(world, "chuo-jiso", today) == []
    from events.problems import Rejected

    with pytest.raises(Rejected):
        overdue(world, "no-such-org", today)


# --- The command line -----------------------------------------------------------------------------------------


def test_import_and_overdue_through_the_cli(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    try:
        setup(hub)
        list_child(hub, "c1", "2026-0412", from_month="2026-01")
        list_child(hub, "c2", "2026-0518", from_month="2026-01")
    finally:
        hub.close()
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [
            monthly_row(month="R8.1"),
            monthly_row("2026-0518", "R8.1"),
            monthly_row("2026-0412", "R8.2", days=(19, 18, 4, 0)),
            monthly_row("2026-9999", "R8.1"),
        ],
    )
    runner = CliRunner()
    result = runner.invoke(app, ["import", "school-monthly", str(path), "--database", database, "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.output)
    assert (summary["accepted"], summary["not_listed"], summary["rejected_total"]) == (2, 1, 1)
    assert summary["rejected"][0]["line"] == 4 and summary["rejected"][0]["problems"][0]["field"] == "出席日数"

    table = runner.invoke(app, ["import", "school-monthly", str(path), "--database", database])
    assert table.exit_code == 1 and "変更なし" in table.output and "4行目「出席日数」" in table.output

    result = runner.invoke(
        app, ["reports", "overdue", "--school", "beppu-es-1", "--month", "R8.2", "--database", database, "--json"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)["overdue"]
    assert [(r["month"], r["student_no"]) for r in found] == [("2026-02", "2026-0412"), ("2026-02", "2026-0518")]
    assert runner.invoke(app, ["reports", "overdue", "--database", database]).exit_code == 2

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["import", "school-monthly", str(empty), "--database", database, "--json"])
    assert result.exit_code == 2 and json.loads(result.output)["status"] == "refused"


# --- HTTP -----------------------------------------------------------------------------------------------------


def test_overdue_reports_over_http_as_the_tokens_organisation(world, clock, tmp_path):
    from fastapi.testclient import TestClient

    from services.auth.tokens import keys_from_file
    from services.http.app import create_app

    world.load_orgs([{"id": "oita-audit", "type": "auditor", "prefecture": "44"}])
    list_child(world, "c5", "2026-0001", school="beppu-es-2")
    clock.at = at("2026-06-11T09:00:00+09:00")
    issuer, verifier = keys_from_file(tmp_path / "signing-key.pem")

    def get(org: str, role: str, **params):
        token = issuer.issue(org=org, role=role, user="tester")
        return client.get("/v1/reports/overdue", params=params, headers={"Authorization": f"Bearer {token}"})

    with TestClient(create_app(world, verifier)) as client:
        school = get("beppu-es-2", "school_admin", month="2026-05")
        assert school.status_code == 200, school.text
        assert [(r["school"], r["month"], r["student_no"], r["due"]) for r in school.json()["overdue"]] == [
            ("beppu-es-2", "2026-05", "2026-0001", "2026-06-10")
        ]
        # The line is backed by the school's own read of the child's record, recorded before the answer.
        [record] = school.json()["access_records"]
        log = world.store.peek(AccessLog.create_id("c5"))
        assert log is not None and log.count == 1
        [read] = [r for r in access_records(world.store) if r["id"] == record]
        assert (read["reader"]["org"], read["purpose"], read["child"]) == ("beppu-es-2", "support", "c5")
        centre = get("beppu-center", "caseworker")
        assert {(r["school"], r["student_no"]) for r in centre.json()["overdue"]} == {
            ("beppu-es-1", "2026-0412"),
            ("beppu-es-1", "2026-0518"),
            ("beppu-es-2", "2026-0001"),
        }
        everything = centre.json()["overdue"]
        assert centre.json()["total"] == len(everything) == 6  # three children, two months each
        assert len(centre.json()["access_records"]) == 3
        # Paged: the total of every page, and one read recorded per child on the page shown, none for the others.
        before = {r["id"] for r in access_records(world.store)}
        second = get("beppu-center", "caseworker", page=2, per_page=2).json()
        assert (second["total"], second["page"], second["per_page"]) == (6, 2, 2)
        assert second["overdue"] == everything[2:4]
        new = [r for r in access_records(world.store) if r["id"] not in before]
        assert [r["child"] for r in new] == list(dict.fromkeys(r["child"] for r in everything[2:4]))
        assert [r["id"] for r in new] == second["access_records"]
        assert get("beppu-center", "caseworker", per_page=501).status_code == 422
        assert get("oita-center", "caseworker").json()["overdue"] == []
        refused = get("oita-audit", "auditor")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "no_target_lists"
        assert get("beppu-center", "caseworker", month="2026-13").status_code == 422
        assert client.get("/v1/reports/overdue").status_code == 401


@pytest.mark.postgres
def test_monthly_and_daily_imports_on_postgresql(make_hub, clock, postgres_url, tmp_path):
    from tests.schoolfiles import DAILY_HEADER, import_daily, school_days

    clock.at = at("2026-06-05T09:00:00+09:00")
    hub = setup(make_hub(database=postgres_url))
    list_child(hub, "c1", "2026-0412")
    path = write_csv(tmp_path / "m.csv", MONTHLY_HEADER, [monthly_row(month="R8.4"), monthly_row()])
    assert import_monthly(hub, path).accepted == 2
    assert import_monthly(hub, path).unchanged == 2
    assert (
        import_monthly(
            hub, write_csv(tmp_path / "c.csv", MONTHLY_HEADER, [monthly_row(days=(19, 14, 5, 2))])
        ).superseded
        == 1
    )
    assert overdue(hub, "beppu-center", "2026-06-11") == []
    days = school_days(date(2026, 5, 11), date(2026, 5, 19))
    daily = write_csv(
        tmp_path / "d.csv", DAILY_HEADER, [[ES1_CODE, "2026-0412", d.isoformat(), "欠席", "有", ""] for d in days]
    )
    assert [a["reason"] for a in import_daily(hub, daily).alerts] == ["consecutive_absence"]
    assert import_daily(hub, daily).alerts == []
    assert len(kinds(hub, "c1", "absence.alert")) == 1


def test_report_indexes_written_one_event_per_report_still_read(world):
    """Stores written before a publish's reports became one event hold one ``Reported`` event per report: they
    read the same, and new reports follow them."""
    index = MonthlyReports("beppu-es-1", "2026-04")
    index.record(child="c1", centre="beppu-center", event_id="old-1", content="x")
    index.record(child="c1", centre="beppu-center", event_id="old-2", content="y")
    world.store.save(index)
    world.store.repository.cache.clear()
    stored = world.store.peek(MonthlyReports.create_id("beppu-es-1", "2026-04"))
    assert (stored.latest("c1", "beppu-center").id, stored.latest("c1", "beppu-center").versions) == ("old-2", 2)


def test_a_month_out_of_the_hubs_range_or_a_too_long_reason_rejects_its_row_and_the_import_goes_on(world, tmp_path):
    """Before, such a row passed the file's checks and the kind's model raised (pydantic's ValidationError): the
    import stopped with no summary. Now each is a problem of its cell, with its line and a Japanese message; the
    other rows are imported."""
    long_reason = [ES1_CODE, "2026-0412", "2026-05", 19, 15, 4, 2, "", "", "理" * 20_001, ""]
    path = write_csv(
        tmp_path / "m.csv",
        MONTHLY_HEADER,
        [monthly_row(month="1899年4月"), long_reason, monthly_row("2026-0518")],
        encoding="utf-8",
    )
    summary = import_monthly(world, path)
    assert (summary.accepted, summary.rejected_total) == (1, 2)
    assert [(r["line"], [(p["code"], p["field"]) for p in r["problems"]]) for r in summary.rejected] == [
        (2, [("month_out_of_range", "対象年月")]),
        (3, [("text_too_long", "欠席理由")]),
    ]
    assert all(p["message_ja"] for r in summary.rejected for p in r["problems"])
