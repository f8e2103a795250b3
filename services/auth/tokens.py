"""Bearer tokens: who is calling the hub, for which organisation, in which role, with which scopes.

Tokens are JWTs (RFC 7519) signed with ES256 (ECDSA on P-256) by joserfc. The private key signs
(``TokenIssuer``); the public keys verify (``TokenVerifier``). Every token names its key in the ``kid`` header
(the key's RFC 7638 thumbprint) and is verified against the key *set* the JWKS endpoint publishes.

Claims: ``iss`` "tsunagu", ``aud`` "tsunagu-hub", ``sub`` (the person or account), ``org`` (the registered
organisation acted for), ``role`` (domain.md, "People and words"), ``scope`` (space-separated, below), ``iat``,
``exp``, ``jti``; tokens from the client-credentials grant also carry ``client_id`` (the hub then checks, on every
request, that the client is still enabled: ``services.api_deps.get_principal``).

Scopes
------
Every endpoint of the API requires one scope (``services.api_deps.require_scope``). A token carries the scopes it
was issued with: a machine client's (``tsunagu clients add --scopes``, at most those, fewer when it asks for
fewer), or a person's, from the role they act in:

===========================================================================================  ====================
role (a person signed in through OpenID Connect, or ``tsunagu token issue``)                  scopes
===========================================================================================  ====================
caseworker, health_nurse, supervisor, teacher, school_admin, nursery_staff, provider_staff,   ``read publish``
clerk
auditor                                                                                       ``read audit``
hub_admin (the hub's administrator: organisations, settings, clients; reads no child)         ``admin``
adapter (``tsunagu token issue --role adapter``; clients get the scopes they were registered  ``publish``
with)
===========================================================================================  ====================

``publish``: publish events and change case work; ``read``: timelines, ledgers, the agenda, lists; ``audit``:
the auditors' endpoints (access records, replay); ``admin``: administration of the hub. Only the role
``hub_admin`` gets ``admin``; otherwise it is given explicitly, to a machine client (``clients add --scopes
admin``) or a development token (``token issue --scope admin``). An auditor's ``read`` lets an auditor *ask*: the read policy refuses case
content to auditors, and records the refusal. Scopes say what a token may attempt; the read policy
(``consent.policy``) still decides every read, never this module.

Keys and their rotation
-----------------------
``SigningKeys`` keeps the hub's EC P-256 keys in one PEM file (``tsunagu-signing-key.pem`` by default, mode
0600), one PEM block per key, oldest first. The **last** key signs; every key in the file verifies and is listed
in the JWKS. ``tsunagu keys rotate`` appends a new key (which signs from then on); ``tsunagu keys retire KID``
removes an old one once the tokens it signed have expired. The file is rewritten atomically (write, then rename),
and a running server picks the change up without a restart: it re-reads the file at most every
``refresh_seconds`` (1 s), and at once when a token names a key it does not know (a token signed by a key
another process has just added). Tokens signed by a retired key are refused from then on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeGuard

from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, KeySetSerialization

from events.secret_files import write_secret_file

log = logging.getLogger("tsunagu.auth")

ISSUER = "tsunagu"
AUDIENCE = "tsunagu-hub"
ALGORITHM = "ES256"
CURVE = "P-256"
DEFAULT_LIFETIME = timedelta(hours=8)  # tokens of ``tsunagu token issue`` (development)
ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)  # tokens of the token endpoint (machine clients and staff)
MAX_LIFETIME = timedelta(days=31)
LEEWAY_SECONDS = 30  # clock skew between the machine that minted a token and the hub
KEY_FILE_ENV = "TSUNAGU_SIGNING_KEY_FILE"
DEFAULT_KEY_FILE = "tsunagu-signing-key.pem"

# domain.md, "People and words": the roles a person (or an adapter's machine account) acts in.
ROLES = frozenset(
    {
        "caseworker",  # こども家庭センター 児童福祉機能
        "health_nurse",  # 母子保健機能 (保健師)
        "supervisor",  # 統括支援員
        "teacher",
        "school_admin",
        "nursery_staff",
        "provider_staff",
        "clerk",
        "auditor",
        "hub_admin",  # the hub's administrator (organisations, settings, clients): scope admin only
        "adapter",  # machine accounts of adapters
    }
)

SCOPES: dict[str, str] = {
    "publish": "Publish events and change case work, as the token's organisation",
    "read": "Read timelines, ledgers, the agenda and lists, as the read policy allows the token's organisation",
    "audit": "Auditors' endpoints: access records and their replay",
    "admin": "Administration of the hub",
}

_STAFF = frozenset({"read", "publish"})
ROLE_SCOPES: dict[str, frozenset[str]] = {role: _STAFF for role in ROLES} | {
    "auditor": frozenset({"read", "audit"}),
    "hub_admin": frozenset({"admin"}),
    "adapter": frozenset({"publish"}),
}
"""The scopes of a person acting in a role (the table in the module docstring)."""


def scope_text(scopes: Iterable[str]) -> str:
    """Scopes as the space-separated ``scope`` of a token or a token response (RFC 6749, section 3.3)."""
    return " ".join(sorted(set(scopes)))


class KeyFileError(Exception):
    """The signing key file cannot be read, created or changed, or does not hold EC P-256 private keys.
    ``message_ja``: the same in Japanese, for the administrator's page (the English message when not given)."""

    def __init__(self, message: str, message_ja: str | None = None):
        super().__init__(message)
        self.message_ja = message_ja or message


