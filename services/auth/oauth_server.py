"""The hub's OAuth 2.0 authorisation server: the token endpoint, its metadata, and the JWKS.

- ``POST /oauth/token`` issues the hub's access tokens (ES256 JWTs, ``services.auth.tokens``, 15 minutes), for two
  grants:

  - ``client_credentials`` (RFC 6749, section 4.4): an organisation's adapter, authenticated as its machine client
    (``services.auth.clients``) with ``client_secret_basic`` (HTTP Basic) or ``client_secret_post`` (form fields). The
    token acts for the client's organisation, in the role ``adapter``, with ``sub`` and ``client_id`` the client's
    id, and the scopes asked for (``scope``), which must be among the client's (``invalid_scope`` otherwise), or
    all of the client's when none are asked for.
  - ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (RFC 7523): a staff member's ID token from the configured
    OpenID Connect provider (``services.auth.oidc``) as the ``assertion``; no client authentication (the ID token is
    the proof, verified against the provider's keys, issuer and audience). Offered only when a provider is
    configured.

- ``GET /.well-known/oauth-authorization-server`` (RFC 8414): the token endpoint, the JWKS URI, the scopes, the
  grants and the client authentication methods. The hub is an OAuth authorisation server, not an OpenID
  provider (it issues no ID tokens), hence this document and not ``openid-configuration``. Its ``issuer`` is the
  hub's URL; the tokens' ``iss`` claim is the hub's short name ``tsunagu`` (``services.auth.ISSUER``), which is
  what the hub itself checks.
- ``GET /.well-known/jwks.json``: the public keys that verify the hub's tokens (every key of the key file,
  ``services.auth.SigningKeys``; during a rotation, the old and the new).

**authlib.** The grants, client authentication (Basic and form), the scope checks, the RFC 7523 assertion
handling and the RFC 6749 section 5.2 errors are authlib's (``authlib.oauth2.rfc6749.AuthorizationServer``,
``ClientCredentialsGrant``, ``rfc7523.JWTBearerGrant``); this module supplies what authlib leaves to a framework
integration (there is none for a Starlette or FastAPI *server*): turning the request into an ``OAuth2Request``
(the form body parsed by ``urllib.parse``, as ``python-multipart`` is not a dependency) and authlib's
``(status, body, headers)`` into a response. authlib's own token generator is not used: the token is the hub's
JWT, from ``TokenIssuer``. authlib refuses plain HTTP except on loopback addresses (``insecure_transport``): run
the hub behind TLS, and uvicorn with ``--proxy-headers`` so that it knows the request came over HTTPS (on a
development network only, authlib's ``AUTHLIB_INSECURE_TRANSPORT=1`` lifts the check).

Errors keep the RFC 6749 shape (``{"error": "invalid_client", "error_description": "…"}``), which OAuth client
libraries read, plus ``error_description_ja`` in Japanese for the people who configure adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientCredentialsGrant,
    ClientMixin,
    InsecureTransportError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7523 import JWTBearerGrant
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.auth.clients import AUTH_METHODS, CLIENT_CREDENTIALS, Client, find_client, no_such_client
from services.auth.oidc import JwksUnavailable, OidcProvider, StaffMember
from services.auth.tokens import (
    ACCESS_TOKEN_LIFETIME,
    ROLE_SCOPES,
    ROLES,
    SCOPES,
    TokenIssuer,
    TokenVerifier,
    scope_text,
)

if TYPE_CHECKING:
    from services.hub import Hub

TOKEN_PATH = "/oauth/token"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
JWT_BEARER = JWTBearerGrant.GRANT_TYPE
FORM = "application/x-www-form-urlencoded"

# Japanese for every error the token endpoint answers (RFC 6749 section 5.2, and authlib's insecure_transport).
JA_BY_ERROR = {
    "invalid_request": "トークン要求の形式が正しくありません",
    "invalid_client": "クライアントIDまたはシークレットが正しくないか、クライアントが無効化されています",
    "invalid_grant": "提示された認証情報（IDトークン）は受け付けられません。ログインし直してください",
    "unauthorized_client": "このクライアントにはこの方式でのトークン発行が許可されていません",
    "unsupported_grant_type": "この grant_type には対応していません",
    "invalid_scope": "要求された権限（scope）は認められていません",
    "insecure_transport": "HTTPS で接続してください",
    "temporarily_unavailable": "認証基盤に接続できません。しばらくしてから再度お試しください",
}


def _ascii(text: str) -> str:
    """``text`` fit for an OAuth ``error_description`` (RFC 6749 allows printable ASCII without " and \\)."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


def _error(cls: type[OAuth2Error], description: str, description_ja: str, **kwargs: Any) -> OAuth2Error:
    error = cls(description=_ascii(description), **kwargs)
    error.description_ja = description_ja  # type: ignore[attr-defined]
    return error


class _TemporarilyUnavailable(OAuth2Error):
    error = "temporarily_unavailable"
    status_code = 503


# --- Requests -----------------------------------------------------------------------------------------------


class TokenRequest(OAuth2Request):
    """A token request as authlib reads it: method, URL, headers and the form body."""

    def __init__(self, method: str, uri: str, headers: Any, form: dict[str, str]):
        super().__init__(method, uri, headers=headers)
        self.payload = BasicOAuth2Payload(form)
        self._form = form

    @property
    def form(self) -> dict[str, str]:
        return self._form


def _parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """The form fields of a token request; ``InvalidRequestError`` when it is not a form, or repeats a field
    (RFC 6749, section 3.2: parameters must not be included more than once)."""
    if content_type.split(";")[0].strip().lower() != FORM:
        raise _error(InvalidRequestError, f"the body must be {FORM}", f"トークン要求は {FORM} 形式で送ってください")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise _error(
            InvalidRequestError,
            "the form is not UTF-8 form data with at most 50 fields",
            "トークン要求の形式が正しくありません（UTF-8 のフォーム形式で送ってください）",
        ) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _error(
                InvalidRequestError, f"the parameter {name} is repeated", f"パラメーター「{name}」が重複しています"
            )
        form[name] = value
    return form


# --- Grants -------------------------------------------------------------------------------------------------


class AdapterGrant(ClientCredentialsGrant):
    """Client credentials: an organisation's adapter, as its machine client."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        super().validate_requested_scope()  # scopes the hub knows (authlib: invalid_scope)
        requested = set(scope_to_list(self.request.payload.scope) or ())
        client: Client = self.request.client
        if extra := sorted(requested - set(client.scopes)):
            raise _error(
                InvalidScopeError,
                f"the client may not ask for {' '.join(extra)}; its scopes are {' '.join(client.scopes)}",
                f"このクライアントには権限「{'、'.join(extra)}」がありません"
                f"（登録されている権限：{'、'.join(client.scopes)}）",
            )


@dataclass(frozen=True)
class ProviderClient(ClientMixin):
    """The OpenID provider, as the "client" RFC 7523 resolves from the assertion's issuer."""

    issuer: str

    def get_client_id(self) -> str:
        return self.issuer

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == JWT_BEARER


class StaffGrant(JWTBearerGrant):
    """JWT bearer (RFC 7523): a staff member's ID token from the configured OpenID provider."""

    CLAIMS_OPTIONS = {
        "iss": {"essential": True},
        "aud": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "sub": {"essential": True},
    }
    LEEWAY = 30

    @property
    def provider(self) -> OidcProvider:
        return self.server.oidc

    def extract_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        headers, claims = super().extract_assertion(assertion)
        self._kid = headers.get("kid") if isinstance(headers.get("kid"), str) else None
        self._claims = claims  # unverified until authlib's decode and verify_claims pass
        return headers, claims

    def resolve_issuer_client(self, issuer: str) -> ProviderClient | None:
        if issuer != self.provider.settings.issuer:
            raise _error(
                InvalidGrantError,
                "the ID token is not from the configured identity provider (iss)",
                "設定された認証基盤が発行したIDトークンではありません",
            )
        return ProviderClient(issuer)

    def resolve_client_public_key(self, client: ProviderClient) -> Any:
        try:
            return self.provider.jwks.key_set(self._kid)
        except JwksUnavailable:
            raise _error(
                _TemporarilyUnavailable,
                "the identity provider's keys cannot be fetched",
                JA_BY_ERROR["temporarily_unavailable"],
            ) from None

    def get_audiences(self) -> list[str]:
        return [self.provider.settings.audience]

    def validate_requested_scope(self) -> None:
        super().validate_requested_scope()  # scopes the hub knows; the role's are checked once the person is known

    def authenticate_user(self, subject: str) -> StaffMember:
        settings, claims = self.provider.settings, self._claims
        org, role = claims.get(settings.org_claim), claims.get(settings.role_claim)
        if not (isinstance(org, str) and org and isinstance(role, str) and role):
            raise _error(
                InvalidGrantError,
                f"the ID token gives no organisation ({settings.org_claim}) or role ({settings.role_claim})",
                "IDトークンに所属機関または役割がありません。認証基盤の設定を確認してください",
            )
        if role not in ROLES or role == "adapter":
            raise _error(
                InvalidGrantError,
                f"the ID token's role {role!r} is not a role of the hub",
                f"IDトークンの役割「{role}」はハブの役割ではありません",
            )
        if org not in self.server.hub.orgs():
            raise _error(
                InvalidGrantError,
                f"organisation {org!r} is not registered in the hub",
                f"機関「{org}」はハブに登録されていません",
            )
        if not isinstance(subject, str) or not subject:
            raise _error(InvalidGrantError, "the ID token names no person (sub)", "IDトークンに利用者がありません")
        return StaffMember(org=org, role=role, user=subject)

    def has_granted_permission(self, client: ProviderClient, user: StaffMember) -> bool:
        return True

    def validate_token_request(self) -> None:
        super().validate_token_request()
        member: StaffMember = self.request.user
        requested = set(scope_to_list(self.request.payload.scope) or ())
        if extra := sorted(requested - ROLE_SCOPES[member.role]):
            raise _error(
                InvalidScopeError,
                f"the role {member.role} may not ask for {' '.join(extra)}",
                f"役割「{member.role}」には権限「{'、'.join(extra)}」がありません",
            )


# --- The server ---------------------------------------------------------------------------------------------


class HubAuthorizationServer(AuthorizationServer):
    """authlib's authorisation server on the hub's clients, with the hub's tokens."""

    def __init__(self, hub: Hub, issuer: TokenIssuer, oidc: OidcProvider | None = None):
        super().__init__(scopes_supported=list(SCOPES))
        self.hub = hub
        self.issuer = issuer
        self.oidc = oidc
        self.register_grant(AdapterGrant)
        if oidc is not None:
            self.register_grant(StaffGrant)
        self.register_token_generator("default", self._generate)

    @property
    def grant_types(self) -> list[str]:
        return [CLIENT_CREDENTIALS] + ([JWT_BEARER] if self.oidc is not None else [])

    def query_client(self, client_id: str) -> Client:
        """The enabled client ``client_id``, or a stand-in whose secret never matches (``no_such_client``): an
        unknown or disabled client goes through the same secret verification and gets the same answer as a
        wrong secret, in about the same time."""
        client = find_client(self.hub.store, client_id)
        return client if client is not None and client.enabled else no_such_client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to save: the token is a signed JWT; who was given one is in its claims and the clients' stream."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals."""

    def create_oauth2_request(self, request: TokenRequest) -> TokenRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=dict(headers))

    def handle_error_response(self, request: Any, error: OAuth2Error) -> JSONResponse:
        status, body, headers = error(self.get_error_uri(request, error))
        body["error_description_ja"] = getattr(error, "description_ja", None) or JA_BY_ERROR.get(
            body["error"], "トークンを発行できませんでした"
        )
        return self.handle_response(status, body, headers)

    def _generate(
        self,
        grant_type: str,
        client: Any,
        user: StaffMember | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        requested = set(scope_to_list(scope) or ())
        if isinstance(client, Client):
            org, role, subject, client_id, allowed = (
                client.org,
                "adapter",
                client.client_id,
                client.client_id,
                set(client.scopes),
            )
        else:
            assert user is not None
            org, role, subject, client_id, allowed = user.org, user.role, user.user, None, set(ROLE_SCOPES[user.role])
        scopes = requested or allowed
        token = self.issuer.issue(
            org=org, role=role, user=subject, scopes=scopes, client_id=client_id, lifetime=ACCESS_TOKEN_LIFETIME
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "scope": scope_text(scopes),
        }

    def token_response(self, request: TokenRequest) -> JSONResponse:
        try:
            return self.create_token_response(request)
        except UnicodeDecodeError:  # HTTP Basic credentials that are not UTF-8 (authlib lets this through)
            return self.handle_error_response(
                request,
                _error(
                    InvalidClientError,
                    "the HTTP Basic credentials are not valid UTF-8",
                    JA_BY_ERROR["invalid_client"],
                    status_code=401,
                ),
            )


# --- Routes -------------------------------------------------------------------------------------------------

router = APIRouter(tags=["sign-in (OAuth 2.0)"])

_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": [CLIENT_CREDENTIALS, JWT_BEARER]},
                        "scope": {"type": "string", "description": f"Space-separated, among {', '.join(SCOPES)}."},
                        "client_id": {"type": "string", "description": "client_secret_post (else HTTP Basic)."},
                        "client_secret": {"type": "string", "description": "client_secret_post (else HTTP Basic)."},
                        "assertion": {
                            "type": "string",
                            "description": "jwt-bearer: the ID token from the identity provider.",
                        },
                    },
                }
            }
        },
    },
}


