"""Regions (issue 17 §2): a regions file loaded like the organisations, kept with its history; refused with the
entry at fault; ``tsunagu regions load`` and ``tsunagu aggregates --by region``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from events.problems import Rejected
from services.administration.regions import RegionRegistry, load_regions, read_regions_file, regions
from services.cli import app
from services.hub import Hub

pytestmark = pytest.mark.store

FILE = """
prefectures:
  - code: "10"
    name: 架空県
    regions:
      - name: 東部圏域
        municipalities: {"100001": 甲市, "100002": 乙町}
      - name: 西部圏域
        municipalities: {"100003": 丙村}
"""


def test_loaded_twice_changes_nothing_and_a_change_is_kept_with_its_history(hub):
    prefectures = read_regions_file(FILE.encode())
    assert load_regions(hub.store, prefectures).recorded == ["10"]
    assert load_regions(hub.store, prefectures).unchanged == ["10"]
    known = regions(hub.store)
    assert (
        known.region_of["100002"] == "東部圏域" and known.name("100003") == "丙村" and known.name("999999") == "999999"
    )
    moved = read_regions_file(
        FILE.replace('"100002": 乙町}', "}").replace('{"100003"', '{"100002": 乙町, "100003"').encode()
    )
    assert load_regions(hub.store, moved).recorded == ["10"]
    assert regions(hub.store).region_of["100002"] == "西部圏域"
    history = hub.store.repository.event_store.get(RegionRegistry.create_id())
    assert sum(1 for e in history if hasattr(e, "prefecture")) == 2


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("prefectures: [{code: '10', name: 県, regions: [{name: 東, municipalities: {'200001': 町}}]}]", "200001"),
        ("prefectures: [{code: '1x', name: 県, regions: []}]", "code"),
        ("orgs: []", "file"),
        (
            "prefectures: [{code: '10', name: 県, regions: [{name: 東, municipalities: {'100001': 町}},"
            " {name: 西, municipalities: {'100001': 町}}]}]",
            "100001",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_entry(text, field):
    with pytest.raises(Rejected) as refused:
        read_regions_file(text.encode())
    assert field in refused.value.problems[0].field


def test_the_command_loads_and_aggregates_sum_per_region(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    hub.load_orgs(
        [
            {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
            {"id": "cC", "type": "municipal_center", "municipality": "100003", "prefecture": "10"},
            {"id": "pf", "type": "prefecture_office", "prefecture": "10"},
        ]
    )
    hub.close()
    (tmp_path / "regions.yaml").write_text(FILE, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["regions", "load", str(tmp_path / "regions.yaml"), "--database", database])
    assert result.exit_code == 0, result.output
    assert "recorded 1" in result.output
    args = ["aggregates", "cases.open", "--from", "2026-05", "--to", "2026-05", "--org", "pf", "--by", "region"]
    result = runner.invoke(app, [*args, "--csv", "--database", database])
    assert result.exit_code == 0, result.output
    lines = result.stdout_bytes.decode("utf-8-sig").splitlines()
    assert lines == ["圏域,2026-05,期末", "東部圏域,0,0", "西部圏域,0,0", "計,0,0"]


def test_the_demo_regions_file_names_every_demo_centre_municipality():
    from services.demo import ORGS, REGIONS_FILE

    [oita] = read_regions_file(REGIONS_FILE.read_bytes())
    named = {code for region in oita["regions"] for code in region["municipalities"]}
    assert named == {o["municipality"] for o in ORGS if o["type"] == "municipal_center"}
