"""Remembered access-log heads (``services.reading.access_heads``) against what they replace, reading the log's
last record on every read: the same chain, one record per read, ``audit verify`` clean, also when another
process (here a second hub on the same store) or a view's bulk append moved the head since; and a read with a
remembered head does not read the log's last record."""

from __future__ import annotations

from datetime import datetime

import pytest

from events.store import AccessLog
from services.audit.replay import access_records
from services.hub import Hub
from services.reading import timeline as timeline_module
from services.reading.access_heads import AccessHeads

pytestmark = [pytest.mark.store]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立南小学校"},
]
NOW = datetime.fromisoformat("2026-06-01T10:00:00+09:00")


def _hub(database: str) -> Hub:
    return Hub(database, clock=lambda: NOW)


def _fill(hub: Hub, children: list[str]) -> None:
    hub.load_orgs(ORGS)
    for child in children:
        hub.publish(
            [
                {
                    "id": f"{child}-r",
                    "kind": "child.registered",
                    "child": child,
                    "source": "beppu-center",
                    "basis": "internal",
                    "at": "2026-04-01T09:00:00+09:00",
                    "payload": {"residence": "442020"},
                }
            ]
        )


def _read(hub: Hub, child: str) -> str:
    return hub.timeline(org="beppu-center", role="caseworker", child=child, purpose="support").access_record


def _chain_of(hub: Hub, child: str) -> list[dict]:
    events = list(hub.store.events.get(AccessLog.create_id(child)))
    return [e.record for e in events if isinstance(e, AccessLog.ReadRecorded)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    """The same test on both stores: the refused insert is each database's own key violation."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'h.db'}"


def test_reads_with_remembered_heads_chain_like_reads_of_the_last_record(database, monkeypatch):
    hub = _hub(database)
    _fill(hub, ["c1", "c2"])
    other = _hub(database)  # another process on the same store: its own heads
    last_reads: list[object] = []
    real_last_event = timeline_module.last_event
    monkeypatch.setattr(
        timeline_module, "last_event", lambda store, stream: last_reads.append(stream) or real_last_event(store, stream)
    )
    ids = [_read(hub, "c1")]  # a new log: nothing remembered yet
    assert len(last_reads) == 1
    ids += [_read(hub, "c1"), _read(hub, "c1")]  # chained to the remembered head: the log's last record not read
    assert len(last_reads) == 1
    ids.append(_read(other, "c1"))  # the other process appends: this process's head is stale
    ids.append(_read(hub, "c1"))  # refused at the remembered version + 1, then chained to the stored head
    ids.append(_read(hub, "c1"))
    ids.append(_read(other, "c1"))
    # a view's bulk append (two children) moves both heads; the single reads after it chain to them
    reader, decided_c1 = _decided(hub, "c1")
    _, decided_c2 = _decided(hub, "c2")
    bulk = hub.reader.record(
        [(reader, decided_c1), (reader, decided_c2)],
        log_position=hub.store.log_position(),
        registry_version=hub.store.registry().version or 0,
        settings=hub.settings,
    )
    ids += [bulk[0]["id"], _read(hub, "c1"), _read(other, "c1"), _read(hub, "c2")]
    chain = _chain_of(hub, "c1")
    assert [r["id"] for r in chain] == ids[:-1]
    assert [r["sequence"] for r in chain] == list(range(1, len(chain) + 1))
    previous = ""
    for record in chain:
        assert record["prev_hash"] == previous
        previous = record["hash"]
    stored = [r["id"] for r in access_records(hub.store)]
    assert sorted(stored) == sorted(ids + [bulk[1]["id"]])  # one record per read, none twice
    report = hub.verify()
    assert report.ok, report.mismatches
    hub.close()
    other.close()


def _decided(hub: Hub, child: str):  # type: ignore[no-untyped-def]
    from consent.model import Reader
    from events.store import ChildRecord
    from services.reading.timeline import decide

    reader = Reader(org="beppu-center", role="caseworker", purpose="support", t=NOW)
    record = hub.store.peek(ChildRecord.create_id(child))
    return reader, decide(reader, child, record, hub.store.registry().orgs, hub.settings)


def test_heads_are_bounded_and_never_move_back():
    heads = AccessHeads(max_heads=2)
    streams = [AccessLog.create_id(f"c{n}") for n in range(3)]

    def event(stream, version):  # type: ignore[no-untyped-def]
        return AccessLog.ReadRecorded(
            originator_id=stream,
            originator_version=version,
            timestamp=AccessLog.ReadRecorded.create_timestamp(),
            record={"hash": f"h{version}", "sequence": version - 1},
        )

    heads.saved([event(streams[0], 5)])
    heads.saved([event(streams[0], 4)])  # finished later, appended earlier
    assert heads.get(streams[0]).version == 5  # type: ignore[union-attr]
    heads.saved([event(streams[1], 2), event(streams[2], 2)])
    assert heads.get(streams[0]) is None  # the least recently used went
    assert heads.get(streams[2]).hash == "h2"  # type: ignore[union-attr]
    heads.forget(streams[2])
    assert heads.get(streams[2]) is None


def test_a_timeline_entry_is_returned_and_digested_as_its_fields_are():
    """``TimelineEntry.to_dict`` written out gives what the generic form gave: every field that is not None, in
    declaration order (the order of the response's JSON)."""
    from dataclasses import fields

    from services.reading.timeline import TimelineEntry

    base = {"id": "e1", "kind": "note.recorded", "source": "s", "basis": "internal", "at": "2026-04-01T09:00:00+09:00"}
    for function, to in [(None, None), ("child_welfare", None), (None, "beppu-center"), ("maternal_health", "x")]:
        entry = TimelineEntry(
            **base, payload={"a": 1}, rule="r", redacted=["a"], function=function, to=to, sensitive=["a"]
        )
        generic = {f.name: getattr(entry, f.name) for f in fields(entry) if getattr(entry, f.name) is not None}
        assert list(entry.to_dict().items()) == list(generic.items())
