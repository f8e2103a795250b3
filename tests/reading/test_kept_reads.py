"""The proof that a timeline read served from a kept decision (``services.reading.kept``) is the read a fresh
``decide`` at that moment makes, and is recorded as one.

On random small worlds over time (the generators and oracle of ``tests/consent/test_policy_properties.py``: every
kind of event, erasures included), with publishes, settings changes and registry changes between reads and the
clock moved back and forth across the events' times, consent expiries and the ends of emergency windows, every
``Hub.timeline`` read (often the same child by the same kind of reader again, by another user) must return exactly
what ``decide`` on the child's stream replayed from all its events, the registry and the settings at that moment
returns, field for field, and leave one access record with that decision, content digest, child position, registry
version, settings, the read's own ``t`` and user; and ``audit verify`` replays every record exactly. The examples
say how many reads were served from a kept decision (``event``). And at every read, every kept read that would be
served at that moment to its reader kind (``KeptRead.holds``) is checked against a fresh ``decide`` the same way.

Then, one by one: a read again is served from the kept decision; an event about the child, a settings change, a
registry change, a clock set back, a time past ``valid_until`` decide again; an erasure (in this process or seen from
another) empties every kept read; a kept read of another policy version does not hold; the memory bounds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from consent.model import Reader, Settings
from events.store import ChildRecord, ChildStream
from services.audit.replay import access_records
from services.hub import Hub, SettableClock
from services.reading.kept import EVENT_WEIGHT, MAX_WEIGHT, KeptRead, KeptReads
from services.reading.timeline import Returned, Timeline, decide, returned_json
from tests.consent.test_policy_properties import (
    BASE_ORGS,
    FOCUS,
    PROPERTY_SETTINGS,
    PURPOSES,
    READERS,
    ROLES,
    SLOTS,
    T0,
    Oracle,
    Run,
    draw_event,
    hub_settings,
    moment,
    time_of,
    worlds,
)

pytestmark = pytest.mark.store

USERS = ["u1", "u2", None]
KINDS = FOCUS["CASE"] | FOCUS["LEDGER"] | FOCUS["CONSENT"] | FOCUS["EMERGENCY"] | {"child.erased"}


def moments(run: Run) -> list[datetime]:
    """The instants where a decision may change: every event's at, consent expiries, emergency window ends."""
    hours = timedelta(hours=run.oracle.emergency_hours)
    out = {T0}
    for events in run.oracle.events.values():
        for e in events:
            out.add(e.at)
            if e.kind == "emergency.declared":
                out |= {e.at + hours, e.at + hours - timedelta(seconds=1)}
            if e.kind == "consent.granted" and "valid_until" in e.payload:
                out.add(moment(e.payload["valid_until"]))
    return sorted(out)


def key_of(org: str, role: str, purpose: str, child: str) -> tuple[str, str, str, str]:
    return (org, role, purpose, child)


def stream_of(hub: Hub, child: str, version: int | None = None) -> ChildStream | None:
    """``child``'s stream replayed from all its stored events (up to ``version``), as ``decide`` takes it."""
    if version is not None:
        return hub.store.repository.get(ChildRecord.create_id(child), version=version).as_stored() if version else None
    record = hub.store.replayed(ChildRecord.create_id(child))
    return record.as_stored() if record is not None else None


def read_and_check(hub: Hub, org: str, role: str, purpose: str, child: str, user: str | None) -> bool:
    """A ``Hub.timeline`` read, checked against a fresh ``decide`` at that moment on the child's stream replayed
    from all its events; whether it was served from a kept decision."""
    kept = hub.reader.kept
    before = kept._kept.get(key_of(org, role, purpose, child))
    timeline = hub.timeline(org=org, role=role, child=child, purpose=purpose, user=user)
    after = kept._kept.get(key_of(org, role, purpose, child))
    served = before is not None and after is before
    t = datetime.fromisoformat(timeline.t)
    reader = Reader(org=org, role=role, purpose=purpose, t=t, user=user)
    current = hub.settings
    fresh = decide(reader, child, stream_of(hub, child), hub.orgs(), current)
    assert timeline.to_dict() == fresh.timeline(reader, timeline.access_record).to_dict()
    (record,) = [r for r in access_records(hub.store) if r["id"] == timeline.access_record]
    assert record["decision"] == fresh.decision.to_dict()
    assert record["content_digest"] == fresh.content
    assert record["child_position"] == fresh.child_position
    assert record["t"] == timeline.t and record["recorded_at"] == timeline.t
    assert record["reader"] == {"org": org, "role": role, "user": user}
    assert record["registry_version"] == hub.store.registry().version
    assert record["settings"] == current.to_dict()
    assert record["policy_version"] == fresh.decision.policy_version
    return served


