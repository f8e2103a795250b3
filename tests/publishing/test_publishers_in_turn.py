"""Several publishers at once on the shared indexes (``services.publishing.batch.Batch.record_staged_on_newest``).

Two publishers of different children write the same centre's desk, municipality's month, organisation's
children, school's target list and month's reports (``services.projections.indexes.RECORDED_IN_TURN``). Each
records its staged events on the index as stored when it saves, in the index's turn: a publish that another
publisher overtook on those indexes is not tried again, and what the indexes hold is what one publisher gives.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import services.publishing.batch as batch_module
import services.publishing.ingest as ingest_module
from bench.core import NOW, SETTINGS
from bench.prefecture import Prefecture, event_stream, make_prefecture
from events.model import Recorded
from events.store import HubStore, _StreamTurns
from services.aggregates.figures import kept_line
from services.hub import Hub
from services.projections.indexes import CHANGES_REAPPLIED, LINES_RECORDED_IN_TURN, RECORDED_IN_TURN
from services.projections.municipal_counts import NO_LINE, ReportLines, kept_months

IN_TURN_NAMES = {cls.__name__ for cls in (*RECORDED_IN_TURN, *LINES_RECORDED_IN_TURN, *CHANGES_REAPPLIED)}


def prefecture() -> Prefecture:
    """Two municipalities, two schools each: two publishers' children share centres, schools and months."""
    return make_prefecture(municipalities=2, schools_per=2, nurseries_per=1)


def envelopes(pref: Prefecture, prefix: str, children: int, seed: int) -> list[dict[str, Any]]:
    """About 60 events per child of ``children`` children named ``prefix…`` (the bench's stream)."""
    return list(event_stream(pref, children, 60, prefix=prefix, seed=seed))


def hub_on(database: str, pref: Prefecture, *, own_turns: bool = False) -> Hub:
    """A hub with the prefecture's organisations; ``own_turns``: as another process's (its own stream turns)."""
    hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
    if own_turns:
        hub.store.turns = _StreamTurns()
    if not hub.store.registry().orgs:
        hub.load_orgs(pref.orgs)
    return hub


def publish_all(hub: Hub, batches: list[list[dict[str, Any]]]) -> None:
    for batch in batches:
        results = hub.publish(batch)
        assert all(r.outcome == "accepted" for r in results), [r for r in results if r.outcome != "accepted"][:1]


def split(events: list[dict[str, Any]], sizes: list[int]) -> list[list[dict[str, Any]]]:
    """``events`` in batches of the ``sizes`` in turn (cycled)."""
    out, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(events):
            return out
        out.append(events[start : start + size])
        start += size
    return out


def shared_indexes(hub: Hub, pref: Prefecture) -> dict[str, Any]:
    """What the shared indexes hold: every stored aggregate of ``RECORDED_IN_TURN`` and ``CHANGES_REAPPLIED`` (its
    state, not its version) and each municipality's kept counts."""
    ids: set[UUID] = set()
    for notification in hub.store.recorder.select_notifications(1, 10_000_000):
        if notification.topic.rsplit(":", 1)[-1].split(".")[0] in IN_TURN_NAMES:
            ids.add(UUID(str(notification.originator_id)))
    out: dict[str, Any] = {}
    for stream in ids:
        index = hub.store.peek(stream)
        out[f"{type(index).__name__}:{stream}"] = {k: v for k, v in vars(index).items() if not k.startswith("_")}
    for municipality in pref.municipalities:
        out[f"months:{municipality}"] = kept_months(hub.store, municipality)
    return out


