"""Chain anchors (``services.audit.anchors``): what a hash chain alone cannot show, records cut off the end of a chain and
a chain rewritten and re-hashed to its end, is caught against a signed anchor kept outside the database; an anchor
not signed by the hub's key, or altered, is refused.

Tampering is done as in ``tests/audit/test_tamper.py``: rows deleted with SQL (SQLite and PostgreSQL), records re-saved
through the store's own mapper (so that they open and chain cleanly).
"""

from __future__ import annotations

import base64
import json

import pytest
from joserfc.jwk import KeySet
from typer.testing import CliRunner

from consent.model import Settings
from events.envelope import content_digest
from events.store import AccessLog
from services.audit.anchors import (
    AnchorError,
    AnchorRefused,
    anchor,
    anchors_made,
    heads_digest,
    open_anchor,
    retire_signing_key,
    signed_anchor,
    verify_anchored,
)
from services.audit.replay import access_records, verify
from services.auth.tokens import KeyFileError, SigningKeys, TokenIssuer, TokenVerifier, load_signing_keys
from services.cli.root import app
from services.hub import Hub
from services.reading.timeline import chain_hash
from tests.audit.test_tamper import Table, _overwrite, _resave, _stored, populate

pytestmark = pytest.mark.store


@pytest.fixture
def keys(tmp_path) -> SigningKeys:
    """The hub's signing keys, in a key file as a deployment has them."""
    return load_signing_keys(tmp_path / "hub-signing-key.pem", create=True)


def read_more(hub: Hub, clock, child: str, times: int) -> list[str]:
    ids = []
    for minute in range(times):
        clock.at = clock.at.replace(hour=11, minute=minute)
        ids.append(
            hub.timeline(org="beppu-center", role="caseworker", child=child, purpose="support", user="u").access_record
        )
    return ids


def delete(hub: Hub, child: str, *sequences: int, created: bool = False) -> None:
    """Delete access records of ``child`` (by sequence; ``created``: also its log's first event) with SQL."""
    versions = [s + 1 for s in sequences] + ([1] if created else [])
    with hub.store.recorder.datastore.transaction(commit=True) as cursor:
        for version in versions:
            cursor.execute(
                "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                (AccessLog.create_id(child).hex, version),
            )
            cursor.execute("SELECT changes()")
            assert cursor.fetchone()[0] == 1


def problems(report) -> list[tuple]:
    return [(m.child, m.sequence, m.fault, m.record) for m in report.not_as_anchored]


# --- Anchoring ----------------------------------------------------------------------------------------------


def test_an_anchor_holds_each_chains_head_signed_by_the_hub_and_checkable_with_its_jwks(hub, clock, keys):
    ids = populate(hub, clock)
    last = {r["child"]: r for r in access_records(hub.store)}  # each child's last record, in the log's order
    made = anchor(hub.store, at=clock())

    assert made["heads"] == sorted(
        [
            {
                "log": str(AccessLog.create_id(child)),
                "sequence": count,
                "hash": last[child]["hash"],
                "record": ids[child][-1],
            }
            for child, count in (("c1", 4), ("c2", 2))
        ],
        key=lambda h: h["log"],
    )
    assert made["log_position"] == hub.store.log_position() and made["at"] == clock().isoformat()
    assert made["digest"] == content_digest(made["heads"]) == heads_digest(reversed(made["heads"]))
    assert anchor(hub.store, at=clock())["digest"] == made["digest"]  # nothing read since: the same heads
    read_more(hub, clock, "c2", 1)
    assert anchor(hub.store, at=clock())["digest"] != made["digest"]

    token = signed_anchor(hub.store, keys, at=clock())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": keys.signing_key().kid, "typ": "tsunagu-anchor+jwt"}
    published = KeySet.import_key_set(TokenVerifier(keys).jwks())  # what the hub's JWKS endpoint serves
    opened = open_anchor(token, published)
    assert opened["iss"] == "tsunagu"
    assert {h["log"]: h["sequence"] for h in opened["heads"]} == {
        str(AccessLog.create_id("c1")): 4,
        str(AccessLog.create_id("c2")): 3,
    }


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            lambda hub: _resave(hub, "c1", 4, lambda r: r.update(purpose="emergency")),
            r"the last record of child c1's access log \(#4\) is not intact",
        ),
        (lambda hub: _overwrite(hub, _stored(hub, "c2", 2), b"not a sealed record"), r"\(#2\) does not open"),
    ],
    ids=["edited", "unreadable"],
)
def test_anchoring_refuses_a_chain_whose_last_record_is_not_intact(hub, clock, spoil, message):
    populate(hub, clock)
    spoil(hub)
    with pytest.raises(AnchorError, match=message):
        anchor(hub.store)