@router.post(
    TOKEN_PATH,
    openapi_extra=_TOKEN_FORM,
    summary="Get an access token (トークンの発行)",
    responses={
        200: {"description": "The access token (`access_token`, `token_type` Bearer, `expires_in`, `scope`)."},
        400: {"description": "RFC 6749 error: invalid_request, invalid_grant, invalid_scope, unsupported_grant_type"},
        401: {"description": "RFC 6749 error: invalid_client"},
    },
)
async def token(request: Request) -> JSONResponse:
    """The client-credentials grant for adapters, and the JWT bearer grant (an OpenID Connect ID token) for staff.
    Errors: ``{"error", "error_description", "error_description_ja"}`` (RFC 6749, section 5.2)."""
    server: HubAuthorizationServer | None = request.app.state.oauth
    if server is None:
        return JSONResponse(
            {
                "error": "temporarily_unavailable",
                "error_description": "this hub issues no tokens",
                "error_description_ja": "このハブではトークンを発行していません",
            },
            status_code=503,
        )
    body = await request.body()
    try:
        form = _parse_form(request.headers.get("content-type", ""), body)
        oauth_request = TokenRequest(request.method, str(request.url), request.headers, form)
    except InsecureTransportError as error:
        return server.handle_error_response(None, error)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    return await run_in_threadpool(server.token_response, oauth_request)


