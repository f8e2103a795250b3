"""What every router of the HTTP API shares: the hub, the verified caller, and the JSON error shape.

Routers (``services/api.py`` and the ones added later) import from here, never from ``services.api``, so there
is no import cycle: ``create_app`` puts the hub and the token verifier on ``app.state`` and these dependencies
take them from there.

- ``HubDep``: the ``Hub`` of the running app.
- ``PrincipalDep``: the caller of a verified bearer token (401 otherwise). Its organisation may be unknown to
  the hub: use it only where the read service itself decides and records the refusal (timeline reads).
- ``MemberDep``: the caller, whose organisation is registered in the hub (403 ``unknown_organisation``
  otherwise). What every other endpoint uses.
- ``ApiError``: raise it for any refusal; it becomes ``{"error": {"code", "message", "message_ja", ...}}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from services.auth import InvalidToken, Principal, TokenVerifier
from services.hub import Hub

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

    def __init__(self, status: int, code: str, message: str, message_ja: str, *,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.message_ja = message_ja
        self.headers = headers
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.message_ja, **self.extra)


def error_body(code: str, message: str, message_ja: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "message_ja": message_ja, **extra}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses, all with the ``ErrorResponse`` shape."""
    descriptions = {
        401: "No bearer token, or one that is malformed, badly signed, expired or for another audience",
        403: "Refused: an organisation not registered in the hub, or a read the policy refuses as a whole",
        413: "The request body is too large",
        422: "The request is not valid; the error names the field",
        500: "Unexpected error (no internals are returned)",
        503: "The event store is not reachable",
    }
    return {s: {"model": ErrorResponse, "description": descriptions.get(s, "Error")} for s in statuses}


# --- Dependencies -------------------------------------------------------------------------------------------

def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def get_verifier(request: Request) -> TokenVerifier:
    return request.app.state.verifier


_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", scheme_name="bearer",
                     description="A token from `tsunagu token issue` (ES256 JWT, audience tsunagu-hub).")


def _unauthorized(code: str, message: str, message_ja: str, *, token_error: bool) -> ApiError:
    challenge = f'Bearer realm="{REALM}"'
    if token_error:  # RFC 6750, section 3
        description = "".join(c for c in message if " " <= c <= "~" and c not in '"\\')
        challenge += f', error="invalid_token", error_description="{description}"'
    return ApiError(401, code, message, message_ja, headers={"WWW-Authenticate": challenge})


def get_principal(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                  verifier: Annotated[TokenVerifier, Depends(get_verifier)]) -> Principal:
    """The caller named by the request's bearer token; 401 when there is no valid one."""
    if credentials is None:
        if request.headers.get("authorization") is None:
            raise _unauthorized("missing_token", "an Authorization: Bearer token is required",
                                "認証トークンがありません。ログインしてください", token_error=False)
        raise _unauthorized("invalid_token", "the Authorization header must be 'Bearer <token>'",
                            "認証ヘッダーの形式が正しくありません（Bearer トークンを指定してください）",
                            token_error=True)
    try:
        return verifier.verify(credentials.credentials)
    except InvalidToken as error:
        raise _unauthorized(error.code, error.message, error.message_ja, token_error=True) from None


def get_member(principal: Annotated[Principal, Depends(get_principal)],
               hub: Annotated[Hub, Depends(get_hub)]) -> Principal:
    """The caller, acting for an organisation registered in the hub; 403 ``unknown_organisation`` otherwise."""
    if principal.org not in hub.orgs():
        raise ApiError(403, "unknown_organisation", f"organisation {principal.org!r} is not registered in the hub",
                       f"機関「{principal.org}」はハブに登録されていません")
    return principal


HubDep = Annotated[Hub, Depends(get_hub)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
MemberDep = Annotated[Principal, Depends(get_member)]