# --- What the anchor catches that the chain cannot -------------------------------------------------------------


def test_a_chain_that_grew_still_verifies_and_records_cut_off_its_end_are_caught(hub, clock):
    ids = populate(hub, clock)
    made = anchor(hub.store, at=clock())
    ids["c1"] += read_more(hub, clock, "c1", 2)  # c1 #5, #6 after the anchor: the chain only grows

    grown = verify_anchored(hub.store, made)
    assert grown.ok and grown.anchored == 2 and grown.records == 8, grown.to_dict()

    delete(hub, "c2", 2)  # the last read of c2, which the anchor saw
    delete(hub, "c1", 6, 5)  # the last two reads of c1, made after the anchor
    assert verify(hub.store).ok  # the documented limit: what is left is a valid chain
    report = verify_anchored(hub.store, made)
    assert problems(report) == [("c2", 2, "truncated", ids["c2"][1])]  # c1 still holds what the anchor saw
    (cut,) = report.not_as_anchored
    assert cut.detail.startswith("the chain ends at #1: its last 1 record(s) were removed; the anchor of ")
    assert "末尾の記録の削除" in cut.describe() and cut.describe().startswith(f"child c2 #2 record {ids['c2'][1]}")
    assert [m.problem for m in report.mismatches] == ["anchor"] and not report.ok


def test_a_chain_rewritten_and_rehashed_to_its_end_is_caught(hub, clock):
    ids = populate(hub, clock)
    made = anchor(hub.store, at=clock())

    def disguise(record: dict) -> None:  # who read #3 is changed, and #3 and #4 re-hashed to match
        record["reader"]["user"] = "someone-else"
        record["hash"] = chain_hash(record["prev_hash"], record)

    third = _resave(hub, "c1", 3, disguise)
    _resave(hub, "c1", 4, lambda r: r.update(prev_hash=third["hash"], hash=chain_hash(third["hash"], r)))

    assert verify(hub.store).ok  # the rewritten chain is a valid chain
    report = verify_anchored(hub.store, made)
    assert problems(report) == [("c1", 4, "rewritten", ids["c1"][3])]
    assert f"#4 holds another record (id {ids['c1'][3]}, hash " in report.not_as_anchored[0].detail
    alone = verify_anchored(hub.store, made, child="c2")
    assert alone.ok and alone.anchored == 1


def test_the_anchored_record_with_its_hash_kept_but_its_content_changed_is_rewritten(hub, clock):
    ids = populate(hub, clock)
    made = anchor(hub.store, at=clock())
    _resave(hub, "c2", 2, lambda r: r.update(purpose="emergency"))  # the stored hash no longer covers the content

    report = verify_anchored(hub.store, made)
    assert ("c2", 2, "rewritten", ids["c2"][1]) in problems(report)
    assert "carries the anchored hash, but not the anchored content" in report.not_as_anchored[0].detail


def test_a_record_removed_from_the_middle_and_a_whole_access_log_removed(hub, clock):
    ids = populate(hub, clock)
    made = anchor(hub.store, at=clock())
    read_more(hub, clock, "c1", 1)
    delete(hub, "c1", 4)  # the anchored record, with a later one after it
    delete(hub, "c2", 1, 2, created=True)  # every row of c2's access log

    report = verify_anchored(hub.store, made)
    assert [(m.child, m.sequence, m.fault) for m in report.broken_chains] == [("c1", 4, "missing")]
    anonymous = f"(access log {AccessLog.create_id('c2')})"  # nothing left in the hub names the child
    assert sorted(problems(report)) == [(anonymous, 2, "truncated", ids["c2"][1]), ("c1", 4, "missing", ids["c1"][3])]
    assert "the access log has no records any more" in next(
        m.detail for m in report.not_as_anchored if m.child == anonymous
    )
    assert problems(verify_anchored(hub.store, made, child="c2")) == [("c2", 2, "truncated", ids["c2"][1])]


