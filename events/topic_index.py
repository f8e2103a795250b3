"""The audit topic indexes (``INDEXED_TOPICS``), shared by the two recorders (``events.sqlite``, ``events.postgres``)
and ``events.streams.stored_of``, which pages through them."""

from __future__ import annotations

INDEXED_TOPICS = {
    "tsunagu_topic_view_records": "services.reading.view_log:ViewLog.ViewRecorded",  # view_log.VIEW_TOPIC
    "tsunagu_topic_consulted_sets": "services.reading.view_log:ConsultedSet.Created",  # view_log.SET_TOPIC
}
"""The audit topic indexes: for each name, a partial index of the events table holding the rows of one topic only.

Why: a child's audit ("who read this child", its 開示 report, ``audit verify --child``) looks for the view records
and consulted sets that name the child (``services.reading.view_log.consulting``), by topic; neither database had an index on
``topic``, so each look was a scan of the whole log (620,000 rows at 5,000 cases, 2.4 million at 20,000), and the
audit of one child grew with the hub's log, not with the views (docs/benchmarks.md). Partial, so that the publish
path, which stores no view records, writes no index entry (only a check of each row's topic); an index on every
topic would add one entry per event stored. One index per topic: SQLite uses a partial index only for a query
whose WHERE has the index's own term (``topic = '…'``, the constant in the statement), and PostgreSQL's planner
cannot match a parameter against it in a prepared statement either, so ``stored_of`` pages through these topics
with the recorders' ``select_indexed`` (``events.sqlite``, ``events.postgres``), not the library's
``select_notifications`` (topics as parameters).

Existing stores: ``CREATE INDEX IF NOT EXISTS`` runs on every open (the library's ``create_table``), so the first
open by this code builds them from the rows there (one pass over the table: 0.8 s for 2.4 million SQLite rows;
on PostgreSQL the build holds writes to the events table meanwhile, once: open a large store with this code
before the hub takes traffic; after that, each open's check is the one the library already makes for its own
index on ``notification_id``; two processes opening at once: the second waits for the first's and finds them
made), and the stores of ``tests/fixtures`` get them on the copy a test opens. Older code opening such a store ignores them (the database keeps them up to date). The topics are as stored and
never change (a test checks they are the view log's)."""


def literal(text: str) -> str:
    """``text`` as an SQL string constant (both databases): for the topics above, written into statements."""
    return "'" + text.replace("'", "''") + "'"
