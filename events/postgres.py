"""The library's PostgreSQL application recorder, inserting without psycopg's pipeline mode, as plain arrays.

``eventsourcing.postgres`` sends the statements of a save (lock the events table, notify, insert every stored
event as one array parameter) in one psycopg pipeline. psycopg 3.2 and 3.3 leave a pipeline's output unflushed
when what is queued is more than one socket write takes (seen here from about 10 MB, a publish of a few
thousand new children): the server waits for the rest of the message (its log says "incomplete message from
client"), psycopg waits for the result, and the publish hangs for ever. ``tests/test_publish_streams.py``
publishes such a batch to the real server.

``PostgresRecorder`` sends the same statements one after the other in one transaction: the same table lock (so
notification ids follow commit order), the same notification, the same errors, and a parameter of any size. The
events go as four arrays (ids, versions, topics, states) instead of one array of the library's composite type:
psycopg dumps a composite value in Python, character by character, which was half the client's time of an
insert (benchmarks: 16 µs of CPU per stored event as composites, 10 µs as arrays). The rows and the returned
notification ids are the same. ``events.store.store_env`` selects this recorder with the library's
``APPLICATION_RECORDER_TOPIC``. (This module's name ends in ``.postgres``, like the library's: the store's
helpers that speak SQL tell the two databases apart by it.)
"""

from __future__ import annotations

from typing import Any, Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Cursor, InterfaceError, OperationalError
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier


class PostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.insert_arrays_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::{id_type}[], %s::integer[], %s::text[], %s::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name),
                 id_type=Identifier(self.datastore.originator_id_type))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                              **kwargs: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self.insert_arrays_statement, (
            [e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events]))
