"""The auditors' pages (ui.md, "Auditor"; issue 14 item 6): who read a child's record, what a reader saw at a time
(reconstructed, with the proof that it is exact), emergency accesses and their review findings, the family's 開示
report, and the state of the access log.

Only organisations registered with type ``auditor`` may open them (403 otherwise, as the API's ``not_an_auditor``).
Every query goes through ``services.audit.service.Auditing``, which records it in the auditor organisation's trail
before answering: nothing of a child's content is shown here except what ``Auditing`` returns (metadata: kinds,
sources, times, rules, field names, and an emergency's stated reason). The access log's verification is recorded in
the same trail (``verify_log``), which is where the page finds the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consent.model import Settings
from consent.policy import POLICY_V1, POLICY_V2
from events.labels import FINDING_JA, PURPOSE_JA, RULE_BADGE_JA, RULE_JA, SETTING_JA
from events.problems import Rejected
from services.audit.anchors import AnchorError, anchor
from services.audit.disclosure import REFUSAL_JA
from services.audit.models import ChangedRead
from services.audit.queries import RULES, NotFound, Period
from services.audit.replay import FAULT_JA, verify
from services.audit.service import Auditing
from services.audit.trail import Actor, audit_trail, record_query
from services.hub import Hub
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)
T = TypeVar("T")

VERIFY_QUERY = "verify_log"  # how a verification is named in the auditor's trail
FIELD_JA = {  # the fields of the auditors' forms, for errors
    "since": "開始日",
    "until": "終了日",
    "org": "閲覧した機関",
    "at": "日時",
    "finding": "所見の区分",
    "note": "所見",
    "reviewer": "確認者",
    "child": "児童",
    "mode": "比べる内容",
    "setting": "設定",
    "value": "新しい値",
}


def _auditor(request: Request) -> tuple[Person | None, Response | None]:
    """The signed-in person if they act for an auditor organisation; else where to send them."""
    person = signed_in(request)
    if person is None:
        return None, to_signin()
    org = request.app.state.hub.orgs().get(person.org)
    if org is None or org.type != "auditor":
        return None, page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="この画面は使えません",
            message="監査・個人情報保護担当の機関だけが利用できる画面です。",
        )
    return person, None


def _auditing(request: Request) -> Auditing:
    hub: Hub = request.app.state.hub
    return Auditing(hub.store, hub.clock)


def _actor(person: Person) -> Actor:
    return Actor(org=person.org, user=person.user, via="web")


def _errors(rejected: Rejected) -> dict[str, str]:
    """A refusal's problems by field (the first one for the whole form when it names none)."""
    out: dict[str, str] = {}
    for p in rejected.problems:
        out.setdefault(p.field or "form", p.message_ja)
    return out


def _run(call: Callable[[], T]) -> tuple[T | None, dict[str, str]]:
    try:
        return call(), {}
    except Rejected as rejected:
        return None, _errors(rejected)


def _context() -> dict[str, Any]:
    return {
        "PURPOSE_JA": PURPOSE_JA,
        "RULE_BADGE_JA": RULE_BADGE_JA,
        "RULE_JA": RULE_JA,
        "FINDING_JA": FINDING_JA,
        "RULE_CHOICES": [(rule, RULE_BADGE_JA.get(rule, rule)) for rule in RULES],
        "REASON_JA": REFUSAL_JA,
    }


# --- The auditor's start: find a child ------------------------------------------------------------------------


@router.get("/ui/audit", response_class=HTMLResponse)
def audit_home(request: Request) -> Response:
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    return page(request, "web/audit_home.html", person, title="監査")


@router.get("/ui/audit/open-child")
def open_child(
    child: str = Query(min_length=1, max_length=200),
    since: str = Query(default="", max_length=40),
    until: str = Query(default="", max_length=40),
) -> Response:
    query = urlencode({k: v for k, v in (("since", since), ("until", until)) if v})
    return RedirectResponse(
        f"/ui/audit/children/{quote(child.strip(), safe='')}" + (f"?{query}" if query else ""), status_code=303
    )