def check_every_kept_read(hub: Hub, instants: list[datetime]) -> int:
    """Every read kept that would be served at any of ``instants`` (``KeptRead.holds`` for the child's stream, the
    registry and the settings as stored now: the read's own ``t`` and every instant where a decision may change,
    earlier ones included) is the read a fresh ``decide`` at that instant makes: what any reader kind would be
    served, not only the one that read; how many were checked."""
    registry_version, current, orgs = hub.store.registry().version, hub.settings, hub.orgs()
    checked = 0
    for (org, role, purpose, child), item in list(hub.reader.kept._kept.items()):
        record = stream_of(hub, child)
        for t in instants:
            if item.holds(record.version if record is not None else 0, registry_version, current, t):
                fresh = decide(Reader(org=org, role=role, purpose=purpose, t=t), child, record, orgs, current)
                assert (item.decided.decision, item.decided.content) == (fresh.decision, fresh.content), (org, t)
                assert [e.to_dict() for e in item.decided.entries] == [e.to_dict() for e in fresh.entries]
                assert (item.decided.withheld, item.decided.child_position) == (fresh.withheld, fresh.child_position)
                checked += 1
    return checked


def test_every_read_served_from_a_kept_decision_is_a_fresh_decision_at_that_moment() -> None:
    """Over the examples, some reads must have been served from a kept decision (else the property says nothing
    about them)."""
    served: list[int] = []

    @settings(max_examples=60, **PROPERTY_SETTINGS)
    @given(world=worlds(), data=st.data())
    def reads_over_time(world: dict[str, Any], data: st.DataObject) -> None:
        served.append(reads_checked(world, data))

    reads_over_time()
    assert sum(served) > 0, served


