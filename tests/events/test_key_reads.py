"""One read statement (``events.sealing.DataKeys._read``): a key or the register of erasures read in one statement,
outside a transaction on PostgreSQL, where the datastore's read transaction sent three (``BEGIN``, the statement,
``ROLLBACK``). Checked against the read transaction it replaces (the same rows, on SQLite and PostgreSQL, for keys
made and destroyed in any order), and on the wire: a key not cached is loaded without ``BEGIN`` or ``ROLLBACK``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.postgres import PostgresDatastore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import pq

from events.sealing import DataKeys, KeyDestroyed, child_scope
from events.store import store_env
from services.hub import Hub


def in_read_transaction(keys: DataKeys, query: str, params: Any) -> list[Any]:
    """What ``_read`` replaces: the statement in the datastore's read transaction."""
    with keys.datastore.transaction(commit=False) as cursor:
        cursor.execute(keys._sql(query), params)
        return list(cursor.fetchall())


def as_plain(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows as plain dicts of plain values (SQLite's rows and memoryviews, PostgreSQL's dicts and bytes)."""
    plain = []
    for row in rows:
        out = {}
        for name in row.keys():
            value = row[name]
            out[name] = bytes(value) if isinstance(value, (bytes, memoryview)) else value
        plain.append(out)
    return plain


# what is made and destroyed: per step a child's key made (True) or the child erased (False)
STEPS = st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=12)


def check_reads_equal(keys: DataKeys, steps: list[tuple[int, bool]]) -> None:
    made: list[bytes] = []
    for child, make in steps:
        scope = child_scope(f"C-{child}")
        if make:
            made.append(keys.ensure([scope])[scope][0])
        else:
            keys.destroy([scope])
    statements: list[tuple[str, Any]] = [
        (f"SELECT master_key, wrapped, destroyed_at FROM {keys.table} WHERE key_id = ?", (key_id,))
        for key_id in made + [b"\x00" * 16]  # and a key that was never made
    ]
    if made:
        condition, params = keys._in("key_id", made)
        statements.append(
            (f"SELECT key_id, scope, master_key, wrapped, destroyed_at FROM {keys.table} WHERE {condition}", params)
        )
    statements += [
        (f"SELECT MAX(position) AS position FROM {keys.erasures}", ()),
        (f"SELECT position, key_ids, erased_at FROM {keys.erasures} WHERE position > ? ORDER BY position", (0,)),
    ]
    for query, params in statements:
        assert as_plain(keys._read(query, params)) == as_plain(in_read_transaction(keys, query, params))
    # and the keys as a new process loads them: the same keys, the destroyed ones destroyed
    fresh = DataKeys(
        keys.datastore,
        keys.keyring,
        postgres=keys.postgres,
        schema=keys.table.split(".")[0].strip('"') if "." in keys.table else None,
    )
    for key_id in made:
        destroyed = keys._destroyed.get(key_id) is not None or key_id not in keys._by_id
        if destroyed:
            with pytest.raises(KeyDestroyed):
                fresh._entry(key_id)
        else:
            assert fresh._entry(key_id)[0] == keys._by_id[key_id][0]


@pytest.mark.store
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_one_read_statement_gives_the_rows_of_the_read_transaction_on_sqlite(steps):
    with tempfile.TemporaryDirectory() as directory:
        hub = Hub(f"sqlite:///{Path(directory) / 'hub.db'}")
        try:
            check_reads_equal(hub.store.keys, steps)
        finally:
            hub.close()


@pytest.mark.store
@pytest.mark.postgres
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_one_read_statement_gives_the_rows_of_the_read_transaction_on_postgres(postgres_url, steps):
    hub = Hub(postgres_url)
    try:
        keys = hub.store.keys
        keys.destroy([child_scope(f"C-{n}") for n in range(6)])  # each example starts from children without keys
        check_reads_equal(keys, steps)
    finally:
        hub.close()


@pytest.mark.store
@pytest.mark.postgres
def test_a_key_not_cached_is_loaded_in_one_statement_without_a_transaction(postgres_url, tmp_path):
    hub = Hub(postgres_url)
    try:
        scope = child_scope("C-1")
        key_id, key = hub.store.keys.ensure([scope])[scope]
        env = store_env(postgres_url)
        datastore = PostgresDatastore(  # one connection, so that its trace sees every statement
            env["POSTGRES_DBNAME"],
            env["POSTGRES_HOST"],
            env["POSTGRES_PORT"],
            env["POSTGRES_USER"],
            env["POSTGRES_PASSWORD"],
            schema=env["POSTGRES_SCHEMA"],
        )
        try:
            keys = DataKeys(datastore, hub.store.keys.keyring, postgres=True, schema=env["POSTGRES_SCHEMA"])
            trace = tmp_path / "libpq.trace"
            with open(trace, "w") as out:
                with datastore.get_connection() as conn:  # the pool's one connection, traced from here on
                    conn.pgconn.trace(out.fileno())
                    conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
                assert keys._entry(key_id)[0] == key  # loaded: not in this DataKeys' cache
                with datastore.get_connection() as conn:
                    conn.pgconn.untrace()
            sent = [line.split("\t") for line in trace.read_text().splitlines() if line.startswith("F\t")]
            statements = [fields for fields in sent if fields[2] in ("Query", "Parse")]
            assert len(statements) == 1 and "tsunagu_data_keys" in "\t".join(statements[0])
            assert not any("BEGIN" in "\t".join(f) or "ROLLBACK" in "\t".join(f) for f in sent)
        finally:
            datastore.close()
    finally:
        hub.close()
