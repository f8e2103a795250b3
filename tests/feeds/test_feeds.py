"""The feeds of organisations other than schools (JSON lines, 乳幼児健診 CSV, 委託事業者 CSV), through the importer,
Hub.publish, the linking queue and the read service; and the ``tsunagu import`` commands."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from adapters.publisher import HubPublisher
from events.store import Quarantine
from services.cli.root import app
from services.feeds.imports import FeedImporter
from services.hub import Hub
from services.publishing import linking as identity
from tests.conftest import at

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "tobu-hc", "type": "health_center", "prefecture": "44", "covers": ["442011", "442020"]},
    {"id": "beppu-npo", "type": "service_provider", "regime": "private", "municipality": "442020"},
]

CHECKUPS = (  # a 保健所 export: CP932, CRLF, a title line, era dates, full-width digits
    "乳幼児健診結果一覧（令和８年４月）\r\n"
    "対象者番号,健診名,健診日,受診,所見\r\n"
    "０１２３,１歳６か月児健診,令和８年４月１０日,受診,言葉の遅れ 経過観察\r\n"
    "0123,3歳児健診,Ｒ８．４．１５,未受診,\r\n"
    "0456,3歳児健診,2026/4/20,未受診,\r\n"
    "0123,3歳児健診,令和8年13月1日,受診,\r\n"
    "0123,3歳児健診,2099-06-01,受診,\r\n"
    ",1歳6か月児健診,2026-04-10,不明,\r\n"
    ",,,,\r\n"
)

PROVIDER = (  # a 委託事業者 report: UTF-8 with BOM
    "\ufeff利用者番号,サービス種別,利用開始日,利用終了日,訪問日,様子\n"
    "P-77,ショートステイ,R8.4.3,R8.4.5,,\n"
    "P-77,子育て世帯訪問支援,,,2026-04-22,部屋が散らかっており食事の用意がない\n"
    "P-77,ショートステイ,2026-04-10,2026-04-08,,\n"
    "P-77,子育て世帯訪問支援,,,2026-04-23,\n"
    "P-77,ショートステイ,,,,\n"
)


def register(hub: Hub, child: str, residence: str = "442020") -> None:
    [r] = hub.publish(
        [
            {
                "id": f"reg-{child}",
                "kind": "child.registered",
                "child": child,
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-01T09:00:00+09:00",
                "payload": {"residence": residence},
            }
        ]
    )
    assert r.outcome == "accepted"


def timeline(hub: Hub, child: str, org: str = "beppu-center", role: str = "caseworker") -> dict:
    result = hub.timeline(org=org, role=role, child=child, purpose="support")
    assert result.allowed
    return {e.id: e for e in result.entries}


def held_rows(hub: Hub, org: str) -> list[dict]:
    quarantine = hub.store.peek(Quarantine.create_id(org))
    return quarantine.held if quarantine is not None else []


@pytest.fixture
def world(hub, clock) -> Hub:
    hub.load_orgs(ORGS)
    register(hub, "c1")
    register(hub, "c2")
    clock.at = at("2026-05-01T09:00:00+09:00")
    assert not identity.link(hub, center="beppu-center", org="tobu-hc", local_number="0123", child="c1").refused
    assert not identity.link(hub, center="beppu-center", org="beppu-npo", local_number="P-77", child="c1").refused
    return hub


@pytest.fixture
def importer(world) -> FeedImporter:
    return FeedImporter(world.store, HubPublisher(world), now=world.clock())


def test_health_checkups_in_cp932_with_era_dates_and_full_width_digits(world, importer):
    summary = importer.health_checkup(io.BytesIO(CHECKUPS.encode("cp932")), org="tobu-hc", name="kenshin.csv")
    assert summary.encoding == "cp932"
    assert (summary.rows, summary.accepted, summary.waiting_for_link, summary.rejected_total) == (6, 2, 1, 3)
    assert summary.status == "rejected"
    shown = [e for e in timeline(world, "c1").values() if e.kind == "health.checkup"]
    assert sorted((e.payload["checkup"], e.payload["date"], e.payload["attended"]) for e in shown) == [
        ("1歳6か月児健診", "2026-04-10", True),
        ("3歳児健診", "2026-04-15", False),
    ]
    assert all(e.rule == "DIRECT" and e.basis == "cwa-21-10-5" and e.source == "tobu-hc" for e in shown)
    assert [e.payload.get("findings") for e in shown if e.payload["attended"]] == ["言葉の遅れ 経過観察"]
    assert not [e for e in timeline(world, "c2").values() if e.kind == "health.checkup"]
    assert timeline(world, "c1", org="oita-center") == {}  # the child lives in Beppu
    # The unlinked number waits, visible to the centres that may link the 保健所's numbers.
    [waiting] = identity.waiting(world.store, "oita-center")
    assert (waiting.org, waiting.local_number, waiting.kind) == ("tobu-hc", "0456", "health.checkup")
    # Bad rows: Japanese messages naming the line (the title line counts) and the column, kept in quarantine.
    messages = {r["line"]: [p["message_ja"] for p in r["problems"]] for r in summary.rejected}
    assert messages[6] == ["6行目「健診日」: 「令和8年13月1日」という日付はありません"]
    assert messages[7] == ["7行目「健診日」: 2099-06-01 は未来の日付です"]
    assert messages[8][0] == "8行目「対象者番号」: 空欄です" and "8行目「受診」: 「不明」は使えません" in messages[8][1]
    held = held_rows(world, "tobu-hc")
    assert [(h["raw"]["line"], h["raw"]["row"]["健診日"]) for h in held] == [
        (6, "令和8年13月1日"),
        (7, "2099-06-01"),
        (8, "2026-04-10"),
    ]
    assert held[0]["problems"][0]["field"] == "健診日"


def test_resending_a_feed_changes_nothing(world, importer):
    first = importer.health_checkup(io.BytesIO(CHECKUPS.encode("cp932")), org="tobu-hc")
    before = (len(timeline(world, "c1")), len(held_rows(world, "tobu-hc")), len(identity.waiting(world.store)))
    # The same file again, and the same rows in UTF-8 with half-width digits: same ids, nothing new.
    for data in (CHECKUPS.encode("cp932"), CHECKUPS.replace("０１２３", "0123").replace("１歳６", "1歳6").encode()):
        again = importer.health_checkup(io.BytesIO(data), org="tobu-hc")
        assert (again.accepted, again.unchanged, again.waiting_for_link) == (0, first.accepted, 1)
        assert (
            len(timeline(world, "c1")),
            len(held_rows(world, "tobu-hc")),
            len(identity.waiting(world.store)),
        ) == before


def test_linking_a_waiting_checkup_puts_it_on_the_linked_child(world, importer):
    importer.health_checkup(io.BytesIO(CHECKUPS.encode("cp932")), org="tobu-hc")
    outcome = identity.link(world, center="beppu-center", org="tobu-hc", local_number="0456", child="c2")
    assert [(env["kind"], r.outcome) for env, r in outcome.released] == [("health.checkup", "accepted")]
    [checkup] = [e for e in timeline(world, "c2").values() if e.kind == "health.checkup"]
    assert (checkup.payload["date"], checkup.payload["attended"]) == ("2026-04-20", False)
    assert len([e for e in timeline(world, "c1").values() if e.kind == "health.checkup"]) == 2
    assert identity.waiting(world.store) == []


def test_provider_usage_and_visit_reports(world, importer):
    summary = importer.provider(io.BytesIO(PROVIDER.encode()), org="beppu-npo", to="beppu-center", name="r.csv")
    assert summary.encoding == "utf-8-sig"
    assert (summary.rows, summary.accepted, summary.rejected_total) == (5, 2, 3)
    shown = timeline(world, "c1")
    [usage] = [e for e in shown.values() if e.kind == "service.usage"]
    [visit] = [e for e in shown.values() if e.kind == "visit.report"]
    assert usage.payload == {"service": "ショートステイ", "from": "2026-04-03", "to": "2026-04-05"}
    assert visit.payload["observations"] == "部屋が散らかっており食事の用意がない"
    assert {(e.basis, e.to, e.rule) for e in (usage, visit)} == {("commissioned", "beppu-center", "DIRECT")}
    assert set(timeline(world, "c1", org="beppu-npo", role="provider_staff")) == {usage.id, visit.id}
    messages = {r["line"]: [p["message_ja"] for p in r["problems"]] for r in summary.rejected}
    assert messages == {
        4: ["4行目「利用終了日」: 利用終了日（2026-04-08）が利用開始日（2026-04-10）より前です"],
        5: ["5行目「様子」: 訪問日がある行は様子を入力してください"],
        6: ["6行目: 利用開始日か訪問日のどちらかを入力してください"],
    }
    assert len(held_rows(world, "beppu-npo")) == 3
    again = importer.provider(io.BytesIO(PROVIDER.encode()), org="beppu-npo", to="beppu-center")
    assert (again.accepted, again.unchanged, again.rejected_total) == (0, 2, 3)
    assert len(held_rows(world, "beppu-npo")) == 3 and len(timeline(world, "c1")) == len(shown)


def test_provider_rows_need_a_commissioning_centre(world, importer):
    summary = importer.provider(io.BytesIO(PROVIDER.encode()), org="beppu-npo")
    assert summary.accepted == 0
    assert "2行目「委託元」: 委託元がありません" in summary.rejected[0]["problems"][0]["message_ja"]
    with_column = "利用者番号,サービス種別,訪問日,様子,委託元\nP-77,子育て世帯訪問支援,2026-04-22,元気,beppu-center\n"
    assert importer.provider(io.BytesIO(with_column.encode()), org="beppu-npo").accepted == 1


def test_jsonl_feed(world, importer):
    def line(eid: str, local: str = "0123", **extra) -> str:
        return json.dumps(
            {
                "id": eid,
                "kind": "concern.reported",
                "local_child": local,
                "source": "tobu-hc",
                "basis": "cwa-21-10-5",
                "at": "2026-04-20T10:00:00+09:00",
                "payload": {"summary": "健診未受診が続く"},
                **extra,
            },
            ensure_ascii=False,
        )

    feed = (
        "\n".join(
            [
                line("j1"),
                line("j2", local="0999"),
                "{not json",
                "[1, 2]",
                "",
                line("j3", source="beppu-npo"),
                line("j4", payload={}),
                line("j5", local=None, child="c2"),
            ]
        )
        + "\n"
    )
    summary = importer.jsonl(io.BytesIO(feed.encode()), org="tobu-hc")
    assert (summary.rows, summary.accepted, summary.waiting_for_link, summary.rejected_total) == (7, 2, 1, 4)
    problems = {r["line"]: r["problems"][0] for r in summary.rejected}
    assert problems[3]["message_ja"] == "3行目（2文字目）: JSON として読めません"
    assert problems[4]["message_ja"].startswith("4行目: 1行に1つのイベント")
    assert problems[6]["code"] == "source_mismatch" and problems[6]["message_ja"].startswith("6行目: ")
    assert problems[7]["message_ja"] == "7行目: payload.summary: 必須項目がありません"
    assert "j1" in timeline(world, "c1") and "j5" in timeline(world, "c2")
    assert [w.id for w in identity.waiting(world.store, "beppu-center")] == ["j2"]
    assert [h["raw"]["line"] for h in held_rows(world, "tobu-hc") if h["raw"].get("format") == "jsonl"] == [3, 4, 6]
    again = importer.jsonl(io.BytesIO(feed.encode()), org="tobu-hc")
    assert (again.accepted, again.unchanged, again.waiting_for_link) == (0, 2, 1)


def test_a_jsonl_feed_with_numbers_no_store_keeps_is_rejected_line_by_line(world, importer):
    """Infinity (``1e400``), ``NaN`` and an integer of 5000 digits: each line refused naming its line (and the
    field where there is one), the good line imported."""
    head = (
        '{"kind": "concern.reported", "local_child": "0123", "source": "tobu-hc", "basis": "cwa-21-10-5", '
        '"at": "2026-04-20T10:00:00+09:00", '
    )
    feed = (
        "\n".join(
            [
                head + '"id": "k1", "payload": {"summary": "健診未受診"}}',
                head + '"id": "k2", "payload": {"summary": "健診未受診", "score": 1e400}}',
                head + '"id": "k3", "payload": {"summary": "健診未受診", "score": NaN}}',
                head + '"id": "k4", "payload": {"summary": "健診未受診", "score": 1' + "0" * 5000 + "}}",
            ]
        )
        + "\n"
    )
    summary = importer.jsonl(io.BytesIO(feed.encode()), org="tobu-hc")
    assert (summary.rows, summary.accepted, summary.rejected_total) == (4, 1, 3)
    problems = {r["line"]: r["problems"][0] for r in summary.rejected}
    assert problems[2]["message_ja"].startswith("2行目: payload.score: 数値が大きすぎる")
    assert problems[3]["message_ja"].startswith("3行目: payload.score: 数値が大きすぎる")
    assert problems[4]["message_ja"].startswith("4行目: JSON として読めません")


def test_a_file_that_is_not_a_csv_is_refused(world, importer):
    summary = importer.health_checkup(io.BytesIO(b"%PDF-1.4 binary"), org="tobu-hc")
    assert summary.status == "refused" and "CSV ファイルではありません" in summary.refused[0]["message_ja"]
    unknown = importer.provider(io.BytesIO(PROVIDER.encode()), org="nobody", to="beppu-center")
    assert unknown.status == "refused" and unknown.refused[0]["code"] == "unknown_source"


def test_cli_import_commands(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    register(hub, "c1")
    identity.link(hub, center="beppu-center", org="tobu-hc", local_number="0123", child="c1")
    hub.close()
    checkups = tmp_path / "kenshin.csv"
    checkups.write_bytes(CHECKUPS.encode("cp932"))
    runner = CliRunner()
    result = runner.invoke(
        app, ["import", "health-checkup", str(checkups), "--org", "tobu-hc", "--database", database, "--json"]
    )
    assert result.exit_code == 1, result.output  # rows rejected
    summary = json.loads(result.output)
    assert (summary["accepted"], summary["waiting_for_link"], summary["rejected_total"]) == (2, 1, 3)
    text = runner.invoke(app, ["import", "health-checkup", str(checkups), "--org", "tobu-hc", "--database", database])
    assert "紐付け待ち (queued for linking)" in text.output and "令和8年13月1日" in text.output
    provider = tmp_path / "provider.csv"
    provider.write_text(PROVIDER.splitlines()[0] + "\n" + PROVIDER.splitlines()[1] + "\n", encoding="utf-8")
    ok = runner.invoke(
        app,
        [
            "import",
            "provider",
            str(provider),
            "--org",
            "beppu-npo",
            "--to",
            "beppu-center",
            "--database",
            database,
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["waiting_for_link"] == 1  # P-77 is not linked in this hub
    feed = tmp_path / "feed.jsonl"
    feed.write_text("{oops\n", encoding="utf-8")
    bad = runner.invoke(app, ["import", "jsonl", str(feed), "--org", "tobu-hc", "--database", database, "--json"])
    assert bad.exit_code == 1 and json.loads(bad.output)["rejected"][0]["line"] == 1