def reads_checked(world: dict[str, Any], data: st.DataObject) -> int:
    """One random world's reads over time, each checked (``read_and_check``, ``check_every_kept_read``); how many
    were served from a kept decision."""
    oracle = Oracle(
        {o["id"]: o for o in world["orgs"]}, world["integrated_center"], world["joint_ledger"], world["emergency_hours"]
    )
    clock = SettableClock(T0)
    hub = Hub("sqlite:///:memory:", clock=clock, settings=hub_settings(world))
    run = Run(hub, clock, oracle)
    served = checked = 0
    try:
        hub.load_orgs(world["orgs"])
        children = world["children"]
        n = 0
        for i, child in enumerate(children):  # registered by a centre, with a case: most later events are accepted
            center = data.draw(st.sampled_from(["cA", "cB", "cC"]), label="registering centre")
            case_type = data.draw(st.sampled_from(["abuse_physical", "abuse_neglect", "parenting"]), label="type")
            first = [
                ("child.registered", {"residence": oracle.orgs[center]["municipality"]}),
                ("case.registered", {"case": f"K{i + 1}", "category": "youhogo", "case_type": case_type}),
            ]
            for kind, payload in first:
                n += 1
                raw = {"id": f"e{n}", "kind": kind, "child": child, "source": center, "basis": "internal"}
                run.publish([(raw | {"at": T0.isoformat(), "payload": payload}, True)])
        seen: dict[tuple[str, str, str, str], datetime] = {}  # reader kinds and children read, and when last
        for _ in range(data.draw(st.integers(3, 10), label="steps")):
            action = data.draw(st.sampled_from(["publish"] * 4 + ["settings", "registry", "none"]), label="action")
            if action == "publish":
                batch = []
                for _ in range(data.draw(st.integers(1, 3), label="batch size")):
                    n += 1
                    batch.append(draw_event(data.draw, oracle, children, n, run.history, KINDS))
                run.publish(batch)
            elif action == "settings":  # what the policy decides under changes (and the oracle follows)
                name = data.draw(st.sampled_from(["emergency_hours", "integrated_center", "joint_ledger"]), label="set")
                value = (
                    data.draw(st.sampled_from([1, 3, 24]), label="hours")
                    if name == "emergency_hours"
                    else not getattr(oracle, name)
                )
                hub.settings_source.change({name: value}, by="test", at=clock())
                setattr(oracle, name, value)
            elif action == "registry":  # a 児童相談所 covers other municipalities
                covers = data.draw(st.lists(st.sampled_from(["100001", "100002", "100003"]), unique=True), label="jA")
                hub.load_orgs([dict(oracle.orgs["jA"], covers=covers)])
                oracle.orgs["jA"] = dict(oracle.orgs["jA"], covers=covers)
            for _ in range(data.draw(st.integers(1, 4), label="reads")):
                again = bool(seen) and data.draw(st.integers(0, 2), label="a reader kind read before") > 0
                if again:  # the same time, later or earlier (a clock set back), across the instants where its
                    # decision may change; and at times by another role of the same organisation (a key without
                    # the role would serve it another role's read: with integrated_center off, OWN differs by role)
                    org, role, purpose, child = data.draw(st.sampled_from(sorted(seen)), label="read before")
                    before = seen[(org, role, purpose, child)]
                    role = data.draw(st.sampled_from([role, role, *ROLES]), label="same or another role")
                    earlier = [x for x in moments(run) if x < before]
                    then = (
                        st.sampled_from(earlier)
                        if earlier and data.draw(st.booleans())
                        else st.sampled_from([before, *moments(run)])
                    )
                    clock.at = data.draw(then, label="then")
                else:
                    org = data.draw(st.sampled_from(READERS), label="reader")
                    role = data.draw(st.sampled_from(ROLES), label="role")
                    purpose = data.draw(st.sampled_from(PURPOSES), label="purpose")
                    child = data.draw(st.sampled_from(children), label="child")
                    clock.at = data.draw(
                        st.sampled_from(moments(run))
                        if data.draw(st.booleans())
                        else st.builds(time_of, st.integers(0, SLOTS)),
                        label="t",
                    )
                user = data.draw(st.sampled_from(USERS), label="user")
                if read_and_check(hub, org, role, purpose, child, user):
                    served += 1
                checked += check_every_kept_read(hub, [clock(), *moments(run)])
                seen[(org, role, purpose, child)] = clock()
        event(f"reads served from a kept decision: {min(served, 3)}+")
        event(f"kept reads that would be served, checked: {min(checked, 10)}+")
        report = hub.verify()
        assert report.ok, [m.to_dict() for m in report.mismatches]
        return served
    finally:
        hub.close()


# --- One by one -------------------------------------------------------------------------------------------------

ORGS = [*BASE_ORGS[:1], {"id": "jA", "type": "child_guidance_center", "prefecture": "10", "covers": ["100002"]}]
ORGS += BASE_ORGS[1:]


def envelope(n: int, child: str, kind: str, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "kind": kind,
        "child": child,
        "source": "cA",
        "basis": "internal",
        "at": at.isoformat(),
        "payload": payload,
    }


def registered(hub: Hub, *children: str) -> None:
    batch = []
    for i, child in enumerate(children):
        batch.append(envelope(10 * i + 1, child, "child.registered", T0, {"residence": "100001"}))
        case = {"case": f"K{i}", "category": "youhogo", "case_type": "abuse_physical"}
        batch.append(envelope(10 * i + 2, child, "case.registered", T0, case))
    assert all(r.outcome == "accepted" for r in hub.publish(batch))


def kept_of(hub: Hub, child: str, org: str = "cA", purpose: str = "support") -> KeptRead | None:
    return hub.reader.kept._kept.get((org, "caseworker", purpose, child))


def read(hub: Hub, child: str, user: str | None = "u1", org: str = "cA", purpose: str = "support") -> Timeline:
    return hub.timeline(org=org, role="caseworker", child=child, purpose=purpose, user=user)


