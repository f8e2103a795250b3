"""Chain anchors: the head of every child's access-record chain, signed by the hub and kept outside the database,
so that records cut off the end of a chain, or a chain rewritten and re-hashed to its end, are caught.

A hash chain shows any change *inside* it (``services.audit.replay``), but not the loss of its last records, nor a
rewrite from some record to the end with every hash recomputed: what is left is a valid, shorter or different,
chain. An anchor fixes what the chains were at one moment. It is made by ``tsunagu audit anchor`` and kept where
whoever can change the database cannot reach it: printed, sent to the 個人情報保護 officer, put in a write-once
(WORM) bucket. ``tsunagu audit verify --anchor FILE`` then checks that every chain still holds the record the
anchor saw at the sequence it saw it. Chains only grow, so later records may follow it; a chain that ends before
it (``truncated``), holds another record there (``rewritten``), lost it from the middle (``missing``), or holds
one that does not open (``unreadable``) is reported, naming the child and the sequence. With the chain check of
``verify`` (every record links to the one before it) the whole chain up to the anchored record is fixed.

What an anchor holds
--------------------
``anchor`` gives, for every child's ``AccessLog`` that has records: ``log`` (the stream id, an HMAC under the
hub's stream secret, as in the database's own rows), ``sequence`` (how many records the chain had), ``hash`` and
``record`` (the hash and the random id of its last record); ``views``: the same for every reader's view log
(``services.reading.view_log``: its last record cut off, or the whole chain deleted, shows as ``truncated``; an
anchor made before view logs were anchored has no ``views`` and still opens and verifies); and ``log_position`` (the store's last notification
id, the heads are those at or before it), ``at`` (the hub's time) and ``digest`` (SHA-256 of the canonical JSON of
the heads and the view heads together, sorted by ``log``: a short fingerprint to write down or read out over the
phone). It names no child: an anchor leaves the hub's protection (a mail, a bucket, paper), and the list of children with access records is
the list of children at risk. The child is named when the anchor is checked, from the records the hub still holds
(a whole access log gone is named by its stream id: ``tsunagu audit verify --child CHILD --anchor FILE`` tells
whether it was CHILD's).

``signed_anchor`` signs it as a JWT (compact JWS, ES256) with the key that signs the hub's tokens
(``services.auth.SigningKeys``; header ``kid`` and ``typ`` ``tsunagu-anchor+jwt``; claim ``iss`` ``tsunagu``), so
anyone can check with the hub's published JWKS that it came from the hub, and nobody without the hub's key can
make one. The anchor file is that compact JWS: one line of text. ``open_anchor`` checks the signature against a
key set (a bearer token, or an anchor signed by another hub's key, is refused) and returns the anchor. An anchor
stays checkable while its key is in the key file: ``tsunagu keys retire`` ends that, so make a new anchor
(after ``verify --anchor`` with the old one) before retiring the key that signed the old one.

The anchor register
-------------------
Each anchor made is noted in the store (``AnchorRegister``: when, the signing key's ``kid``, the digest and the
log position; nothing that names a child), so that ``retire_signing_key`` can refuse to retire the key that signed
the newest anchor: retiring it would leave no anchor the hub can check. An anchor made on another hub, or before
the register existed, is not in it; ``--force`` retires anyway.

Cost
----
Anchoring pages once through the access-record notifications up to the log position (as ``verify`` does), keeping
the last stored record of each log, and opens only those heads. Checking an anchor does not page the log: for each
anchored log it selects the one row at the anchored version by its primary key (originator id, version), and only
when that row is gone the log's last row, so it costs one or two indexed lookups per anchored child, whatever the
size of the log and however much it grew since. Paging the access-record notifications instead would read every
record of every child to look at one per child.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import KeySet

from events.envelope import content_digest
from events.sealing import stream_id
from events.store import AccessLog, HubStore, _CopiedOnWrite
from services.audit.replay import (
    Loaded,
    Mismatch,
    VerifyReport,
    load,
    record_intact,
    stored_records,
    stream_of,
    verify,
)
from services.auth.tokens import ALGORITHM, ISSUER, KeyFileError, SigningKeys
from services.reading import view_log

ANCHOR_TYPE = "tsunagu-anchor+jwt"


class AnchorError(Exception):
    """The log cannot be anchored as it is (a chain's last record does not open, or is not where it says)."""


class AnchorRefused(Exception):
    """An anchor that is not accepted: not signed by a key of this hub, altered, or not an anchor at all. The
    messages say why, in English and in Japanese."""

    def __init__(self, message: str, message_ja: str):
        super().__init__(message)
        self.message = message
        self.message_ja = message_ja


def heads_digest(heads: Iterable[dict[str, Any]]) -> str:
    """The digest over all heads (the access logs' and the view logs', which are different streams), sorted by
    their log: an anchor without view heads (made before they were anchored) has the digest it always had."""
    return content_digest(sorted(heads, key=lambda h: h["log"]))


def _head(store: HubStore, stored: Any) -> dict[str, Any]:
    loaded = load(store, stored)
    record = loaded.record
    if record is None:
        raise AnchorError(
            f"the last record of access log {loaded.stream} (#{loaded.sequence}) does not open "
            f"({loaded.error}); run 'tsunagu audit verify' before anchoring"
        )
    if (
        record.get("sequence") != loaded.sequence
        or not record_intact(loaded)
        or AccessLog.create_id(str(record.get("child"))) != loaded.stream
    ):
        raise AnchorError(
            f"the last record of child {record.get('child')}'s access log (#{loaded.sequence}) is not "
            f"intact; run 'tsunagu audit verify' before anchoring"
        )
    return {"log": str(loaded.stream), "sequence": loaded.sequence, "hash": record["hash"], "record": record["id"]}


def _view_head(store: HubStore, stored: Any) -> dict[str, Any]:
    loaded = load(store, stored)
    record = loaded.record
    if record is None or not _view_record_intact(record, loaded.stream, loaded.sequence):
        raise AnchorError(
            f"the last record of view log {loaded.stream} (#{loaded.sequence}) does not open or is not intact; "
            f"run 'tsunagu audit verify' before anchoring"
        )
    return {"log": str(loaded.stream), "sequence": loaded.sequence, "hash": record["hash"], "record": record["id"]}


def _view_record_intact(record: Mapping[str, Any], stream: UUID, sequence: int) -> bool:
    reader = record.get("reader") or {}
    return (
        record.get("sequence") == sequence
        and record.get("hash") == view_log.chain_hash(str(record.get("prev_hash")), record)
        and view_log.ViewLog.create_id(str(reader.get("org")), reader.get("user")) == stream
    )


def anchor(store: HubStore, *, at: datetime | None = None) -> dict[str, Any]:
    """The head of every access log with records, at the store's present log position (see the module docstring).
    ``at``: the time to state (default: now)."""
    position = store.log_position()
    last: dict[UUID, Any] = {}
    for stored in stored_records(store, until=position):
        last[stream_of(stored)] = stored  # notifications come in each log's version order
    heads = sorted((_head(store, stored) for stored in last.values()), key=lambda h: h["log"])
    last_views: dict[UUID, Any] = {}
    for stored in view_log.stored_views(store, until=position):
        last_views[stream_of(stored)] = stored
    views = sorted((_view_head(store, stored) for stored in last_views.values()), key=lambda h: h["log"])
    return {
        "at": (at or datetime.now(UTC)).isoformat(),
        "log_position": position,
        "heads": heads,
        "views": views,
        "digest": heads_digest(heads + views),
    }


class AnchorRegister(_CopiedOnWrite, Aggregate):
    """The anchors this hub made, oldest first: ``at``, ``kid``, ``digest``, ``log_position`` (no child, no head)."""

    @staticmethod
    def create_id() -> UUID:
        return stream_id("anchor-register")

    def __init__(self) -> None:
        self.made: list[dict[str, Any]] = []

    @event("AnchorMade")
    def note(self, anchor: dict[str, Any]) -> None:
        self.made.append(anchor)


def anchors_made(store: HubStore) -> list[dict[str, Any]]:
    """The anchors noted in the register, oldest first."""
    register = store.get_or_none(AnchorRegister.create_id())
    return list(register.made) if register is not None else []


def _note(store: HubStore, made: dict[str, Any]) -> None:
    """Add ``made`` to the register (two anchors made at once: the second tries again on the new register)."""
    for attempt in range(5):
        register = store.get_or_none(AnchorRegister.create_id()) or AnchorRegister()
        register.note(anchor=made)
        try:
            store.save(register)
            return
        except IntegrityError:
            if attempt == 4:
                raise


def signed_anchor(store: HubStore, keys: SigningKeys, *, at: datetime | None = None) -> str:
    """``anchor`` as a compact JWS signed by the hub's current signing key, noted in the register."""
    key = keys.signing_key()
    claims = {"iss": ISSUER, **anchor(store, at=at)}
    token = jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": ANCHOR_TYPE}, claims, key, algorithms=[ALGORITHM])
    _note(
        store,
        {"at": claims["at"], "kid": key.kid, "digest": claims["digest"], "log_position": claims["log_position"]},
    )
    return token


def retire_signing_key(store: HubStore, keys: SigningKeys, kid: str, *, force: bool = False) -> None:
    """Retire ``kid`` (``SigningKeys.retire``, with its own refusals), refused too, unless ``force``, when it
    signed the newest anchor in the register: no anchor the hub can check would be left. The one way the CLI
    and the administrator's page retire a key."""
    made = anchors_made(store)
    if not force and made and made[-1]["kid"] == kid:
        raise KeyFileError(
            f"key {kid} signed the newest anchor ({made[-1]['at']}): once retired, no anchor can be checked; "
            f"check it ('tsunagu audit verify --anchor FILE'), make a new anchor ('tsunagu audit anchor'), then "
            f"retire the key (--force to retire it anyway)",
            f"署名鍵「{kid}」は最新のアンカー（{made[-1]['at'][:16].replace('T', ' ')} 作成）に署名しています。"
            f"廃止すると検証できるアンカーがなくなります。先にそのアンカーで検証し、新しいアンカーを作成してから"
            f"廃止してください",
        )
    keys.retire(kid, force=force)


def open_anchor(token: str, keys: KeySet) -> dict[str, Any]:
    """The anchor in ``token`` once its signature is checked against ``keys`` (the hub's key set, or its JWKS
    imported with ``KeySet.import_key_set``); ``AnchorRefused`` saying why it is not accepted."""
    other = AnchorRefused(
        "the anchor is not signed by a key of this hub (another hub's, or a retired key)",
        "このハブの署名鍵で署名されたアンカーではありません（別のハブの鍵、または廃止された鍵）",
    )

    def key_for(obj: Any) -> KeySet:
        if obj.headers().get("kid") not in {k.kid for k in keys.keys}:
            raise other
        return keys

    try:
        decoded = jwt.decode(token.strip(), key_for, algorithms=[ALGORITHM])
    except AnchorRefused:
        raise
    except jose_errors.BadSignatureError:
        raise AnchorRefused(
            "the anchor's signature does not verify: it was altered after signing",
            "アンカーの署名が一致しません（署名の後に書き換えられています）",
        ) from None
    except (jose_errors.JoseError, ValueError, TypeError, KeyError, UnicodeError):
        raise AnchorRefused(
            "the file is not an anchor (a compact JWS made by 'tsunagu audit anchor')",
            "アンカーの形式ではありません（tsunagu audit anchor が作成したファイルを指定してください）",
        ) from None
    claims = decoded.claims
    heads = claims.get("heads") if isinstance(claims, dict) else None
    views = claims.get("views", []) if isinstance(claims, dict) else None  # none in anchors made before view logs
    if (
        not isinstance(heads, list)
        or not isinstance(views, list)
        or decoded.header.get("typ") != ANCHOR_TYPE
        or claims.get("iss") != ISSUER
    ):
        raise AnchorRefused("the signed object is not a tsunagu anchor", "つなぐのアンカーではありません")
    both = heads + views
    if not (all(_well_formed(h) for h in both) and heads_digest(both) == claims.get("digest")):
        raise AnchorRefused("the anchor's heads do not match its digest", "アンカーの内容がダイジェストと一致しません")
    return claims


def _well_formed(head: Any) -> bool:
    try:
        UUID(head["log"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return isinstance(head.get("sequence"), int) and head["sequence"] >= 1 and isinstance(head.get("hash"), str)


# --- Checking the log against an anchor ---------------------------------------------------------------------


def _child(loaded: Loaded | None, stream: UUID, known: str | None) -> str:
    """The child a log is about: ``known``, else from a record of it that still opens, else the log's stream id."""
    record = loaded.record if loaded is not None else None
    if known is not None:
        return known
    if record is not None and AccessLog.create_id(str(record.get("child"))) == stream:
        return str(record["child"])
    return f"(access log {stream})"


def check_head(
    store: HubStore, head: dict[str, Any], at: str, *, child: str | None = None, views: bool = False
) -> Mismatch | None:
    """How the log of ``head`` (``child``'s, when known; a reader's view log with ``views``) no longer holds the
    record the anchor of time ``at`` saw, or ``None``."""
    stream, sequence, record_id = UUID(head["log"]), head["sequence"], head.get("record")
    seen = f"the anchor of {at} saw #{sequence}"
    what = "view log" if views else "access log"

    def problem(fault: str, detail: str, loaded: Loaded | None) -> Mismatch:
        name = f"(view log {stream})" if views else _child(loaded, stream, child)
        return Mismatch(record_id, name, sequence, "anchor", f"{detail}; {seen}", fault)

    rows = store.recorder.select_events(stream, gt=sequence, lte=sequence + 1)
    if not rows:
        latest = store.recorder.select_events(stream, desc=True, limit=1)
        last = load(store, latest[0]) if latest and latest[0].originator_version > 1 else None
        if last is None:
            return problem("truncated", f"the {what} has no records any more", None)
        if last.sequence < sequence:
            return problem(
                "truncated",
                f"the chain ends at #{last.sequence}: its last {sequence - last.sequence} record(s) were removed",
                last,
            )
        return problem("missing", f"record #{sequence} is gone although later records follow", last)
    loaded = load(store, rows[0])
    record = loaded.record
    if record is None:
        return problem("unreadable", f"the record at #{sequence} does not open ({loaded.error})", None)
    if record.get("hash") != head["hash"]:
        return problem(
            "rewritten",
            f"#{sequence} holds another record (id {record.get('id')}, hash "
            f"{str(record.get('hash'))[:12]}…, the anchored one {head['hash'][:12]}…)",
            loaded,
        )
    intact = (
        _view_record_intact(record, stream, sequence)
        if views
        else (
            record_intact(loaded)
            and record.get("sequence") == sequence
            and AccessLog.create_id(str(record.get("child"))) == stream
        )
    )
    if not intact:
        return problem(
            "rewritten", f"the record at #{sequence} carries the anchored hash, but not the anchored content", loaded
        )
    return None


def anchored_heads(anchor: Mapping[str, Any], child: str | None = None) -> list[dict[str, Any]]:
    """The heads of ``anchor``, or the one of ``child``'s log (none when it had no records then)."""
    if child is None:
        return list(anchor["heads"])
    return [h for h in anchor["heads"] if UUID(h["log"]) == AccessLog.create_id(child)]


def verify_against_anchor(store: HubStore, anchor: Mapping[str, Any], *, child: str | None = None) -> list[Mismatch]:
    """For each log in ``anchor`` (or ``child``'s alone), how it no longer holds what the anchor saw: the problems,
    one per log at most (``Mismatch`` with problem ``anchor``). Check the signature first (``open_anchor``)."""
    at = anchor.get("at", "?")
    problems = [check_head(store, head, at, child=child) for head in anchored_heads(anchor, child)]
    if child is None:  # the view logs are readers' chains, checked with the whole log (anchors made before them: none)
        problems += [check_head(store, head, at, views=True) for head in anchor.get("views", [])]
    return [p for p in problems if p is not None]


def verify_anchored(store: HubStore, anchor: Mapping[str, Any], *, child: str | None = None) -> VerifyReport:
    """``verify`` (every access record replayed, every chain checked), then every chain checked against
    ``anchor``: each still holds the record the anchor saw at the sequence it saw it (``tsunagu audit verify
    --anchor``)."""
    report = verify(store, child=child)
    report.anchored = len(anchored_heads(anchor, child)) + (len(anchor.get("views", [])) if child is None else 0)
    report.mismatches.extend(verify_against_anchor(store, anchor, child=child))
    return report
