"""The pages of schools and nurseries (ui.md, "School or nursery"): the monthly report (uploaded, or typed in one
line per listed child), rejected rows corrected in the browser or downloaded as CSV, daily attendance with the
alerts it raised, the school's list and its missing reports, and sending a concern (気づき) or a notification (通告).

Uploads and typed reports go through the same import as ``POST /v1/imports/...`` (``services.schools.uploads``),
as the signed-in person's organisation. Rejected rows are kept by the hub in the school's quarantine, and the
correction forms are made from there (never from the session): a corrected row is sent again as a one-row file
through the same import. A page that shows listed children reads each child's record once, through the read
service, with the person's name (``Hub.timeline``), and shows only the listings that read lets them see.
"""

from __future__ import annotations

import io
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from adapters.school import DAILY_COLUMNS, MONTHLY_COLUMNS
from consent.policy import learns_whether_published
from consent.reports import REPORTING_ORGS
from events.clock import JST
from events.limits import MAX_IMPORT_FILE_BYTES, MAX_TEXT_CHARS, MiB
from events.problems import told_to
from events.store import Quarantine
from services.casework.csv_export import csv_bytes
from services.hub import Hub
from services.projections.rosters import Listing, SchoolRoster, peek
from services.schools.overdue import overdue_reports
from services.schools.uploads import NotAllowed, file_name, run_upload
from services.web.forms import posted_form
from services.web.pages import page, to_signin
from services.web.security import multipart_token_ok
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

FORMATS = {"monthly": "school-monthly", "daily": "school-daily"}
TITLES = {"monthly": "月次の定期的な情報提供", "daily": "日次出欠"}
COLUMNS = {"school-monthly": MONTHLY_COLUMNS, "school-daily": DAILY_COLUMNS}
TYPED = (  # the typed monthly report: the fields of one line, as the file's columns name them
    ("school_days", "授業日数"),
    ("attended", "出席日数"),
    ("absent", "欠席日数"),
    ("absent_without_contact", "うち連絡なし欠席日数"),
    ("late", "遅刻日数"),
    ("early_leave", "早退日数"),
    ("reasons", "欠席理由"),
    ("notes", "特記事項"),
)
SEND_KINDS = {
    "concern": ("concern.reported", "cwa-21-10-5", "気づき（児童福祉法第21条の10の5による情報提供）"),
    "notification": ("notification.filed", "cwa-25", "通告（児童福祉法第25条）"),
}
ADDRESSEES = ("municipal_center", "child_guidance_center")


