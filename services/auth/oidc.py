"""Staff sign-in through an external OpenID Connect provider: its configuration, its keys, and what its ID tokens
say about the person.

The hub does not run the sign-in itself. A staff member signs in at the municipality's or prefecture's identity
provider (Entra ID, Keycloak … or, for the demo and the tests, the hub's development provider,
``services.auth.dev_provider``), and the front-end exchanges the ID token it received for a hub access token at the hub's
token endpoint, with the JWT bearer grant (RFC 7523; ``services.auth.oauth_server``)::

    POST /oauth/token
    grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<ID token>[&scope=read]

Configuration (environment):

- ``TSUNAGU_OIDC_ISSUER``: the provider's issuer; the ID token's ``iss`` must be exactly this.
- ``TSUNAGU_OIDC_JWKS_URL``: where its signing keys are published (its discovery document's ``jwks_uri``).
- ``TSUNAGU_OIDC_AUDIENCE``: the hub's client id at the provider; the ID token's ``aud`` must name it.
- ``TSUNAGU_OIDC_ORG_CLAIM`` / ``TSUNAGU_OIDC_ROLE_CLAIM`` (default ``tsunagu_org`` / ``tsunagu_role``): the
  claims the provider is set up to put the person's organisation (a hub organisation id) and role (domain.md,
  "People and words") in. That is the one way the mapping is made: at the provider (a claim mapper, or a group
  claim renamed), where the people and their groups are managed.

The ID token is verified by joserfc (through authlib's grant) against the provider's keys: ``RemoteJwks`` fetches
them over HTTPS, keeps them, and fetches them again when a token names a key it does not hold (the provider
rotated), at most once per ``min_refetch_seconds``, and when they are older than ``max_age_seconds``. A token is
refused when the claims give no organisation or role, the role is not a person's role, or the organisation is not
registered in the hub. The hub token then names the organisation, the role, and the person (the ID token's
``sub``), with the role's scopes (``services.auth.ROLE_SCOPES``), or fewer when asked for fewer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import errors as jose_errors
from joserfc.jwk import KeySet

log = logging.getLogger("tsunagu.oidc")

ISSUER_ENV = "TSUNAGU_OIDC_ISSUER"
JWKS_URL_ENV = "TSUNAGU_OIDC_JWKS_URL"
AUDIENCE_ENV = "TSUNAGU_OIDC_AUDIENCE"
ORG_CLAIM_ENV = "TSUNAGU_OIDC_ORG_CLAIM"
ROLE_CLAIM_ENV = "TSUNAGU_OIDC_ROLE_CLAIM"
FETCH_TIMEOUT_SECONDS = 5.0


class JwksUnavailable(Exception):
    """The provider's keys cannot be fetched (and none are held)."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    jwks_url: str
    audience: str
    org_claim: str = "tsunagu_org"
    role_claim: str = "tsunagu_role"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OidcSettings | None:
        """The settings in the environment; ``None`` when no provider is configured (staff sign-in is off).
        ``ValueError`` naming what is missing when it is configured in part."""
        environ = os.environ if environ is None else environ
        values = {name: (environ.get(name) or "").strip() for name in (ISSUER_ENV, JWKS_URL_ENV, AUDIENCE_ENV)}
        if not any(values.values()):
            return None
        if missing := [name for name, value in values.items() if not value]:
            raise ValueError(f"OpenID Connect sign-in is configured in part: set {', '.join(missing)} too")
        return cls(
            issuer=values[ISSUER_ENV],
            jwks_url=values[JWKS_URL_ENV],
            audience=values[AUDIENCE_ENV],
            org_claim=(environ.get(ORG_CLAIM_ENV) or "").strip() or "tsunagu_org",
            role_claim=(environ.get(ROLE_CLAIM_ENV) or "").strip() or "tsunagu_role",
        )


def fetch_json(url: str) -> Any:
    """GET ``url`` and parse its JSON (httpx; ``JwksUnavailable`` on any failure)."""
    try:
        response = httpx.get(url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise JwksUnavailable(f"{url}: {error}") from None


class RemoteJwks:
    """A provider's JWK Set, fetched from ``url`` with ``fetch`` (default ``fetch_json``) and kept."""

    def __init__(
        self,
        url: str,
        *,
        fetch: Callable[[str], Any] = fetch_json,
        min_refetch_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self.fetch = fetch
        self.min_refetch_seconds = min_refetch_seconds
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._keys: KeySet | None = None
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def key_set(self, kid: str | None = None) -> KeySet:
        """The provider's keys; fetched again first when they are old, or do not hold ``kid`` (rate-limited)."""
        with self._lock:
            age = self.clock() - self._fetched
            stale = self._keys is None or age >= self.max_age_seconds
            unknown = kid is not None and self._keys is not None and kid not in {k.kid for k in self._keys.keys}
            if stale or (unknown and age >= self.min_refetch_seconds):
                self._refetch()
            if self._keys is None:
                raise JwksUnavailable(f"no keys from {self.url}")
            return self._keys

    def _refetch(self) -> None:
        self._fetched = self.clock()
        try:
            document = self.fetch(self.url)
            keys = KeySet.import_key_set(document)
        except JwksUnavailable as error:
            log.error("the identity provider's keys cannot be fetched: %s", error)
            return
        except (jose_errors.JoseError, ValueError, TypeError, KeyError, AttributeError) as error:
            log.error("the identity provider's keys at %s are not a JWK Set: %s", self.url, error)
            return
        self._keys = keys


@dataclass(frozen=True)
class OidcProvider:
    """The configured provider (``settings``) and its keys, as the token endpoint uses them."""

    settings: OidcSettings
    jwks: RemoteJwks

    @classmethod
    def from_settings(
        cls, settings: OidcSettings, *, fetch: Callable[[str], Any] = fetch_json, min_refetch_seconds: float = 30.0
    ) -> OidcProvider:
        return cls(settings, RemoteJwks(settings.jwks_url, fetch=fetch, min_refetch_seconds=min_refetch_seconds))


@dataclass(frozen=True)
class StaffMember:
    """A person an ID token names, mapped to the hub: the organisation and role they act in."""

    org: str
    role: str
    user: str
