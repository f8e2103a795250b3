"""What every router of the HTTP API shares: the hub, the verified caller, and the JSON error shape.

Routers (``services/http/app.py`` and the ones added later) import from here, never from ``services.http.app``, so there
is no import cycle: ``create_app`` puts the hub and the token verifier on ``app.state`` and these dependencies
take them from there.

- ``HubDep``: the ``Hub`` of the running app.
- ``require_scope(scope)``: the caller of a verified bearer token whose token carries ``scope`` (401 without a
  valid token, 403 ``insufficient_scope`` without the scope), acting for an organisation registered in the hub
  (403 ``unknown_organisation`` otherwise). **Every endpoint but the public ones declares its scope this way**
  (``tests/auth/test_auth_matrix.py`` checks it on the OpenAPI schema), so that OpenAPI shows the scopes::

      def endpoint(member: Annotated[Principal, Depends(require_scope("audit"))], hub: HubDep) -> ...
      router = APIRouter(prefix="/v1/audit", dependencies=[Depends(require_scope("audit"))])

  Shorthands: ``PublishDep`` (publish events, change case work), ``ReadDep`` (reads), ``AuditDep`` (auditors'
  endpoints), ``AdminDep`` (administration). The scopes, and which roles have them: ``services.auth.tokens``.
  ``require_scope(scope, registered=False)`` (``TimelineReaderDep``) leaves the organisation unchecked: only
  where the read service itself decides and records the refusal (timeline reads).
- ``PrincipalDep`` / ``MemberDep``: the same without a scope, for dependencies of dependencies; an endpoint that
  uses them directly is open to every scope.
- ``ApiError``: raise it for any refusal; it becomes ``{"error": {"code", "message", "message_ja", ...}}``.

A client-credentials token (it has ``client_id``) is accepted only while its client is enabled and acts for the
token's organisation: the client is looked up on every request (``services.clients.find_client``), so disabling
a client stops its tokens at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import cache
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, Field

from events.problems import Rejected
from services.auth.clients import find_client
from services.auth.tokens import SCOPES, InvalidToken, Principal, TokenVerifier
from services.hub import Hub

T = TypeVar("T")

REALM = "tsunagu"


class ProblemOut(BaseModel):
    """One reason an input cannot be accepted, naming its field."""

    code: str
    field: str | None = None
    message: str
    message_ja: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable code.")
    message: str = Field(description="English, for operators.")
    message_ja: str = Field(description="Japanese, for the person using the system.")
    field: str | None = Field(default=None, description="The request field at fault, when there is one.")
    problems: list[ProblemOut] | None = Field(default=None, description="Every problem found, for 422.")
    access_record: str | None = Field(default=None, description="The access record of a refused read.")


class ErrorResponse(BaseModel):
    """Every error of the API has this shape."""

    error: ErrorDetail


class ApiError(Exception):
    """A refusal the API reports as JSON: HTTP ``status`` and the ``error`` object."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        message_ja: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.message_ja = message_ja
        self.headers = headers
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.message_ja, **self.extra)


def refusals_as_errors(
    call: Callable[[], T],
    *,
    forbidden: Collection[str] = (),
    not_found: Collection[str] = (),
    conflict: Collection[str] = (),
) -> T:
    """Run an application service for a route; its refusal (``Rejected``) becomes an ``ApiError`` whose status says
    why, from the first problem's code: 403 in ``forbidden``, 404 in ``not_found``, 409 in ``conflict``, else 422.
    Every problem goes with it."""
    try:
        return call()
    except Rejected as rejected:
        first = rejected.problems[0]
        status = (
            403
            if first.code in forbidden
            else 404
            if first.code in not_found
            else 409
            if first.code in conflict
            else 422
        )
        raise ApiError(
            status,
            first.code,
            first.message,
            first.message_ja,
            field=first.field,
            problems=[p.to_dict() for p in rejected.problems],
        ) from None