def indexes_of_one_publisher(pref: Prefecture, database: Any, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """What the shared indexes hold once one publisher has published ``batches`` one after the other, on a new
    SQLite store at ``database`` (a path): what two publishers at once must give."""
    alone = hub_on(f"sqlite:///{database}", pref)
    try:
        publish_all(alone, batches)
        return shared_indexes(alone, pref)
    finally:
        alone.close()


def publish_at_once(hubs: list[Hub], batches: list[list[list[dict[str, Any]]]], names: list[str] | None = None) -> None:
    """Each hub publishes its batches in a thread of its own (named ``names``), all started together."""
    start = threading.Barrier(len(hubs))
    failures: list[BaseException] = []

    def run(hub: Hub, mine: list[list[dict[str, Any]]]) -> None:
        try:
            start.wait()
            publish_all(hub, mine)
        except BaseException as error:  # noqa: BLE001 (reported below)
            failures.append(error)

    threads = [
        threading.Thread(target=run, args=(h, b), name=name)
        for h, b, name in zip(hubs, batches, names or [None] * len(hubs), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


@contextmanager
def a_held_before_its_save(
    hub_a: Hub,
    batch: list[dict[str, Any]],
    monkeypatch: Any,
    *,
    when_held: Callable[[batch_module.Batch], None] = lambda batch: None,
    when_let_go: Callable[[batch_module.Batch], None] = lambda batch: None,
) -> Iterator[list[int]]:
    """Publisher A (a thread named "A" on ``hub_a``) publishes ``batch`` and, before its first save, waits until
    the block ends: ``when_held`` runs on A's batch as it stops, ``when_let_go`` as it goes on. Yields A's saves
    (one item a save attempt), complete once the block has ended; A's failures are raised then."""
    loaded, go = threading.Event(), threading.Event()
    original_save = batch_module.Batch.save
    saves: list[int] = []

    def save_later(self: Any) -> None:
        if threading.current_thread().name == "A":
            if not loaded.is_set():
                when_held(self)
                loaded.set()
                go.wait(60)
                when_let_go(self)
            saves.append(1)
        original_save(self)

    failures: list[BaseException] = []

    def publish_a() -> None:
        try:
            publish_all(hub_a, [batch])
        except BaseException as error:  # noqa: BLE001 (reported below)
            failures.append(error)

    a = threading.Thread(target=publish_a, name="A")
    with monkeypatch.context() as patched:
        patched.setattr(batch_module.Batch, "save", save_later)
        try:
            a.start()
            assert loaded.wait(60), "A did not reach its save"
            yield saves
        finally:
            go.set()
            if a.ident is not None:
                a.join(120)
    assert not failures, failures


def a_saves_after_b(
    hub_a: Hub, hub_b: Hub, mine: list[dict[str, Any]], theirs: list[dict[str, Any]], monkeypatch: Any
) -> dict[str, int]:
    """Publisher A (a thread named "A" on ``hub_a``) loads its batch ``mine`` and, before its first save, waits
    until B (this thread, on ``hub_b``) has published ``theirs`` and committed; then A saves. How many attempts
    each made (``Ingest._publish_once``: 1 is a save on the first attempt). The patches are undone on return."""
    attempts: dict[str, int] = {}
    original_once = ingest_module.Ingest._publish_once

    def counted_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = threading.current_thread().name
        attempts[name] = attempts.get(name, 0) + 1
        return original_once(self, *args, **kwargs)

    with monkeypatch.context() as counted:
        counted.setattr(ingest_module.Ingest, "_publish_once", counted_once)
        with a_held_before_its_save(hub_a, mine, monkeypatch):
            publish_all(hub_b, [theirs])
    return attempts


@pytest.mark.store
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_publish_overtaken_on_the_shared_indexes_is_saved_on_its_first_attempt(
    database, tmp_path, request, monkeypatch
):
    """Publisher A loads its batch, then B publishes other children of the same centres and schools and commits;
    then A saves. A is saved on its first attempt (before: its insert failed on the indexes' versions and the whole
    batch was admitted and projected again), and the indexes hold both batches, as one publisher gives."""
    pref = prefecture()
    url = request.getfixturevalue("postgres_url") if database == "postgres" else f"sqlite:///{tmp_path / 'a.db'}"
    first, second = envelopes(pref, "a", 4, 1), envelopes(pref, "b", 4, 2)
    hub_a, hub_b = hub_on(url, pref), hub_on(url, pref, own_turns=True)
    try:
        attempts = a_saves_after_b(hub_a, hub_b, first, second, monkeypatch)
        assert attempts["A"] == 1
        together = shared_indexes(hub_a, pref)
    finally:
        hub_a.close()
        hub_b.close()
    assert indexes_of_one_publisher(pref, tmp_path / "one.db", [first, second]) == together


def with_transfer(pref: Prefecture, events: list[dict[str, Any]], which: int, tag: str) -> list[dict[str, Any]]:
    """``events`` and, after them, the transfer of one of their children's case (the ``which``-th child with a case,
    cycled) from its centre to another municipality's centre, and that centre's acknowledgement."""
    registered = [e for e in events if e["kind"] == "case.registered"]
    chosen = registered[which % len(registered)]
    child, s = chosen["child"], chosen["source"]
    t = next(center for center in pref.centers.values() if center != s)
    at = max(e["at"] for e in events if e["child"] == child)
    return [
        *events,
        {"id": f"tr-{tag}", "kind": "case.transferred", "child": child, "source": s, "basis": "internal", "at": at,
         "payload": {"case": f"K-{child}", "to": t}},
        {"id": f"ack-{tag}", "kind": "case.transfer_acknowledged", "child": child, "source": t, "basis": "internal",
         "at": at, "payload": {"case": f"K-{child}", "from": s}},
    ]  # fmt: skip


def with_erasure(events: list[dict[str, Any]], which: int, tag: str) -> list[dict[str, Any]]:
    """``events`` and, after them, the erasure of one of their children (the ``which``-th with a case, cycled)."""
    registered = [e for e in events if e["kind"] == "case.registered"]
    chosen = registered[which % len(registered)]
    at = max(e["at"] for e in events if e["child"] == chosen["child"])
    return [
        *events,
        {"id": f"erase-{tag}", "kind": "child.erased", "child": chosen["child"], "source": chosen["source"],
         "basis": "internal", "at": at, "payload": {"reason": "保存期間の満了"}},
    ]  # fmt: skip


def with_reports_to_centres(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` with each child's monthly reports sent to the centre that put the child on the school's target
    list (``to``): each report then changes the child's line in its (school, centre)'s ``ReportLines``."""
    centre = {e["child"]: e["source"] for e in events if e["kind"] == "target_list.assigned"}
    return [
        {**e, "to": centre[e["child"]]} if e["kind"] == "attendance.monthly" and e["child"] in centre else e
        for e in events
    ]


def report_places(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (school, centre)s that ``events``' monthly reports are sent to: their ``ReportLines``."""
    return {(e["source"], e["to"]) for e in events if e["kind"] == "attendance.monthly" and e.get("to")}


def first_and_rest(sizes: tuple[int, list[int]]) -> list[int]:
    """Batch sizes: the first, then the rest (cycled by ``split``)."""
    return [sizes[0], *sizes[1]]


@pytest.mark.store
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes_a=st.tuples(st.integers(30, 150), st.lists(st.integers(1, 150), max_size=3)).map(first_and_rest),
    sizes_b=st.tuples(st.integers(30, 150), st.lists(st.integers(1, 150), max_size=3)).map(first_and_rest),
    seed=st.integers(0, 1000),
    moved=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
)
def test_two_publishers_at_once_give_the_indexes_one_publisher_gives(tmp_path_factory, sizes_a, sizes_b, seed, moved):
    """Random batches of two publishers' children (sharing centres, schools, months), each publisher's last events
    a transfer of one of its children's case and its acknowledgement, B's last an erasure of one of its children,
    published by one publisher one after the other and by two threads of one hub at once (an API process's
    request threads; two processes: the PostgreSQL test below), B's first save between A's first load and save
    (so that they meet: first batches of 30 events or more, at least one index found moved): the same desks, counts, published children, target lists, month's
    reports, case indexes, centres' schools and months."""
    pref = prefecture()
    directory = tmp_path_factory.mktemp("publishers")
    transfer_a, transfer_b, erase_b = moved
    first = with_transfer(pref, with_reports_to_centres(envelopes(pref, "a", 3, seed)), transfer_a, "a")
    second = with_erasure(
        with_transfer(pref, with_reports_to_centres(envelopes(pref, "b", 3, seed + 1)), transfer_b, "b"), erase_b, "b"
    )
    assume(report_places(first) & report_places(second))  # both report to a (school, centre) of the other's
    expected = indexes_of_one_publisher(pref, directory / "one.db", split(first, sizes_a) + split(second, sizes_b))
    hub = hub_on(f"sqlite:///{directory / 'two.db'}", pref)
    counts: dict[str, int] = {}
    a_loaded, b_saved = threading.Event(), threading.Event()
    original_save = batch_module.Batch.save
    with pytest.MonkeyPatch.context() as patch:  # per example: hypothesis runs many in one test's fixtures
        moved_indexes(counts, patch)

        def meet(self: Any) -> None:  # the publishers meet: B's first save between A's first load and save
            name = threading.current_thread().name
            if name == "A" and not b_saved.is_set():
                a_loaded.set()
                assert b_saved.wait(60), "B did not save"
            if name == "B" and not b_saved.is_set():
                assert a_loaded.wait(60), "A did not load"
            original_save(self)
            if name == "B":
                b_saved.set()

        patch.setattr(batch_module.Batch, "save", meet)
        try:
            publish_at_once([hub, hub], [split(first, sizes_a), split(second, sizes_b)], names=["A", "B"])
            assert counts.get("reloaded", 0) + counts.get("reapplied", 0) >= 1, counts  # they met on an index
            assert shared_indexes(hub, pref) == expected
        finally:
            a_loaded.set()
            b_saved.set()
            hub.close()


@pytest.mark.postgres
def test_two_publishers_at_once_on_postgresql_give_the_indexes_one_publisher_gives(postgres_url, tmp_path, monkeypatch):
    """The same on durable PostgreSQL, two hubs as two processes (own stream turns, own connections), batches
    of 40, A's first save after B's first (so that they meet: at least one index found moved, loaded again or
    its changes re-applied): the indexes equal one publisher's (on SQLite, the same events one after the other)."""
    pref = prefecture()
    first, second = envelopes(pref, "a", 6, 11), envelopes(pref, "b", 6, 12)
    expected = indexes_of_one_publisher(pref, tmp_path / "one.db", split(first, [40]) + split(second, [40]))
    hubs = [hub_on(postgres_url, pref), hub_on(postgres_url, pref, own_turns=True)]
    counts: dict[str, int] = {}
    moved_indexes(counts, monkeypatch)
    b_saved = threading.Event()
    original_save = batch_module.Batch.save

    def a_first_after_b(self: Any) -> None:  # the publishers meet: A's first save comes after B's first
        if self.store is hubs[0].store and not b_saved.is_set():
            assert b_saved.wait(60), "B did not save"
        original_save(self)
        if self.store is hubs[1].store:
            b_saved.set()

    monkeypatch.setattr(batch_module.Batch, "save", a_first_after_b)
    try:
        publish_at_once(hubs, [split(first, [40]), split(second, [40])])
        assert counts.get("reloaded", 0) + counts.get("reapplied", 0) >= 1, counts  # they met on an index
        assert shared_indexes(hubs[0], pref) == expected
    finally:
        for hub in hubs:
            hub.close()


@pytest.mark.store
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_publish_seals_only_its_shared_indexes_in_their_turn(database, tmp_path, request, monkeypatch):
    """Everything a publish stores but its shared indexes (its children's streams, records, facts, …) is sealed
    before it takes the indexes' turn (``Batch.save``, "sealed before the turn"); in the turn only aggregates of
    ``RECORDED_IN_TURN``, ``LINES_RECORDED_IN_TURN`` and ``CHANGES_REAPPLIED`` are sealed, and the batch is stored
    whole."""
    pref = prefecture()
    url = request.getfixturevalue("postgres_url") if database == "postgres" else f"sqlite:///{tmp_path / 'a.db'}"
    hub = hub_on(url, pref)
    inside: list[bool] = []
    sealed: list[tuple[bool, list[type], int]] = []  # in the turn or not, what was sealed, how many events
    original_turn, original_seal = HubStore.append_in_turn, HubStore.seal

    @contextmanager
    def watched_turn(self: HubStore, streams: Any, **kwargs: Any) -> Iterator[Any]:
        with original_turn(self, streams, **kwargs) as turn:
            inside.append(True)
            try:
                yield turn
            finally:
                inside.pop()

    def watched_seal(self: HubStore, *objs: Any) -> Any:
        result = original_seal(self, *objs)
        sealed.append((bool(inside), [type(o) for o in objs], len(result.stored)))
        return result

    monkeypatch.setattr(HubStore, "append_in_turn", watched_turn)
    monkeypatch.setattr(HubStore, "seal", watched_seal)
    batch = envelopes(pref, "a", 3, 1)
    try:
        before = hub.store.log_position()
        publish_all(hub, [batch])
        stored = hub.store.log_position() - before
    finally:
        hub.close()
    in_turn = {cls for turn, classes, _ in sealed if turn for cls in classes}
    assert in_turn and in_turn <= {*RECORDED_IN_TURN, *LINES_RECORDED_IN_TURN, *CHANGES_REAPPLIED}
    sealed_before = sum(n for turn, _, n in sealed if not turn)
    assert sealed_before >= len(batch)  # every published event is on a child's stream, sealed before the turn
    assert stored == sum(n for _, _, n in sealed)  # all of it stored, in the one transaction


def moved_indexes(counts: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Count in ``counts`` the shared indexes that a save found moved by another publisher: staged ones loaded
    again (``reload_staged``; ``lines``: lines found apart, ``record_lines_on_newest``) and changed ones whose changes were re-applied (``reapply_on_newest``)."""
    reload_staged, reapply = batch_module.Batch.reload_staged, batch_module.Batch.reapply_on_newest
    record_lines = batch_module.Batch.record_lines_on_newest

    def counted_lines(self: Any, *args: Any, **kwargs: Any) -> Any:
        fresh = record_lines(self, *args, **kwargs)
        counts["lines"] = counts.get("lines", 0) + 1
        return fresh

    def counted_reload(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["reloaded"] = counts.get("reloaded", 0) + 1
        return reload_staged(self, *args, **kwargs)

    def counted_reapply(self: Any, changed: Any, versions: Any) -> None:
        changed = list(changed)
        moved = [i for i in changed if versions.get(i.id, 0) != i.version - len(i.pending_events)]
        counts["reapplied"] = counts.get("reapplied", 0) + len(moved)
        reapply(self, changed, versions)

    monkeypatch.setattr(batch_module.Batch, "reload_staged", counted_reload)
    monkeypatch.setattr(batch_module.Batch, "reapply_on_newest", counted_reapply)
    monkeypatch.setattr(batch_module.Batch, "record_lines_on_newest", counted_lines)


@pytest.mark.store
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_publish_whose_line_another_publisher_changed_is_tried_again_and_counts_as_one_publisher(
    database, tmp_path, request, monkeypatch
):
    """A and B each publish a monthly report of the same child, for different months (the same line of the same
    (school, centre)'s ``ReportLines``); B saves between A's load and save. A's save finds its line changed
    (``record_lines_on_newest`` refuses it: the counts A staged came from the line as it was before B's report),
    A is tried again, and the lines and counts are what one publisher gives, B's report first."""
    pref = prefecture()
    url = request.getfixturevalue("postgres_url") if database == "postgres" else f"sqlite:///{tmp_path / 'a.db'}"
    events = with_reports_to_centres(envelopes(pref, "a", 3, 1))
    reports = [e for e in events if e["kind"] == "attendance.monthly" and e.get("to")]
    child = reports[0]["child"]
    first_report = reports[0]
    base = [e for e in events if e is not first_report]
    later = {**first_report, "id": f"{first_report['id']}-next", "at": first_report["at"].replace("T09", "T10")}
    later["payload"] = {**first_report["payload"], "month": _next_month_of(str(first_report["payload"]["month"]))}
    mine, theirs = [first_report], [later]
    hub_a, hub_b = hub_on(url, pref), hub_on(url, pref, own_turns=True)
    refused: list[str] = []
    original_lines = batch_module.Batch.record_lines_on_newest

    def watched_lines(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original_lines(self, *args, **kwargs)
        except batch_module.IntegrityError as error:
            refused.append(str(error))
            raise

    try:
        publish_all(hub_a, [base])
        with monkeypatch.context() as watched:
            watched.setattr(batch_module.Batch, "record_lines_on_newest", watched_lines)
            attempts = a_saves_after_b(hub_a, hub_b, mine, theirs, monkeypatch)
        assert attempts["A"] == 2
        assert refused and all("a line this batch changed was changed meanwhile" in r for r in refused), refused
        together = shared_indexes(hub_a, pref)
    finally:
        hub_a.close()
        hub_b.close()
    alone = hub_on(f"sqlite:///{tmp_path / 'one.db'}", pref)
    try:
        publish_all(alone, [base, theirs, mine])
        expected = shared_indexes(alone, pref)
        line = kept_line(alone.store, (str(first_report["source"]), child, str(first_report["to"])))
        assert line is not None and {first_report["payload"]["month"], later["payload"]["month"]} <= set(
            line["received"]
        )
        assert expected == together
    finally:
        alone.close()


LINE_KEYS = [
    "line-1",
    "line-2",
    "line-3",
    "line-4",
]  # report_line_key's digests stand in: the mechanism reads keys only
MONTHS = ["2025-04", "2025-05", "2025-06"]


def work_on_lines(batch: batch_module.Batch, place: tuple[str, str], received: dict[str, str]) -> None:
    """Change ``batch``'s copy of ``place``'s ``ReportLines`` as a publish's monthly reports do (``work_on``): each line
    of ``received`` receives its month; staged for the save as ``keep_municipal_counts`` stages it."""
    lines = batch.get(ReportLines, *place)
    for key, month in received.items():
        lines.work_on(key, lines.lines.get(key, NO_LINE), "m", received={month: f"{month}-28"})
    report = Recorded(1, "r", "attendance.monthly", "c", place[0], "cwa-25-3", NOW, {}, frozenset(), to=place[1])
    batch.stage(ReportLines, place, report)


def lines_one_after_the_other(*publishes: dict[str, str]) -> dict[str, Any]:
    """The lines ``publishes`` give saved one after the other (each line receiving its month)."""
    out: dict[str, Any] = {}
    for received in publishes:
        for key, month in received.items():
            old = out.get(key, NO_LINE)
            out[key] = {
                "municipality": "m",
                "periods": old["periods"],
                "received": {**old["received"], month: f"{month}-28"},
            }
    return out


@pytest.mark.store
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    before=st.dictionaries(st.sampled_from(LINE_KEYS), st.sampled_from(MONTHS), max_size=3),
    mine=st.dictionaries(st.sampled_from(LINE_KEYS), st.sampled_from(MONTHS), min_size=1, max_size=3),
    theirs=st.dictionaries(st.sampled_from(LINE_KEYS), st.sampled_from(MONTHS), min_size=1, max_size=3),
)
def test_report_lines_are_recorded_on_the_newest_state_only_when_the_lines_moved_apart(
    tmp_path_factory, before, mine, theirs
):
    """``Batch.record_lines_on_newest`` against what it replaces (the whole publish tried again on the lines as
    stored): publish A works on its lines, B saves its own to the same ``ReportLines``, then A saves. Lines apart:
    A is saved, and the lines are what B then A one after the other give. A line both changed: A's save fails
    (``IntegrityError``: its counts came from the line before B's change) and the lines are B's alone. No child's
    stream is involved, so nothing but this check refuses A."""
    pref = prefecture()
    hub = hub_on(f"sqlite:///{tmp_path_factory.mktemp('lines') / 'a.db'}", pref)
    place = ("school-x", "center-x")
    try:
        store = hub.store
        first = batch_module.Batch(store, store.registry())
        work_on_lines(first, place, before)
        first.save()
        a, b = batch_module.Batch(store, store.registry()), batch_module.Batch(store, store.registry())
        work_on_lines(a, place, mine)
        work_on_lines(b, place, theirs)
        b.save()
        if set(mine) & set(theirs):
            with pytest.raises(batch_module.IntegrityError, match="a line this batch changed was changed meanwhile"):
                a.save()
            expected = lines_one_after_the_other(before, theirs)
        else:
            a.save()
            expected = lines_one_after_the_other(before, theirs, mine)
        assert store.peek(ReportLines.create_id(*place)).lines == expected
    finally:
        hub.close()


@pytest.mark.store
def test_a_publish_whose_lines_a_correction_moved_is_tried_again():
    """A correction of the lines (``LinesCorrected``, ``figures.correct``) saved between a publish's load and save
    refuses the save even when the corrected line is not one the publish changed: the publish may have read it
    (a repeated report counts nothing), and a correction touches no child's stream that would refuse it otherwise
    (review of s8-lines, LOW 2)."""
    pref = prefecture()
    with tempfile.TemporaryDirectory() as directory:
        hub = hub_on(f"sqlite:///{directory}/a.db", pref)
        place = ("school-x", "center-x")
        try:
            store = hub.store
            first = batch_module.Batch(store, store.registry())
            work_on_lines(first, place, {LINE_KEYS[0]: MONTHS[0], LINE_KEYS[1]: MONTHS[0]})
            first.save()
            a = batch_module.Batch(store, store.registry())
            work_on_lines(a, place, {LINE_KEYS[0]: MONTHS[1]})
            lines = store.get_or_none(ReportLines.create_id(*place))
            lines.correct_lines([{"line": LINE_KEYS[1], **NO_LINE, "municipality": "m"}])
            store.save(lines)
            with pytest.raises(batch_module.IntegrityError, match="may have changed any line"):
                a.save()
        finally:
            hub.close()


def _next_month_of(month: str) -> str:
    year, m = int(month[:4]), int(month[5:7])
    return f"{year + (m == 12):04d}-{m % 12 + 1:02d}"


@pytest.mark.postgres
def test_a_transfer_and_its_acknowledgement_are_reapplied_on_case_indexes_another_publisher_moved(
    postgres_url, tmp_path, monkeypatch
):
    """A's batch registers child X's case at centre S, transfers it to centre T and T acknowledges it; B publishes
    other children at S and T (and erases one of them) and commits while A waits before its save (two hubs as two
    processes). A is saved on its first attempt, having re-applied its changes on both moved case indexes, and
    the indexes equal one publisher's publishing B's batch then A's (the review's transfer_overtaken.py)."""
    pref = prefecture()
    base = envelopes(pref, "a", 6, 21)
    x = base[0]["child"]
    s = next(e["source"] for e in base if e["child"] == x and e["kind"] == "case.registered")
    t = next(e["source"] for e in base if e["kind"] == "case.registered" and e["source"] != s)
    mine = [e for e in base if e["child"] == x]
    last_at = max(e["at"] for e in mine)
    a_batch = [
        *mine,
        {"id": "tr-1", "kind": "case.transferred", "child": x, "source": s, "basis": "internal", "at": last_at,
         "payload": {"case": f"K-{x}", "to": t}},
        {"id": "ack-1", "kind": "case.transfer_acknowledged", "child": x, "source": t, "basis": "internal",
         "at": last_at, "payload": {"case": f"K-{x}", "from": s}},
    ]  # fmt: skip
    others = [e for e in base if e["child"] != x]
    erased = others[-1]["child"]
    erased_at = next(e["source"] for e in others if e["child"] == erased and e["kind"] == "case.registered")
    b_batch = [
        *others,
        {"id": "erase-1", "kind": "child.erased", "child": erased, "source": erased_at, "basis": "internal",
         "at": max(e["at"] for e in others), "payload": {"reason": "保存期間の満了"}},
    ]  # fmt: skip
    hub_a, hub_b = hub_on(postgres_url, pref), hub_on(postgres_url, pref, own_turns=True)
    counts: dict[str, int] = {}
    moved_indexes(counts, monkeypatch)
    try:
        attempts = a_saves_after_b(hub_a, hub_b, a_batch, b_batch, monkeypatch)
        assert attempts["A"] == 1
        assert counts.get("reapplied", 0) >= 2  # S's and T's case indexes at least
        together = shared_indexes(hub_a, pref)
    finally:
        hub_a.close()
        hub_b.close()
    assert indexes_of_one_publisher(pref, tmp_path / "one.db", [b_batch, a_batch]) == together