def _school(request: Request) -> Person | Response:
    """The signed-in person of a school or nursery; otherwise the response to give instead."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    org = request.app.state.hub.orgs().get(person.org)
    if org is None or org.type not in REPORTING_ORGS:
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="このページは使えません",
            message="このページは学校・保育所等の方のためのページです。",
        )
    return person


def _today(hub: Hub) -> date:
    return hub.clock().astimezone(JST).date()


# --- Uploads ------------------------------------------------------------------------------------------------


@router.get("/ui/imports/{which}")
def upload_page(request: Request, which: str) -> Response:
    if which not in FORMATS:
        return _not_found(request)
    person = _school(request)
    if isinstance(person, Response):
        return person
    return page(
        request,
        "web/upload.html",
        person,
        title=TITLES[which],
        which=which,
        limit_mb=MAX_IMPORT_FILE_BYTES // MiB,
        errors={},
    )


@router.post("/ui/imports/{which}")
def upload(
    request: Request, which: str, form: Annotated[FormData, posted_form(max_files=1, max_fields=20)]
) -> Response:
    if which not in FORMATS:
        return _not_found(request)
    person = _school(request)
    if isinstance(person, Response):
        return person
    if not multipart_token_ok(request, form):
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="送信できませんでした",
            message="画面の有効期限が切れました。ページを開き直してから、もう一度送ってください。",
        )
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return page(
            request,
            "web/upload.html",
            person,
            status_code=422,
            title=TITLES[which],
            which=which,
            limit_mb=MAX_IMPORT_FILE_BYTES // MiB,
            errors={"file": "送るファイルを選んでください"},
        )
    return _result(request, person, FORMATS[which], file.file, file_name(file.filename), which=which)


def _result(
    request: Request,
    person: Person,
    fmt: str,
    file: Any,
    name: str,
    *,
    which: str,
    corrected: int | None = None,
    pending: list[int] | None = None,
) -> Response:
    """Import ``file`` as the person's organisation and show what became of it; the rejected rows with their
    correction forms, made from the rows the hub holds in quarantine."""
    hub: Hub = request.app.state.hub
    try:
        summary = run_upload(hub, org=person.org, fmt=fmt, file=file, name=name)
    except NotAllowed as error:
        return page(
            request, "web/error.html", person, status_code=403, title="送れません", message=error.problem.message_ja
        )
    held = _held(hub, person.org)
    rejected = []
    for r in summary["rejected"]:
        index = _find_held(held, fmt, name, r["line"])
        rejected.append({"line": r["line"], "problems": r["problems"], "held": index})
    pending = [i for i in (pending or []) if i != corrected and 0 <= i < len(held)]
    pending += [r["held"] for r in rejected if r["held"] is not None and r["held"] not in pending]
    return page(
        request,
        "web/import_result.html",
        person,
        status_code=422 if summary["status"] == "refused" else 200,
        title=f"{TITLES[which]}の結果",
        which=which,
        summary=summary,
        rejected=rejected,
        corrected=corrected,
        pending=[{"index": i, **_form_of(held[i])} for i in pending],
        pending_ids=",".join(str(i) for i in pending),
        errors_by_held={r["held"]: r["problems"] for r in rejected if r["held"] is not None},
    )


def _held(hub: Hub, org: str) -> list[dict[str, Any]]:
    quarantine = hub.store.get_or_none(Quarantine.create_id(org))
    return list(quarantine.held) if quarantine else []


def _find_held(held: list[dict[str, Any]], fmt: str, name: str, line: int) -> int | None:
    """The quarantine entry of a rejected row (the latest held for this file and line: a row sent again is held
    only once, so it may be an earlier upload's)."""
    for i in range(len(held) - 1, -1, -1):
        raw = held[i].get("raw")
        if isinstance(raw, dict) and raw.get("format") == fmt and raw.get("file") == name and raw.get("line") == line:
            return i
    return None


def _form_of(entry: dict[str, Any]) -> dict[str, Any]:
    raw = entry["raw"]
    return {
        "line": raw.get("line"),
        "file": raw.get("file"),
        "format": raw.get("format"),
        "cells": list((raw.get("row") or {}).items()),
        "problems": entry.get("problems") or [],
    }


def _pending(form: FormData) -> list[int]:
    out = []
    for part in str(form.get("pending") or "").split(","):
        if part.strip().isdigit():
            out.append(int(part))
    return out[:5000]


@router.post("/ui/imports/{which}/correct")
def correct(
    request: Request, which: str, form: Annotated[FormData, posted_form(max_files=0, max_fields=100)]
) -> Response:
    """One rejected row, corrected in the browser, sent again as a one-row file through the same import."""
    if which not in FORMATS:
        return _not_found(request)
    person = _school(request)
    if isinstance(person, Response):
        return person
    hub: Hub = request.app.state.hub
    held = _held(hub, person.org)
    index = str(form.get("held") or "")
    if not index.isdigit() or int(index) >= len(held) or not isinstance(held[int(index)].get("raw"), dict):
        return page(
            request,
            "web/error.html",
            person,
            status_code=404,
            title="訂正する行が見つかりません",
            message="訂正する行が見つかりません。もう一度ファイルを送ってください。",
        )
    entry = held[int(index)]["raw"]
    fmt = FORMATS[which]
    if entry.get("format") != fmt:
        return _not_found(request)
    headers = list((entry.get("row") or {}).keys())
    values = [str(form.get(f"cell-{i}") or "")[:MAX_TEXT_CHARS] for i in range(len(headers))]
    data = csv_bytes(headers, [values])
    name = f"{entry.get('file') or 'upload'}（{entry.get('line')}行目の訂正）"[:200]
    return _result(
        request,
        person,
        fmt,
        io.BytesIO(data),
        name,
        which=which,
        corrected=int(index),
        pending=_pending(form),
    )


@router.get("/ui/imports/{which}/rejected.csv")
def rejected_csv(request: Request, which: str, held: str = "") -> Response:
    """The rejected rows (the quarantine entries named in ``held``) as a CSV file to correct and send again."""
    if which not in FORMATS:
        return _not_found(request)
    person = _school(request)
    if isinstance(person, Response):
        return person
    entries = _held(request.app.state.hub, person.org)
    chosen = [
        entries[int(i)]
        for i in held.split(",")[:5000]
        if i.strip().isdigit() and int(i) < len(entries) and isinstance(entries[int(i)].get("raw"), dict)
    ]
    chosen = [e for e in chosen if e["raw"].get("format") == FORMATS[which]]
    header = [c.header for c in COLUMNS[FORMATS[which]]]
    for e in chosen:
        header += [h for h in (e["raw"].get("row") or {}) if h not in header]
    rows = [[(e["raw"].get("row") or {}).get(h, "") for h in header] for e in chosen]
    return Response(
        csv_bytes(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": "attachment; filename*=UTF-8''rejected-rows.csv"},
    )


# --- The typed monthly report --------------------------------------------------------------------------------


def recorded_listings(request: Request, person: Person, month: str | None = None) -> list[Listing]:
    """The listings of the person's school (covering ``month``, when given) that they may see: each listed child's
    record read once through the read service, recorded with the person's name; a listing whose target-list
    event that read does not show is left out."""
    hub: Hub = request.app.state.hub
    listings = [
        listing
        for listing in peek(hub.store, SchoolRoster, person.org).all()
        if month is None or listing.covers_month(month)
    ]
    seen: dict[str, set[str]] = {}
    for child in dict.fromkeys(listing.child for listing in listings):
        timeline = hub.timeline(org=person.org, role=person.role, child=child, purpose="support", user=person.user)
        seen[child] = {e.id for e in timeline.entries} if timeline.allowed else set()
    return sorted(
        (listing for listing in listings if listing.assigned_id in seen[listing.child]),
        key=lambda listing: (listing.student_no, listing.from_month),
    )


def _last_month(today: date) -> str:
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def _month(text: str | None, today: date) -> tuple[str, str | None]:
    from adapters.csvfile import CellError, to_month

    if not text:
        return _last_month(today), None
    try:
        return to_month(text), None
    except CellError as error:
        return _last_month(today), error.message_ja


@router.get("/ui/imports/monthly/form")
def typed_form(request: Request, month: str | None = None) -> Response:
    person = _school(request)
    if isinstance(person, Response):
        return person
    chosen, error = _month(month, _today(request.app.state.hub))
    listings = recorded_listings(request, person, chosen)
    return page(
        request,
        "web/monthly_form.html",
        person,
        status_code=422 if error else 200,
        title="月次の定期的な情報提供（画面で入力）",
        month=chosen,
        listings=list(dict.fromkeys(listing.student_no for listing in listings)),
        fields=TYPED,
        errors={"month": error} if error else {},
    )


@router.post("/ui/imports/monthly/form")
def typed_send(request: Request, form: Annotated[FormData, posted_form(max_files=0, max_fields=5000)]) -> Response:
    """The typed report: one row per line with something in it, sent as a file through the same import."""
    person = _school(request)
    if isinstance(person, Response):
        return person
    month, error = _month(str(form.get("month") or ""), _today(request.app.state.hub))
    if error:
        return RedirectResponse("/ui/imports/monthly/form", status_code=303)
    header = ["学校コード", "児童生徒番号", "対象年月", *(label for _, label in TYPED)]
    rows = []
    count = str(form.get("count") or "0")
    for i in range(min(int(count) if count.isdigit() else 0, 2000)):
        student_no = str(form.get(f"student_no-{i}") or "")[:200]
        cells = [str(form.get(f"{key}-{i}") or "")[:MAX_TEXT_CHARS] for key, _ in TYPED]
        if student_no and any(c.strip() for c in cells):
            rows.append(["", student_no, month, *cells])
    if not rows:
        return page(
            request,
            "web/error.html",
            person,
            status_code=422,
            title="入力がありません",
            message="どの行にも入力がありません。授業日数などを入力してから送ってください。",
        )
    name = f"画面入力 {month}"
    return _result(request, person, "school-monthly", io.BytesIO(csv_bytes(header, rows)), name, which="monthly")


# --- Our list and its missing reports ------------------------------------------------------------------------


@router.get("/ui/overdue")
def our_list(request: Request) -> Response:
    """対象名簿 and 未提出: the listings the school may see (one recorded read per listed child) and, for each
    month, the reports missing."""
    person = _school(request)
    if isinstance(person, Response):
        return person
    hub: Hub = request.app.state.hub
    listings = recorded_listings(request, person)
    visible = {listing.assigned_id for listing in listings}
    missing = [
        r
        for r in overdue_reports(hub.store, hub.settings, reader=person.org, today=_today(hub), kept=hub.overdue_lines)
        if r.listing in visible
    ]
    months: dict[str, list[Any]] = {}
    for r in missing:
        months.setdefault(r.month, []).append(r)
    return page(
        request,
        "web/overdue.html",
        person,
        title="対象名簿と未提出の報告",
        listings=listings,
        months=sorted(months.items()),
    )


# --- Sending a concern or a notification ---------------------------------------------------------------------


def _addressees(hub: Hub) -> list[Any]:
    return sorted((o for o in hub.orgs().values() if o.type in ADDRESSEES), key=lambda o: (o.type, o.id))


@router.get("/ui/send")
def send_page(request: Request) -> Response:
    person = _school(request)
    if isinstance(person, Response):
        return person
    return _send_form(request, person, {}, {})


def _send_form(
    request: Request, person: Person, values: dict[str, Any], errors: dict[str, str], status_code: int = 200
) -> Response:
    return page(
        request,
        "web/send.html",
        person,
        status_code=status_code,
        title="気づき・通告を送る",
        kinds=SEND_KINDS,
        addressees=_addressees(request.app.state.hub),
        values=values,
        errors=errors,
    )


FIELD_OF = {"child": "who", "local_child": "who", "payload.summary": "summary", "summary": "summary", "to": "to"}


@router.post("/ui/send")
def send(request: Request, form: Annotated[FormData, posted_form(max_files=0, max_fields=30)]) -> Response:
    """Publish the concern or notification as the person's organisation, through the same path as the API; a
    receipt (受付) that says what happens next."""
    person = _school(request)
    if isinstance(person, Response):
        return person
    values: dict[str, Any] = {
        k: str(form.get(k) or "").strip() for k in ("kind", "id_type", "who", "summary", "signs", "to")
    }
    values["sensitive"] = [str(v) for v in form.getlist("sensitive")]
    errors = {}
    if values["kind"] not in SEND_KINDS:
        errors["kind"] = "気づきか通告かを選んでください"
    if values["id_type"] not in ("local_child", "child"):
        errors["id_type"] = "番号の種類を選んでください"
    if not values["who"]:
        errors["who"] = "児童の番号を入力してください"
    elif len(values["who"]) > 200:
        errors["who"] = "番号は200文字までです"
    if not values["summary"]:
        errors["summary"] = "内容を入力してください"
    elif len(values["summary"]) > MAX_TEXT_CHARS:
        errors["summary"] = f"内容は{MAX_TEXT_CHARS}文字までです"
    if len(values["signs"]) > MAX_TEXT_CHARS:
        errors["signs"] = f"気づいた様子は{MAX_TEXT_CHARS}文字までです"
    hub: Hub = request.app.state.hub
    if values["kind"] == "notification" and values["to"] not in {o.id for o in _addressees(hub)}:
        errors["to"] = "通告先（センターまたは児童相談所）を選んでください"
    if errors:
        return _send_form(request, person, values, errors, 422)
    kind, basis, kind_ja = SEND_KINDS[values["kind"]]
    payload: dict[str, Any] = {"summary": values["summary"]}
    signs = [line.strip() for line in values["signs"].splitlines() if line.strip()]
    if signs and kind == "concern.reported":
        payload["signs"] = signs
    envelope: dict[str, Any] = {
        "id": f"ui-{uuid.uuid4()}",
        "kind": kind,
        values["id_type"]: values["who"],
        "source": person.org,
        "basis": basis,
        "at": hub.clock().isoformat(),
        "payload": payload,
    }
    if kind == "notification.filed":
        envelope["to"] = values["to"]
    sensitive = [f for f in values["sensitive"] if f in payload]
    if sensitive:
        envelope["sensitive"] = sensitive
    [result] = hub.publish([envelope], publisher=person.org)
    result = told_to(result, learns_whether_published(hub.orgs().get(person.org)))
    if result.outcome == "rejected":
        for p in result.problems:
            errors[FIELD_OF.get(p.field or "", "summary")] = p.message_ja
        return _send_form(request, person, values, errors, 422)
    return page(
        request,
        "web/send_receipt.html",
        person,
        title="受付しました",
        kind=values["kind"],
        kind_ja=kind_ja,
        receipt=result.id,
        at=envelope["at"],
        to=values["to"],
    )


def _not_found(request: Request) -> Response:
    return page(
        request,
        "web/error.html",
        signed_in(request),
        status_code=404,
        title="ページが見つかりません",
        message="そのページはありません。",
    )