def test_a_read_again_is_served_from_the_kept_decision_and_each_change_decides_again(tmp_path: Path) -> None:
    clock = SettableClock(T0 + timedelta(hours=2))
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}", clock=clock, settings=Settings(joint_ledger=True))
    try:
        hub.load_orgs(ORGS)
        registered(hub, "c1", "c2")
        first = read(hub, "c1", user="u1")
        kept = kept_of(hub, "c1")
        assert kept is not None and first.allowed and len(first.entries) == 2
        second = read(hub, "c1", user="u2")  # another user of the same kind of reader: the same decision
        assert kept_of(hub, "c1") is kept
        assert second.to_dict() | {"access_record": ""} == first.to_dict() | {"access_record": ""}
        records = {r["id"]: r for r in access_records(hub.store)}
        assert records[second.access_record]["reader"]["user"] == "u2"  # recorded with its own user
        assert second.access_record != first.access_record
        second.entries.clear()  # a caller's list is its own
        assert len(read(hub, "c1").entries) == 2

        def decided_again(change: str, org: str = "cA", purpose: str = "support") -> Timeline:
            before = kept_of(hub, "c1", org, purpose)
            timeline = read(hub, "c1", org=org, purpose=purpose)
            assert kept_of(hub, "c1", org, purpose) is not before, change
            return timeline

        clock.at = T0 + timedelta(hours=3)
        note = envelope(3, "c1", "note.recorded", T0 + timedelta(hours=3), {"text": "面談"})
        assert hub.publish([note])[0].outcome == "accepted"
        assert len(decided_again("an event about the child").entries) == 3
        # a registry change: jA comes to cover c1's municipality, and reads its case
        assert not read(hub, "c1", org="jA").entries and not read(hub, "c1", org="jA").entries
        hub.load_orgs([dict(ORGS[1], covers=["100001", "100002"])])
        assert len(decided_again("a registry change", org="jA").entries) == 1
        # time alone: an emergency window (24 h) opens the centre's emergency read and closes it
        clock.at = T0 + timedelta(hours=4)
        emergency = envelope(4, "c1", "emergency.declared", T0 + timedelta(hours=4), {"reason": "緊急"})
        assert hub.publish([emergency])[0].outcome == "accepted"
        assert read(hub, "c1", purpose="emergency").allowed
        kept = kept_of(hub, "c1", purpose="emergency")
        assert kept is not None and kept.valid_until == T0 + timedelta(hours=28)
        clock.at = T0 + timedelta(hours=27, minutes=59)
        assert read(hub, "c1", purpose="emergency").allowed and kept_of(hub, "c1", purpose="emergency") is kept
        clock.at = T0 + timedelta(hours=28)
        assert not decided_again("the window's end", purpose="emergency").allowed
        clock.at = T0 + timedelta(hours=3)  # a clock set back, before the window opened
        assert not decided_again("a clock set back", purpose="emergency").allowed
        clock.at = T0 + timedelta(hours=6)
        assert decided_again("the window again", purpose="emergency").allowed
        hub.settings_source.change({"emergency_hours": 1}, by="test", at=clock())  # from 24: the window ended at 5 h
        assert not decided_again("a settings change", purpose="emergency").allowed
        report = hub.verify()
        assert report.ok and report.records == len(list(access_records(hub.store))), report.to_dict()
    finally:
        hub.close()


def test_an_erasure_empties_every_kept_read_in_this_process_and_in_another(tmp_path: Path) -> None:
    clock = SettableClock(T0 + timedelta(hours=2))
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database, clock=clock)
    other = Hub(database, clock=clock)  # another API process on the same store
    try:
        hub.load_orgs(ORGS)
        registered(hub, "c1", "c2", "c3")
        for child in ("c1", "c2", "c3"):
            read(hub, child)
            read(other, child)
        assert len(hub.reader.kept) == 3 and len(other.reader.kept) == 3
        erased = envelope(9, "c1", "child.erased", T0 + timedelta(hours=2), {"reason": "誤登録"})
        assert hub.publish([erased])[0].outcome == "accepted"
        hub.reader.kept.check_erasures()
        assert len(hub.reader.kept) == 0  # seen at once by the process that erased
        assert len(other.reader.kept) == 3
        other.store.erasures.check_now()  # what ErasureWatch does within ERASURE_CHECK_SECONDS
        before = kept_of(other, "c2")
        again = read(other, "c2")
        assert kept_of(other, "c2") is not before and len(other.reader.kept) == 1 and again.allowed
        gone = read(other, "c1")
        assert (gone.reason, gone.entries) == ("erased", [])
        assert hub.verify().ok
    finally:
        other.close()
        hub.close()


