"""Store-level helpers over the library's recorders, for writers that append without loading a stream.

``stream_versions`` answers "how far has each of these streams got?" for a whole publish batch in one query, so
that an event can be appended as the next version of its stream without replaying the stream first. The version
only has to be right at the moment of the insert: the table's primary key (stream id, version) refuses a second
writer's event with the same version, the library raises ``IntegrityError``, and the publisher retries with
fresh versions (``services.publishing.ingest``).

``load_many`` is the repository's ``get`` for many streams at once: the aggregates as a writer gets them (copies
it may change, as stored now), built from the cache and the events stored after the cached versions (or from all
the events of a stream that is not cached, or from an index's snapshot and the events after it:
``events.index_snapshots``), fetched for all the streams in one query.

``forget_cached`` keeps the application's aggregate cache honest after such an append. With the library's
default (``AGGREGATE_CACHE_FASTFORWARD`` on) a cached aggregate is fast-forwarded with the events stored after
its version on every ``Repository.get``, so an append that bypassed the aggregate is seen on the next read and
nothing needs doing; without fast-forwarding the library only refreshes the cache from the aggregates it saves,
so the streams appended to here are dropped from the cache and reloaded on their next read.

``last_event`` is the newest event of one stream, for a writer that only needs the head of a chain (the access
log: the hash and sequence of the last record, not every record since the first); ``last_events`` the same for many
streams at once.

``cache_saved`` puts what a writer saved into the cache when the library would not (it does so itself only when
it does not fast-forward), so that the next batch starts from the saved versions instead of replaying its own
events from the store again.

No stream id is made here: callers pass ids made by the aggregates' ``create_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from copy import deepcopy
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from events.index_snapshots import SnapshottedIndex
from events.topic_index import INDEXED_TOPICS


def stream_versions(store: Any, ids: Iterable[UUID]) -> dict[UUID, int]:
    """The current version (the highest stored ``originator_version``) of each stream in ``ids`` that has
    events; streams with no events are absent from the result. One query for all of them on PostgreSQL and
    SQLite (any other recorder: one look-up per stream)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    recorder = store.recorder
    module = type(recorder).__module__
    if module.endswith(".postgres"):
        return _postgres_versions(recorder, wanted)
    if module.endswith(".sqlite"):
        return _sqlite_versions(recorder, wanted)
    versions = {}
    for stream in wanted:
        last = recorder.select_events(stream, desc=True, limit=1)
        if last:
            versions[stream] = last[0].originator_version
    return versions


def _postgres_versions(recorder: Any, ids: list[UUID]) -> dict[UUID, int]:
    from psycopg import sql

    datastore = recorder.datastore
    as_text = datastore.originator_id_type == "text"
    # Each stream's last version from the end of its primary key (one index probe per stream, however long the
    # stream), instead of a bitmap scan over every version of every stream and an aggregate: a third of the time
    # for 1,000 streams, and the same for a 1,000-event stream as for a new one.
    statement = sql.SQL(
        "SELECT w.id AS originator_id, (SELECT t.originator_version FROM {table} AS t WHERE t.originator_id = w.id "
        "ORDER BY t.originator_version DESC LIMIT 1) AS version FROM unnest(%b::{id_type}[]) AS w(id)"
    ).format(
        table=sql.Identifier(datastore.schema, recorder.events_table_name),
        id_type=sql.SQL("text" if datastore.originator_id_type == "text" else "uuid"),
    )
    params = ([str(i) for i in ids] if as_text else ids,)
    with datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, params)
        rows = curs.fetchall()
    by_key = {str(i): i for i in ids}
    return {by_key[str(row["originator_id"])]: int(row["version"]) for row in rows if row["version"] is not None}


def _sqlite_versions(recorder: Any, ids: list[UUID]) -> dict[UUID, int]:
    datastore = recorder.datastore
    keys = {(i.hex if isinstance(i, UUID) else str(i)): i for i in ids}
    statement = (
        f"SELECT originator_id, MAX(originator_version) AS version FROM {recorder.events_table_name} "
        "WHERE originator_id IN (SELECT value FROM json_each(?)) GROUP BY originator_id"
    )
    with datastore.transaction(commit=False) as curs:
        curs.execute(statement, (json.dumps(list(keys)),))
        rows = curs.fetchall()
    return {keys[row["originator_id"]]: int(row["version"]) for row in rows}


