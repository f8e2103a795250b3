"""The stored forms of an access record (閲覧記録の保存形式), and the one function that reads either.

**Form 1** (every record written before session 10; no ``format`` field): the record as ``access_record`` made it,
the read's decision under ``decision`` as ``ReadDecision.to_dict`` writes it: ``{"allowed", "reason",
"policy_version", "events": [{"event", "allowed", "rule", "redacted"}, …]}``, one dict per event considered.

**Form 2** (``"format": 2``, written from session 10 on): the same record with ``decision`` replaced by
``decisions``, the decision in columns, made once from the ``ReadDecision``::

    "decisions": {"allowed": bool, "reason": str,
                  "event": [id, …], "event_allowed": [bool, …], "rule": [str | None, …], "redacted": [[field, …], …]}

the *i*-th entry of each of the four lists being the decision on the *i*-th event considered, in the decision's
order. The decision's ``policy_version`` is the record's own ``policy_version`` (form 1 holds it twice, always
equal: ``access_record`` takes both from the decision). Everything else (reader, purpose, child, ``t``, the
positions, the registry version, the settings, the policy version, the content digest, ``view``, and, once
chained, ``sequence``, ``prev_hash`` and ``hash``) is as in form 1.

Why: a 500-event read's form-1 record is ~35 kB of JSON, 500 dicts repeating the same four keys; it was made
(``ReadDecision.to_dict``), hashed, encoded and sealed on every read, and decoded again whole by the child's next
read, which needs only its ``hash`` and ``sequence`` (``TimelineReader._chain``). The columns are less than half
the bytes (16.0 against 34.5 kB sealed for 500 events) and four lists instead of 1,000 objects to build, encode,
hash and decode (``docs/benchmarks.md``, session 10). The next read does not open the head at all: the record's
``hash`` and ``sequence`` are stored in the clear beside its sealed state and bound to it
(``events.sealing.CLEAR_HEAD``); a head written before that is opened once, as before.

**The chain hash is one definition for both forms**: ``chain_hash(previous, stored)``, the SHA-256 of the
canonical JSON (``events.envelope.canonical_json``: sorted keys, no spaces, UTF-8) of
``{"prev": previous, "record": stored}`` with ``hash`` and ``prev_hash`` left out of ``stored``, **the record as
stored**: for form 2 that is the record with ``"format": 2`` and its ``decisions`` columns (so the form, every
column and the order of the events are all covered). The auditors hash what is stored, never what
``logical_record`` makes of it (``services.audit.replay.Loaded.stored``).

Every reader of a stored record (``audit verify`` and its replay, the audit queries, disclosure, shared reads, the
anchors) reads it through ``logical_record``, which gives the form-1 record for either form: a store written
before the change reads as it did, and a child's log that holds form-1 records then form-2 ones chains across the
change (each record's ``prev_hash`` is its predecessor's ``hash``, whatever the predecessor's form).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consent.model import ReadDecision

RECORD_FORMAT = 2
"""The form new access records are written in (see the module docstring)."""

DECISION_COLUMNS = ("event", "event_allowed", "rule", "redacted")
"""The per-event columns of a form-2 record's ``decisions``, in the order of an event decision's fields."""


class RecordFormError(ValueError):
    """A stored access record that is not in a form this code reads: an unknown ``format``, or form-2 columns
    that are missing or of different lengths (an altered record: the hub never writes one)."""


def decision_columns(decision: ReadDecision) -> dict[str, Any]:
    """``decision`` as a form-2 record's ``decisions`` (module docstring): made once, then hashed, sealed and
    stored as it is. Lists (not tuples), so that the record in memory is the record as it reads back."""
    events = decision.events
    return {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "event": [d.event for d in events],
        "event_allowed": [d.allowed for d in events],
        "rule": [d.rule for d in events],
        "redacted": [list(d.redacted) for d in events],
    }


def logical_record(stored: Mapping[str, Any]) -> dict[str, Any]:
    """**The record as its readers read it** (form 1, ``decision`` a ``ReadDecision.to_dict``), from a stored
    record of either form. A form-1 record (or any record without ``format``, such as a view's record) is returned
    as it is, unchanged (not copied); a form-2 one is returned as a new dict whose ``decision`` is rebuilt from its
    columns. Raises ``RecordFormError`` for a record this code cannot read (module docstring).

    ``tests/reading/test_record_form.py`` checks, on random decisions, that the form-2 record of a read, stored and
    read back, gives the form-1 record the code before the change stored for the same read."""
    form = stored.get("format")
    if form is None:
        return stored if isinstance(stored, dict) else dict(stored)
    if form != RECORD_FORMAT:
        raise RecordFormError(f"access record {stored.get('id')}: unknown record format {form!r}")
    columns = stored.get("decisions")
    if not isinstance(columns, Mapping) or any(not isinstance(columns.get(name), list) for name in DECISION_COLUMNS):
        raise RecordFormError(f"access record {stored.get('id')}: its decisions are not the columns of form 2")
    ids, allowed, rules, redacted = (columns[name] for name in DECISION_COLUMNS)
    if not len(ids) == len(allowed) == len(rules) == len(redacted):
        raise RecordFormError(f"access record {stored.get('id')}: its decision columns differ in length")
    record = {k: v for k, v in stored.items() if k not in ("format", "decisions")}
    record["decision"] = {
        "allowed": columns.get("allowed"),
        "reason": columns.get("reason"),
        "policy_version": stored.get("policy_version", ""),
        "events": [
            {"event": e, "allowed": a, "rule": r, "redacted": list(x)}
            for e, a, r, x in zip(ids, allowed, rules, redacted, strict=True)
        ],
    }
    return record
