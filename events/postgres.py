"""The library's PostgreSQL application recorder, inserting without psycopg's pipeline mode, as plain arrays.

``eventsourcing.postgres`` sends the statements of a save (lock the events table, notify, insert every stored
event as one array parameter) in one psycopg pipeline. psycopg 3.2 and 3.3 leave a pipeline's output unflushed
when what is queued is more than one socket write takes (seen here from about 10 MB, a publish of a few
thousand new children): the server waits for the rest of the message (its log says "incomplete message from
client"), psycopg waits for the result, and the publish hangs for ever. ``tests/publishing/test_publish_streams.py``
publishes such a batch to the real server.

``PostgresRecorder`` runs the same statements in one transaction, in one call of a function on the server
(``tsunagu_append_events``, see ``PostgresRecorder._insert_in``): the same table lock (so notification ids follow
commit order), the same notification, the same errors, and a parameter of any size. The
events go as four arrays (ids, versions, topics, states) instead of one array of the library's composite type:
psycopg dumps a composite value in Python, character by character, which was half the client's time of an
insert (benchmarks: 16 µs of CPU per stored event as composites, 10 µs as arrays). The arrays go in
PostgreSQL's binary format (``%b``): as text, every sealed state is escaped byte by byte in Python and parsed back
by the server; in binary, a 600-byte state costs about 1 µs of the client's CPU instead of 10, and the insert
takes an eighth of the time (bench: 2.5 instead of 21 µs per row). The rows and the returned notification ids
are the same. ``events.store.store_env`` selects this recorder with the library's
``APPLICATION_RECORDER_TOPIC``. (This module's name ends in ``.postgres``, like the library's: the store's
helpers that speak SQL tell the two databases apart by it.)

The recorder also keeps the register of stored envelope ids (``events.envelope_ids``): its rows are inserted in
the same transaction as the events, before the events table is locked, so that a reused id fails fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Connection, Cursor, InterfaceError, OperationalError
from psycopg import Error as PsycopgError
from psycopg.errors import LockNotAvailable
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from events.envelope_ids import FORMAT_TABLE, StoredEnvelope, columns
from events.envelope_ids import TABLE as ENVELOPE_IDS
from events.problems import Busy
from events.retry import RETRY_AFTER_SECONDS, TURN_WAIT_SECONDS
from events.topic_index import INDEXED_TOPICS, literal

# The largest save (the sum of its sealed states' bytes) whose append and COMMIT a turn sends in one psycopg pipeline
# (``PostgresRecorder.insert_events(held=…)``): psycopg leaves a pipeline's output unflushed when what is queued is
# more than one socket write takes (the module's docstring; seen from about 10 MB). A turn's save is a few access
# records (a 50-child ledger page is tens of kB); a larger one is sent as the append, then the COMMIT, in two round
# trips.
TURN_PIPELINE_LIMIT = 256 * 1024

# The SQLSTATEs with which the server ends a session (``turn_session_ended``): idle_in_transaction_session_timeout,
# admin_shutdown, crash_shutdown, cannot_connect_now, idle_session_timeout.
SESSION_ENDED_STATES = frozenset({"25P03", "57P01", "57P02", "57P03", "57P05"})


def turn_session_ended(conn: Connection[Any], error: BaseException) -> bool:
    """Whether ``error``, raised in a turn (``PostgresRecorder.streams_locked``), means that the turn's session
    ended: the server ended it (``SESSION_ENDED_STATES``: the idle-in-transaction limit passed while the process
    held the turn, an administrator's or the server's shutdown) or the connection was lost. The turn's transaction
    then holds nothing any more; whether a ``COMMIT`` already sent went through, the client cannot tell."""
    if not isinstance(error, PsycopgError):
        return False
    return conn.closed or conn.broken or getattr(error, "sqlstate", None) in SESSION_ENDED_STATES


@contextmanager
def schema_changes_locked(datastore: Any, schema: str) -> Iterator[None]:
    """Hold a session-level advisory lock, one per schema, while the hub's tables are created or changed, so that
    processes opening a new database at the same time do it one after the other (each then finds the tables)."""
    with advisory_locked(datastore, f"tsunagu-schema:{schema}"):
        yield


@contextmanager
def advisory_locked(datastore: Any, key: str) -> Iterator[None]:
    """Hold PostgreSQL's session-level advisory lock named ``key`` (on a connection of the pool, kept meanwhile):
    one holder at a time across every process on the database. When the unlock fails (the connection lost with
    the server's restart, or the statement cancelled), the connection is closed: the server then drops the lock
    with the session, and the pool never hands out a connection still holding it."""
    with datastore.get_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
        try:
            yield
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
            except (InterfaceError, OperationalError):
                conn.close()


def check_before_use(datastore: Any) -> None:
    """A named mechanism: the datastore's pool checks a connection before handing it out, and at the first one
    found broken drops every broken connection it holds at once (``ConnectionPool.check``, which opens new ones
    in the background).

    The check: a connection on which the server said something while it lay idle in the pool (its socket is
    readable: a server that shut down or restarted sends the termination and closes) is pinged with an empty
    query (psycopg_pool's ``check_connection``, what the library's ``POSTGRES_PRE_PING`` does); one on which it
    said nothing is handed out as it is. A ping for every checkout cost about 8 % of an API process's samples
    under load (one more round trip for each of a request's several checkouts); looking at the socket costs a
    system call. (A server gone without closing its connections, a host lost, is not seen; the request then fails
    once, as before.)

    Why the drop of all: after a PostgreSQL restart every pooled connection is dead, and psycopg_pool waits
    between two failed checks with a growing backoff (1, 2, 4, 8 … s), so that a request met ten dead
    connections in a row in 30 to 45 s (``tests/events/test_postgres_restart.py``). Dropping them all at the
    first makes it one pause of about a second, once per process; without any check, each dead connection cost
    one failed request (a 503). The check is set on the pool the library built (psycopg_pool keeps it as
    ``_check``; the restart test fails if that changes)."""
    import select
    import weakref

    from psycopg_pool import ConnectionPool

    pool = weakref.ref(datastore.pool)  # no reference cycle through the pool's own attribute

    def check(conn: Any) -> None:
        if not conn.closed:
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
            if not poller.poll(0):  # nothing from the server since it was last used
                return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            owner = pool()
            if owner is not None:
                owner.check()
            raise

    assert hasattr(datastore.pool, "_check"), "psycopg_pool keeps the check as _check"
    datastore.pool._check = check


def stream_lock_key(schema: str, stream: UUID) -> int:
    """The key of ``stream``'s transaction-level advisory lock (``PostgresRecorder.streams_locked``): 64 bits of a
    hash of the schema and the stream id, so that two hubs' schemas on one database do not share locks (two
    streams sharing a key only wait for each other)."""
    digest = hashlib.blake2b(schema.encode() + b"\x1f" + stream.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def stored_event(row: Any) -> StoredEvent:
    """A row of the events table (``originator_id``, ``originator_version``, ``topic``, ``state``) as the library's
    ``StoredEvent``: the stream's events (``select_events``) and the turn's heads (``streams_locked``)."""
    return StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=row["state"],
    )


class PostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        schema, id_type = Identifier(self.datastore.schema), Identifier(self.datastore.originator_id_type)
        table = Identifier(self.events_table_name)
        # The turn's first message (``streams_locked``): begin, then one call of ``tsunagu_take_turn``, which takes
        # the streams' locks one by one in the keys' order (the subquery's sort, kept by OFFSET 0, is the order in
        # which the aggregate calls the function), so that two writers never wait for each other in turn, then
        # reads each stream's last event from the end of its primary key (one index probe per stream) by a query
        # of its own, which in a VOLATILE function takes a new snapshot: after the locks are granted. A function,
        # so that the server keeps both queries' plans for the session (a message of several statements is not
        # prepared).
        # The locks' wait (``wait_ms``, positive): all of them by one deadline: before each lock, ``lock_timeout``
        # (for the transaction only) is set to what is left of it, and once it has passed, lock_not_available.
        # The append then sets the process's own ``lock_timeout`` for the events table's lock.
        take_turn = Identifier(self.datastore.schema, "tsunagu_take_turn")
        self.begin_turn_statement = SQL(
            "BEGIN; SELECT head_id AS originator_id, head_version AS originator_version, head_topic AS topic, "
            "head_state AS state FROM {take_turn}({keys}::bigint[], {ids}::{id_type}[], {wait_ms}::float8)"
        )
        self.begin_turn_names = {"take_turn": take_turn, "id_type": id_type}
        for earlier in (SQL(""), SQL(", text")):  # its earlier forms: waiting for ever, then a timeout per lock
            self.sql_create_statements.append(
                SQL("DROP FUNCTION IF EXISTS {take_turn}(bigint[], {id_type}[]{earlier})").format(
                    take_turn=take_turn, id_type=id_type, earlier=earlier
                )
            )
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {take_turn}(keys bigint[], ids {id_type}[], wait_ms float8) RETURNS "
                "TABLE (head_id {id_type}, head_version bigint, head_topic text, head_state bytea) LANGUAGE plpgsql "
                "VOLATILE AS $BODY$ DECLARE "
                "lock_key bigint; "
                "deadline timestamptz := clock_timestamp() + wait_ms * interval '1 millisecond'; "
                "left_ms bigint; "
                "BEGIN "
                "FOR lock_key IN SELECT u.k FROM unnest(keys) AS u(k) ORDER BY u.k LOOP "
                "left_ms := floor(extract(epoch FROM deadline - clock_timestamp()) * 1000); "
                "IF left_ms < 1 THEN "
                "RAISE EXCEPTION 'the turn''s wait is spent' USING ERRCODE = 'lock_not_available'; "
                "END IF; "
                "PERFORM set_config('lock_timeout', left_ms || 'ms', true); "
                "PERFORM pg_advisory_xact_lock(lock_key); "
                "END LOOP; "
                "RETURN QUERY SELECT e.originator_id, e.originator_version, e.topic, e.state FROM unnest(ids) AS w(id) "
                "CROSS JOIN LATERAL (SELECT t.originator_id, t.originator_version, t.topic, t.state FROM {schema}.{table} "
                "AS t WHERE t.originator_id = w.id ORDER BY t.originator_version DESC LIMIT 1) AS e; "
                "END; $BODY$"
            ).format(take_turn=take_turn, id_type=id_type, schema=schema, table=table)
        )
        self.position_and_later_statement = SQL(
            "SELECT (SELECT max(notification_id) FROM {schema}.{table}) AS position, EXISTS (SELECT 1 FROM "
            "{schema}.{table} WHERE originator_id = %s AND originator_version > %s) AS later"
        ).format(schema=schema, table=table)
        self.envelope_ids_table = SQL("{schema}.{table}").format(schema=schema, table=Identifier(ENVELOPE_IDS))
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {table} (envelope uuid PRIMARY KEY, stream {id_type} NOT NULL, "
                "position integer NOT NULL, digest uuid NOT NULL)"
            ).format(table=self.envelope_ids_table, id_type=id_type)
        )
        self.insert_envelope_ids_statement = SQL(
            "INSERT INTO {table} (envelope, stream, position, digest) "
            "SELECT * FROM unnest(%b::uuid[], %b::{id_type}[], %b::integer[], %b::uuid[])"
        ).format(table=self.envelope_ids_table, id_type=id_type)
        self.format_table = SQL("{schema}.{table}").format(schema=schema, table=Identifier(FORMAT_TABLE))
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {table} (format integer NOT NULL)").format(table=self.format_table)
        )
        events_table = SQL("{schema}.{table}").format(schema=schema, table=table)
        for name, topic in INDEXED_TOPICS.items():  # events.topic_index: the audit topic indexes
            self.sql_create_statements.append(
                SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (notification_id) WHERE topic = {topic}").format(
                    name=Identifier(name), table=events_table, topic=SQL(literal(topic))
                )
            )
        self.events_table_sql = events_table
        # The appends' statement under the events table's lock (``_insert_in``): lock, notify and insert on the
        # server, in one round trip. The lock timeout is an argument (this process's ``POSTGRES_LOCK_TIMEOUT``,
        # ``SET LOCAL`` on main), not part of the function's body, which every process opening the store replaces.
        append = Identifier(self.datastore.schema, "tsunagu_append_events")
        self.append_events_statement = SQL(
            "SELECT notification_id FROM {append}(%b::{id_type}[], %b::integer[], %b::text[], %b::bytea[], %b::text)"
        ).format(append=append, id_type=id_type)
        self.sql_create_statements.append(  # the first form, with the timeout written into the body
            SQL("DROP FUNCTION IF EXISTS {append}({id_type}[], integer[], text[], bytea[])").format(
                append=append, id_type=id_type
            )
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {append}(ids {id_type}[], versions integer[], topics text[], "
                "states bytea[], lock_timeout text) RETURNS TABLE (notification_id bigint) LANGUAGE plpgsql AS "
                "$BODY$ BEGIN "
                "PERFORM set_config('lock_timeout', lock_timeout, true); "
                "LOCK TABLE {table} IN EXCLUSIVE MODE; "
                "NOTIFY {channel}; "
                "RETURN QUERY INSERT INTO {table} AS t (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(ids, versions, topics, states) RETURNING t.notification_id; "
                "END; $BODY$"
            ).format(append=append, id_type=id_type, table=events_table, channel=Identifier(self.channel_name))
        )

    def select_indexed(self, topic: str, start: int, limit: int, stop: int | None = None) -> list[Notification]:
        """``select_notifications(start, limit, stop, topics=[topic])`` for a topic of
        ``events.topic_index.INDEXED_TOPICS``, through its partial index (the topic a constant in the statement)."""
        if topic not in INDEXED_TOPICS.values():
            raise ValueError(f"{topic} has no audit topic index")
        statement = SQL("SELECT * FROM {table} WHERE topic = {topic} AND notification_id >= %s").format(
            table=self.events_table_sql, topic=SQL(literal(topic))
        )
        params = [start]
        if stop is not None:
            statement += SQL(" AND notification_id <= %s")
            params.append(stop)
        statement += SQL(" ORDER BY notification_id LIMIT %s")
        params.append(limit)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def create_table(self) -> None:
        """The library's ``create_table``, one process at a time (``schema_changes_locked``): several processes
        starting at once on a new database (three API servers and a worker) otherwise race on PostgreSQL's
        catalogue ("tuple concurrently updated" from ``CREATE OR REPLACE FUNCTION``, a duplicate type)."""
        with schema_changes_locked(self.datastore, self.datastore.schema):
            super().create_table()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's max_notification_id
    def position_and_later(self, originator_id: UUID, version: int) -> tuple[int, bool]:
        """The log position (``max_notification_id``, 0 for an empty log) and whether ``originator_id`` has an
        event after ``version``, read in one statement (one snapshot of the table): ``HubStore.registry_at_position``
        is its one user."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.position_and_later_statement, [originator_id, version], prepare=True)
            row = curs.fetchone()
        assert row is not None
        return int(row["position"] or 0), bool(row["later"])

    def store_format(self) -> int | None:
        """The format the store's tables were last brought to (``events.store.STORE_FORMAT``); None: never set."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT max(format) AS format FROM {table}").format(table=self.format_table))
            row = curs.fetchone()
        return None if row is None else row["format"]

    def set_store_format(self, format: int) -> None:
        """Record that the store reached ``format``. Rows are only added and the format is their highest, so two
        processes opening a store at once cannot lower it."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("INSERT INTO {table} (format) VALUES (%s)").format(table=self.format_table), [format])

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        envelopes: Sequence[StoredEnvelope] = (),
        **kwargs: Any,
    ) -> None:
        """The library's hook for rows that commit with the events: the register's rows of this save."""
        if envelopes:
            curs.execute(self.insert_envelope_ids_statement, columns(envelopes))
        super()._insert_events(curs, stored_events, **kwargs)

    def select_envelopes(self, keys: Sequence[UUID]) -> list[StoredEnvelope]:
        """The register's rows for ``keys`` (those stored), in one query."""
        if not keys:
            return []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT envelope, stream, position, digest FROM {table} WHERE envelope = ANY(%b)").format(
                    table=self.envelope_ids_table
                ),
                [list(keys)],
            )
            return [
                StoredEnvelope(row["envelope"], row["stream"], row["position"], row["digest"])
                for row in curs.fetchall()
            ]

    def insert_envelopes(self, rows: Iterable[StoredEnvelope]) -> None:
        """Add rows to the register, keeping those already there (rebuilding it from the log)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.insert_envelope_ids_statement + SQL(" ON CONFLICT DO NOTHING"), columns(rows))

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The library's ``select_events`` with the rows in PostgreSQL's binary format: a sealed state comes as
        its bytes, not as hex text to parse (a 1,000-event stream in two thirds of the time)."""
        statement = self.select_events_statement
        params: list[Any] = [originator_id]
        if gt is not None:
            params.append(gt)
            statement += SQL(" AND originator_version > %s")
        if lte is not None:
            params.append(lte)
            statement += SQL(" AND originator_version <= %s")
        statement += SQL(" ORDER BY originator_version DESC" if desc else " ORDER BY originator_version ASC")
        if limit is not None:
            params.append(limit)
            statement += SQL(" LIMIT %s")
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
            curs.execute(statement, params, prepare=True)
            return [stored_event(row) for row in curs.fetchall()]

    @contextmanager
    def streams_locked(
        self,
        streams: Sequence[UUID],
        *,
        wait: float = TURN_WAIT_SECONDS,
    ) -> Iterator[tuple[Connection[Any], list[StoredEvent]]]:
        """A transaction holding the transaction-level advisory lock of each of ``streams`` (``stream_lock_key``,
        taken in the keys' order), and the last stored event of each that has events, read under the locks: the
        transaction's connection (pass it as ``held`` to ``insert_events``, which appends and commits, ending the
        turn) and those events. Committed when the block ends without having saved, rolled back when it raises;
        either releases the locks. The named mechanism ``events.store.HubStore.append_in_turn`` is its one user.

        A named mechanism, **the turn in two messages**: the transaction is begun and ended by the statements
        themselves (``BEGIN`` with one call of ``tsunagu_take_turn``, the locks and the heads, in the first
        message, several statements in PostgreSQL's simple query protocol, the keys and ids written in as literals
        by psycopg's quoting; the append with ``COMMIT`` in the second: ``insert_events(held=…)``, a psycopg
        pipeline of the append with binary parameters and the ``COMMIT``, one sync), instead of psycopg's
        ``conn.transaction()`` and one message per statement: begin, locks, heads, then the append, then the
        commit. Each answer the client waits for costs the API thread the GIL back (up to 5 ms behind each busy
        thread of its process), and the turn holds the streams' locks, and from the append on the events table's
        lock that every writer of every process takes, across all of them. With the commit in the same round trip
        as the append, the table's lock is held on the server only, for no round trip to the client; the streams'
        locks for one. The transaction, its locks and its statements are the same: the heads are read by a query
        after the locks' (READ COMMITTED takes a new snapshot for each query of a VOLATILE function), a failed
        statement aborts the rest of its message (or pipeline) and the transaction,
        which is then rolled back here, and a held connection is never returned to the pool in a transaction (the
        pool would roll it back too). The locks stay transaction-level: a holder that freezes is ended by the
        database's idle-in-transaction limit, as before.

        **The wait is bounded**: ``tsunagu_take_turn`` waits for all the locks together at most ``wait`` seconds
        (``HubStore.append_in_turn`` passes what is left of TSUNAGU_TURN_LOCK_TIMEOUT; one deadline,
        ``lock_timeout`` set to what is left of it before each lock). Not granted by then: ``Busy`` (503 with ``Retry-After``), after the transaction is rolled back:
        nothing of the turn is stored. Replaces the library's ``POSTGRES_LOCK_TIMEOUT`` (0: for ever) for these
        locks, under which a holder in another process kept every thread of this one that wanted the same stream
        waiting, holding its request thread, and session 6's ``lock_timeout`` per lock, under which a turn on n
        streams held one after the other could wait n times the setting.

        **Transaction control is never prepared**: the turn's ``COMMIT`` is sent with ``prepare=False`` and its
        rollbacks are ``conn.rollback()``. psycopg prepares a statement the fifth time it runs it; a ``COMMIT``
        that crossed that count in a pipeline the server had aborted (an append refused on a stream's version)
        was recorded as prepared although the server skipped its Parse, and the next turn's ``COMMIT`` on the
        connection failed with "prepared statement _pg3_N does not exist" (500). ``conn.rollback()`` always
        clears psycopg's record of prepared statements (and the server's, ``DEALLOCATE ALL``); a ``ROLLBACK``
        sent through ``execute`` did so only until it was itself counted (review of session 7, HIGH-1;
        ``tests/events/test_turn_prepared.py``).

        **A session ended in the turn is ``Busy``** (``Busy.store_unavailable``: 503 with ``Retry-After``; the
        command line exits 75), never an unexpected error (500): the server ended it (its
        ``idle_in_transaction_session_timeout``, 5 s, passed while the process held the turn, or a shutdown) or
        the connection was lost (``turn_session_ended``). The transaction ended with the session, so nothing is
        held; the connection is closed and the pool replaces it. Replaces the library's ``InternalError`` ("terminating
        connection due to idle-in-transaction timeout"), which no layer handled (review of session 7, s7-publish
        MEDIUM-2; ``tests/publishing/test_turn_session_ended.py``)."""
        schema = self.datastore.schema
        keys = sorted({stream_lock_key(schema, stream) for stream in streams})
        ids = [str(i) for i in streams] if self.datastore.originator_id_type == "text" else list(streams)
        with self.datastore.get_connection() as conn:
            assert conn.autocommit, "the pool's connections are in autocommit (the library's after_connect)"
            try:
                with conn.cursor() as curs:
                    try:
                        curs.execute(self._begin_turn(keys, ids, wait_ms=max(1.0, wait * 1000)))  # 0: no wait
                    except LockNotAvailable as timed_out:  # rolled back below
                        raise Busy.contended(RETRY_AFTER_SECONDS) from timed_out
                    curs.nextset()  # BEGIN's, then the heads
                    heads = [stored_event(row) for row in curs.fetchall()]
                yield conn, heads
                if conn.info.transaction_status == TransactionStatus.INTRANS:  # the block saved nothing
                    conn.execute("COMMIT", prepare=False)
            except BaseException as error:
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    try:
                        conn.rollback()  # not execute("ROLLBACK"): see "Transaction control is never prepared"
                    except Exception:
                        conn.close()  # the session ends, and its transaction and locks with it
                if turn_session_ended(conn, error):  # see "A session ended in the turn"
                    raise Busy.store_unavailable(RETRY_AFTER_SECONDS) from error
                raise

    def _begin_turn(self, keys: list[int], ids: list[Any], *, wait_ms: float) -> Composed:
        """The turn's first message (``tsunagu_take_turn``), the keys and ids written in as literals."""
        return self.begin_turn_statement.format(
            keys=Literal(keys), ids=Literal(ids), wait_ms=Literal(wait_ms), **self.begin_turn_names
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], *, held: Connection[Any] | None = None, **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert in a transaction of its own (tried again on a lost connection), or, with ``held``, in the open
        transaction of ``streams_locked``, committing it in the same round trip (not tried again: the transaction
        is the caller's). A turn saves once: its save ends it.

        The turn's append and its ``COMMIT`` go as one psycopg pipeline (two statements, one sync), the events as
        binary parameters as in a transaction of its own: not as literals in one message of several statements,
        which PostgreSQL writes whole into its server log when it fails (``log_min_error_statement``: every sealed
        state as hex on each refused append, and a refusal, a stale head, is normal). A failed append skips the
        ``COMMIT`` (the pipeline is aborted up to the sync), and ``streams_locked`` rolls the turn back. A save
        larger than ``TURN_PIPELINE_LIMIT`` goes as the append, then the ``COMMIT``."""
        if held is not None:
            if held.info.transaction_status != TransactionStatus.INTRANS:
                raise ProgrammingError("the turn's transaction is not open (a turn saves once: its save commits)")
            with held.cursor() as curs:
                if not stored_events or sum(len(e.state) for e in stored_events) > TURN_PIPELINE_LIMIT:
                    notification_ids = self._insert_in(curs, stored_events, **kwargs)  # see the limit's comment
                    curs.execute("COMMIT", prepare=False)  # never prepared: streams_locked's docstring
                    return notification_ids
                self._insert_events(curs, stored_events, **kwargs)  # the register's rows, if any
                with held.pipeline(), held.cursor() as commit:  # both sent, then one sync: one round trip
                    curs.execute(self.append_events_statement, self._append_params(stored_events), prepare=True)
                    commit.execute("COMMIT", prepare=False)  # never prepared: streams_locked's docstring
                return self._notification_ids(curs, stored_events)
        inserted: Sequence[int] | None = self._insert_in_own_transaction(stored_events, **kwargs)
        return inserted

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_own_transaction(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            return self._insert_in(curs, stored_events, **kwargs)

    def _insert_in(
        self, curs: Cursor[Any], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The register's rows (``_insert_events``), then the events in one statement (``tsunagu_append_events``)
        that takes the events table's lock, notifies and inserts, returning the notification ids.

        A named mechanism, for the time the events table's lock is held. Every append of every process takes that
        lock (the library's ``LOCK TABLE … IN EXCLUSIVE MODE``: notification ids are given in commit order, so
        that readers of the log, ``services.casework.rows.VersionWatch``, never pass a gap filled later), and holds
        it until its transaction commits. The library sends the lock, the notification and the insert as three
        statements: the lock was held across three round trips to the client and its commit, and on a busy API
        process each answer waits for the thread to get the GIL back (up to the interpreter's switch interval,
        5 ms, behind each busy thread) while every other writer of every process waits for the lock. The
        function runs the same three statements on the server (the same lock, lock timeout, notification and
        rows; a duplicate version raises the same unique violation), so the lock is held across one round trip
        to the client (the function's answer, then the commit) instead of three. Replaces the library's
        ``_lock_table``, ``_notify_channel``, ``_insert_stored_events`` and ``_fetch_ids_after_insert_events``
        for this recorder's inserts (``docs/benchmarks.md``, "The wait of two API processes")."""
        self._insert_events(curs, stored_events, **kwargs)
        if not stored_events:
            return None
        curs.execute(self.append_events_statement, self._append_params(stored_events), prepare=True)
        return self._notification_ids(curs, stored_events)

    def _append_params(self, stored_events: Sequence[StoredEvent]) -> tuple[Any, ...]:
        """The parameters of ``tsunagu_append_events`` (sent in PostgreSQL's binary format): the events as four
        arrays, and this process's lock timeout for the events table's lock."""
        return (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
            f"{int(self.datastore.lock_timeout)}s",
        )

    @staticmethod
    def _notification_ids(curs: Cursor[Any], stored_events: Sequence[StoredEvent]) -> list[int]:
        notification_ids = [row["notification_id"] for row in curs.fetchall()]
        if len(notification_ids) != len(stored_events):
            raise ProgrammingError(
                f"Couldn't get all notification IDs (got {len(notification_ids)}, expected {len(stored_events)})"
            )
        return notification_ids
