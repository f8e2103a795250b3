"""Family-support services: the application service behind ``tsunagu services …``, ``/services/…`` and the
pages ``/ui/referrals``, the centre's urgent inbox and the provider's referrals and reports.

Each command checks what the acting organisation asks for, with Japanese errors naming the field, then publishes
one event through ``Hub.publish`` as that organisation, so the authority rows of ``consent.authority`` decide as for
any publisher. A command that must know what was sent before (a referral's two sides, a report's source) reads the
child's timeline as the acting organisation (purpose ``support``): that read is decided by the policy and recorded.

Every view reads each child it shows once, through the read service, as the organisation (recorded); the index
``services.projections.family_support`` only says which children to read. A made-up referral or report answers
like another centre's (policy.md, "Rejections leak nothing").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from events.labels import MONITORING_JA, RECOMMENDATION_FORM_JA, RECOMMENDATION_RESULT_JA
from events.model import CENTER, Org
from events.problems import Rejected
from services.casework.commands import Actor, Done
from services.casework.ledger import refuse
from services.projections.family_support import service_desk
from services.reading.timeline import Timeline, TimelineEntry

if TYPE_CHECKING:
    from events.store import HubStore
    from services.hub import Hub

PROVIDER = "service_provider"
MONITORING_DAYS = 90  # a referral whose last monitoring (or start) is older than this is due for monitoring


def _blank(value: Any) -> bool:
    return value is None or not str(value).strip()


def _day(value: date | str | None, field: str, what_ja: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise refuse("missing_field", f"{field} is required", f"{what_ja}を入力してください", field)
        return None
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise refuse(
            "invalid_date",
            f"{value!r} is not a date (YYYY-MM-DD)",
            f"{what_ja}「{value}」は 2026-07-15 の形で入力してください",
            field,
        ) from None


def _need(value: Any, field: str, what_ja: str) -> str:
    if _blank(value):
        raise refuse("missing_field", f"{field} is required", f"{what_ja}を入力してください", field)
    return str(value).strip()


def _one_of(value: Any, choices: Mapping[str, str], field: str, what_ja: str) -> str:
    if value not in choices:
        raise refuse(
            "invalid_choice",
            f"{field} must be one of {', '.join(choices)}",
            f"{what_ja}は「{'」「'.join(choices.values())}」から選んでください",
            field,
        )
    return str(value)


def _days_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 86400, 2)


@dataclass
class Referral:
    """A referral as one side sees it: its service, provider, start, last monitoring and what it recommended."""

    child: str
    referral: str
    event: str
    service: str
    centre: str
    provider: str
    start: str
    at: str
    frequency: str | None = None
    summary: str | None = None
    last_monitoring: dict[str, Any] | None = None
    ended: dict[str, Any] | None = None
    monitoring_due: str | None = None  # the day monitoring is due (centres only)
    due: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Report:
    """A provider's report as the provider or the centre sees it, with whether and when it was acknowledged."""

    child: str
    report: str
    kind: str
    source: str
    to: str
    at: str
    date: str | None
    urgent: bool
    urgent_reason: str | None
    observations: str | None
    service: str | None
    until: str | None = None  # a usage report's last day (payload ``to``)
    acknowledged: dict[str, Any] | None = None
    waited_hours: float | None = None
    referred: bool = True  # the centre it went to referred the child to this provider (service.referred)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Views:
    org: str
    t: str
    referrals: list[Referral] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "t": self.t,
            "referrals": [r.to_dict() for r in self.referrals],
            "reports": [r.to_dict() for r in self.reports],
            "recommendations": self.recommendations,
            "orders": self.orders,
            "access_records": self.reads,
        }


# --- What a child's timeline says (pure) -------------------------------------------------------------------


