"""The family's disclosure report (開示請求への回答): which organisations read the child's record, when and on what
ground, refused reads included, in plain Japanese, from the child's access log only; and its printable A4 page.

Families never see the word 要対協 (domain.md): the grounds are named as ``events.labels.RULE_JA`` names them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from events.clock import JST
from events.labels import CONSULTED_FAMILY_JA, ORG_TYPE_JA, PURPOSE_JA, ROLE_JA, RULE_JA
from events.model import Org
from services.audit.models import (
    ConsultedView,
    Disclosure,
    DisclosureConsulted,
    DisclosureOrg,
    DisclosureRead,
    Ground,
)
from services.audit.queries import RULES, counts
from services.audit.replay import Loaded
from services.templates import render, wareki

REFUSAL_JA = {  # why a read was refused, as a sentence of the report
    "unknown_organisation": "登録されていない機関からの閲覧のため、認められませんでした",
    "organisation_type_reads_no_case_content": "この種類の機関は記録の内容を見られないため、認められませんでした",
    "purpose_not_allowed": "閲覧の目的が認められていないため、認められませんでした",
    "no_emergency_window": "緊急対応の期間外のため、認められませんでした",
}


def ground(rule: str, events: int) -> Ground:
    """A rule of the read policy as the family reads it, with how many records were shown on it."""
    name, law = RULE_JA.get(rule, (rule, ""))
    return Ground(rule=rule, name_ja=name, law_ja=law, events=events)


def _result(decision: Mapping[str, Any], shown: int) -> str:
    """What came of one read, in a sentence."""
    if not decision["allowed"]:
        return REFUSAL_JA.get(decision["reason"], "閲覧は認められませんでした")
    if decision["reason"] == "erased":
        return "記録は消去済みのため、何も表示されませんでした"
    if not shown:
        return "閲覧しましたが、見ることのできる記録はありませんでした"
    return f"記録 {shown} 件を閲覧しました"


def _read(record: Mapping[str, Any]) -> DisclosureRead:
    """One read as a line of the report."""
    decision = record["decision"]
    rules, shown, _, _ = counts(decision)
    role = record["reader"].get("role")
    return DisclosureRead(
        record=record["id"],
        at=record["t"],
        at_ja=wareki(record["t"]),
        purpose=record["purpose"],
        purpose_ja=PURPOSE_JA.get(record["purpose"], f"目的「{record['purpose']}」"),
        role_ja=ROLE_JA.get(role or "", role or "機関として"),
        allowed=decision["allowed"],
        result_ja=_result(decision, shown),
        shown=shown,
        grounds=[ground(rule, n) for rule, n in rules.items()],
    )


def _consulted(month: str, views: Sequence[ConsultedView]) -> DisclosureConsulted:
    """The views of one organisation in ``month`` that counted the child without showing it, as one line of the
    report (a ledger opened many times a day would otherwise fill the family's report with one line each)."""
    first, last = views[0].t, views[-1].t
    dates = wareki(first, with_time=False)
    if wareki(last, with_time=False) != dates:
        dates += f"〜{wareki(last, with_time=False)}"
    return DisclosureConsulted(
        month=month,
        times=len(views),
        first=first,
        last=last,
        at_ja=f"{dates}（{len(views)} 回）",
        purpose_ja="・".join(dict.fromkeys(PURPOSE_JA.get(v.purpose, f"目的「{v.purpose}」") for v in views)),
        role_ja="・".join(
            dict.fromkeys(ROLE_JA.get(v.reader.role or "", v.reader.role or "機関として") for v in views)
        ),
        result_ja=CONSULTED_FAMILY_JA,
    )


def _month(t: str) -> str:
    return datetime.fromisoformat(t).astimezone(JST).strftime("%Y-%m")


def _organisation(
    org_id: str, org: Org | None, reads: list[DisclosureRead], consulted: list[DisclosureConsulted]
) -> DisclosureOrg:
    """The reads of one organisation, under its name and type."""
    return DisclosureOrg(
        org=org_id,
        name=(org.name or org_id) if org else org_id,
        type_ja=ORG_TYPE_JA.get(org.type, org.type) if org else "登録されていない機関",
        reads=reads,
        consulted=consulted,
        read_count=sum(r.allowed for r in reads),
        refused_count=sum(not r.allowed for r in reads),
    )


def disclosure(
    child: str,
    readable: Sequence[Loaded],
    orgs: Mapping[str, Org],
    now: datetime,
    consulted: Sequence[ConsultedView] = (),
) -> Disclosure:
    """The report on ``child`` from its usable access records, grouped by organisation (first read first), with
    the views that ``consulted`` the child without showing it under their organisation (no content)."""
    by_org: dict[str, list[DisclosureRead]] = {}
    counted: dict[str, list[DisclosureConsulted]] = {}
    used: Counter[str] = Counter()
    for x in readable:
        record = x.record
        assert record is not None
        used.update(counts(record["decision"])[0])
        by_org.setdefault(record["reader"]["org"], []).append(_read(record))
    grouped: dict[tuple[str, str], list[ConsultedView]] = {}
    for view in consulted:  # oldest first
        by_org.setdefault(view.reader.org, [])
        grouped.setdefault((view.reader.org, _month(view.t)), []).append(view)
    for (org_id, month), views in grouped.items():
        counted.setdefault(org_id, []).append(_consulted(month, views))
    organisations = [
        _organisation(org_id, orgs.get(org_id), reads, counted.get(org_id, [])) for org_id, reads in by_org.items()
    ]
    return Disclosure(
        child=child,
        generated_at=now.isoformat(),
        generated_at_ja=wareki(now),
        organisations=organisations,
        total_reads=sum(len(o.reads) for o in organisations),
        refused_reads=sum(o.refused_count for o in organisations),
        consulted_views=sum(c.times for o in organisations for c in o.consulted),
        grounds=[ground(rule, used[rule]) for rule in RULES if used[rule]],
    )


def disclosure_html(report: Disclosure) -> str:
    """The disclosure report as a printable A4 page for the family."""
    return render("disclosure.html", report=report)
