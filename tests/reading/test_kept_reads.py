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
from events.store import ChildRecord
from services.audit.replay import access_records
from services.hub import Hub, SettableClock
from services.reading.kept import KeptRead, KeptReads
from services.reading.timeline import Timeline, decide
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
    fresh = decide(reader, child, hub.store.replayed(ChildRecord.create_id(child)), hub.orgs(), current)
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


def check_every_kept_read(hub: Hub, t: datetime) -> int:
    """Every read kept that would be served at ``t`` (``KeptRead.holds`` for the child's stream, the registry and
    the settings as stored now) is the read a fresh ``decide`` at ``t`` makes: what any reader kind would be
    served, not only the one that read; how many were checked."""
    registry_version, current, orgs = hub.store.registry().version, hub.settings, hub.orgs()
    checked = 0
    for (org, role, purpose, child), item in list(hub.reader.kept._kept.items()):
        record = hub.store.replayed(ChildRecord.create_id(child))
        if item.holds(record.version if record is not None else 0, registry_version, current, t):
            fresh = decide(Reader(org=org, role=role, purpose=purpose, t=t), child, record, orgs, current)
            assert (item.decided.decision, item.decided.content) == (fresh.decision, fresh.content), (org, child)
            assert [e.to_dict() for e in item.decided.entries] == [e.to_dict() for e in fresh.entries]
            assert (item.decided.withheld, item.decided.child_position) == (fresh.withheld, fresh.child_position)
            checked += 1
    return checked


@settings(max_examples=60, **PROPERTY_SETTINGS)
@given(world=worlds(), data=st.data())
def test_every_read_served_from_a_kept_decision_is_a_fresh_decision_at_that_moment(world, data):
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
                if again:  # the same or a later time: across the instants and changes where its decision may change
                    org, role, purpose, child = data.draw(st.sampled_from(sorted(seen)), label="read before")
                    before = seen[(org, role, purpose, child)]
                    later = [before, *(x for x in moments(run) if x > before)]
                    clock.at = data.draw(st.sampled_from(later), label="then")
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
                checked += check_every_kept_read(hub, clock())
                seen[(org, role, purpose, child)] = clock()
        event(f"reads served from a kept decision: {min(served, 3)}+")
        event(f"kept reads that would be served, checked: {min(checked, 10)}+")
        report = hub.verify()
        assert report.ok, [m.to_dict() for m in report.mismatches]
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
        record = hub.store.replayed(ChildRecord.create_id("c2"))
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

    decided = Decided("c1", ReadDecision(True, "evaluated", (), POLICY_VERSION), [], 0, "digest", 0)
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
        records = {c: hub.store.replayed(ChildRecord.create_id(c)) for c in ("c1", "c2", "c3")}
        by_number = KeptReads(hub.store, maxsize=2)
        for child in ("c1", "c2", "c3"):
            by_number.decide(reader, child, records[child], orgs, version, current)
        assert len(by_number) == 2 and by_number.holding(reader, "c1", records["c1"].version, version, current) is None
        assert by_number.holding(reader, "c3", records["c3"].version, version, current) is not None
        by_weight = KeptReads(hub.store, max_weight=6)  # 3 per child of 2 events
        for child in ("c1", "c2", "c3"):
            by_weight.decide(reader, child, records[child], orgs, version, current)
        assert len(by_weight) == 2 and by_weight.weight == 6
        assert by_weight.holding(reader, "c1", records["c1"].version, version, current) is None
    finally:
        hub.close()
