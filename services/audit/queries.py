"""Reading the access records for auditors: the period of a query, the records of one child or of a period in the
whole log, one record by its id, and what a record says in numbers (rules, shown, withheld, redacted).

Period queries over the whole log scan the access records in the log's order and stop once records are recorded
more than ``CLOCK_SKEW`` after the period (records are appended in the order of the hub's clock, up to that skew
between hub processes). A record that does not have the shape of an access record (altered by someone holding the
keys) is left out and counted; ``tsunagu audit verify`` says what is wrong with it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from consent.policy import RULES as POLICY_RULES
from events.clock import JST
from events.dates import day_in_range, moment_in_range, out_of_range
from events.labels import VIEW_JA
from events.model import Org
from events.problems import Problem, Rejected
from events.store import HubStore
from services.audit.models import ConsultedView, ReaderRef, ReadRow
from services.audit.replay import Loaded, load, stored_records
from services.reading import view_log

CLOCK_SKEW = timedelta(minutes=5)
RULES = tuple(name for name, _ in POLICY_RULES)  # the read policy's rules, in its order


class NotFound(Exception):
    """What an auditor asked about does not exist (HTTP 404)."""

    def __init__(self, code: str, message: str, message_ja: str):
        super().__init__(message)
        self.code, self.message, self.message_ja = code, message, message_ja


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_HELP = "（例: 2026-05-12 または 2026-05-12T10:00:00+09:00）"


def parse_moment(text: str | date | datetime | None, field: str, *, end: bool = False) -> datetime | None:
    """A period bound: a date (a day in Japan; as an end, the whole day is included) or a date-time (without an
    offset: Japan time). ``Rejected`` naming ``field`` when it is neither, or outside the hub's range of dates
    (``events.dates``)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=JST)
    moment: datetime | None = None
    try:
        if isinstance(text, date):
            day = text
        elif _DAY.match(text.strip()):
            day = date.fromisoformat(text.strip())
        else:
            moment = datetime.fromisoformat(text.strip())
            moment = moment if moment.tzinfo else moment.replace(tzinfo=JST)
    except ValueError:
        raise Rejected(
            [
                Problem(
                    "invalid_date",
                    f"{field}: not a date (YYYY-MM-DD) or a date-time",
                    f"{field}: 日付の形式が正しくありません{_DATE_HELP}",
                    field,
                )
            ]
        ) from None
    if moment is not None:
        if not moment_in_range(moment):
            raise Rejected([out_of_range(field)])
        return moment
    if not day_in_range(day):
        raise Rejected([out_of_range(field)])
    start = datetime.combine(day, time(0, 0), tzinfo=JST)
    return start + timedelta(days=1) if end else start