def test_a_read_decided_while_an_erasure_is_seen_is_not_kept(tmp_path: Path) -> None:
    """``KeptReads.keep`` keeps nothing when the register of erasures moved since the read began to be decided
    (a read that began before the erasure was seen serves only itself)."""
    clock = SettableClock(T0 + timedelta(hours=2))
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database, clock=clock)
    other = Hub(database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        registered(hub, "c1", "c2")
        kept = hub.reader.kept
        reader = Reader(org="cA", role="caseworker", purpose="support", t=clock())
        record = stream_of(hub, "c2")
        noted = kept.check_erasures()  # a read of c2 begins
        item = kept.decide(reader, "c2", record, hub.orgs(), hub.store.registry().version, hub.settings)
        erased = envelope(9, "c1", "child.erased", T0 + timedelta(hours=2), {"reason": "誤登録"})
        assert other.publish([erased])[0].outcome == "accepted"
        hub.store.erasures.check_now()  # seen by this process before that read kept its decision
        assert not kept.keep(reader, "c2", item, noted)
        assert kept.check_erasures() != noted and len(kept) == 0
        assert kept.keep(reader, "c2", item, kept.check_erasures()) and len(kept) == 1  # decided after: kept
    finally:
        other.close()
        hub.close()


@pytest.mark.unit
def test_a_kept_read_holds_only_under_what_it_was_decided_under() -> None:
    from consent.model import ReadDecision
    from consent.policy import POLICY_VERSION
    from services.reading.timeline import Decided

    decided = Decided("c1", ReadDecision(True, "evaluated", (), POLICY_VERSION), [], 0, "digest", 0, 0)
    t, until = T0, T0 + timedelta(hours=5)
    item = KeptRead(decided, 4, 2, Settings(), POLICY_VERSION, t, until)
    assert item.holds(4, 2, Settings(), t) and item.holds(4, 2, Settings(), until - timedelta(microseconds=1))
    assert not item.holds(5, 2, Settings(), t)  # the child's stream moved
    assert not item.holds(4, 3, Settings(), t)  # the registry changed
    assert not item.holds(4, 2, Settings(emergency_hours=1), t)  # a setting changed
    assert not item.holds(4, 2, Settings(), t - timedelta(microseconds=1))  # a clock set back
    assert not item.holds(4, 2, Settings(), until)  # valid_until reached
    older = KeptRead(decided, 4, 2, Settings(), "an older policy", t, None)
    assert not older.holds(4, 2, Settings(), t)  # decided under another policy version
    assert KeptRead(decided, 4, 2, Settings(), POLICY_VERSION, t, None).holds(4, 2, Settings(), t + timedelta(days=9))


def test_kept_reads_are_bounded_in_number_and_in_events(tmp_path: Path) -> None:
    clock = SettableClock(T0 + timedelta(hours=2))
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}", clock=clock)
    try:
        hub.load_orgs(ORGS)
        registered(hub, "c1", "c2", "c3")
        orgs, version, current = hub.orgs(), hub.store.registry().version, hub.settings
        reader = Reader(org="cA", role="caseworker", purpose="support", t=clock())
        records = {c: stream_of(hub, c) for c in ("c1", "c2", "c3")}
        by_number = KeptReads(hub.store, maxsize=2)
        for child in ("c1", "c2", "c3"):
            by_number.decide(reader, child, records[child], orgs, version, current)
        assert len(by_number) == 2 and by_number.holding(reader, "c1", records["c1"].version, version, current) is None
        assert by_number.holding(reader, "c3", records["c3"].version, version, current) is not None
        one = by_number.holding(reader, "c3", records["c3"].version, version, current)
        assert one is not None and one.weight == one.decided.content_bytes + EVENT_WEIGHT * 3  # bytes: 2 events
        assert one.decided.content_bytes == len(
            returned_json(
                one.decided.decision,
                Returned(one.decided.entries, [e.to_dict() for e in one.decided.entries], one.decided.withheld),
            )
        )
        by_weight = KeptReads(hub.store, max_weight=2 * one.weight)  # the three children's reads weigh the same
        for child in ("c1", "c2", "c3"):
            by_weight.decide(reader, child, records[child], orgs, version, current)
        assert len(by_weight) == 2 and by_weight.weight == 2 * one.weight
        assert by_weight.holding(reader, "c1", records["c1"].version, version, current) is None
    finally:
        hub.close()


# --- A read's stream copied before deciding: kept only under the version of the events decided on ----------------


