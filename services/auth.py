"""Bearer tokens: who is calling the hub, for which organisation, in which role.

Tokens are JWTs (RFC 7519) signed with ES256 (ECDSA on P-256) by joserfc. The private key signs
(``TokenIssuer``); the public keys verify (``TokenVerifier``). Every token names its key in the ``kid`` header
(the key's RFC 7638 thumbprint) and is verified against a key *set*, so that a later JWKS endpoint
(``TokenVerifier.jwks``) and key rotation (several keys in the set, the newest one signing) need no change to
the tokens or to the callers.

Claims: ``iss`` "tsunagu", ``aud`` "tsunagu-hub", ``sub`` (the person or account), ``org`` (the registered
organisation acted for), ``role`` (domain.md, "People and words"), ``iat``, ``exp``, ``jti``.

This module only says who the caller is. Whether the caller may read anything is decided by the read policy
(``consent.policy``) through the read service, never here.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

ISSUER = "tsunagu"
AUDIENCE = "tsunagu-hub"
ALGORITHM = "ES256"
CURVE = "P-256"
DEFAULT_LIFETIME = timedelta(hours=8)
MAX_LIFETIME = timedelta(days=31)
LEEWAY_SECONDS = 30  # clock skew between the machine that minted a token and the hub
KEY_FILE_ENV = "TSUNAGU_SIGNING_KEY_FILE"
DEFAULT_KEY_FILE = "tsunagu-signing-key.pem"

# domain.md, "People and words": the roles a person (or an adapter's machine account) acts in.
ROLES = frozenset({
    "caseworker",  # こども家庭センター 児童福祉機能
    "health_nurse",  # 母子保健機能 (保健師)
    "supervisor",  # 統括支援員
    "teacher",
    "school_admin",
    "nursery_staff",
    "provider_staff",
    "clerk",
    "auditor",
    "adapter",  # machine accounts of adapters
})


class KeyFileError(Exception):
    """The signing key file cannot be read, created, or is not an EC P-256 private key."""


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
    """The verified caller: the organisation it acts for, the role it acts in, and the person or account."""

    org: str
    role: str
    user: str
    token_id: str | None = None  # the token's jti, for tracing and a later revocation list


# --- Keys ---------------------------------------------------------------------------------------------------

def key_file_path(key_file: str | os.PathLike[str] | None = None) -> Path:
    """The configured key file: the given path, else ``$TSUNAGU_SIGNING_KEY_FILE``, else
    ``tsunagu-signing-key.pem`` in the current directory."""
    return Path(key_file or os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE)


def _with_kid(key: ECKey) -> ECKey:
    """The key with its RFC 7638 thumbprint as ``kid`` (stable across loads of the same key)."""
    return ECKey.import_key(key.as_dict(private=key.is_private), {"kid": key.thumbprint(), "alg": ALGORITHM,
                                                                    "use": "sig"})


def load_signing_key(path: str | os.PathLike[str], *, create: bool = False) -> ECKey:
    """Load the EC P-256 private key in the PEM file ``path``.

    With ``create``, a missing file is created with a new key, readable by its owner only (0600): for
    development and demonstrations. Production deployments provide the file (from their secret store).
    """
    path = Path(path)
    if create and not path.exists():
        _create_key_file(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"signing key file {path} does not exist") from None
    except OSError as error:
        raise KeyFileError(f"signing key file {path} cannot be read: {error.strerror}") from None
    try:
        key = ECKey.import_key(data)
    except (ValueError, TypeError, jose_errors.JoseError) as error:
        raise KeyFileError(f"signing key file {path} is not an EC private key in PEM format ({error})") from None
    if key.curve_name != CURVE or not key.is_private:
        raise KeyFileError(f"signing key file {path} must hold an EC {CURVE} private key for {ALGORITHM}")
    return _with_kid(key)


def _create_key_file(path: Path) -> None:
    key = ECKey.generate_key(CURVE, private=True)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # created meanwhile by another process: use that one
    except OSError as error:
        raise KeyFileError(f"signing key file {path} cannot be created: {error.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(key.as_pem(private=True))


# --- Issuing and verifying ----------------------------------------------------------------------------------

class TokenIssuer:
    """Mints bearer tokens with one private key (the current signing key)."""

    def __init__(self, key: ECKey, *, now: Callable[[], float] = time.time):
        if not key.is_private:
            raise ValueError("a TokenIssuer needs a private key")
        self.key = _with_kid(key)
        self.now = now

    def issue(self, *, org: str, role: str, user: str, lifetime: timedelta = DEFAULT_LIFETIME) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(sorted(ROLES))}")
        if not org or not user:
            raise ValueError("a token names an organisation and a user")
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ValueError(f"a token's lifetime is more than 0 and at most {MAX_LIFETIME.days} days")
        issued_at = int(self.now())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "org": org, "role": role, "iat": issued_at,
                  "exp": issued_at + int(lifetime.total_seconds()), "jti": str(uuid.uuid4())}
        return jwt.encode({"alg": ALGORITHM, "kid": self.key.kid, "typ": "JWT"}, claims, self.key,
                          algorithms=[ALGORITHM])


class TokenVerifier:
    """Verifies bearer tokens against a set of public keys, chosen by the token's ``kid``."""

    def __init__(self, keys: Iterable[ECKey], *, now: Callable[[], float] = time.time):
        public = [ECKey.import_key(k.as_dict(private=False), {"kid": k.kid or k.thumbprint(), "alg": ALGORITHM,
                                                               "use": "sig"}) for k in keys]
        if not public:
            raise ValueError("a TokenVerifier needs at least one key")
        self.keys = KeySet(public)
        self._kids = {k.kid for k in public}
        self.now = now
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self.now()), leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            org={"essential": True},
            role={"essential": True},
            jti={"essential": True},
        )

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517), for a JWKS endpoint."""
        return self.keys.as_dict(private=False)

    def _key_for(self, obj: Any) -> ECKey | KeySet:
        kid = obj.headers().get("kid")
        if not isinstance(kid, str) or kid not in self._kids:
            raise InvalidToken("invalid_token", "the token is not signed by a key of this hub",
                               "このハブが発行したトークンではありません")
        return self.keys

    def verify(self, token: str) -> Principal:
        """The caller the token names, or ``InvalidToken`` saying why it is not accepted."""
        try:
            decoded = jwt.decode(token, self._key_for, algorithms=[ALGORITHM])
        except InvalidToken:
            raise
        except jose_errors.BadSignatureError:
            raise InvalidToken("invalid_token", "the token's signature does not verify",
                               "トークンの署名が正しくありません") from None
        except (jose_errors.JoseError, ValueError, TypeError, KeyError, UnicodeError):
            raise InvalidToken("invalid_token", "the token is malformed",
                               "トークンの形式が正しくありません") from None
        claims = decoded.claims
        if not isinstance(claims, dict):
            raise InvalidToken("invalid_token", "the token carries no claims", "トークンの内容が正しくありません")
        try:
            self._claims.validate(claims)
        except jose_errors.ExpiredTokenError:
            raise InvalidToken("token_expired", "the token has expired",
                               "トークンの有効期限が切れています。ログインし直してください") from None
        except jose_errors.InvalidClaimError as error:
            if error.claim == "aud":
                raise InvalidToken("wrong_audience", "the token is not meant for this hub (aud)",
                                   "このハブ宛てのトークンではありません") from None
            if error.claim == "iss":
                raise InvalidToken("wrong_issuer", "the token was not issued by tsunagu (iss)",
                                   "つなぐが発行したトークンではありません") from None
            raise InvalidToken("invalid_token", f"the token's claim {error.claim!r} is not valid",
                               f"トークンの項目「{error.claim}」が正しくありません") from None
        except jose_errors.JoseError as error:
            raise InvalidToken("invalid_token", f"the token's claims are not valid ({error.description})",
                               "トークンの内容が正しくありません") from None
        org, role, user, jti = claims.get("org"), claims.get("role"), claims.get("sub"), claims.get("jti")
        if not all(isinstance(v, str) and v for v in (org, role, user, jti)):
            raise InvalidToken("invalid_token", "the claims org, role, sub and jti must be non-empty strings",
                               "トークンの内容が正しくありません")
        if role not in ROLES:
            raise InvalidToken("invalid_token", f"unknown role {role!r} in the token",
                               f"トークンの役割「{role}」は登録されていません")
        return Principal(org=org, role=role, user=user, token_id=jti)


def keys_from_file(key_file: str | os.PathLike[str] | None = None, *,
                   create: bool = True) -> tuple[TokenIssuer, TokenVerifier]:
    """The issuer and verifier of a deployment with a single signing key in ``key_file`` (see ``key_file_path``)."""
    key = load_signing_key(key_file_path(key_file), create=create)
    return TokenIssuer(key), TokenVerifier([key])
