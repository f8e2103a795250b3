"""Encryption at rest and crypto-shredding (暗号化と暗号学的消去).

Every stored event is sealed with AES-256-GCM (``cryptography``) under a *data key*; data keys are kept wrapped by a
*master key* from configuration, and destroying a data key makes everything sealed under it unreadable wherever a
copy lies: the store, its backups, the Kafka topic.

Which key seals what (``key_scope``)
------------------------------------
- An event that names a child (its ``child``, or the ``child`` of the envelope it carries) is sealed under that
  child's data key: the child's published events, and the projections' copies of them (school lists, reports,
  attendance days, case index entries, identity links).
- An event that carries entries about several children (``PER_CHILD``: a month's reports recorded by one
  publish) has each entry sealed under its own child's key, the rest under the hub's.
- An envelope that names the child only by a source's own number (``local_child``, 紐付け待ち) is sealed under a
  key of that (source, number); when the child is erased, the keys of every number linked to the child go too
  (linked by ``identity.linked``, or given to the child on a school's target list).
- What the hub holds outside the child's stream is sealed the same way: a quarantined input under the key of
  the child or number it names (an envelope's ``child`` / ``local_child``, or ``about``: the child on the target
  list that a rejected school-file row is about); a linking-queue entry under its number's key. An input rejected
  before it names anyone (an unreadable message, a row with an unknown school code or no number) stays under
  the hub's key.
- Sealed under the hub's own key, never destroyed: the events that create a stream (they say what the stream is
  about: the metadata that outlives an erasure, like access records), access records, the registry, and the
  ``child.erased`` event itself, so that the erasure stays provable after the key is gone. An access record's
  ``hash`` and ``sequence`` are also kept in the clear beside it (``CLEAR_HEAD``), for the next record to chain to.

Erasure (policy.md, "Erasure")
------------------------------
``HubStore.save`` destroys the child's keys once a ``child.erased`` event is committed (``DataKeys.destroy``: the
wrapped key is overwritten, the row keeps only that a key existed and when it was destroyed). Afterwards an event
sealed under a destroyed key loads as ``Shredded``: a placeholder that keeps the stream's version numbers and
nothing else. Events published about the child later are accepted (the log stays append-only; the policy shows
nothing of an erased child anyway), and their content is sealed under a key **destroyed from the start**
(``DataKeys.ensure``: an erased scope never gets a live key again), so nothing about an erased child is ever held
readable, whenever it arrives. The same transaction appends the destroyed key ids to the
register of erasures (``tsunagu_erasures``), through which every other process forgets them, and what it
decrypted with them, within about two seconds (``events.store.ErasureWatch``).

Keys in configuration (``Keyring``)
-----------------------------------
A JSON file (``TSUNAGU_KEYS_FILE``, default ``tsunagu-keys.json``, created for development with mode 0600) or the
environment (``TSUNAGU_MASTER_KEY`` and ``TSUNAGU_STREAM_SECRET``, base64 of 32 bytes each)::

    {"master_keys": [{"id": "m-2026-11", "key": "<base64 32 bytes>"}, ...], "stream_secret": "<base64>"}

The first master key wraps new data keys; the others still unwrap (rotation: ``tsunagu master-key rotate``
puts a new key in front, ``tsunagu master-key rewrap`` rewraps every live data key under it). ``MasterKey`` is the
interface a KMS would implement (wrap and unwrap, nothing else).
The stream secret keys the HMAC that turns names into stream ids (``stream_id``), so that nothing identifying
(a child's id, an envelope id chosen by a school) can be read from, or guessed into, a stream id.

Backups: the data key table (``tsunagu_data_keys``) must not be kept as long as the event store's backups; back
it up separately with a retention no longer than the promised erasure delay (deploy/README), or keep the data keys
in a KMS. A backup of the events alone is unreadable without them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent, find_id_convertor
from eventsourcing.utils import get_topic, resolve_topic

from events.kinds import POLICY_FIELDS
from events.secret_files import write_secret_file

HUB_SCOPE = "hub"
KEYS_FILE_ENV = "TSUNAGU_KEYS_FILE"
MASTER_KEY_ENV = "TSUNAGU_MASTER_KEY"
STREAM_SECRET_ENV = "TSUNAGU_STREAM_SECRET"
DEFAULT_KEYS_FILE = "tsunagu-keys.json"
FORMAT = b"\x01"  # sealed state: FORMAT + data key id (16 bytes) + nonce (12 bytes) + AES-GCM ciphertext
KEY_CACHE_SECONDS = 300.0  # how long an unwrapped data key stays in memory (erasures elsewhere: ``erasures_after``)
KEY_CACHE_SIZE = 10_000  # keys (and scope names) kept: the children of the last ten publish batches or so


class KeyError_(Exception):
    """Base of the key problems below (named so as not to shadow the builtin)."""


class KeyConfigError(KeyError_):
    """The key configuration is missing or not valid."""


class KeyDestroyed(KeyError_):
    """The data key was destroyed (the child's record was erased): what it sealed cannot be opened any more."""


class KeyUnknown(KeyError_):
    """No data key with this id exists in the key table."""


# --- Master keys and configuration ----------------------------------------------------------------------------


class MasterKey(Protocol):
    """Wraps and unwraps data keys. A KMS implements the same two calls."""

    id: str

    def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class LocalMasterKey:
    """A master key held in configuration: AES-256-GCM key wrapping, bound to the data key's id (``context``)."""

    def __init__(self, key_id: str, key: bytes):
        if len(key) != 32:
            raise KeyConfigError(f"master key {key_id!r} must be 32 bytes (base64 of 32 random bytes)")
        self.id = key_id
        self._aead = AESGCM(key)

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data_key, b"tsunagu-data-key\x00" + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:12], wrapped[12:], b"tsunagu-data-key\x00" + context)


def _b64_key(text: Any, what: str) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError):
        raise KeyConfigError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise KeyConfigError(f"{what} must be 32 bytes, base64-encoded (got {len(raw)} bytes)")
    return raw