def race_world(tmp_path: Path) -> tuple[Hub, Hub, SettableClock]:
    """A reading hub (an API process) and a publishing one on the same store, c1 shared with cB on case K1."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    clock = SettableClock(T0 + timedelta(hours=2))
    reading, publishing = Hub(database, clock=clock), Hub(database, clock=clock)
    publishing.load_orgs(ORGS)
    batch = [
        envelope(1, "c1", "child.registered", T0, {"residence": "100001"}),
        envelope(2, "c1", "case.registered", T0, {"case": "K1", "category": "youhogo", "case_type": "abuse_physical"}),
        envelope(3, "c1", "case.member_assigned", T0, {"case": "K1", "member": "cB"}),
        envelope(4, "c1", "case.shared", T0, {"case": "K1", "summary": "家庭訪問の結果（要対協で共有）"}),
    ]
    batch[3]["basis"] = "cwa-25-2"
    assert all(r.outcome == "accepted" for r in publishing.publish(batch))
    return reading, publishing, clock


def served_as_fresh(hub: Hub, timeline: Timeline, reader: Reader) -> None:
    """``timeline`` is what a fresh ``decide`` on the stream as stored makes, and its record says so."""
    fresh = decide(reader, timeline.child, stream_of(hub, timeline.child), hub.orgs(), hub.settings)
    assert timeline.to_dict() == fresh.timeline(reader, timeline.access_record).to_dict()
    (record,) = [r for r in access_records(hub.store) if r["id"] == timeline.access_record]
    assert record["child_position"] == fresh.child_position


@pytest.mark.parametrize("meanwhile", ["case.member_removed", "child.erased"])
def test_a_read_decided_while_another_thread_fast_forwards_the_cached_record_is_kept_under_its_own_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """The interleaving of two request threads, forced: while a read of c1 by cB is being decided, another process
    removes cB from the case (or erases c1, inside this process's erasure-watch window) and another reading thread
    of this process reads c1, fast-forwarding the cached record in place. The read decided on the events before is
    kept under their version, so a later read decides again on the stream as stored."""
    from services.reading import kept as kept_module

    hub, other, clock = race_world(tmp_path)
    try:
        read(hub, "c1", user="warm")  # the record cached, as an earlier read leaves it
        decide_now = kept_module.decide
        raced: list[int] = []

        def decide_while_another_thread_reads(*args: Any) -> Any:
            decided = decide_now(*args)
            if not raced:
                raced.append(1)
                hub.store.erasures.due = __import__("time").monotonic() + 60  # the watch not due meanwhile
                payload = {"case": "K1", "member": "cB"} if meanwhile == "case.member_removed" else {"reason": "誤登録"}
                change = envelope(5, "c1", meanwhile, T0 + timedelta(hours=1), payload)
                assert other.publish([change])[0].outcome == "accepted"
                read(hub, "c1", user="other thread")  # fast-forwards the cached record
            return decided

        monkeypatch.setattr(kept_module, "decide", decide_while_another_thread_reads)
        first = read(hub, "c1", org="cB", purpose="meeting")
        monkeypatch.setattr(kept_module, "decide", decide_now)
        assert raced and [e.kind for e in first.entries] == ["case.shared"]  # decided before the change: 4 events
        kept = kept_of(hub, "c1", org="cB", purpose="meeting")
        assert kept is not None and (kept.child_version, kept.decided.child_position) == (5, 4)
        clock.at = T0 + timedelta(hours=2, seconds=1)
        later = read(hub, "c1", user="u2", org="cB", purpose="meeting")
        served_as_fresh(hub, later, Reader(org="cB", role="caseworker", purpose="meeting", t=clock(), user="u2"))
        assert later.entries == [] and (later.reason == "erased") == (meanwhile == "child.erased")
        assert hub.verify().ok
    finally:
        other.close()
        hub.close()


def test_kept_reads_under_concurrent_reads_and_publishes_are_each_the_stream_at_their_version(
    tmp_path: Path,
) -> None:
    """Real threads, nothing patched: four reader kinds read one child in threads of one hub while another hub on
    the same store publishes about it, a bounded number of times (counted, not timed). After each publish, every
    kept read must have been decided on exactly the events of the stream at the version it is kept under; at the
    end each is checked against a fresh ``decide`` on the stream replayed at that version."""
    import sys
    import threading

    database = f"sqlite:///{tmp_path / 'hub.db'}"
    clock = SettableClock(T0 + timedelta(days=30))
    hub, other = Hub(database, clock=clock), Hub(database, clock=clock)
    interval = sys.getswitchinterval()
    stop = threading.Event()
    errors: list[str] = []
    kinds = [("cA", "caseworker", "support"), ("cA", "supervisor", "support"), ("cA", "clerk", "meeting")]
    kinds.append(("cB", "caseworker", "support"))

    def reading(org: str, role: str, purpose: str) -> None:
        while not stop.is_set():
            try:
                hub.timeline(org=org, role=role, child="c1", purpose=purpose, user="u")
            except Exception as e:  # noqa: BLE001 (reported by the test)
                errors.append(repr(e))

    threads = [threading.Thread(target=reading, args=kind) for kind in kinds]
    try:
        other.load_orgs(ORGS)
        batch = [envelope(1, "c1", "child.registered", T0, {"residence": "100001"})]
        batch += [
            envelope(n, "c1", "note.recorded", T0 + timedelta(minutes=n), {"text": "面談" * 20}) for n in range(2, 200)
        ]
        assert all(r.outcome == "accepted" for r in other.publish(batch))
        sys.setswitchinterval(0.0005)  # threads switch often: the interleavings come sooner
        for thread in threads:
            thread.start()
        mismatched = []
        for n in range(1000, 1040):
            note = envelope(n, "c1", "note.recorded", T0 + timedelta(days=1, minutes=n), {"text": "追記"})
            assert other.publish([note])[0].outcome == "accepted"
            for key, item in list(hub.reader.kept._kept.items()):
                if item.decided.child_position != item.child_version - 1:  # version 1 + one per event
                    mismatched.append((key, item.child_version, item.decided.child_position))
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
        assert not errors and not mismatched, (errors[:3], mismatched[:3])
        assert len(hub.reader.kept) == len(kinds)
        for (org, role, purpose, child), item in list(hub.reader.kept._kept.items()):
            reader = Reader(org=org, role=role, purpose=purpose, t=item.decided_at)
            fresh = decide(reader, child, stream_of(hub, child, item.child_version), hub.orgs(), hub.settings)
            assert (item.decided.content, item.decided.child_position) == (fresh.content, fresh.child_position)
        assert hub.verify().ok
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        for thread in threads:
            if thread.is_alive():
                thread.join()
        other.close()
        hub.close()


@pytest.mark.unit
def test_a_childs_record_copied_as_stored_is_its_stream_at_the_version_read_first() -> None:
    """``ChildRecord.as_stored`` takes the version first, then that many events: an event half-added by another
    thread (its envelope and entry appended, the version not yet set) is not in the copy."""
    from events.store import recorded_from

    record = ChildRecord("c1")
    for n in (1, 2):
        raw = envelope(n, "c1", "note.recorded", T0, {"text": "面談"})
        ChildRecord.Published(
            originator_id=record.id,
            originator_version=record.version + 1,
            timestamp=record.modified_on,
            envelope=raw,
            audience=["cA"],
            digest="d",
            received_at=T0.isoformat(),
        ).mutate(record)
    half = envelope(3, "c1", "note.recorded", T0, {"text": "途中"})
    record.envelopes.append(half)  # what Published.mutate does first, in another thread
    record.entries.append(recorded_from(half, ["cA"], 3))
    stream = record.as_stored()
    assert stream.version == 3 and [e.id for e in stream.entries] == ["e1", "e2"] and len(stream.envelopes) == 2


# --- Keyed on the role itself; weighed in bytes; the erasure watch only moves forward ---------------------------


def test_a_read_of_the_centre_as_a_whole_is_kept_apart_from_a_role_named_empty(tmp_path: Path) -> None:
    clock = SettableClock(T0 + timedelta(hours=2))
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}", clock=clock)
    try:
        hub.load_orgs(ORGS)
        registered(hub, "c1")
        kept, stream = hub.reader.kept, stream_of(hub, "c1")
        assert stream is not None
        whole = Reader(org="cA", role=None, purpose="support", t=clock())
        kept.decide(whole, "c1", stream, hub.orgs(), hub.store.registry().version, hub.settings)
        version, current = hub.store.registry().version, hub.settings
        assert kept.holding(whole, "c1", stream.version, version, current) is not None
        named_empty = Reader(org="cA", role="", purpose="support", t=clock())
        assert kept.holding(named_empty, "c1", stream.version, version, current) is None
    finally:
        hub.close()


def test_the_kept_reads_weight_is_set_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        assert hub.reader.kept.max_weight == MAX_WEIGHT
    finally:
        hub.close()
    monkeypatch.setenv("TSUNAGU_KEPT_READS_WEIGHT", "123456")
    hub = Hub(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        assert hub.reader.kept.max_weight == 123456
    finally:
        hub.close()


def test_the_erasure_watch_only_moves_forward_and_an_erasure_stands_when_its_look_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ErasureWatch.check_now`` never moves the position back (a look made under the watch's lock after another);
    in ``HubStore.shred`` it is best-effort: when it fails after the erasure committed, the publish still succeeds,
    the child's snapshot is still forgotten, and the watch's next look catches up."""
    clock = SettableClock(T0 + timedelta(hours=2))
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}", clock=clock)
    try:
        hub.load_orgs(ORGS)
        registered(hub, "c1", "c2")
        watch = hub.store.erasures
        start = watch.position
        watch.position = start + 5  # as if a look had already seen further
        watch.check_now()
        assert watch.position == start + 5
        watch.position = start
        read(hub, "c2")
        assert len(hub.reader.kept) == 1

        def fails(position: int) -> Any:
            raise OSError("the register could not be read")

        monkeypatch.setattr(watch.keys, "erasures_after", fails)
        forgotten: list[Any] = []
        forget = hub.store.child_snapshots.forget
        monkeypatch.setattr(hub.store.child_snapshots, "forget", lambda *a: forgotten.append(a) or forget(*a))
        erased = envelope(9, "c1", "child.erased", T0 + timedelta(hours=2), {"reason": "誤登録"})
        assert hub.publish([erased])[0].outcome == "accepted"
        assert forgotten and watch.position == start
        monkeypatch.undo()
        watch.check_now()  # the watch's next look
        assert watch.position > start
        hub.reader.kept.check_erasures()
        assert len(hub.reader.kept) == 0
        assert read(hub, "c1").reason == "erased"
    finally:
        hub.close()


