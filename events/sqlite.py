"""The library's SQLite application recorder, with the register of stored envelope ids (``events.envelope_ids``)
written in the same transaction as the events. ``events.store.store_env`` selects it with the library's
``APPLICATION_RECORDER_TOPIC``. (This module's name ends in ``.sqlite``, like the library's: the store's helpers
that speak SQL tell the two databases apart by it.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from events.envelope_ids import FORMAT_TABLE, StoredEnvelope
from events.envelope_ids import TABLE as ENVELOPE_IDS
from events.topic_index import INDEXED_TOPICS, literal


class SQLiteRecorder(SQLiteApplicationRecorder):
    INSERT_ENVELOPE = f"INSERT INTO {ENVELOPE_IDS} (envelope, stream, position, digest) VALUES (?,?,?,?)"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {ENVELOPE_IDS} (envelope TEXT PRIMARY KEY, stream TEXT NOT NULL, "
            "position INTEGER NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {FORMAT_TABLE} (format INTEGER NOT NULL)",
            *(
                f"CREATE INDEX IF NOT EXISTS {name} ON {self.events_table_name} (topic) WHERE topic = {literal(topic)}"
                for name, topic in INDEXED_TOPICS.items()
            ),
        ]

    def select_indexed(self, topic: str, start: int, limit: int, stop: int | None = None) -> list[Notification]:
        """``select_notifications(start, limit, stop, topics=[topic])`` for a topic of
        ``events.topic_index.INDEXED_TOPICS``, through its partial index: the topic written into the statement as a
        constant, so that SQLite can use the index. Notifications in log order, as the library gives them."""
        if topic not in INDEXED_TOPICS.values():
            raise ValueError(f"{topic} has no audit topic index")
        statement = (
            f"SELECT rowid, * FROM {self.events_table_name} WHERE topic = {literal(topic)} AND rowid >= ?"
            + (" AND rowid <= ?" if stop is not None else "")
            + " ORDER BY rowid LIMIT ?"
        )
        params = [start, *([stop] if stop is not None else []), limit]
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [
                Notification(
                    id=row["rowid"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]

    def position_and_later(self, originator_id: UUID, version: int) -> tuple[int, bool]:
        """The log position (``max_notification_id``, 0 for an empty log) and whether ``originator_id`` has an
        event after ``version``, read in one statement: ``HubStore.registry_at_position`` is its one user."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT (SELECT max(rowid) FROM {self.events_table_name}) AS position, EXISTS (SELECT 1 FROM "
                f"{self.events_table_name} WHERE originator_id = ? AND originator_version > ?) AS later",
                (originator_id.hex, version),
            )
            row = c.fetchone()
        return int(row["position"] or 0), bool(row["later"])

    def store_format(self) -> int | None:
        """The format the store's tables were last brought to (``events.store.STORE_FORMAT``); None: never set."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT max(format) AS format FROM {FORMAT_TABLE}")
            row = c.fetchone()
        return None if row is None else row["format"]

    def set_store_format(self, format: int) -> None:
        """Record that the store reached ``format``. Rows are only added and the format is their highest, so two
        processes opening a store at once cannot lower it."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"INSERT INTO {FORMAT_TABLE} (format) VALUES (?)", (format,))

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        envelopes: Sequence[StoredEnvelope] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """The library's hook for rows that commit with the events: the register's rows of this save first."""
        if envelopes:
            c.executemany(self.INSERT_ENVELOPE, [_row(e) for e in envelopes])
        return super()._insert_events(c, stored_events, **kwargs)

    def select_envelopes(self, keys: Sequence[UUID]) -> list[StoredEnvelope]:
        """The register's rows for ``keys`` (those stored), in one query per 500."""
        out = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(keys), 500):
                part = [key.hex for key in keys[start : start + 500]]
                c.execute(
                    f"SELECT envelope, stream, position, digest FROM {ENVELOPE_IDS} "
                    f"WHERE envelope IN ({','.join('?' * len(part))})",
                    part,
                )
                out += [
                    StoredEnvelope(UUID(row["envelope"]), UUID(row["stream"]), row["position"], UUID(row["digest"]))
                    for row in c.fetchall()
                ]
        return out

    def insert_envelopes(self, rows: Iterable[StoredEnvelope]) -> None:
        """Add rows to the register, keeping those already there (rebuilding it from the log)."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany(self.INSERT_ENVELOPE.replace("INSERT", "INSERT OR IGNORE", 1), [_row(e) for e in rows])


def _row(e: StoredEnvelope) -> tuple[str, str, int, str]:
    return e.key.hex, e.stream.hex, e.position, e.digest.hex