@dataclass(frozen=True)
class Keyring:
    """The deployment's master keys (the first wraps new data keys) and the stream-id secret."""

    master_keys: tuple[MasterKey, ...]
    stream_secret: bytes

    @property
    def current(self) -> MasterKey:
        return self.master_keys[0]

    def master(self, key_id: str) -> MasterKey:
        for key in self.master_keys:
            if key.id == key_id:
                return key
        raise KeyConfigError(f"master key {key_id!r} is not configured (it wrapped a data key still in use)")

    @classmethod
    def generate(cls, master_key_id: str | None = None) -> Keyring:
        key_id = master_key_id or f"m-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:6]}"
        return cls((LocalMasterKey(key_id, AESGCM.generate_key(256)),), os.urandom(32))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Keyring:
        entries = data.get("master_keys")
        if not isinstance(entries, list) or not entries:
            raise KeyConfigError("the keys file has no master_keys")
        keys = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
                raise KeyConfigError("each master key has an id and a key")
            keys.append(LocalMasterKey(entry["id"], _b64_key(entry.get("key"), f"master key {entry['id']!r}")))
        return cls(tuple(keys), _b64_key(data.get("stream_secret"), "stream_secret"))

    @classmethod
    def from_config(cls, environ: Mapping[str, str] | None = None, *, create: bool = True) -> Keyring:
        """``TSUNAGU_MASTER_KEY`` + ``TSUNAGU_STREAM_SECRET``, else the file ``TSUNAGU_KEYS_FILE`` (default
        ``tsunagu-keys.json``; created with new keys when missing and ``create``: development and demos)."""
        environ = os.environ if environ is None else environ
        if environ.get(MASTER_KEY_ENV):
            if not environ.get(STREAM_SECRET_ENV):
                raise KeyConfigError(f"{MASTER_KEY_ENV} is set but {STREAM_SECRET_ENV} is not")
            return cls(
                (LocalMasterKey("env", _b64_key(environ[MASTER_KEY_ENV], MASTER_KEY_ENV)),),
                _b64_key(environ[STREAM_SECRET_ENV], STREAM_SECRET_ENV),
            )
        path = Path(environ.get(KEYS_FILE_ENV) or DEFAULT_KEYS_FILE)
        if create and not path.exists():
            create_keys_file(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyConfigError(f"keys file {path} does not exist (set {KEYS_FILE_ENV} or {MASTER_KEY_ENV})") from None
        except (OSError, ValueError) as error:
            raise KeyConfigError(f"keys file {path} cannot be read: {error}") from None
        if not isinstance(data, dict):
            raise KeyConfigError(f"keys file {path} is not a JSON object")
        return cls.from_json(data)


def create_keys_file(path: str | os.PathLike[str], keyring_data: Mapping[str, Any] | None = None) -> None:
    """Write a new keys file (mode 0600, through ``events.secret_files``), unless one exists already (then it is
    kept)."""
    path = Path(path)
    if keyring_data is None:
        keyring_data = {
            "master_keys": [
                {
                    "id": f"m-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:6]}",
                    "key": base64.b64encode(AESGCM.generate_key(256)).decode(),
                }
            ],
            "stream_secret": base64.b64encode(os.urandom(32)).decode(),
        }
    write_secret_file(path, json.dumps(keyring_data, indent=2).encode("utf-8"), replace=False)


# --- Stream ids ---------------------------------------------------------------------------------------------

_stream_secret: bytes | None = None
_stream_lock = threading.Lock()


def configure_stream_ids(secret: bytes) -> None:
    """Set the process's stream-id secret (the store does it when it opens). One secret per process: opening a
    store with another one is refused, since every stream id would change."""
    global _stream_secret, _stream_pads
    with _stream_lock:
        if _stream_secret is not None and not hmac.compare_digest(_stream_secret, secret):
            raise KeyConfigError("this process already opened a store with another stream secret")
        _stream_secret = secret
        _stream_pads = _hmac_pads(secret, b"stream\x00")


def stream_id(name: str) -> UUID:
    """The stream id for ``name`` (e.g. ``child:C-1``): an HMAC under the stream secret, so it tells nothing.

    **Remembered stream ids**: the ids of the last ``STREAM_IDS_REMEMBERED`` names are kept (an HMAC costs about
    7 µs, a look-up 0.2; a publish asks for the same child's and school's streams many times in a batch). The
    secret cannot change once set (``configure_stream_ids`` refuses another), so a remembered id stays right."""
    if _stream_secret is None:
        raise KeyConfigError("no store is open in this process: stream ids need the configured stream secret")
    return _remembered_stream_id(name)


def stream_id_once(name: str) -> UUID:
    """``stream_id`` for a name that is not asked for again soon (an envelope's id, a content digest: each new per
    published event): the same id, not remembered, so that it does not push out of the remembered ids the names a
    publish asks for many times (children, schools, indexes)."""
    if _stream_secret is None:
        raise KeyConfigError("no store is open in this process: stream ids need the configured stream secret")
    return _stream_hmac(name)


STREAM_IDS_REMEMBERED = 16_384  # about 3 MB


@functools.lru_cache(maxsize=STREAM_IDS_REMEMBERED)
def _remembered_stream_id(name: str) -> UUID:
    return _stream_hmac(name)


_stream_pads: tuple[Any, Any] | None = None  # _hmac_pads of the stream secret, set with it


def _hmac_pads(key: bytes, prefix: bytes) -> tuple[Any, Any]:
    """**HMAC from its pads, computed once**: HMAC-SHA-256 (RFC 2104) is ``H((K ^ opad) || H((K ^ ipad) || m))``;
    the two hashes' states after their key blocks (and, for the inner one, after the fixed ``prefix`` of every
    message) are the same for every message under one key, so they are computed once here and each message costs
    two copies of those states, its own bytes and the 32 bytes of the inner digest: about half the time of
    ``hmac.new``, which sets both pads up again for every message. The same bytes as ``hmac.new(key, prefix + m,
    sha256)`` (``tests/events/test_stream_ids.py``)."""
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    inner.update(prefix)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    return inner, outer


def _stream_hmac(name: str) -> UUID:
    """The stream id of ``name``: the first 16 bytes of HMAC-SHA-256(stream secret, ``stream\\x00`` + name)."""
    assert _stream_pads is not None  # stream_id checked the secret; the pads are set with it and never change
    inner, outer = _stream_pads[0].copy(), _stream_pads[1].copy()
    inner.update(name.encode("utf-8"))
    outer.update(inner.digest())
    return UUID(bytes=outer.digest()[:16])


def routing_key(name: str) -> bytes:
    """A Kafka message key for ``name`` (a child or a source's number): stable, and telling nothing."""
    return stream_id(f"route:{name}").hex.encode()


# --- Data keys ----------------------------------------------------------------------------------------------


class DataKeys:
    """The data keys, wrapped, in the table ``tsunagu_data_keys`` of the store's own database.

    A scope (``child:C-1``, ``local:SOURCE\\x1fNUMBER``, ``hub``) has at most one active key; its name is kept only
    as an HMAC. ``destroy(scope)`` overwrites the wrapped keys of the scope: nothing sealed under them opens again.

    Every ``destroy`` also appends one row to the **register of erasures** (``tsunagu_erasures``), in the same
    transaction: its position (1, 2, … in commit order) and the ids of the keys it destroyed. The other processes
    of the deployment read the rows after the last position they saw (``erasures_after``, ``events.store.
    ErasureWatch``) and forget those keys (``forget``) and every aggregate they opened with them.

    ``before_use``, when set, is called before a key is taken from the cache (the store sets its
    ``ErasureWatch.check``, which costs a clock reading except once every ~2 seconds).
    """

    TABLE = "tsunagu_data_keys"
    ERASURES = "tsunagu_erasures"
    OWED = "tsunagu_erasures_owed"  # the register of destructions owed (``owe_destruction``)

    def __init__(
        self,
        datastore: Any,
        keyring: Keyring,
        *,
        postgres: bool,
        schema: str | None = None,
        cache_seconds: float = KEY_CACHE_SECONDS,
        cache_size: int = KEY_CACHE_SIZE,
    ):
        self.datastore = datastore
        self.keyring = keyring
        self.postgres = postgres
        self.table = f'"{schema}".{self.TABLE}' if postgres and schema else self.TABLE
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        # key id -> (key, its cipher, loaded at); scope hash -> (key id, loaded at); both at most cache_size long
        self._by_id: OrderedDict[bytes, tuple[bytes, AESGCM, float]] = OrderedDict()
        self._active: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._destroyed: OrderedDict[bytes, str] = OrderedDict()  # key id -> when (a destroyed key stays destroyed)
        # erased scope hash -> (the id of its key destroyed from the start, the key, made at): seals, never opens
        self._sealing_only: OrderedDict[str, tuple[bytes, bytes, float]] = OrderedDict()
        self.scope_hash = functools.lru_cache(maxsize=cache_size)(self._scope_hash)
        self._lock = threading.RLock()
        self.erasures = f'"{schema}".{self.ERASURES}' if postgres and schema else self.ERASURES
        self.owed = f'"{schema}".{self.OWED}' if postgres and schema else self.OWED
        self.before_use: Any = None  # a callable, run before the cached keys are used (``events.store.ErasureWatch``)
        # a callable, run when something is sealed under an erased child's key destroyed from the start (``ensure``):
        # the store forgets its cached aggregates, which would otherwise hold that content readable here alone
        self.on_sealed_for_erased: Any = None
        self._create_table()

    # SQL differs only in placeholders and types
    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: on PostgreSQL one array parameter in binary (psycopg parses a query's
        placeholders in Python, 500 of them took longer than the query), on SQLite one placeholder per value."""
        if self.postgres:
            return f"{column} = ANY(%b)", [values]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def _read(self, query: str, params: Sequence[Any]) -> list[Any]:
        """A named mechanism, **one read statement**: the rows of one ``SELECT`` of the key table or the register
        of erasures (``?`` placeholders, as ``_sql`` turns them), outside any transaction on PostgreSQL.

        What it replaces: the same statement in the datastore's read transaction (``transaction(commit=False)``),
        which on PostgreSQL is three round trips (``BEGIN``, the statement, ``ROLLBACK``) where the statement
        alone is one: a cold timeline read loads its child's key this way (``_entry``), and those two extra round
        trips were two of the six it made before its turn. Why it is the same: the pool's connections are
        in autocommit (the library's, as ``PostgresRecorder.select_events`` and ``events.snapshots`` read on them),
        so the statement runs in a transaction of its own, with one snapshot of the data, as it did in the read
        transaction (READ COMMITTED: a snapshot per statement either way), and nothing is written. Errors come as
        the library's (``get_connection`` maps psycopg's). On SQLite the datastore's read transaction as before
        (no round trips there). Checked against the read transaction in ``tests/events/test_key_reads.py``."""
        if not self.postgres:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(query, params)
                return list(cursor.fetchall())
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self._sql(query), params)
            return list(cursor.fetchall())

    def _create_table(self) -> None:
        blob = "BYTEA" if self.postgres else "BLOB"
        index = f"{self.TABLE}_active"
        with self.datastore.transaction(commit=True) as cursor:
            if self.postgres:  # processes opening a new database at once create it one after the other
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"tsunagu-keys:{self.table}"])
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (key_id {blob} PRIMARY KEY, scope TEXT NOT NULL, "
                f"master_key TEXT, wrapped {blob}, created_at TEXT NOT NULL, destroyed_at TEXT)"
            )
            cursor.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {self.table} (scope) WHERE destroyed_at IS NULL"
            )
            cursor.execute(  # the erased scopes (``ensure``): small, the destroyed keys' rows only
                f"CREATE INDEX IF NOT EXISTS {self.TABLE}_destroyed ON {self.table} (scope) "
                "WHERE destroyed_at IS NOT NULL"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.erasures} (position BIGINT PRIMARY KEY, "
                f"key_ids {blob} NOT NULL, erased_at TEXT NOT NULL)"
            )
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.owed} (stream TEXT PRIMARY KEY, owed_at TEXT NOT NULL)")

    def _watch(self) -> None:
        """Let the erasure watch look for erasures by other processes before a cached key is used."""
        if self.before_use is not None:
            self.before_use()

    def _scope_hash(self, scope: str) -> str:
        """The HMAC that names ``scope`` in the key table (``scope_hash``, memoised)."""
        return hmac.new(
            self.keyring.stream_secret, b"key-scope\x00" + scope.encode("utf-8"), hashlib.sha256
        ).hexdigest()

    def _remember(self, key_id: bytes, key: bytes, now: float) -> None:
        self._by_id[key_id] = (key, AESGCM(key), now)
        self._by_id.move_to_end(key_id)
        while len(self._by_id) > self.cache_size:
            self._by_id.popitem(last=False)

    def _activate(self, hashed: str, key_id: bytes, now: float) -> None:
        self._active[hashed] = (key_id, now)
        self._active.move_to_end(hashed)
        while len(self._active) > self.cache_size:
            self._active.popitem(last=False)

    def _cached_active(self, hashed: str, now: float) -> tuple[bytes, tuple[bytes, AESGCM, float]] | None:
        """The scope's active key id and its cache entry, while both are fresh (caller holds the lock)."""
        active = self._active.get(hashed)
        cached = self._by_id.get(active[0]) if active else None
        if active and cached and now - active[1] < self.cache_seconds:
            return active[0], cached
        return None

    def ensure(self, scopes: Iterable[str], *, create: bool = True) -> dict[str, tuple[bytes, bytes]]:
        """The active (key id, key) of each scope, creating keys that do not exist yet, in one transaction; with
        ``create=False`` none is created and a scope without an active key is left out (``seal_existing``).

        A named mechanism, **an erased child's key destroyed from the start**: a child's own scope
        (``child_scope``) whose keys were destroyed (an erased child's) never gets a live key again. What is sealed
        for the child later (an event about it published after its erasure, accepted and never shown) is sealed
        under a key made for that and stored already destroyed (no wrapped key, ``destroyed_at`` set), which this
        process keeps in memory only to seal (``_sealing_only``), never to open: what it seals loads as
        ``Shredded`` at once, everywhere, and nothing about an erased child is held readable, whenever it arrives.
        What it replaces: a new live key for the scope, under which such content stayed readable to the hub for
        good (the policy showed none of it, but the store kept it). With ``create=False`` an erased scope is left
        out, as before. Whatever is sealed under such a key makes the store forget its cached aggregates
        (``on_sealed_for_erased``), so that this process, like every other, loads it as ``Shredded``: rare (an
        event about a child after its erasure), and the same clear an erasure makes.

        Only the child's own scope: an erasure also destroys the keys of the numbers linked to the child
        (``HubStore.shred``), but a number can be unlinked (a wrong link) or given to another child later, and what
        comes under it is that other child's, held and opened as before under a new live key."""
        self._watch()
        now = time.monotonic()
        wanted = {scope: self.scope_hash(scope) for scope in set(scopes)}
        out: dict[str, tuple[bytes, bytes]] = {}
        missing: dict[str, str] = {}
        with self._lock:
            for scope, hashed in wanted.items():
                fresh = self._cached_active(hashed, now)
                if fresh is not None:
                    out[scope] = (fresh[0], fresh[1][0])
                elif create and (held := self._cached_sealing_only(hashed, now)) is not None:
                    out[scope] = held
                else:
                    missing[scope] = hashed
        if not missing:
            return out
        sealing_only: dict[str, tuple[bytes, bytes]] = {}
        with self.datastore.transaction(commit=True) as cursor:
            found = self._select_active(cursor, list(missing.values()))
            created_at = datetime.now(UTC).isoformat()
            absent = [hashed for hashed in missing.values() if hashed not in found] if create else []
            children = [  # only a child's own scope can be erased for good (see above)
                hashed
                for scope, hashed in missing.items()
                if scope.startswith(CHILD_SCOPE_PREFIX) and hashed not in found
            ]
            erased = self._select_erased(cursor, children) if create and children else set()
            rows = []
            for hashed in absent:
                key_id, key = uuid.uuid4().bytes, AESGCM.generate_key(256)
                if hashed in erased:
                    sealing_only[hashed] = (key_id, key)
                    cursor.execute(
                        self._sql(
                            f"INSERT INTO {self.table} (key_id, scope, master_key, wrapped, created_at, destroyed_at) "
                            "VALUES (?, ?, NULL, NULL, ?, ?)"
                        ),
                        (key_id, hashed, created_at, created_at),
                    )
                else:
                    rows.append(
                        (key_id, hashed, self.keyring.current.id, self.keyring.current.wrap(key, key_id), created_at)
                    )
            # Up to 100 keys per statement (a batch of new children: one round trip, not one per child). Another
            # process may create a scope's key meanwhile: then its key is the one used.
            for start in range(0, len(rows), 100):
                part = rows[start : start + 100]
                cursor.execute(
                    self._sql(
                        f"INSERT INTO {self.table} (key_id, scope, master_key, wrapped, created_at) "
                        f"VALUES {','.join(['(?,?,?,?,?)'] * len(part))} ON CONFLICT DO NOTHING"
                    ),
                    [value for row in part for value in row],
                )
            found.update(
                self._select_active(cursor, [h for h in missing.values() if h not in found and h not in sealing_only])
            )
        with self._lock:
            for scope, hashed in missing.items():
                if hashed in sealing_only:
                    key_id, key = sealing_only[hashed]
                    self._forget_destroyed(key_id, created_at)  # it opens nothing, here either
                    self._sealing_only[hashed] = (key_id, key, now)
                    self._sealing_only.move_to_end(hashed)
                    while len(self._sealing_only) > self.cache_size:
                        self._sealing_only.popitem(last=False)
                    out[scope] = (key_id, key)
                    continue
                if hashed not in found:  # create=False: no active key
                    continue
                key_id, key = found[hashed]
                if key_id not in self._destroyed:  # not destroyed by another process since the row was read
                    self._activate(hashed, key_id, now)
                    self._remember(key_id, key, now)
                out[scope] = (key_id, key)
        return out

    def _cached_sealing_only(self, hashed: str, now: float) -> tuple[bytes, bytes] | None:
        """An erased scope's key destroyed from the start (``ensure``), while fresh (caller holds the lock)."""
        held = self._sealing_only.get(hashed)
        if held is None or now - held[2] >= self.cache_seconds:
            return None
        return held[0], held[1]

    def _select_erased(self, cursor: Any, hashes: list[str]) -> set[str]:
        """Which of ``hashes`` name a scope with a destroyed key (an erasure's): one query per 500 on the small
        index of destroyed keys, asked only for scopes that have no active key (a new child's, or an erased one's)."""
        erased: set[str] = set()
        for start in range(0, len(hashes), 500):
            condition, params = self._in("scope", hashes[start : start + 500])
            cursor.execute(
                f"SELECT DISTINCT scope FROM {self.table} WHERE destroyed_at IS NOT NULL AND {condition}", params
            )
            erased.update(str(row["scope"]) for row in cursor.fetchall())
        return erased

    def _select_active(self, cursor: Any, hashes: list[str]) -> dict[str, tuple[bytes, bytes]]:
        found: dict[str, tuple[bytes, bytes]] = {}
        for start in range(0, len(hashes), 500):
            condition, params = self._in("scope", hashes[start : start + 500])
            cursor.execute(
                f"SELECT key_id, scope, master_key, wrapped FROM {self.table} "
                f"WHERE destroyed_at IS NULL AND {condition}",
                params,
            )
            for row in cursor.fetchall():
                key_id = bytes(row["key_id"])
                found[row["scope"]] = (key_id, self._unwrap(row["master_key"], bytes(row["wrapped"]), key_id))
        return found

    def _unwrap(self, master_key: str, wrapped: bytes, key_id: bytes) -> bytes:
        try:
            return self.keyring.master(master_key).unwrap(wrapped, key_id)
        except InvalidTag:
            raise KeyConfigError(
                f"data key {key_id.hex()} does not unwrap under master key {master_key!r}: "
                "the master key or the key table was altered"
            ) from None

    def _entry(self, key_id: bytes) -> tuple[bytes, AESGCM, float]:
        """The cache entry (key, cipher, loaded at) of ``key_id``, loaded from the key table when it is not cached
        or not fresh; ``KeyDestroyed`` after its scope was erased, ``KeyUnknown`` if it was never made."""
        self._watch()
        now = time.monotonic()
        with self._lock:
            cached = self._by_id.get(key_id)
            if cached and now - cached[2] < self.cache_seconds:
                return cached
            if key_id in self._destroyed:
                raise KeyDestroyed(f"data key {key_id.hex()} was destroyed at {self._destroyed[key_id]}")
        rows = self._read(f"SELECT master_key, wrapped, destroyed_at FROM {self.table} WHERE key_id = ?", (key_id,))
        row = rows[0] if rows else None
        if row is None:
            raise KeyUnknown(f"data key {key_id.hex()} does not exist")
        if row["destroyed_at"] is not None or row["wrapped"] is None:
            with self._lock:
                self._forget_destroyed(key_id, str(row["destroyed_at"]))
            raise KeyDestroyed(f"data key {key_id.hex()} was destroyed at {row['destroyed_at']}")
        key = self._unwrap(row["master_key"], bytes(row["wrapped"]), key_id)
        with self._lock:
            if key_id in self._destroyed:  # another process's erasure was seen since the row was read
                raise KeyDestroyed(f"data key {key_id.hex()} was destroyed at {self._destroyed[key_id]}")
            self._remember(key_id, key, now)
            return self._by_id[key_id]

    def _forget_destroyed(self, key_id: bytes, destroyed_at: str) -> None:
        """Drop a destroyed key from the cache and remember that it is destroyed (caller holds the lock)."""
        self._by_id.pop(key_id, None)
        self._destroyed[key_id] = destroyed_at
        while len(self._destroyed) > self.cache_size:
            self._destroyed.popitem(last=False)

    def preload(self, key_ids: Iterable[bytes]) -> None:
        """Load the keys ``key_ids`` that are not cached (or not fresh) in one query per 500, before many events
        sealed under different keys are opened (a school's roster names a child per event): one round trip
        instead of one per key. Keys that are destroyed or unknown are left for ``_entry`` to report. A loaded key
        that is not destroyed is its scope's active key (the table allows one per scope), so sealing under that
        scope next (a school's report about a child on its roster) needs no query either."""
        self._watch()
        now = time.monotonic()
        with self._lock:
            todo = [
                k
                for k in dict.fromkeys(key_ids)
                if k not in self._destroyed and not (k in self._by_id and now - self._by_id[k][2] < self.cache_seconds)
            ]
        if not todo:
            return
        rows = []
        for start in range(0, len(todo), 500):
            condition, params = self._in("key_id", todo[start : start + 500])
            rows += self._read(
                f"SELECT key_id, scope, master_key, wrapped, destroyed_at FROM {self.table} WHERE {condition}", params
            )
        self.loaded(rows, now)

    def loaded(self, rows: Iterable[Mapping[str, Any]], now: float | None = None) -> None:
        """Take in rows of the key table read elsewhere (``key_id``, ``scope``, ``master_key``, ``wrapped``,
        ``destroyed_at``), as ``preload`` takes in the rows it reads: a destroyed key is remembered as destroyed; a
        live one is unwrapped, cached (loaded at ``now``) and its scope's active key, unless this process has seen
        it destroyed since. What lets a query that reads something sealed under a key read the key's row with it
        (**the child's key fetched with its snapshot**, ``events.snapshots.ChildSnapshots._select``): the row is
        what ``_entry`` would read a moment later in a statement of its own, and is trusted as that one is."""
        now = time.monotonic() if now is None else now
        for row in rows:
            key_id = bytes(row["key_id"])
            if row["destroyed_at"] is not None or row["wrapped"] is None:
                with self._lock:
                    self._forget_destroyed(key_id, str(row["destroyed_at"]))
                continue
            key = self._unwrap(row["master_key"], bytes(row["wrapped"]), key_id)
            with self._lock:
                if key_id in self._destroyed:  # destroyed by this process since the row was read
                    continue
                self._remember(key_id, key, now)
                self._activate(row["scope"], key_id, now)  # a key not destroyed is its scope's active key

    def destroy(self, scopes: Iterable[str]) -> int:
        """Destroy every key of ``scopes`` (crypto-shredding); how many keys were destroyed."""
        hashes = [self.scope_hash(scope) for scope in set(scopes)]
        if not hashes:
            return 0
        destroyed_at = datetime.now(UTC).isoformat()
        with self.datastore.transaction(commit=True) as cursor:
            marks = ",".join("?" * len(hashes))
            cursor.execute(
                self._sql(f"SELECT key_id FROM {self.table} WHERE destroyed_at IS NULL AND scope IN ({marks})"), hashes
            )
            key_ids = [bytes(row["key_id"]) for row in cursor.fetchall()]
            cursor.execute(
                self._sql(
                    f"UPDATE {self.table} SET wrapped = NULL, master_key = NULL, destroyed_at = ? "
                    f"WHERE destroyed_at IS NULL AND scope IN ({marks})"
                ),
                [destroyed_at, *hashes],
            )
            if key_ids:
                self._register_erasure(cursor, key_ids, destroyed_at)
        with self._lock:
            for key_id in key_ids:
                self._forget_destroyed(key_id, destroyed_at)
            for hashed in hashes:
                self._active.pop(hashed, None)
        return len(key_ids)

    def _register_erasure(self, cursor: Any, key_ids: list[bytes], erased_at: str) -> None:
        """Append the destroyed ``key_ids`` to the register of erasures, at the next position. On PostgreSQL the
        table is locked until the transaction ends, so that positions commit in their order (a reader that saw
        position 7 never misses a 6 committed later); SQLite has one writer at a time anyway."""
        if self.postgres:
            cursor.execute(f"LOCK TABLE {self.erasures} IN EXCLUSIVE MODE")
        cursor.execute(
            self._sql(
                f"INSERT INTO {self.erasures} (position, key_ids, erased_at) "
                f"SELECT COALESCE(MAX(position), 0) + 1, ?, ? FROM {self.erasures}"
            ),
            (b"".join(key_ids), erased_at),
        )

    def owe_destruction(self, streams: Sequence[str]) -> None:
        """A named mechanism, **the register of destructions owed** (``tsunagu_erasures_owed``): note, in a
        transaction of its own committed *before* a ``child.erased`` is stored, that the keys of the child of each
        stream (its stream id in hex: an HMAC, nothing readable) are owed destruction; ``settle_destruction``
        removes the note once they are destroyed (``events.store.HubStore.shred``).

        Why: the erasure's insert commits first and the keys are destroyed after (``HubStore.save``). When the
        COMMIT's answer is lost or the process dies in between, the erasure is stored and its keys live on; the
        note says so to whoever opens the store next (``HubStore.destroy_keys_owed``), which costs one query on a
        table empty almost always, instead of a search of the log for erasures (every child event would have to
        be opened to read its kind). A note whose erasure was never stored (its save failed) is dropped by that
        sweep once it is old. Rows of the same database as the key table: a note is never older than the keys.

        A note already there (an earlier save of the erasure that failed) gets this save's time: the sweep drops a
        note whose erasure is not stored only once it is old, and only the note it judged (``settle_destruction``
        with its ``owed_at``), so a save under way is never left without its note by a stale one's drop."""
        if not streams:
            return
        owed_at = datetime.now(UTC).isoformat()
        with self.datastore.transaction(commit=True) as cursor:
            for stream in dict.fromkeys(streams):
                cursor.execute(
                    self._sql(
                        f"INSERT INTO {self.owed} (stream, owed_at) VALUES (?, ?) "
                        "ON CONFLICT (stream) DO UPDATE SET owed_at = excluded.owed_at"
                    ),
                    (stream, owed_at),
                )

    def destructions_owed(self) -> list[tuple[str, datetime]]:
        """The register of destructions owed: (stream id in hex, when it was noted), oldest first."""
        rows = self._read(f"SELECT stream, owed_at FROM {self.owed} ORDER BY owed_at", ())
        return [(str(row["stream"]), datetime.fromisoformat(str(row["owed_at"]))) for row in rows]

    def settle_destruction(self, stream: str, owed_at: datetime | None = None) -> None:
        """Remove the note that the keys of ``stream``'s child are owed destruction: whatever its time once they
        are destroyed; only the note of ``owed_at`` when it is given (the note judged not to be owed: a save that
        wrote it again since, ``owe_destruction``, keeps it)."""
        with self.datastore.transaction(commit=True) as cursor:
            if owed_at is None:
                cursor.execute(self._sql(f"DELETE FROM {self.owed} WHERE stream = ?"), (stream,))
            else:
                cursor.execute(
                    self._sql(f"DELETE FROM {self.owed} WHERE stream = ? AND owed_at = ?"),
                    (stream, owed_at.isoformat()),
                )

    def erasure_position(self) -> int:
        """The position of the last erasure in the register (0: none yet)."""
        rows = self._read(f"SELECT MAX(position) AS position FROM {self.erasures}", ())
        return int(rows[0]["position"] or 0) if rows else 0

    def erasures_after(self, position: int) -> tuple[int, dict[bytes, str]]:
        """The register's last position and the keys destroyed after ``position`` (key id -> when): one query on
        the register's primary key, which finds nothing almost always."""
        rows = self._read(
            f"SELECT position, key_ids, erased_at FROM {self.erasures} WHERE position > ? ORDER BY position",
            (position,),
        )
        destroyed: dict[bytes, str] = {}
        for row in rows:
            packed = bytes(row["key_ids"])
            for start in range(0, len(packed), 16):
                destroyed[packed[start : start + 16]] = str(row["erased_at"])
        return (int(rows[-1]["position"]) if rows else position), destroyed

    def forget(self, destroyed: Mapping[bytes, str]) -> None:
        """Forget keys another process destroyed (key id -> when): they leave the cache, no scope seals under
        them any more, and they are not cached again (a key row read before the erasure is not trusted)."""
        if not destroyed:
            return
        with self._lock:
            for key_id, destroyed_at in destroyed.items():
                self._forget_destroyed(key_id, destroyed_at)
            for hashed in [h for h, (key_id, _) in self._active.items() if key_id in destroyed]:
                del self._active[hashed]

    def rewrap(self) -> int:
        """Wrap every active data key under the current master key (after adding a new one); how many."""
        count = 0
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                self._sql(
                    f"SELECT key_id, master_key, wrapped FROM {self.table} "
                    "WHERE destroyed_at IS NULL AND master_key <> ?"
                ),
                (self.keyring.current.id,),
            )
            for row in cursor.fetchall():
                key_id = bytes(row["key_id"])
                key = self._unwrap(row["master_key"], bytes(row["wrapped"]), key_id)
                cursor.execute(
                    self._sql(f"UPDATE {self.table} SET master_key = ?, wrapped = ? WHERE key_id = ?"),
                    (self.keyring.current.id, self.keyring.current.wrap(key, key_id), key_id),
                )
                count += 1
        return count

    # --- sealing ---------------------------------------------------------------------------------------------

    def seal(self, scope: str, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` sealed under the scope's active key, created if the scope has none yet."""
        return self._seal(scope, plaintext, aad, create=True)

    def seal_existing(self, scope: str, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` sealed under the scope's **existing** active key, never creating one: ``KeyUnknown`` when
        the scope has none (its keys destroyed: an erased child's). For derived data sealed after the fact (the
        children's snapshots, ``events.snapshots``): an erasure stored between the load and the sealing must not
        leave the erased child's scope a new live key, as ``seal`` would create."""
        return self._seal(scope, plaintext, aad, create=False)

    def _seal(self, scope: str, plaintext: bytes, aad: bytes, *, create: bool) -> bytes:
        self._watch()
        hashed = self.scope_hash(scope)
        with self._lock:
            fresh = self._cached_active(hashed, time.monotonic())
        if fresh is not None:
            key_id, cipher = fresh[0], fresh[1][1]
        else:
            active = self.ensure([scope], create=create)
            if scope not in active:
                raise KeyUnknown(f"no active data key for scope {hashed}")
            key_id, key = active[scope]
            cipher = AESGCM(key)
            with self._lock:
                held = self._sealing_only.get(hashed)
            if held is not None and held[0] == key_id and self.on_sealed_for_erased is not None:
                self.on_sealed_for_erased()  # sealed for an erased child: this process keeps no readable copy
        nonce = os.urandom(12)
        return FORMAT + key_id + nonce + cipher.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext; ``KeyDestroyed`` when its key was destroyed; ``InvalidTag`` when it was altered."""
        if len(sealed) < 1 + 16 + 12 + 16 or sealed[:1] != FORMAT:
            raise InvalidTag()
        key_id, nonce, body = sealed[1:17], sealed[17:29], sealed[29:]
        return self._entry(key_id)[1].decrypt(nonce, body, aad)


def key_scope(state: Mapping[str, Any]) -> str:
    """The key that seals an event's state (see the module docstring): the child it names, else the source's
    own number it names, else the hub's key. Where it looks: the state's own ``child`` (or ``source`` and
    ``local_child``), then in its ``about`` (whom a held input names, ``events.store.Quarantine.hold``), its
    ``envelope`` and its ``raw`` input, in that order."""
    for holder in (state, state.get("about"), state.get("envelope"), state.get("raw")):
        if not isinstance(holder, dict):  # events' states are plain dicts (an ABC check costs more than sealing)
            continue
        child = holder.get("child")
        if isinstance(child, str) and child:
            return f"child:{child}"
        local, source = holder.get("local_child"), holder.get("source")
        if local not in (None, "") and isinstance(source, str) and source:
            return f"local:{source}\x1f{local}"
    return HUB_SCOPE


def local_scope(source: str, local_number: str) -> str:
    return f"local:{source}\x1f{local_number}"


CHILD_SCOPE_PREFIX = "child:"  # the prefix of a child's own scope (``child_scope``)


def child_scope(child: str) -> str:
    return f"{CHILD_SCOPE_PREFIX}{child}"


# --- The mapper ---------------------------------------------------------------------------------------------


class Shredded(Aggregate.Event):
    """What an event sealed under a destroyed key loads as: its place in the stream, nothing else. An aggregate
    that wants to count such places defines ``on_shredded(version)``."""

    def apply(self, aggregate: Any) -> None:
        hook = getattr(aggregate, "on_shredded", None)
        if hook is not None:
            hook(self.originator_version)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SealingMapper(Mapper[UUID]):
    """The library's ``Mapper`` with AES-GCM sealing of each stored event's state. The stream id, the version and
    the topic (the aggregate's class, e.g. ``events.store:ChildRecord.Published``) stay clear; they are bound to
    the ciphertext as associated data, so a state moved to another row or stream does not open. So does an access
    record's chain head (its ``hash`` and ``sequence``, ``CLEAR_HEAD``), bound the same way.

    An event that carries an envelope about a child is stored in two layers: the envelope's payload content is
    sealed under the child's key; the envelope's routing fields and the payload fields the policy reads
    (``events.kinds.POLICY_FIELDS``) are kept under the hub's key, so that after an erasure every decision can
    still be made and replayed while no content can be read. Any other event naming a child is sealed whole under
    the child's key and loads as ``Shredded`` once the key is gone; so is an envelope that names the child only by
    a source's own number (a linking-queue entry: its number is what identifies it, and no decision reads it)."""

    keys: DataKeys | None = None

    def attach(self, keys: DataKeys) -> None:
        self.keys = keys

    @staticmethod
    def _aad(originator_id: Any, version: int, topic: str) -> bytes:
        return f"{originator_id}\x00{version}\x00{topic}".encode()

    @classmethod
    def scopes_of(cls, domain_event: Any, state: Mapping[str, Any]) -> list[str]:
        """Every key sealing ``domain_event`` needs: its own and its per-child entries' (``PER_CHILD``)."""
        items = state.get(PER_CHILD)
        return (
            [cls.scope_of(domain_event, state), *(key_scope(i) for i in items)]
            if isinstance(items, list)
            else [cls.scope_of(domain_event, state)]
        )

    @staticmethod
    def scope_of(domain_event: Any, state: Mapping[str, Any]) -> str:
        """The key an event's content is sealed under (see the module docstring)."""
        if isinstance(domain_event, Aggregate.Created):
            return HUB_SCOPE
        envelope = state.get("envelope")
        if isinstance(envelope, dict) and envelope.get("kind") == "child.erased":
            return HUB_SCOPE
        return key_scope(state)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        assert self.keys is not None, "the store attaches its data keys before saving"
        topic = get_topic(type(domain_event))
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        aad = self._aad(originator_id, version, topic)
        scope = self.scope_of(domain_event, state)
        envelope = state.get("envelope")
        if scope.startswith("child:") and isinstance(envelope, dict) and isinstance(envelope.get("payload"), dict):
            payload = envelope["payload"]
            content = self.keys.seal(scope, self.transcoder.encode(payload), aad + _CONTENT)
            state["envelope"] = dict(envelope, payload={k: v for k, v in payload.items() if k in POLICY_FIELDS})
            state[_SEALED_PAYLOAD] = base64.b64encode(content).decode()
            scope = HUB_SCOPE
        items = state.get(PER_CHILD)
        if isinstance(items, list):
            state[PER_CHILD] = [
                base64.b64encode(
                    self.keys.seal(key_scope(item), self.transcoder.encode(item), aad + _ITEM + str(i).encode())
                ).decode()
                for i, item in enumerate(items)
            ]
        chain_head = getattr(type(domain_event), "chain_head", None)
        head_fields = chain_head(state) if chain_head is not None else None
        if head_fields is not None:  # a hash-chained log's record: its chain head beside the sealed state
            head = self.transcoder.encode(head_fields)
            sealed = self.keys.seal(scope, self.transcoder.encode(state), aad + _HEAD + head)
            return StoredEvent(
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=CLEAR_HEAD + len(head).to_bytes(2, "big") + head + sealed,
            )
        sealed = self.keys.seal(scope, self.transcoder.encode(state), aad)
        return StoredEvent(originator_id=originator_id, originator_version=version, topic=topic, state=sealed)

    @staticmethod
    def _split_head(state: bytes) -> tuple[bytes, bytes]:
        """A stored state's chain head in the clear (``b""``: none) and its sealed part (``CLEAR_HEAD``)."""
        if state[:1] != CLEAR_HEAD:
            return b"", state
        length = int.from_bytes(state[1:3], "big")
        return state[3 : 3 + length], state[3 + length :]

    def clear_head(self, stored_event: StoredEvent) -> dict[str, Any] | None:
        """The chain head ``stored_event`` carries in the clear (``CLEAR_HEAD``), read without opening the sealed
        state; ``None`` when it carries none (an event of another kind, or a record stored before the clear
        heads) or one that is not a chain head (a text ``hash`` and a whole ``sequence`` from 1: an altered state,
        which opening then names, or one written wrong, which the caller then opens instead of trusting it; the
        s10-record review's LOW-3)."""
        head, _ = self._split_head(bytes(stored_event.state))
        if not head:
            return None
        try:
            value = self.transcoder.decode(head)
        except Exception:  # noqa: BLE001 (an altered head, whatever it fails with: the state's opening says why)
            return None
        return chain_head_of(value)

    @staticmethod
    def carries_clear_head(stored_event: StoredEvent) -> bool:
        """Whether ``stored_event``'s state is stored with a chain head in the clear (``CLEAR_HEAD``), whatever the
        head holds: ``services.audit.replay.check_link`` then requires it to be the record's own."""
        return bytes(stored_event.state[:1]) == CLEAR_HEAD

    def preload(self, stored_events: Iterable[StoredEvent]) -> None:
        """Load in one go the keys that seal ``stored_events`` (their outer layer; a child's payloads share one
        key, loaded with the first of them), before they are opened one by one."""
        assert self.keys is not None, "the store attaches its data keys before loading"
        key_ids = []
        for e in stored_events:
            first = e.state[:1]
            if first == FORMAT:
                key_ids.append(bytes(e.state[1:17]))
            elif first == CLEAR_HEAD:  # a record with its chain head in the clear: its sealed part's key
                key_ids.append(self._split_head(bytes(e.state))[1][1:17])
        self.keys.preload(key_ids)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.to_domain_events([stored_event])[0]

    def to_domain_events(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        """``to_domain_event`` for each of ``stored_events``, with every key they were sealed under loaded in two
        queries at most: their own, then those of their per-child entries (``PER_CHILD``), which only show once
        the events are open."""
        assert self.keys is not None, "the store attaches its data keys before loading"
        self.preload(stored_events)
        opened = [self._opened_state(stored) for stored in stored_events]
        self.keys.preload(
            item[1:17]
            for _, state in opened
            if state is not None
            for item in state.get(PER_CHILD) or ()
            if item[:1] == FORMAT
        )
        events = []
        for (aad, state), stored in zip(opened, stored_events):
            if state is None:  # sealed under a destroyed key
                event = object.__new__(Shredded)
                object.__setattr__(
                    event,
                    "__dict__",
                    {
                        "originator_id": stored.originator_id,
                        "originator_version": stored.originator_version,
                        "timestamp": _EPOCH,
                    },
                )
                events.append(event)
                continue
            if isinstance(state.get(PER_CHILD), list):
                state[PER_CHILD] = self._guarded(stored, self._open_items, state[PER_CHILD], aad)
            events.append(self._event_from_state(stored, state))
        return events

    def _opened_state(self, stored_event: StoredEvent) -> tuple[bytes, dict[str, Any] | None]:
        """The event's associated data and its state, opened (its payload too, unless erased; per-child entries
        still sealed, as bytes), or None when its own key was destroyed."""
        keys = self.keys
        assert keys is not None, "the store attaches its data keys before loading"
        aad = self._aad(stored_event.originator_id, stored_event.originator_version, stored_event.topic)
        sealed, outer_aad = bytes(stored_event.state), aad
        if sealed[:1] == CLEAR_HEAD:  # a record with its chain head in the clear, bound to its sealed state
            head, sealed = self._split_head(sealed)
            outer_aad = aad + _HEAD + head
        try:
            state = self._guarded(stored_event, lambda: self.transcoder.decode(keys.open(sealed, outer_aad)))
        except KeyDestroyed:
            return aad, None
        content = state.pop(_SEALED_PAYLOAD, None)
        if content is not None:
            try:
                payload = self._guarded(
                    stored_event,
                    lambda: self.transcoder.decode(keys.open(base64.b64decode(content), aad + _CONTENT)),
                )
                state["envelope"] = dict(state["envelope"], payload=payload)
            except KeyDestroyed:
                pass  # erased: the payload keeps only the fields the policy reads
        items = state.get(PER_CHILD)
        if isinstance(items, list):
            state[PER_CHILD] = [self._guarded(stored_event, base64.b64decode, item) for item in items]
        return aad, state

    @staticmethod
    def _guarded(stored_event: StoredEvent, opening: Any, *args: Any) -> Any:
        """``opening(*args)``, an altered event or one whose key is not in this store reported as such."""
        try:
            return opening(*args)
        except (InvalidTag, KeyUnknown, binascii.Error) as error:
            raise MapperDeserialisationError(
                f"stored event {stored_event.originator_id} v{stored_event.originator_version} "
                f"({stored_event.topic}) does not open: it was altered, or its key is not in this store "
                f"({type(error).__name__})"
            ) from error

    def _open_items(self, items: list[bytes], aad: bytes) -> list[Any]:
        """The per-child entries of an event (``PER_CHILD``); the entries of erased children are left out."""
        assert self.keys is not None
        opened = []
        for i, item in enumerate(items):
            try:
                opened.append(self.transcoder.decode(self.keys.open(item, aad + _ITEM + str(i).encode())))
            except KeyDestroyed:
                continue  # the child was erased: its entry is gone
        return opened

    @staticmethod
    def _event_from_state(stored_event: StoredEvent, state: dict[str, Any]) -> Any:
        """The domain event of ``stored_event`` from its opened, decoded state: what the library's
        ``Mapper.to_domain_event`` does after decoding (eventsourcing 9.5.6), without encoding the state again
        only for the library to decode it (a quarter of the time of loading a stream)."""
        cls = resolve_topic(stored_event.topic)
        # The library's own call casts too: typeshed does not see a class object as Hashable (it is).
        id_type = cast(Hashable, type(stored_event.originator_id))
        state["originator_id"] = find_id_convertor(cls, id_type)(stored_event.originator_id)
        state["originator_version"] = stored_event.originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event


def chain_head_of(value: Any) -> dict[str, Any] | None:
    """The chain head ``value`` holds, ``{"hash", "sequence"}``, when it holds one: a text ``hash`` and a whole
    ``sequence`` from 1 (what a chained record carries); ``None`` otherwise. The one test of a chain head, for the
    one written in the clear (``AccessLog.ReadRecorded.chain_head``) and the one read back (``clear_head``)."""
    if not isinstance(value, dict):
        return None
    chained, sequence = value.get("hash"), value.get("sequence")
    if not isinstance(chained, str) or type(sequence) is not int or sequence < 1:
        return None
    return {"hash": chained, "sequence": sequence}


CLEAR_HEAD = b"\x02"
"""**A chain head in the clear**: the stored state of a hash-chained log's record (an event class with a
``chain_head(state)``, ``events.store.AccessLog.ReadRecorded``) is ``CLEAR_HEAD`` + the head's length (2 bytes,
big-endian) + the head (JSON: the record's ``hash`` and ``sequence``) + the sealed state (``FORMAT`` …), whose
associated data ends with ``_HEAD`` and the head's bytes, so that a head altered or moved to another state makes
the state not open (``audit verify``: unreadable).

Why: the next record of the log is chained to this one's ``hash`` and ``sequence``, and nothing else of it; for a
child's access log that meant decrypting and decoding the whole previous record (its 500 decisions) on every
read. ``SealingMapper.clear_head`` reads the head without opening the state (``HubStore.append_in_turn`` with
``chain_heads``). What it discloses: a SHA-256 over a record that holds a random id (nothing can be guessed from
it) and the record's place in its log (the stream's version says it already). Records stored before it (no
clear head) are opened for their head as before; both are checked against each other by
``tests/events/test_clear_heads.py``."""
_HEAD = b"\x00head\x00"
_SEALED_PAYLOAD = "sealed_payload"
_CONTENT = b"\x00payload"
_ITEM = b"\x00item\x00"
PER_CHILD = "per_child"
"""An event state field holding a list of entries about several children (a projection's entries recorded by one
publish, ``services.rosters.MonthlyReports``): each entry is sealed under the key of the child it names, and is
left out when the event is read after that child's erasure."""


__all__ = [
    "CLEAR_HEAD",
    "DataKeys",
    "KeyConfigError",
    "KeyDestroyed",
    "KeyUnknown",
    "Keyring",
    "LocalMasterKey",
    "MasterKey",
    "PER_CHILD",
    "SealingMapper",
    "Shredded",
    "chain_head_of",
    "child_scope",
    "configure_stream_ids",
    "create_keys_file",
    "key_scope",
    "local_scope",
    "routing_key",
    "stream_id",
]
