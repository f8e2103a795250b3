"""The hub's HTTP API (FastAPI). OpenAPI at ``/docs`` (and ``/openapi.json``).

``create_app(hub, verifier, issuer=...)`` builds the app around a ``Hub``, a ``TokenVerifier`` and the
``TokenIssuer`` of the token endpoint. Endpoints (each requires a token with a scope, ``services.http.deps``):

- ``GET /v1/health`` (no token): the hub is up and its store answers.
- ``POST /v1/events`` (scope ``publish``): publish one envelope or a batch, as the token's organisation
  (``Hub.publish`` with ``publisher``); per-event results.
- ``GET /v1/children/{child}/timeline?purpose=...`` (scope ``read``): the child's timeline for the token's
  organisation and role, through the read service (``Hub.timeline``), the only way content leaves the hub: the
  policy decides and the access record is appended before anything is returned.
- ``GET /v1/settings``, ``PUT /v1/settings/{name}`` (scope ``admin``): the deployment's policy settings
  (``services.http.settings``).
- ``POST /oauth/token``, ``GET /.well-known/jwks.json``, ``GET /.well-known/oauth-authorization-server`` (no
  token): the token endpoint, its keys and metadata (``services.auth.oauth_server``).

Routers are listed in ``ROUTERS``; another one is added by appending it there (its dependencies come from
``services.http.deps``). Every error is ``{"error": {"code", "message", "message_ja", ...}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, PersistenceError
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, create_model
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consent.policy import POLICY_VERSION, learns_whether_published
from events.envelope import Envelope, ja_for, nesting_depth
from events.limits import MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST, MAX_IMPORT_FILE_BYTES, MAX_JSON_DEPTH, MiB
from events.problems import Busy, Outcome, PublishResult, Rejected, told_to
from events.retry import RETRY_AFTER_SECONDS
from services.auth.dev_provider import DevProvider, dev_router
from services.auth.oauth_server import install_oauth
from services.auth.oidc import OidcProvider
from services.auth.tokens import TokenIssuer, TokenVerifier
from services.http.deps import (
    ApiError,
    ErrorResponse,
    HubDep,
    ProblemOut,
    PublishDep,
    TimelineReaderDep,
    error_body,
    error_responses,
)
from services.http.limits import install_limits
from services.http.threads import bound_request_threads, request_threads_from_env, run_health_check
from services.hub import Hub
from services.templates import render
from services.web import install_web
from services.web.pages import page_without_the_hub
from services.web.session import WebSettings

log = logging.getLogger("tsunagu.api")


# --- Response models (the OpenAPI schema follows them) ------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    policy_version: str
    store: Literal["sqlite", "postgresql"]


class PublishResultOut(BaseModel):
    index: int = Field(description="Position of the event in the request (0 for a single envelope).")
    id: str | None = Field(description="The envelope's id, when it has one.")
    outcome: Outcome
    problems: list[ProblemOut] = Field(default_factory=list, description="Why it was rejected (kept in quarantine).")


OUTCOMES: tuple[str, ...] = get_args(Outcome)  # whatever the hub's publish can answer, and nothing else
# Typed as create_model's field definitions: a dict of tuples, unpacked, could also be its __base__ or __config__.
_COUNT_FIELDS: dict[str, Any] = {outcome: (int, 0) for outcome in OUTCOMES}
PublishCounts = create_model("PublishCounts", **_COUNT_FIELDS)
"""How many events of the request had each outcome."""


class PublishResponse(BaseModel):
    results: list[PublishResultOut]
    counts: PublishCounts  # type: ignore[valid-type]


class TimelineEntryOut(BaseModel):
    id: str
    kind: str
    source: str
    basis: str
    at: str
    payload: dict[str, Any] = Field(description="Sensitive fields the reader may not see are replaced by a marker.")
    rule: str = Field(description="The policy rule that allowed the event (OWN, DIRECT, CASE, …).")
    redacted: list[str] = Field(description="Payload fields replaced by the redaction marker.")
    function: str | None = None
    to: str | None = None
    sensitive: list[str] = Field(default_factory=list)


class TimelineOut(BaseModel):
    child: str
    org: str
    role: str
    purpose: str
    t: str = Field(description="The time of the read.")
    allowed: bool
    reason: str
    entries: list[TimelineEntryOut]
    withheld: int | None = Field(
        default=None,
        description=(
            "How many events the policy withheld; present only for municipal centres and child guidance centres. "
            "Other readers learn nothing about events they may not read."
        ),
    )
    access_record: str = Field(description="The id of the access record appended for this read.")
    policy_version: str


# --- The core router ----------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1")


@router.get("/health", response_model=Health, responses=error_responses(503), tags=["hub"])
async def health(request: Request) -> Health:
    """The hub is up and its event store answers. No token needed."""
    # On a thread of its own limiter, not the request threads' (services.http.threads): it answers while every
    # request thread waits. The hub is read here, not through HubDep, a dependency that would run on them.
    hub: Hub = request.app.state.hub
    return await run_health_check(lambda: _check_health(hub))


def _check_health(hub: Hub) -> Health:
    try:
        hub.store.log_position()
    except PersistenceError:
        log.exception("the event store does not answer")
        raise ApiError(
            503,
            "store_unavailable",
            "the event store is not reachable",
            "データベースに接続できません。しばらくしてから再度お試しください",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    module = type(hub.store.recorder).__module__
    return Health(
        status="ok", policy_version=POLICY_VERSION, store="postgresql" if module.endswith(".postgres") else "sqlite"
    )


_PUBLISH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Envelope"},
                        "minItems": 1,
                        "maxItems": MAX_EVENTS_PER_REQUEST,
                    },
                ]
            }
        }
    },
}


@router.post(
    "/events",
    response_model=PublishResponse,
    openapi_extra={"requestBody": _PUBLISH_BODY},
    responses=error_responses(401, 403, 413, 422),
    tags=["events"],
)
async def publish_events(request: Request, member: PublishDep, hub: HubDep) -> PublishResponse:
    """Publish one event envelope, or a JSON array of at most 1000 (a batch stored in one transaction).

    Each event is accepted, recognised as a duplicate of the stored one with the same id, or rejected with its
    problems (and held in the publisher's quarantine for correction). An organisation publishes only as
    itself: an event whose ``source`` is another organisation is rejected with ``source_mismatch``.

    Centres and 児童相談所 are also told when an event waits (``waiting``: a 第21条の10の5 event about a child whose
    residence is not recorded yet; ``queued``: a record for an own number not linked yet) instead of being
    published at once; every other publisher is told ``received`` (受付) for accepted and waiting events alike.
    """
    items = _batch(await request.body())
    results = await run_in_threadpool(_publish_as_told, hub, items, member.org)
    out = [
        PublishResultOut(
            index=r.index, id=r.id, outcome=r.outcome, problems=[ProblemOut(**p.to_dict()) for p in r.problems]
        )
        for r in results
    ]
    counts = PublishCounts(**{o: sum(r.outcome == o for r in out) for o in OUTCOMES})
    return PublishResponse(results=out, counts=counts)


def _publish_as_told(hub: Hub, items: list[Any], publisher: str) -> list[PublishResult]:
    """The publish and the results as the publisher is told them, in a request thread: both read the store (the
    body is read on the event loop, the only wait that belongs there; ``services.web.forms``)."""
    results = hub.publish(items, publisher=publisher)
    tell = learns_whether_published(hub.orgs().get(publisher))
    return [told_to(r, tell) for r in results]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _batch(body: bytes) -> list[Any]:
    """The request body as a list of raw envelopes (validated one by one by the hub, not here)."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ApiError(
            422,
            "invalid_encoding",
            "the body must be JSON in UTF-8",
            "送信データは UTF-8 の JSON で送ってください",
            field="body",
        ) from None
    except (ValueError, RecursionError) as error:
        detail = error.msg if isinstance(error, json.JSONDecodeError) else str(error) or "nested too deeply"
        raise ApiError(
            422,
            "invalid_json",
            f"the body is not valid JSON: {detail}",
            "送信データが JSON として読めません",
            field="body",
        ) from None
    if nesting_depth(document, stop_after=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ApiError(
            422,
            "nested_too_deeply",
            f"the body nests more than {MAX_JSON_DEPTH} levels deep",
            f"送信データの入れ子が深すぎます（{MAX_JSON_DEPTH}段まで）",
            field="body",
        )
    _check_text(document)
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise ApiError(
            422,
            "invalid_body",
            "the body must be an event envelope (an object) or an array of them",
            "送信データはイベント（{...}）またはその配列（[...]）で送ってください",
            field="body",
        )
    if not document:
        raise ApiError(422, "empty_batch", "the array holds no events", "イベントが1件もありません", field="body")
    if len(document) > MAX_EVENTS_PER_REQUEST:
        raise ApiError(
            422,
            "batch_too_large",
            f"at most {MAX_EVENTS_PER_REQUEST} events per request",
            f"一度に送れるイベントは{MAX_EVENTS_PER_REQUEST}件までです。分けて送ってください",
            field="body",
        )
    return document


def _check_text(document: Any) -> None:
    """JSON escapes can spell lone UTF-16 surrogates (``"\\ud800"``), which are not text and cannot be stored."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        where = "body"
        for i, item in enumerate(document if isinstance(document, list) else ()):
            try:
                json.dumps(item, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                where = f"body[{i}]"
                break
        raise ApiError(
            422,
            "invalid_text",
            f"{where} holds an escape that is not a Unicode character (a lone surrogate such as \\ud800)",
            f"{where}: 文字として読めない値（\\ud800 など）が含まれています",
            field=where,
        ) from None


_REFUSALS = {
    "unknown_organisation": (
        "organisation {org} is not registered in the hub",
        "機関「{org}」はハブに登録されていません",
    ),
    "organisation_type_reads_no_case_content": (
        "organisations of this type read access records and aggregates, never case content",
        "この種別の機関は児童の記録の内容を閲覧できません（閲覧記録・集計のみ）",
    ),
    "purpose_not_allowed": (
        "a timeline is read for purpose support, meeting or emergency",
        "閲覧目的（purpose）は support・meeting・emergency のいずれかです",
    ),
    "no_emergency_window": (
        "no emergency declared by your organisation about this child is open now",
        "この児童について自機関が宣言した緊急対応の期間外のため、緊急閲覧はできません",
    ),
}


@router.get(
    "/children/{child}/timeline",
    response_model=TimelineOut,
    response_model_exclude_unset=True,
    responses=error_responses(401, 403, 422),
    tags=["children"],
)
def read_timeline(
    child: Annotated[str, Path(min_length=1, max_length=200, description="The child's hub id.")],
    purpose: Annotated[
        str,
        Query(
            min_length=1,
            max_length=40,
            description=(
                "support, meeting or emergency (emergency only inside a window your organisation declared). "
                "Any other purpose is refused as a whole, and recorded."
            ),
        ),
    ],
    principal: TimelineReaderDep,
    hub: HubDep,
) -> Any:
    """A child's timeline as the token's organisation, in the token's role, may see it.

    Every event is decided by the read policy; the access record (allowed or refused) is appended before
    anything is returned. A read refused as a whole gives 403 with the access record's id.
    """
    timeline = hub.timeline(org=principal.org, role=principal.role, child=child, purpose=purpose, user=principal.user)
    if not timeline.allowed:
        message, message_ja = _REFUSALS.get(
            timeline.reason, ("the read was refused ({reason})", "閲覧は認められませんでした")
        )
        raise ApiError(
            403,
            timeline.reason,
            message.format(org=principal.org, reason=timeline.reason),
            message_ja.format(org=principal.org),
            access_record=timeline.access_record,
        )
    return timeline.to_dict()


ROUTERS: list[APIRouter] = [router]
"""Every router of the API. Add one by appending it here; take dependencies from ``services.http.deps``."""
from services.http.casework import router as casework_router  # noqa: E402  要対協 case work, ledgers, agenda

ROUTERS.append(casework_router)
from services.http.inquiries import router as inquiries_router  # noqa: E402  事前照会: rounds, inboxes, answers

ROUTERS.append(inquiries_router)
from services.http.family_support import router as family_support_router  # noqa: E402  家庭支援事業

ROUTERS.append(family_support_router)
from services.http.reports import router as reports_router  # noqa: E402  定期的な情報提供: overdue reports

ROUTERS.append(reports_router)
from services.http.aggregates import router as aggregates_router  # noqa: E402  集計: planners' aggregates

ROUTERS.append(aggregates_router)
from services.http.audit import router as audit_router  # noqa: E402  監査: auditors' tools, metadata only

ROUTERS.append(audit_router)
from services.http.settings import router as settings_router  # noqa: E402  設定: the deployment's settings

ROUTERS.append(settings_router)
from services.http.imports import router as imports_router  # noqa: E402  取り込み: files from adapters

ROUTERS.append(imports_router)
from services.http.shared import router as shared_router  # noqa: E402  共有した記録の閲覧状況: who read what we shared

ROUTERS.append(shared_router)
from services.http.households import router as households_router  # noqa: E402  世帯: households

ROUTERS.append(households_router)


# --- The app ------------------------------------------------------------------------------------------------


def create_app(
    hub: Hub,
    verifier: TokenVerifier,
    *,
    issuer: TokenIssuer | None = None,
    oidc: OidcProvider | None = None,
    dev_oidc: DevProvider | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    web: WebSettings | None = None,
) -> FastAPI:
    """The API around ``hub``, its request threads bounded when it starts (its lifespan: ``TSUNAGU_REQUEST_THREADS``,
    ``services.http.threads``; ``ValueError`` naming the setting when that is not a positive integer). ``verifier`` checks bearer tokens; with an ``issuer`` (sharing its keys) the token
    endpoint issues them (``services.auth.oauth_server``), to adapters' clients and, with ``oidc``, to staff signed in at that
    OpenID provider; ``dev_oidc`` mounts the development provider (``services.auth.dev_provider``, never in production)."""
    app = FastAPI(
        title="tsunagu (つなぐ) hub API",
        version="1",
        description="Lawful, audited sharing of information about children at risk. Every read is "
        "decided by the read policy and recorded for auditors.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.verifier = verifier
    for r in ROUTERS:
        app.include_router(r)
    install_oauth(app, hub, issuer, oidc)  # /oauth/token, /.well-known/jwks.json, authorisation server metadata
    if dev_oidc is not None:
        app.include_router(dev_router(dev_oidc))
    if web is not None:  # the staff UI (services.web), signing in at the configured provider
        install_web(app, web)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    install_limits(app)  # URL length and request rates per client, in front of everything (services.http.limits)
    bound_request_threads(app, request_threads_from_env())  # in its lifespan: however the app is served
    return app


UPLOAD_PATHS = ("/v1/imports/", "/ui/imports/")
"""Paths that take a file to import: their body may be as large as such a file (and its multipart envelope)."""
MAX_UPLOAD_BODY_BYTES = MAX_IMPORT_FILE_BYTES + MiB


class _TooLarge(Exception):
    """An upload's body went over its limit while the app was reading it."""


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a JSON 413, whether declared by Content-Length or streamed.

    (Starlette's own limit answers 413 in plain text; every error of this API is JSON.) The body is read here,
    up to the limit, and handed on to the app unchanged. Uploads (``UPLOAD_PATHS``) may be as large as a file to
    import; their body is not held here but counted as the app reads it, and refused when it goes over.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int = MAX_UPLOAD_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = str(scope.get("path", "")).startswith(UPLOAD_PATHS)
        limit = self.upload_bytes if upload else self.max_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        if upload:
            await self._counted(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        size, over, started = 0, False, False

        async def counting() -> Message:
            nonlocal size, over
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.upload_bytes:
                    over = True
                    raise _TooLarge()
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if over:
                return  # whatever the app makes of a body cut short: the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, watched)
        except _TooLarge:
            pass
        if over and not started:
            await self._too_large(scope, receive, send, self.upload_bytes)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message_ja = f"送信データが大きすぎます（上限 {limit / 1024 / 1024:g} MB）。分けて送ってください"
        if str(scope.get("path", "")).startswith("/ui/"):  # a person at the staff UI gets a page, not JSON
            page = HTMLResponse(
                render("web/error.html", title="送信できませんでした", person=None, message=message_ja),
                status_code=413,
                headers={"Connection": "close"},
            )
            await page(scope, receive, send)
            return
        response = _json_error(
            413,
            error_body(
                "payload_too_large",
                f"the request body is too large (at most {limit} bytes)",
                message_ja,
            ),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


_BUSY = (
    "Busy: other requests kept changing the same records (busy), or the event store did not answer "
    "(store_unavailable), until the request's time budget was spent. Nothing was returned; send the same "
    "request again after the seconds in Retry-After (a publish is idempotent by envelope id)"
)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, plus the envelope schema the publish endpoint's body refers to."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        envelope = Envelope.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(envelope.pop("$defs", {}))
        components["Envelope"] = envelope
        busy = {
            "description": _BUSY,
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before sending the same request again",
                    "schema": {"type": "integer"},
                }
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        }
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["responses"].setdefault("503", busy)
        app.openapi_schema = schema
    return app.openapi_schema


def _json_error(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _for_a_person(request: Request) -> bool:
    """The request is the staff UI's (a page or a form under ``/ui``): its errors are answered as a page in
    Japanese (``services.web.pages.page_without_the_hub``), not as the API's JSON."""
    return request.url.path == "/ui" or request.url.path.startswith("/ui/")


def _busy_response(busy: Busy, request: Request) -> Response:
    """503 with ``Retry-After``: the request could not be served in its time budget (``events.problems.Busy``);
    nothing of it was stored. To a person (the staff UI) a page that says so and what to do."""
    problem = busy.problem
    if _for_a_person(request):
        return page_without_the_hub(
            request,
            status_code=503,
            title="いま処理できませんでした",
            message=f"{problem.message_ja}。入力した画面には、ブラウザの「戻る」で戻れます。",
            headers={"Retry-After": str(busy.retry_after)},
        )
    return _json_error(
        503,
        error_body(problem.code, problem.message, problem.message_ja),
        headers={"Retry-After": str(busy.retry_after)},
    )


def _unreadable_form(request: Request, what: str | None) -> Response:
    """422 to a person: the staff UI's form could not be read as sent (``what``: the fields and why, when known)."""
    why = f"（{what}）" if what else "（形式が正しくありません）"
    return page_without_the_hub(
        request,
        status_code=422,
        title="送信された内容を読み取れませんでした",
        message=f"送信された内容を読み取れませんでした{why}。何も保存されていません。画面を読み込み直して、"
        "もう一度入力してください。",
    )


_HTTP_ERRORS = {
    404: ("not_found", "no such endpoint", "そのURLはありません"),
    405: ("method_not_allowed", "this method is not allowed here", "このURLではその操作はできません"),
}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _json_error(error.status, error.body(), error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = []
        for e in error.errors():
            field = ".".join(str(p) for p in e.get("loc", ())[1:]) or str(next(iter(e.get("loc", ())), "body"))
            ja = ja_for(e)
            problems.append(
                {
                    "code": "invalid_request",
                    "field": field,
                    "message": f"{field}: {e.get('msg')}",
                    "message_ja": f"{field}: {ja}",
                }
            )
        first: dict[str, Any] = (
            problems[0]
            if problems
            else {"field": None, "message": "invalid request", "message_ja": "リクエストが正しくありません"}
        )
        if _for_a_person(request):
            return _unreadable_form(request, "、".join(p["message_ja"] for p in problems) or None)
        return _json_error(
            422,
            error_body(
                "invalid_request", first["message"], first["message_ja"], field=first["field"], problems=problems
            ),
        )

    @app.exception_handler(Rejected)
    async def rejected(request: Request, error: Rejected) -> JSONResponse:
        first = error.problems[0]
        return _json_error(
            422,
            error_body(
                first.code,
                first.message,
                first.message_ja,
                field=first.field,
                problems=[p.to_dict() for p in error.problems],
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 400:  # FastAPI could not read the body (not UTF-8, or nested beyond the parser)
            if _for_a_person(request):  # a form the UI's dependency could not read (``posted_form``)
                return _unreadable_form(request, None)
            return _json_error(
                422,
                error_body(
                    "invalid_json",
                    "the body is not JSON in UTF-8",
                    "送信データは UTF-8 の JSON で送ってください",
                    field="body",
                ),
            )
        code, message, message_ja = _HTTP_ERRORS.get(
            error.status_code, (f"http_{error.status_code}", str(error.detail), "リクエストを処理できませんでした")
        )
        return _json_error(error.status_code, error_body(code, message, message_ja), error.headers)

    @app.exception_handler(Busy)
    async def busy(request: Request, error: Busy) -> Response:
        log.warning("503 %s on %s %s: %s", error.problem.code, request.method, request.url.path, error)
        return _busy_response(error, request)

    @app.exception_handler(IntegrityError)
    async def lost_race(request: Request, error: IntegrityError) -> Response:
        # A write that lost a race outside ``events.retry`` (every optimistic writer should retry there): still
        # no 500, since sending the request again is the remedy; logged, so that the writer gets its retry.
        log.error("a conflict was not retried on %s %s", request.method, request.url.path, exc_info=error)
        return _busy_response(Busy.contended(RETRY_AFTER_SECONDS), request)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def store_unavailable(request: Request, error: PersistenceError) -> Response:
        # The library has already tried again (a lost connection, no free connection, a locked SQLite file).
        log.error("the event store did not answer on %s %s", request.method, request.url.path, exc_info=error)
        return _busy_response(Busy.store_unavailable(RETRY_AFTER_SECONDS), request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _json_error(
            500,
            error_body(
                "internal_error",
                "an unexpected error occurred; it has been logged",
                "予期しないエラーが発生しました。時間をおいて再度お試しください",
            ),
        )


__all__ = ["create_app", "ROUTERS", "ErrorResponse"]