def referrals_in(child: str, entries: Sequence[TimelineEntry]) -> list[Referral]:
    """The referrals among a child's entries, with their last monitoring and end."""
    out: dict[str, Referral] = {}
    for e in entries:
        p = e.payload
        if e.kind == "service.referred" and str(p.get("referral")) not in out:
            out[str(p["referral"])] = Referral(
                child=child,
                referral=str(p["referral"]),
                event=e.id,
                service=str(p.get("service", "")),
                centre=e.source,
                provider=str(e.to),
                start=str(p.get("start", "")),
                at=e.at,
                frequency=p.get("frequency"),
                summary=p.get("summary"),
            )
    for e in sorted(entries, key=lambda e: e.at):
        ref = out.get(str(e.payload.get("referral")))
        if ref is None:
            continue
        if e.kind == "service.monitoring":
            ref.last_monitoring = {
                "at": e.at,
                "source": e.source,
                "observations": e.payload.get("observations"),
                "recommendation": e.payload.get("recommendation"),
                "recommendation_ja": MONITORING_JA.get(str(e.payload.get("recommendation")), ""),
            }
        elif e.kind == "service.ended" and ref.ended is None:
            ref.ended = {"at": e.at, "reason": e.payload.get("reason")}
    return list(out.values())


def reports_in(child: str, entries: Sequence[TimelineEntry], now: datetime) -> list[Report]:
    """The provider reports (``commissioned``) among a child's entries, each with its first acknowledgement and
    whether the centre it went to had referred the child to that provider when it was sent (``referred``: a
    referral running at the report's ``at``, from its own ``at`` to its ``service.ended``; a report from a provider
    the child was not referred to is accepted, as policy.md's ``commissioned`` rule allows, and marked as such for
    the centre)."""
    ended = {str(e.payload.get("referral")): datetime.fromisoformat(e.at) for e in entries if e.kind == "service.ended"}
    referrals = [  # (centre, provider, from, until): each referral while it runs
        (e.source, str(e.to), datetime.fromisoformat(e.at), ended.get(str(e.payload.get("referral"))))
        for e in entries
        if e.kind == "service.referred"
    ]
    acks: dict[str, TimelineEntry] = {}
    for e in sorted(entries, key=lambda e: e.at):
        if e.kind == "report.acknowledged":
            acks.setdefault(str(e.payload.get("report")), e)
    out = []
    for e in entries:
        if e.kind not in ("visit.report", "service.usage") or e.basis != "commissioned":
            continue
        ack = acks.get(e.id)
        if ack is not None and (ack.source != e.to or ack.to != e.source):
            ack = None
        sent = datetime.fromisoformat(e.at)
        until = datetime.fromisoformat(ack.at) if ack is not None else now
        out.append(
            Report(
                child=child,
                report=e.id,
                kind=e.kind,
                source=e.source,
                to=str(e.to),
                at=e.at,
                date=e.payload.get("date") or e.payload.get("from"),
                urgent=bool(e.payload.get("urgent")),
                urgent_reason=e.payload.get("urgent_reason"),
                observations=e.payload.get("observations"),
                service=e.payload.get("service"),
                until=e.payload.get("to") if e.kind == "service.usage" else None,
                referred=any(
                    (centre, provider) == (str(e.to), e.source) and start <= sent and (end is None or sent <= end)
                    for centre, provider, start, end in referrals
                ),
                acknowledged=(
                    {
                        "at": ack.at,
                        "event": ack.id,
                        "note": ack.payload.get("note"),
                        "handled_by": ack.payload.get("handled_by"),
                    }
                    if ack is not None
                    else None
                ),
                waited_hours=round(max((until - sent).total_seconds(), 0) / 3600, 1),
            )
        )
    return out


def _plan_review_due(entries: Sequence[TimelineEntry], centre: str) -> str | None:
    """The ``review_due`` of the centre's latest plan version for the child (サポートプランの見直し時期)."""
    latest: tuple[int, str] | None = None
    for e in entries:
        if e.kind in ("plan.created", "plan.revised") and e.source == centre and e.payload.get("review_due"):
            version = int(e.payload.get("version", 0))
            if latest is None or version >= latest[0]:
                latest = (version, str(e.payload["review_due"])[:10])
    return latest[1] if latest else None


