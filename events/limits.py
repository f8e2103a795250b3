"""Every size and rate limit of the hub, in one place (README.md, "Limits").

Whatever comes in (an HTTP request, an event envelope, a file to import, a Kafka message) is bounded here, so that
no input, however large or deep, can exhaust memory or the stack or make the hub answer 500. The modules that
enforce a limit import it from here: ``services.http.app`` and ``services.http.limits`` (HTTP), ``events.envelope``
(envelopes, whatever their path), ``adapters.csvfile`` and ``adapters.jsonl`` (files).

This module sits in ``events`` (the lowest layer) so that the envelope and the adapters can use it without
importing the services layer. It holds values and nothing else.
"""

from __future__ import annotations

MiB = 1024 * 1024

# --- HTTP -----------------------------------------------------------------------------------------------------

MAX_BODY_BYTES = 5 * MiB
"""A request body, declared by Content-Length or streamed (chunked): more is refused with 413."""

MAX_EVENTS_PER_REQUEST = 1000
"""Envelopes in one ``POST /v1/events`` (one transaction); more is refused with 422 ``batch_too_large``."""

MAX_JSON_DEPTH = 32
"""Nesting of arrays and objects in a JSON request body (a batch, an envelope and its payload need far less).
Checked without recursion before anything recursive touches the document; deeper is 422 ``nested_too_deeply``."""

MAX_PATH_BYTES = 8 * 1024
"""The URL path, percent-encoded as sent; longer is refused with 414 before routing. Each path parameter (child,
case, plan …) is at most 200 characters by its schema (422): even two of them in 4-byte UTF-8, percent-encoded,
stay under this."""

MAX_QUERY_BYTES = 8 * 1024
"""The query string, percent-encoded as sent; longer is refused with 414."""

# --- Request rates (per client; see services.http.limits) -------------------------------------------------------

RATE_LIMIT = "600/minute"
"""Requests per client: a verified token's organisation and subject, or for requests without a token the remote
address. Environment: ``TSUNAGU_RATE_LIMIT`` (the ``limits`` notation, e.g. ``600/minute``, ``20/second``)."""

TOKEN_RATE_LIMIT = "20/minute"
"""Requests to the token endpoint (``/oauth/token``) per client_id and per remote address, against secret
guessing. Environment: ``TSUNAGU_TOKEN_RATE_LIMIT``."""

RATE_LIMIT_STORAGE = "async+memory://"
"""Where the counters live: in the process by default. A deployment with several API workers or hosts points
every worker at one Redis: ``TSUNAGU_RATE_LIMIT_STORAGE=async+redis://redis:6379``."""

# --- Event envelopes (events.envelope, on every path: HTTP, files, Kafka) -------------------------------------

MAX_ID_CHARS = 200
"""``id``, ``child``, ``local_child``, ``source``, ``to``; and every payload field's name."""

MAX_KIND_CHARS = 100

MAX_TEXT_CHARS = 20_000
"""Any string in a payload (a note, a summary, a plan's wishes …): about ten pages of Japanese text."""

MAX_PAYLOAD_DEPTH = 8
"""Nesting of objects and arrays inside ``payload`` (``{"signs": ["…"]}`` is depth 2)."""

MAX_SENSITIVE_FIELDS = 100
"""Names in ``sensitive``."""

MAX_ENVELOPE_BYTES = 512 * 1024
"""The whole envelope as stored (canonical JSON, UTF-8). Keeps every envelope well inside a Kafka message
(``MAX_MESSAGE_BYTES``) and a JSON-lines line."""

# --- Dates and settings ---------------------------------------------------------------------------------------

EARLIEST_DAY = "1900-01-01"
"""The first day the hub accepts in any date or date-time it is given (an event's ``at``, a payload's dates and
months, a query's ``since``, ``until``, ``date`` or ``month``), in Japan time (``events.dates``)."""

LATEST_DAY = "2999-12-31"
"""The last such day. Python's own range (0001-01-01 to 9999-12-31) is too wide: a date at its edge breaks the
arithmetic the hub does with it (the day after an ``until``, a month's due date, Japan time of a date-time sent
with another offset), which would be a server error instead of a clear refusal."""


# --- Files (tsunagu import …) ---------------------------------------------------------------------------------

MAX_IMPORT_FILE_BYTES = 200 * MiB
"""A CSV or JSON-lines file to import: larger is refused before anything is read. (A school's monthly file is a
few hundred kilobytes; a prefecture's daily attendance for a month, tens of megabytes.)"""

CSV_MAX_LINE_CHARS = 64 * 1024
"""Characters in one physical line of a CSV file; more is not a CSV an office system writes."""

CSV_MAX_FIELD_CHARS = 32 * 1024
"""Characters in one CSV cell (a runaway quote would otherwise swallow the file)."""

JSONL_MAX_LINE_CHARS = 1 * MiB
"""Characters in one line of a JSON-lines feed: an envelope of ``MAX_ENVELOPE_BYTES`` fits."""

# --- Kafka ----------------------------------------------------------------------------------------------------

MAX_MESSAGE_BYTES = 1 * MiB
"""A message on the events topic: the broker's default ``message.max.bytes`` (about 1 MB). An envelope of
``MAX_ENVELOPE_BYTES`` always fits."""