# --- Who read child X -------------------------------------------------------------------------------------------


@router.get("/ui/audit/children/{child}", response_class=HTMLResponse)
def who_read(
    request: Request,
    child: str,
    since: str = Query(default="", max_length=40),
    until: str = Query(default="", max_length=40),
    org: str = Query(default="", max_length=200),
    rule: str = Query(default="", max_length=40),
    purpose: str = Query(default="", max_length=40),
) -> Response:
    """Every read of the child in the period (one ``reads_of_child`` query, recorded in the trail), then filtered
    here by organisation, rule and purpose."""
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    period, errors = _run(lambda: Period.of(since or None, until or None))
    if rule and rule not in RULES:
        errors["rule"] = "規則は一覧から選んでください"
    if purpose and purpose not in PURPOSE_JA:
        errors["purpose"] = "目的は一覧から選んでください"
    reads = _auditing(request).reads_of_child(child, period or Period(), actor=_actor(person)) if not errors else None
    rows = list(reads.reads) if reads else []
    readers = sorted({r.reader.org: r.reader.org_name or r.reader.org for r in rows}.items(), key=lambda x: x[1])
    shown = [
        r
        for r in rows
        if (not org or r.reader.org == org)
        and (not rule or r.rules.get(rule))
        and (not purpose or r.purpose == purpose)
    ]
    return page(
        request,
        "web/audit_reads.html",
        person,
        status_code=422 if errors else 200,
        title=f"児童 {child} の記録を閲覧した機関",
        child=child,
        rows=shown,
        total=len(rows),
        unreadable=reads.unreadable if reads else [],
        consulted=[v for v in reads.consulted if not org or v.reader.org == org] if reads else [],
        readers=readers,
        q={"since": since, "until": until, "org": org, "rule": rule, "purpose": purpose},
        errors=errors,
        **_context(),
    )


# --- What a reader saw ------------------------------------------------------------------------------------------


def _reconstruction_page(request: Request, person: Person, child: str, call: Callable[[], Any]) -> HTMLResponse:
    try:
        result = call()
    except NotFound as error:
        return page(
            request, "web/error.html", person, status_code=404, title="見つかりません", message=error.message_ja
        )
    except Rejected as rejected:
        errors = _errors(rejected)
        return page(
            request,
            "web/audit_home.html",
            person,
            status_code=422,
            title="監査",
            errors=errors,
            child=child,
        )
    return page(
        request,
        "web/audit_reconstruction.html",
        person,
        title=f"閲覧の再現（児童 {result.child}）",
        r=result,
        SETTING_JA=SETTING_JA,
        **_context(),
    )


@router.get("/ui/audit/records/{record}", response_class=HTMLResponse)
def reconstruction(request: Request, record: str, child: str | None = Query(default=None, max_length=200)) -> Response:
    """What the read recorded as ``record`` returned, rebuilt from the log, with the digest proof."""
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    auditing = _auditing(request)
    return _reconstruction_page(
        request, person, child or "", lambda: auditing.reconstruct(record, actor=_actor(person), child=child or None)
    )


@router.get("/ui/audit/children/{child}/reconstruction", response_class=HTMLResponse)
def reconstruction_at(
    request: Request,
    child: str,
    org: str = Query(default="", max_length=200),
    at: str = Query(default="", max_length=40),
) -> Response:
    """What ``org`` saw about the child at ``at``: its last read made at or before then."""
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    if not org.strip():
        return page(
            request,
            "web/audit_home.html",
            person,
            status_code=422,
            title="監査",
            errors={"org": "閲覧した機関を選んでください"},
            child=child,
        )
    auditing = _auditing(request)
    return _reconstruction_page(
        request, person, child, lambda: auditing.reconstruct_at(org, child, at or None, actor=_actor(person))
    )


# --- Emergency accesses ---------------------------------------------------------------------------------------