def error_body(code: str, message: str, message_ja: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "message_ja": message_ja, **extra}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses, all with the ``ErrorResponse`` shape."""
    descriptions = {
        401: "No bearer token, or one that is malformed, badly signed, expired or for another audience, or whose "
        "client was disabled",
        403: "Refused: the token lacks the endpoint's scope (insufficient_scope), an organisation not registered in "
        "the hub, or a read the policy refuses as a whole",
        413: "The request body is too large",
        422: "The request is not valid; the error names the field",
        500: "Unexpected error (no internals are returned)",
        503: "The event store is not reachable (store_unavailable), or the hub is busy with other changes to the "
        "same records (busy): retry after the seconds in Retry-After",
    }
    return {s: {"model": ErrorResponse, "description": descriptions.get(s, "Error")} for s in statuses}


# --- Dependencies -------------------------------------------------------------------------------------------


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def get_verifier(request: Request) -> TokenVerifier:
    return request.app.state.verifier


_bearer = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=SCOPES)),
    scheme_name="oauth2",
    auto_error=False,
    description="`Authorization: Bearer TOKEN`, an ES256 JWT of the hub: from `POST /oauth/token` (an adapter's "
    "client credentials, or a staff member's ID token), or `tsunagu token issue` in development.",
)


def _unauthorized(code: str, message: str, message_ja: str, *, token_error: bool) -> ApiError:
    challenge = f'Bearer realm="{REALM}"'
    if token_error:  # RFC 6750, section 3
        description = "".join(c for c in message if " " <= c <= "~" and c not in '"\\')
        challenge += f', error="invalid_token", error_description="{description}"'
    return ApiError(401, code, message, message_ja, headers={"WWW-Authenticate": challenge})


def get_principal(
    request: Request,
    security_scopes: SecurityScopes,
    authorization: Annotated[str | None, Depends(_bearer)],
    verifier: Annotated[TokenVerifier, Depends(get_verifier)],
    hub: Annotated[Hub, Depends(get_hub)],
) -> Principal:
    """The caller named by the request's bearer token; 401 when there is no valid one, 403 ``insufficient_scope``
    when the token lacks a scope the endpoint requires (``require_scope``)."""
    if authorization is None and request.headers.get("authorization") is None:
        raise _unauthorized(
            "missing_token",
            "an Authorization: Bearer token is required",
            "認証トークンがありません。ログインしてください",
            token_error=False,
        )
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(
            "invalid_token",
            "the Authorization header must be 'Bearer <token>'",
            "認証ヘッダーの形式が正しくありません（Bearer トークンを指定してください）",
            token_error=True,
        )
    try:
        principal = verifier.verify(token.strip())
    except InvalidToken as error:
        raise _unauthorized(error.code, error.message, error.message_ja, token_error=True) from None
    if principal.client_id is not None:
        client = find_client(hub.store, principal.client_id)
        if client is None or not client.enabled or client.org != principal.org:
            raise _unauthorized(
                "client_disabled",
                "the token's client is disabled or unknown",
                "このトークンのクライアントは無効化されています。管理者に確認してください",
                token_error=True,
            )
    request.state.principal = principal  # the verified caller, whose rate the limiter charges (api_limits)
    if missing := [s for s in security_scopes.scopes if s not in principal.scopes]:
        needed = " ".join(security_scopes.scopes)
        raise ApiError(
            403,
            "insufficient_scope",
            f"the token lacks the scope {' '.join(missing)} this request needs",
            f"このトークンには、この操作に必要な権限（{'、'.join(missing)}）がありません",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{needed}"'},
        )  # RFC 6750, section 3.1
    return principal


def get_member(
    principal: Annotated[Principal, Depends(get_principal)], hub: Annotated[Hub, Depends(get_hub)]
) -> Principal:
    """The caller, acting for an organisation registered in the hub; 403 ``unknown_organisation`` otherwise."""
    if principal.org not in hub.orgs():
        raise ApiError(
            403,
            "unknown_organisation",
            f"organisation {principal.org!r} is not registered in the hub",
            f"機関「{principal.org}」はハブに登録されていません",
        )
    return principal


@cache
def require_scope(scope: str, *, registered: bool = True) -> Callable[..., Principal]:
    """The dependency of an endpoint that requires ``scope`` (one of ``services.auth.SCOPES``): the verified
    caller, with that scope, acting for a registered organisation (unless ``registered=False``). Use it as
    ``Depends(require_scope("audit"))``, in a parameter's ``Annotated`` or a router's ``dependencies``; the
    OpenAPI schema lists the scope on every operation that requires it."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; one of {', '.join(SCOPES)}")
    caller = get_member if registered else get_principal

    def scoped(principal: Principal = Security(caller, scopes=[scope])) -> Principal:  # noqa: B008
        return principal

    scoped.__name__ = f"require_scope_{scope}" + ("" if registered else "_any_org")
    return scoped


HubDep = Annotated[Hub, Depends(get_hub)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
MemberDep = Annotated[Principal, Depends(get_member)]
PublishDep = Annotated[Principal, Depends(require_scope("publish"))]
ReadDep = Annotated[Principal, Depends(require_scope("read"))]
AuditDep = Annotated[Principal, Depends(require_scope("audit"))]
AdminDep = Annotated[Principal, Depends(require_scope("admin"))]
TimelineReaderDep = Annotated[Principal, Depends(require_scope("read", registered=False))]