@pytest.mark.postgres
def test_kept_reads_on_postgresql_with_an_erasure_in_another_process(postgres_url: str) -> None:
    """On PostgreSQL: this process keeps c1's and c2's reads; another OS process erases c1 while this process's
    erasure watch is not due; the next reads of c1 (the timeline and the ledger rows) say erased, c2's read is
    still the fresh one, and the audit replays every read."""
    import os
    import subprocess
    import sys

    clock = SettableClock(T0 + timedelta(hours=2))
    hub = Hub(postgres_url, clock=clock)
    try:
        hub.load_orgs(ORGS)
        registered(hub, "c1", "c2")
        note = envelope(50, "c1", "note.recorded", T0 + timedelta(hours=1), {"text": "面談記録"})
        assert hub.publish([note])[0].outcome == "accepted"
        for child in ("c1", "c2"):
            assert read(hub, child, purpose="meeting").entries
        assert len(hub.reader.kept) == 2
        code = (
            "import sys; from datetime import timedelta; from services.hub import Hub, SettableClock\n"
            "from tests.reading.test_kept_reads import T0, envelope\n"
            f"h = Hub({postgres_url!r}, clock=SettableClock(T0 + timedelta(hours=2)))\n"
            "erased = envelope(99, 'c1', 'child.erased', T0 + timedelta(hours=2), {'reason': '誤登録'})\n"
            "print(h.publish([erased])[0].outcome); h.close()\n"
        )
        hub.store.erasures.due = __import__("time").monotonic() + 600  # the watch not due: the stream tells
        root = Path(__file__).resolve().parents[2]
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, cwd=root)
        assert done.stdout.strip() == "accepted", done.stderr
        gone = read(hub, "c1", purpose="meeting")
        assert (gone.reason, gone.entries) == ("erased", [])
        still = read(hub, "c2", purpose="meeting", user="u2")
        served_as_fresh(hub, still, Reader(org="cA", role="caseworker", purpose="meeting", t=clock(), user="u2"))
        registry = hub.store.registry()
        ahead = hub.ledger_rows.ahead(
            "cA", "caseworker", {"K0": "c1", "K1": "c2"}, t=clock(), orgs=registry.orgs,
            registry_version=registry.version or 0, settings=hub.settings, user="u",
        )  # fmt: skip
        assert ahead.kept["c1"].decided.decision.reason == "erased" and ahead.kept["c1"].decided.entries == []
        assert hub.verify().ok
    finally:
        hub.close()