def last_event(store: Any, stream: UUID) -> Any | None:
    """The newest domain event of ``stream`` (``None``: no such stream), from one stored event."""
    stored = store.events.get(stream, desc=True, limit=1)
    return next(stored, None)


def last_events(store: Any, ids: Iterable[UUID]) -> dict[UUID, Any]:
    """``last_event`` of each of ``ids`` that has events, in two queries for all of them (their versions, then
    those events): for a writer that chains to many heads at once (the access logs of a ledger page)."""
    return {event.originator_id: event for event in store.mapper.to_domain_events(last_stored(store, ids))}


def last_stored(store: Any, ids: Iterable[UUID]) -> list[Any]:
    """The last stored event of each of ``ids`` that has events, not opened: one query for one stream, two for
    several (their versions, then those events)."""
    wanted = list(ids)
    if len(wanted) == 1:
        return list(store.recorder.select_events(wanted[0], desc=True, limit=1))
    versions = stream_versions(store, wanted)
    if not versions:
        return []
    stored = events_after(store, {stream: version - 1 for stream, version in versions.items()})
    return [record for stream in versions for record in stored.get(stream, ())[-1:]]


def forget_cached(store: Any, ids: Iterable[UUID]) -> None:
    """Drop ``ids`` from the aggregate cache when the cache is not fast-forwarded (see the module docstring)."""
    repository = store.repository
    if repository.cache is None or repository.fastforward:
        return
    for stream in ids:
        try:
            repository.cache.get(stream, evict=True)
        except KeyError:
            pass


def load_many(store: Any, ids: Iterable[UUID], *, keep: bool = True) -> dict[UUID, Any]:
    """``store.get_or_none`` for each of ``ids`` (``None``: no such stream), with one query for all of them: the
    aggregates as they are stored now, for a writer.

    Cached aggregates are copied and brought up to date with the events stored after the copy's version (the
    cached object itself is never changed here, though another thread's read may bring it forward meanwhile); streams not in the cache are replayed from their events and cached. When the
    repository does not fast-forward its cache (``AGGREGATE_CACHE_FASTFORWARD=n``), the cache is not read: a
    copy there may be older than what another process stored since (what a publish decides on, like a child's
    residence, must be what is stored; an aggregate it writes would conflict, one it only reads would not).

    ``keep`` False: what is loaded is not put in the cache (a reader that keeps what it derives elsewhere, such as
    the rows decided ahead, so that a view of 5,000 children does not push every index out of the cache)."""
    wanted = list(dict.fromkeys(ids))
    repository = store.repository
    if not wanted:
        return {}
    use_cache = repository.cache is not None and repository.fastforward
    cached: dict[UUID, Any] = {}
    if use_cache:
        for stream in wanted:
            try:
                # Copied now, before its version is read: the repository fast-forwards a cached aggregate in
                # place (a read in another thread of this process), so the object in the cache may be further on
                # by the time the events after the version read here come back.
                cached[stream] = deepcopy(repository.cache.get(stream))
            except KeyError:
                pass
    after = {stream: (cached[stream].version if stream in cached else 0) for stream in wanted}
    snapshots, stored = store.index_snapshots.stored_after(after)  # an index's snapshot for a stream not cached
    records = [record for stream in wanted for record in stored.get(stream, ())]
    opened = iter(store.mapper.to_domain_events(records))  # every key they need, in two queries at most
    out: dict[UUID, Any] = {}
    due: list[Any] = []  # indexes replayed from far enough back to take a snapshot of (``events.index_snapshots``)
    for stream in wanted:
        aggregate = cached.get(stream, snapshots.get(stream))
        tail = stored.get(stream, ())
        for _ in tail:
            aggregate = next(opened).mutate(aggregate)
        out[stream] = aggregate
        if use_cache and keep and aggregate is not None and (tail or stream in snapshots):
            repository.cache.put(stream, deepcopy(aggregate))
        if stream not in cached and isinstance(aggregate, SnapshottedIndex) and len(tail) >= aggregate.SNAPSHOT_AFTER:
            due.append(aggregate)
    if due:  # as loaded, before the caller changes them; best-effort (never raises)
        store.index_snapshots.keep(due)
    return out


