"""Loading an organisations file (services/administration/organisations.py): the diff shown before anything is
applied (added, changed field by field, the ones the file leaves out kept), the load refused when the registry
moved since that diff, and a bad file's problems naming the row and the field in Japanese."""

from __future__ import annotations

import pytest

from events.problems import Rejected
from events.store import REGISTRY_ID
from services.administration.organisations import diff_orgs, load_orgs, read_orgs_file
from services.hub import Hub

pytestmark = [pytest.mark.store]

FIRST = [
    {"id": "beppu-center", "type": "municipal_center", "name": "別府市こども家庭センター", "municipality": "442020"},
    {"id": "beppu-es-hamakaze", "type": "school", "name": "はまかぜ小学校", "municipality": "442020"},
]


@pytest.fixture
def hub(make_hub) -> Hub:
    hub = make_hub()
    load_orgs(hub.store, FIRST, by="test-admin")
    return hub


def test_the_diff_names_what_changes_and_the_load_applies_it_only_at_that_version(hub):
    items = read_orgs_file(
        "orgs:\n"
        "  - {id: beppu-es-hamakaze, type: school, name: 別府市立はまかぜ小学校, municipality: '442020', regime: public}\n"
        "  - {id: beppu-es-aoba, type: school, name: 別府市立あおば小学校, municipality: 442020}\n".encode()
    )
    diff = diff_orgs(hub.store, items)
    assert [o.id for o in diff.added] == ["beppu-es-aoba"]
    [change] = diff.changed
    assert {(f.field, f.old, f.new) for f in change.fields} == {
        ("name", "はまかぜ小学校", "別府市立はまかぜ小学校"),
        ("regime", None, "public"),
    }
    assert [o.id for o in diff.not_in_file] == ["beppu-center"]
    assert "beppu-es-aoba" not in hub.orgs()  # nothing applied by the diff

    load_orgs(hub.store, [{"id": "oita-center", "type": "municipal_center", "municipality": "442011"}], by="test-admin")
    with pytest.raises(Rejected) as moved:
        load_orgs(hub.store, items, by="test-admin", expected_version=diff.version)
    assert moved.value.code == "registry_moved" and "beppu-es-aoba" not in hub.orgs()

    again = diff_orgs(hub.store, items)
    result = load_orgs(hub.store, items, by="test-admin", expected_version=again.version)
    assert result.registered == ["beppu-es-aoba"] and result.updated == ["beppu-es-hamakaze"]
    assert not diff_orgs(hub.store, items).changes_anything


def test_a_bad_file_names_the_row_and_the_field_in_japanese_and_changes_nothing(hub):
    before = hub.store.registry().version
    with pytest.raises(Rejected) as bad:
        diff_orgs(
            hub.store,
            [
                {"id": "x1", "type": "gakkou", "municipality": "44202"},
                {"type": "school", "colour": "blue"},
                {"id": "x1", "type": "school"},
            ],
        )
    said = [p.message_ja for p in bad.value.problems]
    assert any(m.startswith("機関 1 件目（x1）：種類「gakkou」はありません") for m in said)
    assert "機関 1 件目（x1）：「市町村コード」は6桁の数字（全国地方公共団体コード）で書いてください" in said
    assert "機関 2 件目：「機関ID」がありません" in said
    assert any(m.startswith("機関 2 件目：「colour」という項目はありません") for m in said)
    assert hub.store.registry().version == before
    with pytest.raises(Rejected) as twice:
        diff_orgs(hub.store, [{"id": "x1", "type": "school"}, {"id": "x1", "type": "nursery"}])
    assert twice.value.problems[0].message_ja == "機関 2 件目（x1）：機関ID「x1」は 1 件目と重複しています"
    for data, words in (
        (b"\xff\xfe", "UTF-8"),
        (b"orgs: [", "YAML・JSON"),
        (b"name: only", "機関の一覧"),
    ):
        with pytest.raises(Rejected) as unreadable:
            read_orgs_file(data)
        assert words in unreadable.value.problems[0].message_ja


def test_each_registration_and_change_keeps_who_made_it(hub, tmp_path):
    """Who changed the registry is kept in the store with each change (review finding: only the process log named
    the person): the administrator given, the login name of whoever ran ``tsunagu orgs load``, ``system`` for a
    program; changes stored before it was kept say None."""
    load_orgs(hub.store, [dict(FIRST[1], name="別府市立はまかぜ小学校")], by="小林 誠 (kobayashi)")
    registry = hub.store.get_or_none(REGISTRY_ID)  # the aggregate: its history (``registry()`` is one version)
    assert registry.changed_by == ["test-admin", "test-admin", "小林 誠 (kobayashi)"]
    hub.load_orgs([{"id": "oita-center", "type": "municipal_center", "municipality": "442011"}])
    assert hub.store.get_or_none(REGISTRY_ID).changed_by[-1] == "system"