@router.get(JWKS_PATH, summary="The hub's token signing keys (JWKS)")
def jwks(request: Request) -> JSONResponse:
    """Every public key that verifies the hub's access tokens (RFC 7517); during a rotation, old and new."""
    verifier: TokenVerifier = request.app.state.verifier
    return JSONResponse(verifier.jwks(), headers={"Cache-Control": "public, max-age=60"})


@router.get(METADATA_PATH, summary="Authorisation server metadata (RFC 8414)")
def metadata(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    server: HubAuthorizationServer | None = request.app.state.oauth
    return {
        "issuer": base,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "scopes_supported": list(SCOPES),
        "response_types_supported": [],
        "grant_types_supported": server.grant_types if server is not None else [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "service_documentation": base + "/docs",
        "ui_locales_supported": ["ja", "en"],
    }


def install_oauth(app: FastAPI, hub: Hub, issuer: TokenIssuer | None, oidc: OidcProvider | None = None) -> None:
    """Mount the token endpoint, the metadata and the JWKS on ``app`` (``create_app`` calls this). Without an
    ``issuer`` the token endpoint answers ``temporarily_unavailable``; the JWKS is always served."""
    app.state.oauth = HubAuthorizationServer(hub, issuer, oidc) if issuer is not None else None
    app.include_router(router)


__all__ = ["install_oauth", "HubAuthorizationServer", "TOKEN_PATH", "JWKS_PATH", "METADATA_PATH", "JWT_BEARER"]