class InvalidToken(Exception):
    """A bearer token the hub does not accept. ``code`` is stable; the messages say why, in English and in
    Japanese for the person whose login failed."""

    def __init__(self, code: str, message: str, message_ja: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.message_ja = message_ja


@dataclass(frozen=True)
class Principal:
    """The verified caller: the organisation it acts for, the role it acts in, the person or account, and what
    its token allows it to attempt."""

    org: str
    role: str
    user: str
    token_id: str | None = None  # the token's jti, for tracing and a later revocation list
    scopes: frozenset[str] = field(default_factory=frozenset)
    client_id: str | None = None  # the machine client of a client-credentials token


# --- Keys ---------------------------------------------------------------------------------------------------


def key_file_path(key_file: str | os.PathLike[str] | None = None) -> Path:
    """The configured key file: the given path, else ``$TSUNAGU_SIGNING_KEY_FILE``, else
    ``tsunagu-signing-key.pem`` in the current directory."""
    return Path(key_file or os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE)


def _with_kid(key: ECKey) -> ECKey:
    """The key with its RFC 7638 thumbprint as ``kid`` (stable across loads of the same key)."""
    return ECKey.import_key(
        key.as_dict(private=key.is_private), {"kid": key.thumbprint(), "alg": ALGORITHM, "use": "sig"}
    )


def _public(key: ECKey) -> ECKey:
    return ECKey.import_key(
        key.as_dict(private=False), {"kid": key.kid or key.thumbprint(), "alg": ALGORITHM, "use": "sig"}
    )


@dataclass(frozen=True)
class KeyInfo:
    """One key of the key file: its ``kid``, when it was added (``None`` for a key written before rotation
    existed), whether it signs (the newest) and, for the others, when they stopped signing (their successor's
    ``added``)."""

    kid: str
    added: datetime | None
    signing: bool
    replaced: datetime | None = None


_BLOCK = re.compile(
    r"(?:^#[ \t]*added[ \t]+(?P<added>\S+)[ \t]*\r?\n)?"
    r"(?P<pem>-----BEGIN (?P<label>[A-Z0-9 ]+)-----\r?\n.*?-----END (?P=label)-----)",
    re.MULTILINE | re.DOTALL,
)


def _parse_key_file(path: Path, data: bytes) -> list[tuple[ECKey, datetime | None]]:
    """The keys of a key file, oldest first, each with when it was added (a ``# added`` line before its block)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"signing key file {path} is not a PEM file") from None
    keys = []
    for match in _BLOCK.finditer(text):
        try:
            key = ECKey.import_key(match["pem"].encode("ascii"))
        except (ValueError, TypeError, jose_errors.JoseError) as error:
            raise KeyFileError(
                f"signing key file {path} holds a block that is not an EC private key ({error})"
            ) from None
        if key.curve_name != CURVE or not key.is_private:
            raise KeyFileError(f"signing key file {path} must hold EC {CURVE} private keys for {ALGORITHM}")
        added = None
        if match["added"]:
            try:
                added = datetime.fromisoformat(match["added"])
            except ValueError:
                raise KeyFileError(f"signing key file {path}: {match['added']!r} is not a time") from None
        keys.append((_with_kid(key), added))
    if not keys:
        raise KeyFileError(f"signing key file {path} holds no EC private key in PEM format")
    return keys


def _key_file_text(keys: list[tuple[ECKey, datetime | None]]) -> bytes:
    blocks = []
    for key, added in keys:
        comment = f"# added {added.astimezone(UTC).isoformat(timespec='seconds')}\n" if added else ""
        blocks.append(comment.encode("ascii") + key.as_pem(private=True).strip() + b"\n")
    return b"".join(blocks)


class SigningKeys:
    """The hub's signing keys, kept in one PEM file (see the module docstring): the last one signs, all verify.

    ``refresh_seconds``: how long the keys read from the file are used before the file is looked at again (a key
    the file does not hold any more stops verifying within that time). ``now`` gives the time for ``rotate`` and
    ``retire``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        refresh_seconds: float = 1.0,
        now: Callable[[], float] = time.time,
    ):
        self.path = Path(path)
        self.refresh_seconds = refresh_seconds
        self.now = now
        self._lock = threading.Lock()
        self._data: bytes | None = None
        self._checked = float("-inf")
        self._keys: list[tuple[ECKey, datetime | None]] = []
        if create and not self.path.exists():
            self._create()
        self._refresh(force=True, strict=True)

    # -- reading

    def _refresh(self, *, force: bool = False, strict: bool = False) -> None:
        """Re-read the file when ``refresh_seconds`` have passed (or ``force``). A file that cannot be read any more
        keeps the keys in use (logged), so that a mistake in the file does not stop a running server; ``strict``
        (at start) raises ``KeyFileError`` instead."""
        moment = time.monotonic()
        if not force and moment - self._checked < self.refresh_seconds:
            return
        with self._lock:
            self._checked = moment
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                error = KeyFileError(f"signing key file {self.path} does not exist")
            except OSError as failure:
                error = KeyFileError(f"signing key file {self.path} cannot be read: {failure.strerror}")
            else:
                if data == self._data:
                    return
                try:
                    self._keys = _parse_key_file(self.path, data)
                    self._data = data
                    return
                except KeyFileError as failure:
                    error = failure
            if strict or not self._keys:
                raise error
            log.error("%s; the keys read before stay in use", error)

    def signing_key(self) -> ECKey:
        """The key that signs new tokens: the newest."""
        self._refresh()
        return self._keys[-1][0]

    def key_set(self, kid: str | None = None) -> KeySet:
        """The public keys that verify. Naming a ``kid`` the set does not hold re-reads the file at once."""
        self._refresh()
        if kid is not None and kid not in {k.kid for k, _ in self._keys}:
            self._refresh(force=True)
        return KeySet([_public(k) for k, _ in self._keys])

    def keys(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        self._refresh(force=True)
        infos = []
        for i, (key, added) in enumerate(self._keys):
            successor = self._keys[i + 1][1] if i + 1 < len(self._keys) else None
            infos.append(
                KeyInfo(
                    kid=key.kid or key.thumbprint(), added=added, signing=i == len(self._keys) - 1, replaced=successor
                )
            )
        return infos

    # -- changing (the ``tsunagu keys`` commands)

    def rotate(self) -> ECKey:
        """Add a new key, which signs from now on; the others keep verifying. The new key's public half."""
        key = _with_kid(ECKey.generate_key(CURVE, private=True))
        self._write(self._current() + [(key, self._utc_now())])
        return _public(key)

    def retire(self, kid: str, *, force: bool = False) -> KeyInfo:
        """Remove the key ``kid``: tokens it signed are refused from then on.

        Refused (``KeyFileError``) for the signing key, and, unless ``force``, for a key that stopped signing less
        than the lifetime of the token endpoint's tokens ago (they may still be in use)."""
        keys = self._current()
        infos = {info.kid: info for info in self.keys()}
        info = infos.get(kid)
        if info is None:
            raise KeyFileError(
                f"no key {kid!r} in {self.path}; the keys are {', '.join(infos)}",
                f"署名鍵「{kid}」はありません（既に廃止されたか、別の鍵です）",
            )
        if info.signing:
            raise KeyFileError(
                f"key {kid} signs the hub's tokens now: rotate first ('tsunagu keys rotate'), "
                f"then retire it once the tokens it signed have expired",
                f"署名鍵「{kid}」は現在トークンの署名に使われているため廃止できません。先に鍵を更新し、"
                f"この鍵で署名されたトークンの有効期限が切れてから廃止してください",
            )
        if not force and info.replaced is not None:
            wait = info.replaced + ACCESS_TOKEN_LIFETIME + timedelta(seconds=LEEWAY_SECONDS) - self._utc_now()
            if wait > timedelta(0):
                raise KeyFileError(
                    f"key {kid} stopped signing at {info.replaced.isoformat()}: tokens it signed may "
                    f"be in use for {int(wait.total_seconds()) + 1} more seconds (--force to retire "
                    f"it anyway)",
                    f"署名鍵「{kid}」で署名されたトークンがまだ有効な可能性があります。"
                    f"あと {int(wait.total_seconds()) // 60 + 1} 分ほど待ってから廃止してください",
                )
        self._write([(k, added) for k, added in keys if k.kid != kid])
        return info

    def _current(self) -> list[tuple[ECKey, datetime | None]]:
        self._refresh(force=True, strict=True)
        return list(self._keys)

    def _utc_now(self) -> datetime:
        return datetime.fromtimestamp(int(self.now()), UTC)

    def _create(self) -> None:
        key = _with_kid(ECKey.generate_key(CURVE, private=True))
        try:  # kept if created meanwhile by another process: that one is used
            write_secret_file(self.path, _key_file_text([(key, self._utc_now())]), replace=False)
        except OSError as error:
            raise KeyFileError(f"signing key file {self.path} cannot be created: {error.strerror}") from None

    def _write(self, keys: list[tuple[ECKey, datetime | None]]) -> None:
        """Replace the file atomically (a reader sees the old keys or the new ones, never half a file)."""
        try:
            write_secret_file(self.path, _key_file_text(keys))
        except OSError as error:
            raise KeyFileError(f"signing key file {self.path} cannot be written: {error.strerror}") from None
        self._refresh(force=True, strict=True)


class _FixedKeys:
    """Keys given in memory (no file): the last one signs, all verify."""

    def __init__(self, keys: Iterable[ECKey]):
        self._keys = [_with_kid(k) if k.is_private else _public(k) for k in keys]
        if not self._keys:
            raise ValueError("at least one key is needed")

    def signing_key(self) -> ECKey:
        return self._keys[-1]

    def key_set(self, kid: str | None = None) -> KeySet:
        return KeySet([_public(k) for k in self._keys])


def load_signing_keys(
    path: str | os.PathLike[str], *, create: bool = False, refresh_seconds: float = 1.0
) -> SigningKeys:
    """The key file ``path`` (see ``SigningKeys``). With ``create``, a missing file is created with one new key,
    readable by its owner only (0600): for development and demonstrations. Production deployments provide the file
    (from their secret store)."""
    return SigningKeys(path, create=create, refresh_seconds=refresh_seconds)


# --- Issuing and verifying ----------------------------------------------------------------------------------


class TokenIssuer:
    """Mints bearer tokens with the current signing key (an ``ECKey``, or the newest of ``SigningKeys``)."""

    def __init__(self, keys: ECKey | SigningKeys, *, now: Callable[[], float] = time.time):
        if isinstance(keys, ECKey) and not keys.is_private:
            raise ValueError("a TokenIssuer needs a private key")
        self.keys: SigningKeys | _FixedKeys = _FixedKeys([keys]) if isinstance(keys, ECKey) else keys
        self.now = now

    @property
    def key(self) -> ECKey:
        """The key that signs now."""
        return self.keys.signing_key()

    def issue(
        self,
        *,
        org: str,
        role: str,
        user: str,
        lifetime: timedelta = DEFAULT_LIFETIME,
        scopes: Iterable[str] | None = None,
        client_id: str | None = None,
    ) -> str:
        """A token for ``user`` acting for ``org`` in ``role``, with ``scopes`` (default: the role's,
        ``ROLE_SCOPES``)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(sorted(ROLES))}")
        if not org or not user:
            raise ValueError("a token names an organisation and a user")
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ValueError(f"a token's lifetime is more than 0 and at most {MAX_LIFETIME.days} days")
        granted = ROLE_SCOPES[role] if scopes is None else frozenset(scopes)
        if unknown := granted - SCOPES.keys():
            raise ValueError(f"unknown scope {', '.join(sorted(unknown))}; one of {', '.join(SCOPES)}")
        key = self.key
        issued_at = int(self.now())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user,
            "org": org,
            "role": role,
            "scope": scope_text(granted),
            "iat": issued_at,
            "exp": issued_at + int(lifetime.total_seconds()),
            "jti": str(uuid.uuid4()),
        }
        if client_id is not None:
            claims["client_id"] = client_id
        return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[ALGORITHM])


class TokenVerifier:
    """Verifies bearer tokens against the public keys (a list, or ``SigningKeys``), chosen by the token's ``kid``."""

    def __init__(self, keys: Iterable[ECKey] | SigningKeys, *, now: Callable[[], float] = time.time):
        self.keys = keys if isinstance(keys, SigningKeys) else _FixedKeys(keys)
        self.now = now
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self.now()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            org={"essential": True},
            role={"essential": True},
            jti={"essential": True},
        )

    def jwks(self) -> KeySetSerialization:
        """The public keys as a JWK Set (RFC 7517), for the JWKS endpoint: every key that verifies."""
        return self.keys.key_set().as_dict(private=False)

    def _key_for(self, obj: Any) -> KeySet:
        kid = obj.headers().get("kid")
        keys = self.keys.key_set(kid if isinstance(kid, str) else None)
        if not isinstance(kid, str) or kid not in {k.kid for k in keys.keys}:
            raise InvalidToken(
                "invalid_token",
                "the token is not signed by a key of this hub",
                "このハブが発行したトークンではありません",
            )
        return keys

    def verify(self, token: str) -> Principal:
        """The caller the token names, or ``InvalidToken`` saying why it is not accepted."""
        try:
            decoded = jwt.decode(token, self._key_for, algorithms=[ALGORITHM])
        except InvalidToken:
            raise
        except jose_errors.BadSignatureError:
            raise InvalidToken(
                "invalid_token", "the token's signature does not verify", "トークンの署名が正しくありません"
            ) from None
        except (jose_errors.JoseError, ValueError, TypeError, KeyError, UnicodeError):
            raise InvalidToken("invalid_token", "the token is malformed", "トークンの形式が正しくありません") from None
        claims = decoded.claims
        if not isinstance(claims, dict):
            raise InvalidToken("invalid_token", "the token carries no claims", "トークンの内容が正しくありません")
        try:
            self._claims.validate(claims)
        except jose_errors.ExpiredTokenError:
            raise InvalidToken(
                "token_expired", "the token has expired", "トークンの有効期限が切れています。ログインし直してください"
            ) from None
        except jose_errors.InvalidClaimError as error:
            if error.claim == "aud":
                raise InvalidToken(
                    "wrong_audience",
                    "the token is not meant for this hub (aud)",
                    "このハブ宛てのトークンではありません",
                ) from None
            if error.claim == "iss":
                raise InvalidToken(
                    "wrong_issuer",
                    "the token was not issued by tsunagu (iss)",
                    "つなぐが発行したトークンではありません",
                ) from None
            raise InvalidToken(
                "invalid_token",
                f"the token's claim {error.claim!r} is not valid",
                f"トークンの項目「{error.claim}」が正しくありません",
            ) from None
        except jose_errors.JoseError as error:
            raise InvalidToken(
                "invalid_token",
                f"the token's claims are not valid ({error.description})",
                "トークンの内容が正しくありません",
            ) from None
        org, role, user, jti = claims.get("org"), claims.get("role"), claims.get("sub"), claims.get("jti")
        if not (_non_empty_text(org) and _non_empty_text(role) and _non_empty_text(user) and _non_empty_text(jti)):
            raise InvalidToken(
                "invalid_token",
                "the claims org, role, sub and jti must be non-empty strings",
                "トークンの内容が正しくありません",
            )
        if role not in ROLES:
            raise InvalidToken(
                "invalid_token", f"unknown role {role!r} in the token", f"トークンの役割「{role}」は登録されていません"
            )
        scope, client_id = claims.get("scope"), claims.get("client_id")
        if not isinstance(scope, str) or not set(scope.split()) <= SCOPES.keys():
            raise InvalidToken(
                "invalid_token",
                "the token's scope is missing or names an unknown scope",
                "トークンの権限（scope）が正しくありません",
            )
        if client_id is not None and not (isinstance(client_id, str) and client_id):
            raise InvalidToken(
                "invalid_token", "the token's client_id must be a non-empty string", "トークンの内容が正しくありません"
            )
        return Principal(
            org=org, role=role, user=user, token_id=jti, scopes=frozenset(scope.split()), client_id=client_id
        )


def _non_empty_text(value: object) -> TypeGuard[str]:
    """Whether a claim's value is a string with something in it."""
    return isinstance(value, str) and bool(value)


def keys_from_file(
    key_file: str | os.PathLike[str] | None = None, *, create: bool = True, refresh_seconds: float = 1.0
) -> tuple[TokenIssuer, TokenVerifier]:
    """The issuer and verifier of a deployment, sharing the key file ``key_file`` (see ``key_file_path``): a
    rotation or a retirement of a key is seen by both without a restart."""
    keys = load_signing_keys(key_file_path(key_file), create=create, refresh_seconds=refresh_seconds)
    return TokenIssuer(keys), TokenVerifier(keys)