def _emergencies_page(
    request: Request,
    person: Person,
    since: str,
    until: str,
    *,
    errors: dict[str, str] | None = None,
    done: Any = None,
    failed: str = "",
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    errors = dict(errors or {})
    period, period_errors = _run(lambda: Period.of(since or None, until or None))
    errors |= period_errors
    found = _auditing(request).emergency_accesses(period, actor=_actor(person)).accesses if period is not None else []
    return page(
        request,
        "web/audit_emergencies.html",
        person,
        status_code=422 if errors else 200,
        title="緊急時の閲覧の確認",
        accesses=found,
        q={"since": since, "until": until},
        errors=errors,
        done=done,
        failed=failed,
        form=form or {},
        **_context(),
    )


@router.get("/ui/audit/emergencies", response_class=HTMLResponse)
def emergencies(
    request: Request,
    since: str = Query(default="", max_length=40),
    until: str = Query(default="", max_length=40),
    recorded: str = Query(default="", max_length=100),
) -> Response:
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    return _emergencies_page(request, person, since, until, done=recorded or None)


@router.post("/ui/audit/emergencies/{record}/findings", response_class=HTMLResponse)
def record_finding(
    request: Request,
    record: str,
    finding: str = Form(default="", max_length=40),
    note: str = Form(default="", max_length=6000),
) -> Response:
    """The signed-in auditor's finding on an emergency access (``Auditing.record_finding``, as the API does)."""
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    try:
        _auditing(request).record_finding(
            record, reviewer=person.user, finding=finding, note=note, actor=_actor(person)
        )
    except Rejected as rejected:
        errors = _errors(rejected)
        if "finding" in errors:  # the service names its codes; the form names its choices
            errors["finding"] = "所見の区分（正当・正当でない・要フォローアップ）を選んでください"
        return _emergencies_page(
            request, person, "", "", errors=errors, failed=record, form={"finding": finding, "note": note}
        )
    except NotFound as error:
        return _emergencies_page(request, person, "", "", errors={"form": error.message_ja})
    return RedirectResponse(f"/ui/audit/emergencies?recorded={quote(record)}#access-{quote(record)}", status_code=303)


# --- The family's 開示 report ----------------------------------------------------------------------------------


@router.get("/ui/audit/children/{child}/disclosure", response_class=HTMLResponse)
def disclosure(request: Request, child: str) -> Response:
    """The family's disclosure report (``Auditing.disclosure_report``), printable on A4 from the layout."""
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    report = _auditing(request).disclosure_report(child, actor=_actor(person))
    return page(request, "web/audit_disclosure.html", person, title="お子さまの記録の閲覧状況のお知らせ", report=report)


# --- The access log's state -------------------------------------------------------------------------------------


def _log_page(request: Request, person: Person, *, report: Any = None) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    checks = [q for q in audit_trail(hub.store, person.org) if q.get("query") == VERIFY_QUERY]
    try:
        now: dict[str, Any] | None = anchor(hub.store, at=hub.clock())
        anchor_error = ""
    except AnchorError:
        now, anchor_error = None, "連鎖の末尾の記録を確認できません。検証を実行してください。"
    return page(
        request,
        "web/audit_log.html",
        person,
        title="閲覧記録（アクセスログ）の状態",
        last=checks[-1] if checks else None,
        checks=list(reversed(checks[-10:])),
        report=report,
        heads=now,
        anchor_error=anchor_error,
        FAULT_JA=FAULT_JA,
    )


@router.get("/ui/audit/log", response_class=HTMLResponse)
def log_state(request: Request) -> Response:
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    return _log_page(request, person)


@router.post("/ui/audit/log/verify", response_class=HTMLResponse)
def verify_log(request: Request) -> Response:
    """Check every child's hash chain and replay every access record (``tsunagu audit verify``); the result is
    recorded in the auditor's trail, and shown."""
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    hub: Hub = request.app.state.hub
    report = verify(hub.store)
    record_query(
        hub.store,
        hub.clock,
        _actor(person),
        VERIFY_QUERY,
        results=report.records,
        ok=report.ok,
        broken_chains=len(report.broken_chains),
        replay_mismatches=len(report.replay_mismatches),
        unreplayable=report.unreplayable,
    )
    return _log_page(request, person, report=report)


# --- Policy impact -----------------------------------------------------------------------------------------------

MODES = {"version": "読み取り規則の第1版と第2版（現行）の比較", "settings": "設定を変えた場合"}


def _impact_value(setting: str, value: str) -> Any:
    """The form's text as the setting's type: true/false for a switch, an integer for a number; the text as it is
    when it is neither (``settings_changes`` then names it)."""
    default = getattr(Settings(), setting, None)
    text = value.strip()
    if isinstance(default, bool):
        return {"true": True, "false": False}.get(text, text)
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            return text
    return text


def impact_tally(changed: list[ChangedRead]) -> list[dict[str, Any]]:
    """Per child and reading organisation: how many reads would be decided otherwise, and how many entries would be
    shown that were not (gained), no longer shown (lost), or shown under another rule or redaction (other); reads
    refused or allowed the other way are counted apart. Counts only: never an entry's content."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for c in changed:
        row = rows.setdefault(
            (c.child, c.reader.org),
            {
                "child": c.child,
                "org": c.reader.org,
                "org_name": c.reader.org_name or c.reader.org,
                "org_type": c.reader.org_type,
                "reads": 0,
                "gained": 0,
                "lost": 0,
                "other": 0,
                "refusals": 0,
            },
        )
        row["reads"] += 1
        row["refusals"] += int(c.before.allowed != c.after.allowed)
        for e in c.events:
            key = "gained" if e.before is None else "lost" if e.after is None else "other"
            row[key] += 1
    return sorted(rows.values(), key=lambda r: (r["child"], r["org_name"]))


@router.get("/ui/audit/impact", response_class=HTMLResponse)
def policy_impact(
    request: Request,
    mode: str = Query(default="", max_length=20),
    since: str = Query(default="", max_length=40),
    until: str = Query(default="", max_length=40),
    setting: str = Query(default="", max_length=60),
    value: str = Query(default="", max_length=40),
) -> Response:
    """What would change for the reads of a period under policy version 1 instead of 2, or under a changed
    setting (``Auditing.policy_impact``, the CLI's ``tsunagu audit policy-impact``): per child and organisation,
    counts of reads and entries decided otherwise. Without ``mode``, the form only."""
    person, refusal = _auditor(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    errors: dict[str, str] = {}
    result = None
    if mode:
        period, errors = _run(lambda: Period.of(since or None, until or None))
        changes: dict[str, Any] = {}
        version = None
        if mode == "version":
            version = POLICY_V1
        elif mode == "settings":
            if setting not in SETTING_JA:
                errors["setting"] = "変更する設定を一覧から選んでください"
            elif not value.strip():
                errors["value"] = "新しい値を入力してください"
            else:
                changes = {setting: _impact_value(setting, value)}
        else:
            errors["mode"] = "比べる内容を選んでください"
        if not errors:
            auditing = _auditing(request)
            result, problems = _run(
                lambda: auditing.policy_impact(period or Period(), changes, actor=_actor(person), version=version)
            )
            for name, message in problems.items():  # settings.NAME: the value's field
                errors["value" if name.startswith("settings") else name] = message.split(": ", 1)[-1]
    choices = [(name, text) for name, text in SETTING_JA.items()]
    current = request.app.state.hub.settings
    return page(
        request,
        "web/audit_impact.html",
        person,
        status_code=422 if errors else 200,
        title="規則・設定の変更による影響",
        q={"mode": mode, "since": since, "until": until, "setting": setting, "value": value},
        errors=errors,
        result=result,
        tally=impact_tally(result.changed) if result else [],
        MODES=MODES,
        SETTING_CHOICES=choices,
        SETTING_JA=SETTING_JA,
        current={name: getattr(current, name) for name in SETTING_JA},
        V1=POLICY_V1,
        V2=POLICY_V2,
    )