def events_after(store: Any, after: dict[UUID, int]) -> dict[UUID, list[StoredEvent]]:
    """The stored events of each stream in ``after`` with a version above the one given, in version order."""
    recorder = store.recorder
    module = type(recorder).__module__
    out: dict[UUID, list[StoredEvent]] = {}
    if module.endswith(".postgres"):
        from psycopg import sql

        datastore = recorder.datastore
        as_text = datastore.originator_id_type == "text"
        statement = sql.SQL(
            "SELECT t.originator_id, t.originator_version, t.topic, t.state FROM {table} AS t "
            "JOIN unnest(%s::{id_type}[], %s::bigint[]) AS w(id, after) "
            "ON t.originator_id = w.id AND t.originator_version > w.after "
            "ORDER BY t.originator_id, t.originator_version"
        ).format(
            table=sql.Identifier(datastore.schema, recorder.events_table_name),
            id_type=sql.SQL("text" if as_text else "uuid"),
        )
        streams = list(after)
        by_key = {str(i): i for i in streams}
        params = ([str(i) for i in streams] if as_text else streams, [after[i] for i in streams])
        with datastore.get_connection() as conn, conn.cursor(binary=True) as curs:  # states as bytes, not hex
            curs.execute(statement, params)
            rows = curs.fetchall()
        for row in rows:
            stream = by_key[str(row["originator_id"])]
            out.setdefault(stream, []).append(
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
            )
        return out
    if module.endswith(".sqlite"):
        datastore = recorder.datastore
        keys = {(i.hex if isinstance(i, UUID) else str(i)): i for i in after}
        query = (
            f"SELECT t.originator_id, t.originator_version, t.topic, t.state "
            f"FROM {recorder.events_table_name} AS t JOIN json_each(?) AS w "
            "ON t.originator_id = w.key AND t.originator_version > w.value "
            "ORDER BY t.originator_id, t.originator_version"
        )
        with datastore.transaction(commit=False) as curs:
            curs.execute(query, (json.dumps({key: after[stream] for key, stream in keys.items()}),))
            rows = curs.fetchall()
        for row in rows:
            stream = keys[row["originator_id"]]
            out.setdefault(stream, []).append(
                StoredEvent(
                    originator_id=recorder.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
            )
        return out
    for stream, version in after.items():
        events = list(recorder.select_events(stream, gt=version))
        if events:
            out[stream] = events
    return out


def cache_saved(store: Any, aggregates: Iterable[Any], cache: Any) -> None:
    """After a successful save: put the saved ``aggregates`` (which hold everything saved for their streams, and
    are not changed afterwards) in the cache. Only when the cache is fast-forwarded (a newer version stored by
    another writer meanwhile is then still found on the next ``get``), and only when ``cache``, the cache there
    was before the save, is still the store's: a store that drops its cache while saving (crypto-shredding,
    ``events.sealing``) means that nothing saved may stay in memory."""
    repository = store.repository
    if repository.cache is None or not repository.fastforward or repository.cache is not cache:
        return
    for aggregate in aggregates:
        repository.cache.put(aggregate.id, aggregate)


NOTIFICATIONS_PAGE = 500  # notifications read at a time by ``stored_of``


def stored_of(store: Any, topic: str, *, until: int | None = None) -> Iterator[StoredEvent]:
    """Every stored event of ``topic`` in the log's global order (up to log position ``until``, when given), as
    stored (not opened), read a page at a time: the one way the audit pages through a kind of record (access
    records, view records, consulted sets). A topic of the audit topic indexes goes through its index
    (``events.topic_index.INDEXED_TOPICS``: the view records and consulted sets, without a scan of the whole log)."""
    indexed = getattr(store.recorder, "select_indexed", None)
    if topic not in INDEXED_TOPICS.values():
        indexed = None
    start = 1
    while True:
        if indexed is not None:
            page = indexed(topic, start, NOTIFICATIONS_PAGE, until)
        else:
            page = store.recorder.select_notifications(start, NOTIFICATIONS_PAGE, stop=until, topics=[topic])
        yield from page
        if len(page) < NOTIFICATIONS_PAGE:
            return
        start = page[-1].id + 1