# --- The command line, on PostgreSQL ------------------------------------------------------------------------


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    """Output as one line (the console wraps long lines at its width)."""
    return " ".join(text.split())


@pytest.mark.postgres
def test_anchor_and_verify_on_postgresql_catch_the_last_record_deleted_with_sql(postgres_url, clock, keys, tmp_path):
    hub = Hub(postgres_url, settings=Settings(), clock=clock)
    try:
        ids = populate(hub, clock)
        key_file, anchor_file = str(keys.path), tmp_path / "anchor-2026-05-10.jwt"
        made = cli("audit", "anchor", "--database", postgres_url, "--key-file", key_file, "--out", str(anchor_file))
        assert made.exit_code == 0, made.output
        assert len(anchor_file.read_text().splitlines()) == 1 and made.stdout == ""
        assert "2 access logs" in flat(made.stderr) and "データベースの外に保管" in made.stderr
        again = cli("audit", "anchor", "--database", postgres_url, "--key-file", key_file, "--out", str(anchor_file))
        assert again.exit_code == 2 and "上書きしません" in flat(again.output)

        read_more(hub, clock, "c1", 2)
        read_more(hub, clock, "c2", 1)
        checked = cli(
            "audit", "verify", "--database", postgres_url, "--anchor", str(anchor_file), "--key-file", key_file
        )
        assert checked.exit_code == 0, checked.output
        assert "9 access records checked" in checked.output and "2 chains checked, 0 no longer" in flat(checked.output)

        Table(postgres_url).delete("c2", 3)  # the read after the anchor: not the anchor's to see
        Table(postgres_url).delete("c2", 2)  # the read the anchor saw
        plain = cli("audit", "verify", "--database", postgres_url)
        assert plain.exit_code == 0, plain.output  # the documented limit of a chain alone

        caught = cli(
            "audit", "verify", "--database", postgres_url, "--anchor", str(anchor_file), "--key-file", key_file
        )
        assert caught.exit_code == 1, caught.output
        output = flat(caught.output)
        assert "NOT AS ANCHORED" in output and f"child c2 #2 record {ids['c2'][1]}" in output
        assert "末尾の記録の削除" in output and "the chain ends at #1" in output
        assert "child c1" not in caught.output
        report = json.loads(
            cli(
                "audit",
                "verify",
                "--database",
                postgres_url,
                "--anchor",
                str(anchor_file),
                "--key-file",
                key_file,
                "--json",
            ).stdout
        )
        assert report["ok"] is False and report["anchored"] == 2 and report["broken_chains"] == []
        assert report["anchor"]["digest"] == open_anchor(anchor_file.read_text(), keys.key_set())["digest"]
        assert [(m["child"], m["sequence"], m["fault"]) for m in report["not_as_anchored"]] == [("c2", 2, "truncated")]
    finally:
        hub.close()


# --- Anchors that are refused -----------------------------------------------------------------------------------