def usage_counts(reports: Iterable[Report], now: datetime) -> list[dict[str, Any]]:
    """Usage per (service, provider) for the aggregates: children served (a household counts once per child until
    households are linked), visits (visit reports), and person-days (days of use from each usage report, an open
    one up to ``now``). A visit report counts under the service of the provider's usage reports for that child."""
    service_of: dict[tuple[str, str], str] = {}
    for r in reports:
        if r.kind == "service.usage" and r.service:
            service_of[(r.source, r.child)] = r.service
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reports:
        service = r.service if r.kind == "service.usage" else service_of.get((r.source, r.child), "")
        row = rows.setdefault(
            (service or "", r.source),
            {"service": service or "", "provider": r.source, "children": set(), "visits": 0, "person_days": 0},
        )
        row["children"].add(r.child)
        if r.kind == "visit.report":
            row["visits"] += 1
        elif r.date:
            start = date.fromisoformat(str(r.date)[:10])
            end = min(date.fromisoformat(str(r.until)[:10]), now.date()) if r.until else now.date()
            row["person_days"] += max((end - start).days + 1, 0)
    return [{**row, "children": len(row["children"])} for _, row in sorted(rows.items(), key=lambda kv: kv[0])]


def acknowledgement_times(reports: Iterable[Report]) -> dict[str, Any]:
    """Time to acknowledge urgent reports (hours): how many, how many acknowledged, the median and the longest."""
    urgent = [r for r in reports if r.urgent]
    done = sorted(r.waited_hours or 0.0 for r in urgent if r.acknowledged)
    median = (
        (done[len(done) // 2] if len(done) % 2 else (done[len(done) // 2 - 1] + done[len(done) // 2]) / 2)
        if done
        else None
    )
    return {
        "urgent": len(urgent),
        "acknowledged": len(done),
        "median_hours": median,
        "longest_hours": max(done) if done else None,
    }


# --- Commands ----------------------------------------------------------------------------------------------


class FamilySupport:
    """The commands of a centre (recommend, result, order, refer, monitor, end, acknowledge) and a provider
    (monitor)."""

    def __init__(self, hub: Hub):
        self.hub = hub

    def _org(self, by: Actor, *types: str) -> Org:
        org = self.hub.orgs().get(by.org)
        if org is None:
            raise refuse(
                "unknown_organisation",
                f"{by.org} is not a registered organisation",
                f"「{by.org}」はハブに登録された機関ではありません",
                "org",
            )
        if org.type not in types:
            raise refuse(
                "not_allowed_for_type",
                f"{by.org} ({org.type}) cannot do this",
                "この操作は市町村のこども家庭センターだけが行えます"
                if types == (CENTER,)
                else "この操作はこども家庭センターと委託事業者だけが行えます",
                "org",
            )
        return org

    def _read(self, by: Actor, child: str, reads: list[str]) -> Timeline:
        timeline = self.hub.timeline(org=by.org, role=by.role, child=child, purpose="support", user=by.user)
        reads.append(timeline.access_record)
        if not timeline.allowed:
            raise refuse(
                "read_refused",
                f"the read was refused: {timeline.reason}",
                f"この児童の記録を読むことが認められませんでした（{timeline.reason}）",
            )
        return timeline

    def _publish(
        self, by: Actor, kind: str, child: str, payload: dict[str, Any], *, basis: str, to: str | None = None
    ) -> str:
        envelope: dict[str, Any] = {
            "id": f"{kind.replace('.', '-')}-{uuid.uuid4().hex}",
            "kind": kind,
            "child": child,
            "source": by.org,
            "basis": basis,
            "at": self.hub.clock().isoformat(),
            "payload": payload,
        }
        if to is not None:
            envelope["to"] = to
        [result] = self.hub.publish([envelope], publisher=by.org)
        if result.outcome == "rejected":
            raise Rejected(result.problems)
        return str(envelope["id"])

    def recommend(
        self, by: Actor, *, child: str, service: str, form: str, reason: str, recommendation: str | None = None
    ) -> Done:
        """利用勧奨: a service recommended to the family, orally or in writing, with its reason."""
        self._org(by, CENTER)
        child = _need(child, "child", "児童")
        payload = {
            "recommendation": recommendation or f"R-{uuid.uuid4().hex[:8]}",
            "service": _need(service, "service", "事業"),
            "form": _one_of(form, RECOMMENDATION_FORM_JA, "form", "勧奨の方法"),
            "reason": _need(reason, "reason", "勧奨の理由"),
        }
        event = self._publish(by, "service.recommended", child, payload, basis="internal")
        return Done(event, "service.recommended", child)

    def record_result(
        self, by: Actor, *, child: str, recommendation: str, result: str, note: str | None = None
    ) -> Done:
        """利用勧奨の結果: accepted, declined or no answer."""
        self._org(by, CENTER)
        payload: dict[str, Any] = {
            "recommendation": _need(recommendation, "recommendation", "利用勧奨の番号"),
            "result": _one_of(result, RECOMMENDATION_RESULT_JA, "result", "結果"),
        }
        if not _blank(note):
            payload["note"] = str(note).strip()
        event = self._publish(
            by, "service.recommendation_result", _need(child, "child", "児童"), payload, basis="internal"
        )
        return Done(event, "service.recommendation_result", child)

    def order(
        self,
        by: Actor,
        *,
        child: str,
        service: str,
        from_: date | str,
        notice_date: date | str,
        order: str | None = None,
    ) -> Done:
        """措置: a service ordered by written notice."""
        self._org(by, CENTER)
        payload = {
            "order": order or f"O-{uuid.uuid4().hex[:8]}",
            "service": _need(service, "service", "事業"),
            "from": _day(from_, "from", "措置の開始日"),
            "notice_date": _day(notice_date, "notice_date", "通知日"),
        }
        event = self._publish(by, "service.ordered", _need(child, "child", "児童"), payload, basis="internal")
        return Done(event, "service.ordered", child)

    def refer(
        self,
        by: Actor,
        *,
        child: str,
        provider: str,
        service: str,
        start: date | str,
        summary: str,
        frequency: str | None = None,
        referral: str | None = None,
    ) -> Done:
        """事業者への依頼: the provider named gets the referral with what it needs to know (``commissioned``)."""
        self._org(by, CENTER)
        target = self.hub.orgs().get(str(provider))
        if target is None or target.type != PROVIDER:
            raise refuse(
                "not_a_provider",
                "provider must be a registered service_provider",
                "依頼先には登録された委託事業者を選んでください",
                "provider",
            )
        payload: dict[str, Any] = {
            "referral": referral or f"F-{uuid.uuid4().hex[:8]}",
            "service": _need(service, "service", "事業"),
            "start": _day(start, "start", "開始日"),
            "summary": _need(summary, "summary", "事業者に伝えること"),
        }
        if not _blank(frequency):
            payload["frequency"] = str(frequency).strip()
        event = self._publish(
            by, "service.referred", _need(child, "child", "児童"), payload, basis="commissioned", to=target.id
        )
        return Done(event, "service.referred", child)

    def _referral(self, by: Actor, child: str, referral: str, reads: list[str]) -> Referral:
        timeline = self.hub.timeline(org=by.org, role=by.role, child=child, purpose="support", user=by.user)
        reads.append(timeline.access_record)
        found = next((r for r in referrals_in(child, timeline.entries) if r.referral == referral), None)
        if not timeline.allowed or found is None or by.org not in (found.centre, found.provider):
            # One answer whether the referral does not exist or is another organisation's.
            raise refuse(
                "unknown_referral",
                f"referral {referral!r} is not one this organisation is party to for child {child!r}",
                f"依頼「{referral}」は、この児童についてこの機関が当事者となっている依頼ではありません",
                "referral",
            )
        return found

    def monitor(self, by: Actor, *, child: str, referral: str, observations: str, recommendation: str) -> Done:
        """モニタリング: from the provider to the centre, or from the centre to the provider."""
        self._org(by, CENTER, PROVIDER)
        reads: list[str] = []
        observations = _need(observations, "observations", "様子")
        recommendation = _one_of(recommendation, MONITORING_JA, "recommendation", "今後の方針")
        ref = self._referral(by, _need(child, "child", "児童"), _need(referral, "referral", "依頼番号"), reads)
        if ref.ended is not None:
            raise refuse(
                "referral_ended",
                f"referral {referral!r} has ended",
                f"依頼「{referral}」はすでに終了しています（{ref.ended['at'][:10]}）",
                "referral",
            )
        to = ref.provider if by.org == ref.centre else ref.centre
        payload = {"referral": ref.referral, "observations": observations, "recommendation": recommendation}
        event = self._publish(by, "service.monitoring", child, payload, basis="commissioned", to=to)
        return Done(event, "service.monitoring", child, access_records=reads)

    def end(self, by: Actor, *, child: str, referral: str, reason: str) -> Done:
        """サービスの終了: the centre tells the provider."""
        self._org(by, CENTER)
        reads: list[str] = []
        reason = _need(reason, "reason", "終了の理由")
        ref = self._referral(by, _need(child, "child", "児童"), _need(referral, "referral", "依頼番号"), reads)
        if ref.centre != by.org:
            raise refuse(
                "unknown_referral",
                f"referral {referral!r} is not one this centre made",
                f"依頼「{referral}」は、この児童についてこのセンターが行った依頼ではありません",
                "referral",
            )
        if ref.ended is not None:
            raise refuse(
                "referral_ended",
                f"referral {referral!r} has ended",
                f"依頼「{referral}」はすでに終了しています（{ref.ended['at'][:10]}）",
                "referral",
            )
        payload = {"referral": ref.referral, "reason": reason}
        event = self._publish(by, "service.ended", child, payload, basis="commissioned", to=ref.provider)
        return Done(event, "service.ended", child, access_records=reads)

    def acknowledge(self, by: Actor, *, report: str, note: str | None = None, handled_by: str | None = None) -> Done:
        """報告の確認: the centre tells the provider its report was read (and what it will do)."""
        self._org(by, CENTER)
        report = _need(report, "report", "報告")
        entry = service_desk(self.hub.store, by.org).reports.get(report)
        unknown = refuse(
            "unknown_report",
            f"report {report!r} is not a report sent to this centre",
            f"報告「{report}」はこのセンターに届いた報告ではありません",
            "report",
        )
        if entry is None or entry["to"] != by.org:
            raise unknown
        reads: list[str] = []
        timeline = self._read(by, entry["child"], reads)
        if not any(e.id == report for e in timeline.entries):
            raise unknown
        payload: dict[str, Any] = {"report": report}
        if not _blank(note):
            payload["note"] = str(note).strip()
        if not _blank(handled_by):
            payload["handled_by"] = str(handled_by).strip()
        event = self._publish(
            by, "report.acknowledged", entry["child"], payload, basis="commissioned", to=entry["source"]
        )
        return Done(event, "report.acknowledged", entry["child"], access_records=reads)


# --- Views -------------------------------------------------------------------------------------------------


class SupportViews:
    """The centre's referrals, monitoring due and urgent inbox; the provider's referrals and reports. Each child
    shown is read once, as the organisation (purpose ``support``), and only the children the index names."""

    def __init__(self, hub: Hub):
        self.hub = hub

    def _check(self, org: str, *types: str) -> Org:
        return FamilySupport(self.hub)._org(Actor(org), *types)

    def _read(self, org: str, child: str, role: str, user: str | None, reads: list[str]) -> Timeline:
        timeline = self.hub.timeline(org=org, role=role, child=child, purpose="support", user=user)
        reads.append(timeline.access_record)
        return timeline

    def overview(self, org: str, *, role: str = "caseworker", user: str | None = None, on: date | None = None) -> Views:
        """For a centre: its referrals (with monitoring due), recommendations, orders and the reports sent to it;
        for a provider: the referrals made to it and the reports it sent, each with its acknowledgement."""
        found = self._check(org, CENTER, PROVIDER)
        now = self.hub.clock()
        today = on or now.date()
        views = Views(org, now.isoformat())
        for child in sorted(service_desk(self.hub.store, org).children):
            timeline = self._read(org, child, role, user, views.reads)
            if not timeline.allowed:
                continue
            entries = timeline.entries
            if found.type == CENTER:
                review_due = _plan_review_due(entries, org)
                for ref in referrals_in(child, entries):
                    if ref.centre != org:
                        continue
                    last = ref.last_monitoring["at"] if ref.last_monitoring else ref.start
                    due = date.fromisoformat(str(last)[:10]) + timedelta(days=MONITORING_DAYS)
                    if review_due is not None:
                        due = min(due, date.fromisoformat(review_due))
                    ref.monitoring_due = due.isoformat()
                    ref.due = ref.ended is None and due <= today
                    views.referrals.append(ref)
                views.recommendations += _recommendations(child, entries, org)
                views.orders += [
                    {"child": child, "event": e.id, "at": e.at, **e.payload}
                    for e in entries
                    if e.kind == "service.ordered" and e.source == org
                ]
                views.reports += [r for r in reports_in(child, entries, now) if r.to == org]
            else:
                views.referrals += [r for r in referrals_in(child, entries) if r.provider == org]
                views.reports += [r for r in reports_in(child, entries, now) if r.source == org]
        views.referrals.sort(
            key=lambda r: (not r.due, r.ended is not None, r.monitoring_due or "", r.start, r.referral)
        )
        views.reports.sort(key=lambda r: r.at, reverse=True)
        return views

    def urgent_inbox(
        self, centre: str, *, role: str = "caseworker", user: str | None = None
    ) -> tuple[list[Report], list[str]]:
        """The centre's urgent inbox: urgent provider reports not yet acknowledged, oldest first, with the time
        waited. Reads only the children with such a report (one recorded read each)."""
        self._check(centre, CENTER)
        now = self.hub.clock()
        waiting = urgent_waiting(self.hub.store, centre)
        reads: list[str] = []
        out: list[Report] = []
        for child in sorted(waiting):
            timeline = self._read(centre, child, role, user, reads)
            if timeline.allowed:
                out += urgent_in(child, timeline.entries, waiting[child], centre, now)
        out.sort(key=lambda r: r.at)
        return out, reads

    def counts(self, centre: str, *, role: str = "caseworker", user: str | None = None) -> dict[str, Any]:
        """The centre's usage per service and provider and its time to acknowledge urgent reports (for the
        aggregates), from its own recorded reads."""
        views = self.overview(centre, role=role, user=user)
        now = self.hub.clock()
        return {
            "usage": usage_counts(views.reports, now),
            "acknowledgement": acknowledgement_times(views.reports),
            "access_records": views.reads,
        }


def urgent_waiting(store: HubStore, centre: str) -> dict[str, set[str]]:
    """The children with urgent reports to ``centre`` not yet acknowledged, by the index (child -> report ids):
    which children the urgent inbox reads, no content."""
    waiting: dict[str, set[str]] = {}
    for r in service_desk(store, centre).reports.values():
        if r["to"] == centre and r["urgent"] and r["acknowledged_at"] is None:
            waiting.setdefault(r["child"], set()).add(r["report"])
    return waiting


def urgent_in(
    child: str, entries: Sequence[TimelineEntry], waiting: set[str], centre: str, now: datetime
) -> list[Report]:
    """The urgent reports of ``waiting`` that a centre's read of the child returned, not yet acknowledged."""
    return [
        r
        for r in reports_in(child, entries, now)
        if r.report in waiting and r.urgent and r.acknowledged is None and r.to == centre
    ]


def _recommendations(child: str, entries: Sequence[TimelineEntry], centre: str) -> list[dict[str, Any]]:
    results = {
        str(e.payload.get("recommendation")): e
        for e in sorted(entries, key=lambda e: e.at)
        if e.kind == "service.recommendation_result" and e.source == centre
    }
    out = []
    for e in entries:
        if e.kind == "service.recommended" and e.source == centre:
            result = results.get(str(e.payload.get("recommendation")))
            out.append(
                {
                    "child": child,
                    "event": e.id,
                    "at": e.at,
                    **e.payload,
                    "result": result.payload.get("result") if result else None,
                    "result_note": result.payload.get("note") if result else None,
                }
            )
    return out