@dataclass(frozen=True)
class Period:
    """[since, until): either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, since: Any = None, until: Any = None) -> Period:
        """The period from a query's ``since`` and ``until`` (``parse_moment``); ``Rejected`` naming each bad bound,
        or ``until`` when it is not after ``since``."""
        problems: list[Problem] = []
        bounds: list[datetime | None] = []
        for value, name, end in ((since, "since", False), (until, "until", True)):
            try:
                bounds.append(parse_moment(value, name, end=end))
            except Rejected as rejected:
                problems += rejected.problems
                bounds.append(None)
        if problems:
            raise Rejected(problems)
        start, stop = bounds
        if start is not None and stop is not None and stop <= start:
            raise Rejected(
                [
                    Problem(
                        "invalid_period",
                        "until must be after since",
                        "until（終了日）は since（開始日）より後にしてください",
                        "until",
                    )
                ]
            )
        return cls(start, stop)

    def contains(self, t: datetime) -> bool:
        """``t`` lies in the period."""
        return (self.since is None or self.since <= t) and (self.until is None or t < self.until)

    def past(self, t: datetime) -> bool:
        """``t`` lies after the period by more than the clock skew: a scan in log order may stop."""
        return self.until is not None and t > self.until + CLOCK_SKEW

    def to_dict(self) -> dict[str, str | None]:
        """The bounds as ISO text (``None``: open), as the answers and the audit trail carry them."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def usable(record: Mapping[str, Any] | None) -> bool:
    """The record has what the queries read (a record altered by someone holding the keys may not)."""
    if record is None:
        return False
    try:
        datetime.fromisoformat(record["t"])
        datetime.fromisoformat(record.get("recorded_at") or record["t"])
        decision, reader = record["decision"], record["reader"]
        return (
            isinstance(record["id"], str)
            and isinstance(record["child"], str)
            and isinstance(reader, dict)
            and isinstance(reader.get("org"), str)
            and isinstance(record["purpose"], str)
            and isinstance(decision, dict)
            and isinstance(decision.get("allowed"), bool)
            and isinstance(decision.get("reason"), str)
            and isinstance(decision.get("events"), list)
            and all(isinstance(d, dict) and "event" in d for d in decision["events"])
            and isinstance(record["child_position"], int)
            and isinstance(record["registry_version"], int)
            and isinstance(record["settings"], dict)
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def child_records(store: HubStore, child: str) -> tuple[list[Loaded], list[int]]:
    """The child's records that open and have the shape of an access record; the sequence numbers of the
    others (``tsunagu audit verify`` says what is wrong with them)."""
    loaded = [load(store, s) for s in stored_records(store, child)]
    return [x for x in loaded if usable(x.record)], [x.sequence for x in loaded if not usable(x.record)]


def records_in(store: HubStore, period: Period, counter: Counter[str] | None = None) -> Iterator[dict[str, Any]]:
    """Usable records in ``period``, in log order, stopping past its end (see the module docstring); ``counter``
    counts the ``unreadable`` ones."""
    for stored in stored_records(store):
        loaded = load(store, stored)
        if not usable(loaded.record):
            if counter is not None:
                counter["unreadable"] += 1
            continue
        record = loaded.record
        assert record is not None
        if period.past(datetime.fromisoformat(record.get("recorded_at") or record["t"])):
            return
        if period.contains(datetime.fromisoformat(record["t"])):
            yield record


def find_record(store: HubStore, record_id: str, child: str | None = None) -> Loaded:
    """The access record ``record_id``: in ``child``'s log when given, else searched in the whole log."""
    for stored in stored_records(store, child):
        loaded = load(store, stored)
        if usable(loaded.record) and loaded.record.get("id") == record_id:  # type: ignore[union-attr]
            return loaded
    raise NotFound(
        "unknown_record",
        f"no access record {record_id!r}" + (f" about child {child!r}" if child else ""),
        f"閲覧記録「{record_id}」は見つかりません",
    )


def counts(decision: Mapping[str, Any]) -> tuple[dict[str, int], int, int, int]:
    """What a recorded decision showed: events per rule (in the policy's order), shown, withheld, redacted."""
    events = decision.get("events") or []
    shown = [d for d in events if d.get("allowed")]
    rules = Counter(d.get("rule") or "" for d in shown)
    ordered = {r: rules[r] for r in RULES if rules[r]} | {r: n for r, n in rules.items() if r not in RULES}
    return ordered, len(shown), len(events) - len(shown), sum(1 for d in shown if d.get("redacted"))


def reader_ref(record: Mapping[str, Any], orgs: Mapping[str, Org]) -> ReaderRef:
    """Who read, as the record names them, with the organisation's registered name and type."""
    r = record["reader"]
    org = orgs.get(r["org"])
    return ReaderRef(
        org=r["org"],
        org_name=org.name if org else None,
        org_type=org.type if org else None,
        role=r.get("role"),
        user=r.get("user"),
    )


def read_row(loaded: Loaded, orgs: Mapping[str, Org]) -> ReadRow:
    """One read as a row of ``reads_of_child``."""
    record = loaded.record
    assert record is not None
    decision = record["decision"]
    rules, shown, withheld, redacted = counts(decision)
    return ReadRow(
        record=record["id"],
        sequence=loaded.sequence,
        child=record["child"],
        t=record["t"],
        reader=reader_ref(record, orgs),
        purpose=record["purpose"],
        allowed=decision["allowed"],
        reason=decision["reason"],
        rules=rules,
        shown=shown,
        withheld=withheld,
        redacted_events=redacted,
        policy_version=record.get("policy_version", ""),
        content_digest=record.get("content_digest"),
    )


def consulted_views(store: HubStore, child: str, orgs: Mapping[str, Org]) -> list[ConsultedView]:
    """The views that consulted ``child``'s decided read without showing it (``services.reading.view_log``),
    oldest first: no content of the child was returned by them (a view that showed the child has the child's
    access record, listed with the reads)."""
    return [
        ConsultedView(
            record=record["id"],
            sequence=record.get("sequence", 0),
            view=record["view"],
            view_ja=VIEW_JA.get(record["view"], record["view"]),
            t=record["t"],
            reader=reader_ref(record, orgs),
            purpose=record["purpose"],
            query=dict(record.get("query") or {}),
            consulted=int((record.get("consulted") or {}).get("count", 0)),
            shown=len(record.get("shown") or {}),
        )
        for record in view_log.consulting(store, child)
        if child not in (record.get("shown") or {})
    ]
