"""The auditors' service (監査・個人情報保護担当): queries over the access log, never over case content.

Auditors check who accessed what, and on which ground. Everything here is built from access records and the
metadata of events (ids, kinds, sources, times, rules, field names); no payload value leaves this service, with
one deliberate exception: the reason an organisation gave when it declared an emergency, which is the stated
ground of an emergency access and what a reviewer has to judge (``emergency_accesses``).

- ``reads_of_child``: who read child X in a period, as whom, for which purpose, decided how (one child's stream).
- ``reconstruct`` / ``reconstruct_at``: what reader R saw about child X in a past read, rebuilt from the log at
  the record's positions and settings, shown as metadata, with the proof that it is exact: the digest of the
  rebuilt content equals the ``content_digest`` recorded at the time (``services.reading.returned_digest``).
  ``reconstruct_timeline`` gives the full rebuilt ``Timeline`` to code (tests, verification), never to auditors.
- ``emergency_accesses``: every read allowed with purpose ``emergency``, with the declaration's reason and window
  and the reviewers' findings; ``record_finding`` stores a finding (``EmergencyReview`` stream per record).
- ``disclosure_report``: the family's disclosure report (開示請求への回答, ``services.audit.disclosure``).
- ``policy_impact``: replay a period under changed settings and list the decisions that would differ
  (``services.audit.impact``).

Auditors are audited too: every query is appended to the asking organisation's ``AuditTrail`` stream
(``services.audit.trail``) before its result is returned, like a read's access record. The records are read by
``services.audit.queries``; the answers are ``services.audit.models``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from consent.model import ReadDecision, Settings
from events.labels import FINDING_JA
from events.model import Org
from events.problems import Problem, Rejected
from events.retry import retry_conflicts
from events.store import HubStore
from services.audit import queries
from services.audit.disclosure import disclosure
from services.audit.impact import changed_read, settings_changes
from services.audit.models import (
    ChildReads,
    Declaration,
    Disclosure,
    Emergencies,
    EmergencyAccess,
    FindingOut,
    PolicyImpact,
    ReconstructedEntry,
    Reconstruction,
)
from services.audit.queries import (
    NotFound,
    Period,
    child_records,
    consulted_views,
    counts,
    parse_moment,
    read_row,
    reader_ref,
    records_in,
)
from services.audit.replay import History, Loaded, considered, rebuild, replay
from services.audit.trail import Actor, EmergencyReview, record_query
from services.reading.timeline import Timeline


class Auditing:
    """The auditors' queries over one store; each query is recorded in the asker's ``AuditTrail`` first."""

    def __init__(self, store: HubStore, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock

    def _orgs(self) -> Mapping[str, Org]:
        return self.store.registry().orgs

    def _log(self, actor: Actor, query: str, *, child: str | None = None, results: int, **params: Any) -> None:
        """Append the query to the asker's audit trail (before its result is returned)."""
        record_query(self.store, self.clock, actor, query, child=child, results=results, **params)

    # -- who read child X

    def reads_of_child(self, child: str, period: Period, *, actor: Actor) -> ChildReads:
        """Every read of ``child`` made in ``period`` (the child's access log only, not the whole log)."""
        readable, unreadable = child_records(self.store, child)
        orgs = self._orgs()
        rows = [read_row(x, orgs) for x in readable if period.contains(datetime.fromisoformat(x.record["t"]))]  # type: ignore[index]
        views = [v for v in consulted_views(self.store, child, orgs) if period.contains(datetime.fromisoformat(v.t))]
        self._log(actor, "reads_of_child", child=child, results=len(rows) + len(views), **period.to_dict())
        return ChildReads(child=child, **period.to_dict(), reads=rows, unreadable=unreadable, consulted=views)

    # -- what reader R saw

    def find_record(self, record_id: str, child: str | None = None) -> Loaded:
        """The access record ``record_id``: in ``child``'s log when given, else searched in the whole log."""
        return queries.find_record(self.store, record_id, child)

    def reconstruct_timeline(
        self, record: Mapping[str, Any], history: History | None = None
    ) -> tuple[Timeline, str, ReadDecision, int]:
        """The read of ``record`` rebuilt from the log: the full ``Timeline`` as it was returned, its digest, the
        replayed decision, and how many considered events were erased since. For code, never for auditors
        (it holds content)."""
        history = history or History(self.store)
        child = history.child(record["child"])
        _, _, erased = considered(record, child)
        decision, shown, withheld, digest = rebuild(record, child, history.orgs(record["registry_version"]))
        r = record["reader"]
        timeline = Timeline(
            child=record["child"],
            org=r["org"],
            role=r["role"],
            purpose=record["purpose"],
            t=record["t"],
            allowed=decision.allowed,
            reason=decision.reason,
            entries=shown,
            withheld=withheld,
            access_record=record["id"],
            policy_version=decision.policy_version,
        )
        return timeline, digest, decision, erased

    def _reconstruction(self, loaded: Loaded) -> Reconstruction:
        record = loaded.record
        assert record is not None
        timeline, digest, decision, erased = self.reconstruct_timeline(record)
        recorded = record.get("content_digest")
        exact = None if recorded is None or erased else recorded == digest
        return Reconstruction(
            record=record["id"],
            sequence=loaded.sequence,
            child=record["child"],
            t=record["t"],
            reader=reader_ref(record, self._orgs()),
            purpose=record["purpose"],
            allowed=record["decision"]["allowed"],
            reason=record["decision"]["reason"],
            policy_version=record.get("policy_version", ""),
            log_position=record["log_position"],
            child_position=record["child_position"],
            registry_version=record["registry_version"],
            settings=record["settings"],
            entries=[]
            if erased
            else [
                ReconstructedEntry(
                    id=e.id,
                    kind=e.kind,
                    source=e.source,
                    basis=e.basis,
                    at=e.at,
                    rule=e.rule,
                    redacted=e.redacted,
                    function=e.function,
                    to=e.to,
                    sensitive=e.sensitive,
                )
                for e in timeline.entries
            ],
            withheld=None if erased else timeline.withheld,
            decision_matches=None if erased else decision == ReadDecision.from_dict(record["decision"]),
            recorded_digest=recorded,
            replayed_digest=None if erased else digest,
            exact=exact,
            erased_since=erased,
        )

    def reconstruct(self, record_id: str, *, actor: Actor, child: str | None = None) -> Reconstruction:
        """What was returned by the read recorded as ``record_id``, as metadata, with the digest proof."""
        result = self._reconstruction(self.find_record(record_id, child))
        self._log(actor, "reconstruct", child=result.child, results=len(result.entries), record=record_id)
        return result

    def reconstruct_at(self, org: str, child: str, at: Any, *, actor: Actor) -> Reconstruction:
        """What ``org`` saw about ``child`` at time ``at``: its last read of the child made at or before ``at``."""
        moment = parse_moment(at, "at")
        if moment is None:
            raise Rejected([Problem("missing_at", "at is required", "at（日時）を指定してください", "at")])
        readable, _ = child_records(self.store, child)
        found = [
            x
            for x in readable
            if x.record is not None
            and x.record["reader"]["org"] == org
            and datetime.fromisoformat(x.record["t"]) <= moment
        ]
        if not found:
            raise NotFound(
                "no_read",
                f"{org} made no read of child {child} at or before {moment.isoformat()}",
                f"{org} はこの時点までにこの児童の記録を閲覧していません",
            )
        result = self._reconstruction(found[-1])
        self._log(actor, "reconstruct_at", child=child, results=len(result.entries), org=org, at=moment.isoformat())
        return result

    # -- emergencies

    def _declaration(self, record: Mapping[str, Any], history: History) -> Declaration | None:
        child = history.child(record["child"])
        entries, _, _ = considered(record, child)
        t = datetime.fromisoformat(record["t"])
        hours = timedelta(hours=Settings.from_dict(record["settings"]).emergency_hours)
        open_ = [
            e
            for e in entries
            if e.kind == "emergency.declared" and e.source == record["reader"]["org"] and e.at <= t < e.at + hours
        ]
        if not open_:
            return None
        e = max(open_, key=lambda x: (x.at, x.position))
        reason = e.payload.get("reason")
        return Declaration(
            event=e.id,
            org=e.source,
            at=e.at.isoformat(),
            until=(e.at + hours).isoformat(),
            reason=str(reason) if reason is not None else None,
        )

    def _findings(self, record_id: str) -> list[FindingOut]:
        review = self.store.get_or_none(EmergencyReview.create_id(record_id))
        return [FindingOut(**f) for f in (review.findings if review is not None else [])]

    def _emergency(self, loaded: Loaded | dict, history: History, orgs: Mapping[str, Org]) -> EmergencyAccess:
        record = loaded.record if isinstance(loaded, Loaded) else loaded
        assert record is not None
        rules, shown, _, _ = counts(record["decision"])
        findings = self._findings(record["id"])
        return EmergencyAccess(
            record=record["id"],
            sequence=record.get("sequence", 0),
            child=record["child"],
            t=record["t"],
            reader=reader_ref(record, orgs),
            shown=shown,
            rules=rules,
            declaration=self._declaration(record, history),
            findings=findings,
            reviewed=bool(findings),
        )

    @staticmethod
    def is_emergency(record: Mapping[str, Any]) -> bool:
        return record.get("purpose") == "emergency" and bool(record["decision"].get("allowed"))

    def emergency_accesses(self, period: Period, *, actor: Actor) -> Emergencies:
        """Every read allowed with purpose ``emergency`` in ``period``, with its declaration and findings."""
        history, orgs = History(self.store), self._orgs()
        out = [self._emergency(r, history, orgs) for r in records_in(self.store, period) if self.is_emergency(r)]
        self._log(actor, "emergency_accesses", results=len(out), **period.to_dict())
        return Emergencies(**period.to_dict(), accesses=out)

    def record_finding(
        self, record_id: str, *, reviewer: str, finding: str, note: str, actor: Actor, child: str | None = None
    ) -> EmergencyAccess:
        """Store a reviewer's finding on the emergency access ``record_id``. The same finding, by the same
        reviewer, with the same note as the latest one is stored once (a retried request does not repeat it)."""
        problems = []
        if finding not in FINDING_JA:
            problems.append(
                Problem(
                    "invalid_finding",
                    "finding is justified, not_justified or needs_follow_up",
                    "finding は justified（正当）・not_justified（正当でない）・needs_follow_up"
                    "（要フォローアップ）のいずれかです",
                    "finding",
                )
            )
        if not reviewer.strip():
            problems.append(
                Problem("missing_reviewer", "reviewer is required", "reviewer（確認者）を指定してください", "reviewer")
            )
        if len(note) > 5000:
            problems.append(
                Problem(
                    "note_too_long",
                    "note is at most 5000 characters",
                    "note（所見）は5000文字以内にしてください",
                    "note",
                )
            )
        if problems:
            raise Rejected(problems)
        loaded = self.find_record(record_id, child)
        if not self.is_emergency(loaded.record or {"decision": {}}):
            raise NotFound(
                "not_an_emergency_access",
                f"access record {record_id} is not an emergency access",
                f"閲覧記録「{record_id}」は緊急時の閲覧ではありません",
            )
        entry = {
            "record": record_id,
            "finding": finding,
            "finding_ja": FINDING_JA[finding],
            "note": note,
            "reviewer": reviewer.strip(),
            "org": actor.org,
            "at": self.clock().isoformat(),
            "via": actor.via,
        }
        same = ("finding", "note", "reviewer", "org")

        def add_once() -> None:
            review = self.store.get_or_none(EmergencyReview.create_id(record_id)) or EmergencyReview(record_id)
            if review.findings and all(review.findings[-1][k] == entry[k] for k in same):
                return
            review.add_finding(finding=entry)
            self.store.save(review)

        retry_conflicts(add_once)
        return self._emergency(loaded, History(self.store), self._orgs())

    # -- the family's disclosure report

    def disclosure_report(self, child: str, *, actor: Actor) -> Disclosure:
        """開示: which organisations read the child's record, when and on what ground, refused reads included,
        grouped by organisation (first read first), in plain Japanese. From the child's access log, and the views
        that counted the child without showing it (``services.reading.view_log``), each as one line, no content."""
        readable, _ = child_records(self.store, child)
        orgs = self._orgs()
        report = disclosure(child, readable, orgs, self.clock(), consulted_views(self.store, child, orgs))
        self._log(actor, "disclosure_report", child=child, results=report.total_reads)
        return report

    # -- policy impact

    def policy_impact(
        self, period: Period, changes: Mapping[str, Any], *, actor: Actor, version: str | None = None
    ) -> PolicyImpact:
        """Replay every access record of ``period`` under its own settings changed by ``changes`` and, given
        ``version``, under that policy version instead of the one the record names; list each read whose decision
        would differ (before: the replay under the record's own settings and version)."""
        changes = settings_changes(changes, required=version is None)
        history, orgs = History(self.store), self._orgs()
        skipped: Counter[str] = Counter()
        replayed, changed = 0, []
        for record in records_in(self.store, period, skipped):
            child = history.child(record["child"])
            if considered(record, child)[2]:
                skipped["erased"] += 1
                continue
            registry = history.orgs(record["registry_version"])
            own = Settings.from_dict(record["settings"])
            before = replay(record, child, registry, own)
            after = replay(record, child, registry, Settings.from_dict(own.to_dict() | changes), version)
            replayed += 1
            if (before.allowed, before.reason, before.events) != (after.allowed, after.reason, after.events):
                changed.append(changed_read(record, child, before, after, orgs))
        result = PolicyImpact(
            **period.to_dict(),
            settings=changes,
            policy_version=version,
            replayed=replayed,
            unreplayable=skipped["unreadable"] + skipped["erased"],
            changed=changed,
        )
        self._log(
            actor, "policy_impact", results=len(changed), settings=changes, policy_version=version, **period.to_dict()
        )
        return result
