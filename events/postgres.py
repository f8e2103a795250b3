"""The library's PostgreSQL application recorder, inserting without psycopg's pipeline mode.

``eventsourcing.postgres`` sends the statements of a save (lock the events table, notify, insert every stored
event as one array parameter) in one psycopg pipeline. psycopg 3.2 and 3.3 leave a pipeline's output unflushed
when what is queued is more than one socket write takes (seen here from about 10 MB, a publish of a few
thousand new children): the server waits for the rest of the message (its log says "incomplete message from
client"), psycopg waits for the result, and the publish hangs for ever. ``tests/test_store.py`` publishes such a
batch to the real server.

``PostgresRecorder`` sends the same statements one after the other in one transaction: the same SQL, the same
table lock (so notification ids follow commit order), the same errors, four loopback round trips more per save,
and a parameter of any size. ``events.store.store_env`` selects it with the library's
``APPLICATION_RECORDER_TOPIC``. (This module's name ends in ``.postgres``, like the library's: the store's helpers
that speak SQL tell the two databases apart by it.)
"""

from __future__ import annotations

from typing import Any, Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import InterfaceError, OperationalError


class PostgresRecorder(PostgresApplicationRecorder):
    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