def test_an_altered_or_foreign_anchor_is_refused(make_hub, clock, keys, tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = make_hub(settings=Settings(), database=database)
    populate(hub, clock)
    key_file = str(keys.path)

    def verify_with(token: str, key: str = key_file):
        path = tmp_path / "anchor.jwt"
        path.write_text(token)
        return cli("audit", "verify", "--database", database, "--anchor", str(path), "--key-file", key)

    token = cli("audit", "anchor", "--database", database, "--key-file", key_file).stdout.strip()
    assert verify_with(token).exit_code == 0

    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    refused = verify_with(f"{header}.{payload}.{flipped}")
    assert refused.exit_code == 2 and "アンカーの署名が一致しません" in flat(refused.output)

    # Whoever cut c2's last record off also makes the anchor agree: the payload changes, the signature cannot.
    delete(hub, "c2", 2)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    first = next(r for r in access_records(hub.store) if r["child"] == "c2")
    for head in claims["heads"]:
        if head["log"] == str(AccessLog.create_id("c2")):
            head.update(sequence=1, hash=first["hash"], record=first["id"])
    claims["digest"] = heads_digest(claims["heads"])
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    refused = verify_with(f"{header}.{forged}.{signature}")
    assert refused.exit_code == 2 and "アンカーの署名が一致しません" in flat(refused.output)
    assert verify_with(token).exit_code == 1  # the genuine anchor catches the cut

    other_hub = load_signing_keys(tmp_path / "other-hub.pem", create=True)
    foreign = cli("audit", "anchor", "--database", database, "--key-file", str(other_hub.path)).stdout.strip()
    refused = verify_with(foreign)
    assert refused.exit_code == 2 and "このハブの署名鍵で署名されたアンカーではありません" in flat(refused.output)

    bearer = TokenIssuer(keys).issue(org="beppu-center", role="caseworker", user="u")  # the hub's key, not an anchor
    refused = verify_with(bearer)
    assert refused.exit_code == 2 and "つなぐのアンカーではありません" in flat(refused.output)

    missing = verify_with(token, str(tmp_path / "no-such-key.pem"))
    assert missing.exit_code == 2 and "署名鍵ファイルを読めません" in flat(missing.output)


def test_an_anchor_verifies_after_a_key_rotation_until_its_key_is_retired(hub, clock, keys):
    populate(hub, clock)
    token = signed_anchor(hub.store, keys, at=clock())
    old = keys.signing_key().kid
    keys.rotate()
    assert open_anchor(token, keys.key_set())["heads"]
    keys.retire(old, force=True)
    with pytest.raises(AnchorRefused, match="not signed by a key of this hub"):
        open_anchor(token, keys.key_set())


def test_the_key_that_signed_the_newest_anchor_is_not_retired_until_a_newer_anchor_exists(hub, clock, tmp_path):
    """Retiring the key of the newest anchor would leave no anchor the hub can check (review finding): refused,
    on the command line and the administrator's page alike (both through ``retire_signing_key``), until an anchor
    signed by a later key is made; ``--force`` still retires it. The register names no child."""
    now = [1_800_000_000.0]
    keys = SigningKeys(tmp_path / "keys.pem", create=True, now=lambda: now[0])
    populate(hub, clock)
    old = keys.signing_key().kid
    signed_anchor(hub.store, keys, at=clock())
    keys.rotate()
    now[0] += 3600  # the old key's tokens have expired: only the anchor holds it
    with pytest.raises(KeyFileError) as refused:
        retire_signing_key(hub.store, keys, old)
    assert "最新のアンカー" in refused.value.message_ja and old in {info.kid for info in keys.keys()}

    newer = signed_anchor(hub.store, keys, at=clock())
    retire_signing_key(hub.store, keys, old)
    assert old not in {info.kid for info in keys.keys()}
    assert open_anchor(newer, keys.key_set())["heads"]
    made = anchors_made(hub.store)
    assert [m["kid"] for m in made] == [old, keys.signing_key().kid]
    assert "child" not in json.dumps(made) and all(set(m) == {"at", "kid", "digest", "log_position"} for m in made)


def test_force_retires_the_key_of_the_newest_anchor(hub, clock, keys):
    populate(hub, clock)
    old = keys.signing_key().kid
    signed_anchor(hub.store, keys, at=clock())
    keys.rotate()
    retire_signing_key(hub.store, keys, old, force=True)
    assert old not in {info.kid for info in keys.keys()}


def test_an_anchor_made_before_view_logs_were_anchored_still_opens_and_verifies(hub, clock, keys):
    """Anchors kept from before (no ``views``, their digest over the access logs' heads alone) stay checkable."""
    from joserfc import jwt

    from services.audit.anchors import ANCHOR_TYPE
    from services.auth.tokens import ALGORITHM, ISSUER

    populate(hub, clock)
    made = anchor(hub.store, at=clock())
    old = {k: v for k, v in made.items() if k != "views"} | {"digest": heads_digest(made["heads"])}
    key = keys.signing_key()
    token = jwt.encode(
        {"alg": ALGORITHM, "kid": key.kid, "typ": ANCHOR_TYPE}, {"iss": ISSUER, **old}, key, algorithms=[ALGORITHM]
    )
    opened = open_anchor(token, keys.key_set())
    assert "views" not in opened and verify_anchored(hub.store, opened).ok
