"""Machine clients (OAuth 2.0 clients of the client-credentials grant): the accounts organisations' adapters use.

One client per organisation: ``add_client`` refuses a second *enabled* client for an organisation (disable the
old one first, e.g. when a machine is replaced). A client has an id, the organisation it acts for, the scopes it
may ask for (``services.auth.SCOPES``), a secret, and is enabled or disabled. They are kept as events in the hub's
store (``ClientRegistry``, one stream, like the organisations' registry), so that who could act for which
organisation, and since when, has a history.

Secrets are never stored: only their scrypt hash (``cryptography``'s ``Scrypt``, a random 16-byte salt per secret,
N=2^14, r=8, p=1), which ``Scrypt.verify`` checks in constant time. A secret is shown once, when it is made
(``tsunagu clients add``, ``tsunagu clients rotate-secret``). Rotating a secret makes the old one fail at once;
tokens already issued stay valid until they expire (15 minutes). Disabling a client makes its tokens fail at
once: the API looks the client up on every request made with a client-credentials token
(``services.api_deps.get_principal``).

``Client`` implements authlib's ``ClientMixin``, which the token endpoint (``services.auth.oauth_server``) uses.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from authlib.oauth2.rfc6749 import ClientMixin
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eventsourcing.domain import Aggregate, event

from events.problems import Problem, Rejected
from events.retry import retry_conflicts
from events.store import NAMESPACE, HubStore, _CopiedOnWrite
from services.auth.tokens import SCOPES

if TYPE_CHECKING:
    from services.hub import Hub

CLIENTS_ID = uuid5(NAMESPACE, "oauth-clients")  # a fixed, public name, like the organisations' registry
CLIENT_CREDENTIALS = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, HASH_BYTES = 2**14, 8, 1, 16, 32


# --- Secrets ------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64url) of ``secret``, with a new random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = Scrypt(salt=salt, length=HASH_BYTES, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(secret.encode("utf-8"))
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def secret_matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` was made from (constant-time comparison, by ``Scrypt.verify``)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        Scrypt(salt=_unb64(salt), length=len(expected), n=int(n), r=int(r), p=int(p)).verify(
            secret.encode("utf-8", "surrogatepass"), expected
        )
        return True
    except InvalidKey:
        return False
    except ValueError:  # a stored value in another format
        return False


DUMMY_SECRET_HASH = hash_secret(secrets.token_urlsafe(32))
"""A hash no secret is known to match (made at start-up, with the real parameters): what the token endpoint
verifies a secret against when the client id is unknown or disabled, so that such a request costs the same
scrypt work as a wrong secret and its answer cannot tell which client ids exist."""


# --- The stream ---------------------------------------------------------------------------------------------


class ClientRegistry(_CopiedOnWrite, Aggregate):
    """Every machine client of the hub, with its history (each change is one version)."""

    @staticmethod
    def create_id() -> UUID:
        return CLIENTS_ID

    def __init__(self) -> None:
        self.clients: dict[str, dict[str, Any]] = {}

    # ``by``: who made the change (a person signed in to the administration pages, or the login name of whoever ran
    # the command); None in changes stored before it was kept.

    @event("ClientRegistered")
    def register(
        self, client_id: str, org: str, scopes: list, secret_hash: str, at: str, by: str | None = None
    ) -> None:
        self.clients[client_id] = {
            "client_id": client_id,
            "org": org,
            "scopes": list(scopes),
            "secret_hash": secret_hash,
            "enabled": True,
            "registered_at": at,
            "registered_by": by,
            "secret_rotated_at": None,
            "secret_rotated_by": None,
            "disabled_at": None,
            "disabled_by": None,
        }

    @event("SecretRotated")
    def rotate_secret(self, client_id: str, secret_hash: str, at: str, by: str | None = None) -> None:
        self.clients[client_id] = dict(
            self.clients[client_id], secret_hash=secret_hash, secret_rotated_at=at, secret_rotated_by=by
        )

    @event("ClientDisabled")
    def disable(self, client_id: str, at: str, by: str | None = None) -> None:
        self.clients[client_id] = dict(self.clients[client_id], enabled=False, disabled_at=at, disabled_by=by)


@dataclass(frozen=True)
class Client(ClientMixin):
    """A machine client as the token endpoint sees it (authlib's ``ClientMixin``)."""

    client_id: str
    org: str
    scopes: tuple[str, ...]
    enabled: bool
    registered_at: str
    secret_rotated_at: str | None
    disabled_at: str | None
    secret_hash: str
    registered_by: str | None = None  # who made each change (None: stored before it was kept)
    secret_rotated_by: str | None = None
    disabled_by: str | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Client:
        return cls(
            client_id=state["client_id"],
            org=state["org"],
            scopes=tuple(state["scopes"]),
            enabled=state["enabled"],
            registered_at=state["registered_at"],
            secret_rotated_at=state["secret_rotated_at"],
            disabled_at=state["disabled_at"],
            secret_hash=state["secret_hash"],
            registered_by=state.get("registered_by"),
            secret_rotated_by=state.get("secret_rotated_by"),
            disabled_by=state.get("disabled_by"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but the secret's hash."""
        return {
            "client_id": self.client_id,
            "org": self.org,
            "scopes": list(self.scopes),
            "enabled": self.enabled,
            "registered_at": self.registered_at,
            "secret_rotated_at": self.secret_rotated_at,
            "disabled_at": self.disabled_at,
            "registered_by": self.registered_by,
            "secret_rotated_by": self.secret_rotated_by,
            "disabled_by": self.disabled_by,
        }

    # authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        requested = set((scope or "").split()) or set(self.scopes)
        return " ".join(s for s in self.scopes if s in requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        matches = secret_matches(client_secret, self.secret_hash)  # verified whether enabled or not: same time
        return self.enabled and matches

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == CLIENT_CREDENTIALS


def no_such_client(client_id: str) -> Client:
    """A stand-in for an unknown or disabled ``client_id`` at the token endpoint: its secret check verifies the
    secret against ``DUMMY_SECRET_HASH`` and always fails, exactly as a wrong secret does."""
    return Client(
        client_id=client_id,
        org="",
        scopes=(),
        enabled=False,
        registered_at="",
        secret_rotated_at=None,
        disabled_at=None,
        secret_hash=DUMMY_SECRET_HASH,
    )


# --- Reading ------------------------------------------------------------------------------------------------


def list_clients(store: HubStore) -> list[Client]:
    registry = store.peek(CLIENTS_ID)
    return [Client.from_state(c) for c in (registry.clients.values() if registry is not None else ())]


def find_client(store: HubStore, client_id: str) -> Client | None:
    """The client ``client_id`` (enabled or not), or ``None``. One cached lookup (new events are read first)."""
    registry = store.peek(CLIENTS_ID)
    state = registry.clients.get(client_id) if registry is not None else None
    return Client.from_state(state) if state is not None else None


# --- Changing -----------------------------------------------------------------------------------------------


def _registry(store: HubStore) -> ClientRegistry:
    return store.get_or_none(CLIENTS_ID) or ClientRegistry()


def _known(registry: ClientRegistry, client_id: str) -> dict[str, Any]:
    state = registry.clients.get(client_id)
    if state is None:
        raise Rejected(
            [
                Problem(
                    "unknown_client",
                    f"no client {client_id!r}",
                    f"クライアント「{client_id}」は登録されていません",
                    "client_id",
                )
            ]
        )
    if not state["enabled"]:
        raise Rejected(
            [
                Problem(
                    "client_disabled",
                    f"client {client_id!r} is disabled",
                    f"クライアント「{client_id}」は無効化されています",
                    "client_id",
                )
            ]
        )
    return state


def add_client(hub: Hub, *, org: str, scopes: Iterable[str], by: str) -> tuple[Client, str]:
    """Register a client for ``org`` (registered in the hub, without another enabled client) with ``scopes``.
    The client and its secret, which is not kept anywhere: give it to the adapter's operator now."""
    wanted = [s.strip() for s in scopes if s.strip()]
    problems = []
    if org not in hub.orgs():
        problems.append(
            Problem(
                "unknown_organisation",
                f"organisation {org!r} is not registered in the hub",
                f"機関「{org}」はハブに登録されていません",
                "org",
            )
        )
    if not wanted:
        problems.append(
            Problem(
                "no_scopes",
                f"give at least one scope ({', '.join(SCOPES)})",
                f"権限（scope）を1つ以上指定してください（{', '.join(SCOPES)}）",
                "scopes",
            )
        )
    if unknown := sorted(set(wanted) - SCOPES.keys()):
        problems.append(
            Problem(
                "unknown_scope",
                f"unknown scope {', '.join(unknown)}; one of {', '.join(SCOPES)}",
                f"権限「{'、'.join(unknown)}」はありません（{', '.join(SCOPES)}）",
                "scopes",
            )
        )
    client_id = f"tc_{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(32)
    secret_hash = hash_secret(secret)

    def add_once() -> Client:
        registry = _registry(hub.store)
        found = list(problems)
        if existing := [c for c in registry.clients.values() if c["org"] == org and c["enabled"]]:
            found.append(
                Problem(
                    "client_exists",
                    f"organisation {org!r} has a client already ({existing[0]['client_id']}); disable it first",
                    f"機関「{org}」のクライアントは登録済みです（{existing[0]['client_id']}）。先に無効化してください",
                    "org",
                )
            )
        if found:
            raise Rejected(found)
        registry.register(
            client_id=client_id,
            org=org,
            scopes=sorted(set(wanted), key=list(SCOPES).index),
            secret_hash=secret_hash,
            at=_now(hub),
            by=by,
        )
        hub.store.save(registry)  # a concurrent add for the same organisation conflicts on the stream's version
        return Client.from_state(registry.clients[client_id])

    return retry_conflicts(add_once), secret  # tried again, a concurrent add is seen: client_exists


def rotate_secret(hub: Hub, client_id: str, *, by: str) -> tuple[Client, str]:
    """Give ``client_id`` a new secret: the old secret is refused at the token endpoint at once, but tokens already
    issued with it stay valid until they expire (after a leak, disable the client). The client and the new secret."""
    secret = secrets.token_urlsafe(32)
    secret_hash = hash_secret(secret)

    def rotate_once() -> Client:
        registry = _registry(hub.store)
        _known(registry, client_id)
        registry.rotate_secret(client_id=client_id, secret_hash=secret_hash, at=_now(hub), by=by)
        hub.store.save(registry)
        return Client.from_state(registry.clients[client_id])

    return retry_conflicts(rotate_once), secret


def disable_client(hub: Hub, client_id: str, *, by: str) -> Client:
    """Disable ``client_id``: no new tokens, and the tokens it holds are refused from now on."""

    def disable_once() -> Client:
        registry = _registry(hub.store)
        _known(registry, client_id)
        registry.disable(client_id=client_id, at=_now(hub), by=by)
        hub.store.save(registry)
        return Client.from_state(registry.clients[client_id])

    return retry_conflicts(disable_once)


def _now(hub: Hub) -> str:
    moment: datetime = hub.clock()
    return moment.isoformat(timespec="seconds")
