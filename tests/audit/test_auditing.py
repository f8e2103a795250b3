"""Auditors' tools (監査): who read a child, what a reader saw (reconstructed exactly), emergency accesses and their
review, the family's disclosure report, and the impact of changed settings. Through the service, the HTTP API
(real tokens, real app) and the CLI, on a real store; auditors get metadata, never case content."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from consent.model import Settings
from events.problems import Rejected
from services.audit import queries
from services.audit.disclosure import disclosure_html
from services.audit.queries import NotFound, Period
from services.audit.replay import access_records, load, verify
from services.audit.service import Auditing
from services.audit.trail import Actor, audit_trail
from services.cli.root import app
from services.http.app import create_app
from services.hub import Hub
from services.reading import view_log
from tests.helpers import at, token_header

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立南小学校"},
    {
        "id": "chuo-jiso",
        "type": "child_guidance_center",
        "prefecture": "44",
        "covers": ["442020"],
        "name": "大分県中央児童相談所",
    },
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011", "name": "大分市こども家庭センター"},
    {"id": "oita-audit", "type": "auditor", "prefecture": "44", "name": "大分県個人情報保護担当"},
]
REASON = "夜間に児童の安全が確認できない"
EVENTS = [
    {
        "id": "r1",
        "kind": "child.registered",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-04-01T09:00:00+09:00",
        "payload": {"residence": "442020", "name_kana": "べっぷ たろう"},
    },
    {
        "id": "k1",
        "kind": "case.registered",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-05-07T09:00:00+09:00",
        "payload": {"case": "K1", "category": "youhogo", "case_type": "abuse_physical"},
    },
    {
        "id": "e1",
        "kind": "concern.reported",
        "child": "c1",
        "source": "beppu-es-1",
        "basis": "cwa-21-10-5",
        "at": "2026-05-08T10:00:00+09:00",
        "payload": {"summary": "腕に新しいあざがある", "signs": "本人の話「父にたたかれた」"},
        "sensitive": ["signs"],
    },
    {
        "id": "n1",
        "kind": "note.recorded",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-05-09T10:00:00+09:00",
        "payload": {"text": "母親から家庭内の暴力の相談", "shelter": "避難先の住所"},
        "sensitive": ["shelter"],
    },
    {
        "id": "x1",
        "kind": "emergency.declared",
        "child": "c1",
        "source": "chuo-jiso",
        "basis": "internal",
        "at": "2026-05-10T08:00:00+09:00",
        "payload": {"reason": REASON},
    },
    {
        "id": "c2-r1",
        "kind": "child.registered",
        "child": "c2",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-04-01T09:00:00+09:00",
        "payload": {"residence": "442020"},
    },
]
LATER = {
    "id": "v1",
    "kind": "visit.report",
    "child": "c1",
    "source": "beppu-center",
    "basis": "internal",
    "at": "2026-06-01T10:00:00+09:00",
    "payload": {"date": "2026-05-30", "observations": "玄関先で本人と面会"},
}
AUDITOR = Actor(org="oita-audit", user="kansa-1", via="http")


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TSUNAGU = str(Path(sys.executable).parent / "tsunagu")


class World:
    """c1 read by three organisations on 2026-05-10 (one read refused, one an emergency read), c2 once, and one
    read of c1 in June."""

    def __init__(self, hub: Hub, clock):
        self.hub, self.clock = hub, clock
        clock.at = at("2026-05-10T08:00:00+09:00")
        hub.load_orgs(ORGS)
        assert {r.outcome for r in hub.publish(EVENTS)} == {"accepted"}
        self.center = self.read("beppu-center", "caseworker", "support", "09:00")
        self.school = self.read("beppu-es-1", "teacher", "support", "09:30")
        self.emergency = self.read("chuo-jiso", "caseworker", "emergency", "10:00")
        self.jiso = self.read("chuo-jiso", "caseworker", "support", "11:00")
        self.refused = self.read("beppu-es-1", "teacher", "statistics", "12:00")
        self.other_child = self.read("beppu-center", "caseworker", "support", "12:30", child="c2")
        self.auditing = Auditing(hub.store, clock)

    def read(self, org: str, role: str, purpose: str, hhmm: str, child: str = "c1", day: str = "2026-05-10"):
        self.clock.at = at(f"{day}T{hhmm}:00+09:00")
        return self.hub.timeline(org=org, role=role, child=child, purpose=purpose, user=f"{org}-staff")

    def later(self):
        """More published about c1, and two June reads: the centre's (which shows it) and the 児相's."""
        self.clock.at = at("2026-06-01T10:00:00+09:00")
        assert self.hub.publish([LATER])[0].outcome == "accepted"
        return (
            self.read("beppu-center", "caseworker", "support", "11:00", day="2026-06-01"),
            self.read("chuo-jiso", "caseworker", "support", "11:30", day="2026-06-01"),
        )


@pytest.fixture
def world(make_hub, clock) -> World:
    return World(make_hub(settings=Settings()), clock)


def record_of(hub: Hub, record_id: str) -> dict:
    return next(r for r in access_records(hub.store) if r["id"] == record_id)


def payload_values(items: list[dict]) -> Iterator[str]:
    def leaves(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for v in value.values():
                yield from leaves(v)
        elif isinstance(value, list):
            for v in value:
                yield from leaves(v)
        elif isinstance(value, str):
            yield value

    for item in items:
        yield from leaves(item["payload"])


# --- Who read child X -----------------------------------------------------------------------------------------


def test_reads_of_a_child_come_from_its_own_log_with_reader_purpose_decision_and_rules(world, monkeypatch):
    digest = record_of(world.hub, world.center.access_record)["content_digest"]

    real = world.hub.store.recorder.select_notifications

    def no_global_scan(*args, **kwargs):  # the view logs and consulted sets alone (services.reading.view_log)
        if list(kwargs.get("topics") or ()) in ([view_log.VIEW_TOPIC], [view_log.SET_TOPIC]):
            return real(*args, **kwargs)
        raise AssertionError("reads_of_child must not scan the whole log")

    monkeypatch.setattr(world.hub.store.recorder, "select_notifications", no_global_scan)
    result = world.auditing.reads_of_child("c1", Period.of("2026-05-10", "2026-05-10"), actor=AUDITOR)
    assert [r.record for r in result.reads] == [
        t.access_record for t in (world.center, world.school, world.emergency, world.jiso, world.refused)
    ]
    assert [r.sequence for r in result.reads] == [1, 2, 3, 4, 5] and result.unreadable == []
    center, school, emergency, jiso, refused = result.reads
    assert (center.reader.org_name, center.reader.role, center.reader.user) == (
        "別府市こども家庭センター",
        "caseworker",
        "beppu-center-staff",
    )
    assert (center.purpose, center.allowed, center.reason, center.rules, center.shown, center.withheld) == (
        "support",
        True,
        "evaluated",
        {"OWN": 3, "DIRECT": 1},
        4,
        1,
    )
    assert (school.rules, school.shown, school.withheld) == ({"OWN": 1}, 1, 4)
    assert (emergency.purpose, emergency.rules, emergency.redacted_events) == (
        "emergency",
        {"OWN": 1, "EMERGENCY": 4},
        2,
    )
    assert (refused.allowed, refused.reason, refused.shown, refused.rules) == (False, "purpose_not_allowed", 0, {})
    assert center.content_digest == digest

    world.later()
    june = world.auditing.reads_of_child("c1", Period.of("2026-05-11", None), actor=AUDITOR)
    assert [(r.sequence, r.t) for r in june.reads] == [
        (6, "2026-06-01T11:00:00+09:00"),
        (7, "2026-06-01T11:30:00+09:00"),
    ]
    until = world.auditing.reads_of_child("c1", Period.of(None, "2026-05-10T10:00:00+09:00"), actor=AUDITOR)
    assert [r.sequence for r in until.reads] == [1, 2]  # until a date-time excludes it


def test_bad_periods_are_refused_naming_the_field(world):
    for since, until, field in [
        ("2026-13-01", None, "since"),
        (None, "昨日", "until"),
        ("2026-05-10", "2026-05-09", "until"),
    ]:
        with pytest.raises(Rejected) as refused:
            Period.of(since, until)
        assert refused.value.problems[0].field == field
        assert re.search(r"[ぁ-んァ-ン一-龥]", refused.value.problems[0].message_ja)


# --- What reader R saw at time T, exactly -------------------------------------------------------------------


def test_a_past_read_is_reconstructed_exactly_even_after_more_was_published(world):
    june, _ = world.later()  # more about c1, read after the reads reconstructed below
    assert "v1" in [e.id for e in june.entries] and june.to_dict()["entries"] != world.center.to_dict()["entries"]
    for then in (world.center, world.emergency, world.school, world.refused):
        record = record_of(world.hub, then.access_record)
        rebuilt, digest, _, erased = world.auditing.reconstruct_timeline(record)
        assert erased == 0
        assert rebuilt.to_dict() == then.to_dict()  # field by field, payloads and redactions included
        for mine, theirs in zip(rebuilt.entries, then.entries, strict=True):
            assert mine.__dict__ == theirs.__dict__
        assert digest == record["content_digest"]

        shown = world.auditing.reconstruct(then.access_record, actor=AUDITOR)
        assert shown.exact is True and shown.decision_matches is True
        assert shown.replayed_digest == shown.recorded_digest == record["content_digest"]
        assert [(e.id, e.kind, e.source, e.at, e.rule, e.redacted) for e in shown.entries] == [
            (e.id, e.kind, e.source, e.at, e.rule, e.redacted) for e in then.entries
        ]
        assert (shown.allowed, shown.reason, shown.withheld) == (then.allowed, then.reason, then.withheld)

    emergency = world.auditing.reconstruct(world.emergency.access_record, actor=AUDITOR, child="c1")
    assert {e.id: e.redacted for e in emergency.entries if e.redacted} == {"e1": ["signs"], "n1": ["shelter"]}
    assert "v1" not in [e.id for e in emergency.entries]  # published after that read

    seen = world.auditing.reconstruct_at("beppu-center", "c1", "2026-05-10T09:10:00+09:00", actor=AUDITOR)
    assert seen.record == world.center.access_record and seen.exact is True
    with pytest.raises(NotFound):
        world.auditing.reconstruct_at("beppu-center", "c1", "2026-05-10T08:59:00+09:00", actor=AUDITOR)
    with pytest.raises(NotFound):
        world.auditing.reconstruct("no-such-record", actor=AUDITOR)


def test_after_an_erasure_the_reads_stay_listed_but_their_content_is_not_reconstructed(world):
    world.clock.at = at("2026-05-12T09:00:00+09:00")
    erasure = {
        "id": "z1",
        "kind": "child.erased",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-05-12T09:00:00+09:00",
        "payload": {"reason": "誤登録のため消去"},
    }
    assert world.hub.publish([erasure])[0].outcome == "accepted"
    after = world.read("beppu-center", "caseworker", "support", "10:00", day="2026-05-12")
    assert (after.reason, after.entries) == ("erased", [])

    gone = world.auditing.reconstruct(world.center.access_record, actor=AUDITOR)
    assert (gone.exact, gone.decision_matches, gone.entries, gone.withheld) == (None, None, [], None)
    assert gone.erased_since == 5 and gone.recorded_digest is not None
    assert world.auditing.reconstruct(after.access_record, actor=AUDITOR).exact is True  # it showed nothing
    assert len(world.auditing.reads_of_child("c1", Period(), actor=AUDITOR).reads) == 6
    report = world.auditing.disclosure_report("c1", actor=AUDITOR)
    assert report.organisations[0].reads[-1].result_ja == "記録は消去済みのため、何も表示されませんでした"
    checked = verify(world.hub.store)
    assert checked.ok and (checked.records, checked.unreplayable) == (7, 5)  # c1's five earlier reads


# --- Emergency accesses, reviewed ---------------------------------------------------------------------------


def test_every_emergency_access_is_listed_with_its_reason_and_a_finding_is_recorded_once(world):
    (access,) = world.auditing.emergency_accesses(Period.of("2026-05-01", "2026-05-31"), actor=AUDITOR).accesses
    assert access.record == world.emergency.access_record and access.child == "c1"
    assert access.declaration is not None and access.declaration.event == "x1"
    assert (access.declaration.reason, access.declaration.at, access.declaration.until) == (
        REASON,
        "2026-05-10T08:00:00+09:00",
        "2026-05-11T08:00:00+09:00",
    )
    assert (access.reader.org, access.shown, access.findings, access.reviewed) == ("chuo-jiso", 5, [], False)

    world.clock.at = at("2026-05-20T10:00:00+09:00")
    for _ in range(2):  # sent twice (a retry): stored once
        done = world.auditing.record_finding(
            access.record,
            reviewer="審査 花子",
            finding="justified",
            note="夜間で保護者に連絡がつかず、緊急性あり",
            actor=AUDITOR,
        )
    assert [(f.finding, f.finding_ja, f.reviewer, f.org, f.at) for f in done.findings] == [
        ("justified", "正当", "審査 花子", "oita-audit", "2026-05-20T10:00:00+09:00")
    ]
    world.auditing.record_finding(
        access.record, reviewer="審査 花子", finding="needs_follow_up", note="翌日の記録を確認する", actor=AUDITOR
    )
    (listed,) = world.auditing.emergency_accesses(Period(), actor=AUDITOR).accesses
    assert [f.finding for f in listed.findings] == ["justified", "needs_follow_up"] and listed.reviewed

    with pytest.raises(NotFound):  # an ordinary read is not an emergency access
        world.auditing.record_finding(
            world.jiso.access_record, reviewer="x", finding="justified", note="", actor=AUDITOR
        )
    with pytest.raises(Rejected) as refused:
        world.auditing.record_finding(access.record, reviewer="x", finding="fine", note="", actor=AUDITOR)
    assert refused.value.problems[0].field == "finding"
    assert world.auditing.emergency_accesses(Period.of("2026-05-11", None), actor=AUDITOR).accesses == []


# --- Policy impact --------------------------------------------------------------------------------------------


def test_turning_the_joint_ledger_on_lists_exactly_the_reads_that_would_change(world, monkeypatch):
    world.later()  # June reads, one of which would change too, outside the period
    opened = []
    monkeypatch.setattr(queries, "load", lambda store, stored: opened.append(stored) or load(store, stored))
    impact = world.auditing.policy_impact(Period.of("2026-05-01", "2026-05-31"), {"joint_ledger": True}, actor=AUDITOR)
    assert impact.settings == {"joint_ledger": True} and impact.replayed == 6 and impact.unreplayable == 0
    assert len(opened) == 7  # the scan stopped at the first record past the period
    monkeypatch.undo()
    assert [c.record for c in impact.changed] == [world.emergency.access_record, world.jiso.access_record]
    emergency, support = impact.changed
    # The 児相's support read would show the abuse case's registration and the concern under LEDGER, redacted.
    assert [(e.event, e.kind, e.before, e.after, e.redacted_after) for e in support.events] == [
        ("k1", "case.registered", None, "LEDGER", []),
        ("e1", "concern.reported", None, "LEDGER", ["signs"]),
    ]
    assert (support.before.shown, support.after.shown) == (1, 3) and support.summary == "2 more shown"
    # Its emergency read shows the same events, two of them under LEDGER instead of EMERGENCY.
    assert [(e.event, e.before, e.after) for e in emergency.events] == [
        ("k1", "EMERGENCY", "LEDGER"),
        ("e1", "EMERGENCY", "LEDGER"),
    ]
    assert emergency.before.shown == emergency.after.shown == 5

    same = world.auditing.policy_impact(Period(), {"joint_ledger": False}, actor=AUDITOR)
    assert same.changed == [] and same.replayed == 8
    shorter = world.auditing.policy_impact(Period(), {"emergency_hours": 1}, actor=AUDITOR)
    assert [(c.record, c.before.allowed, c.after.allowed, c.after.reason) for c in shorter.changed] == [
        (world.emergency.access_record, True, False, "no_emergency_window")
    ]
    for changes, field in [
        ({"nope": True}, "settings.nope"),
        ({"joint_ledger": "maybe"}, "settings.joint_ledger"),
        ({"emergency_hours": 0}, "settings.emergency_hours"),
        ({}, "settings"),
    ]:
        with pytest.raises(Rejected) as refused:
            world.auditing.policy_impact(Period(), changes, actor=AUDITOR)
        assert refused.value.problems[0].field == field


# --- The family's disclosure report ---------------------------------------------------------------------------


def test_the_disclosure_report_names_the_three_organisations_when_and_on_what_ground(world, tmp_path):
    report = world.auditing.disclosure_report("c1", actor=AUDITOR)
    assert [(o.name, o.type_ja, o.read_count, o.refused_count) for o in report.organisations] == [
        ("別府市こども家庭センター", "こども家庭センター", 1, 0),
        ("別府市立南小学校", "学校", 1, 1),
        ("大分県中央児童相談所", "児童相談所", 2, 0),
    ]
    assert (report.total_reads, report.refused_reads) == (5, 1)
    school = report.organisations[1]
    assert [(r.at_ja, r.purpose_ja, r.allowed) for r in school.reads] == [
        ("令和8年5月10日 09:30", "支援のため", True),
        ("令和8年5月10日 12:00", "統計のため", False),
    ]
    assert "認められませんでした" in school.reads[1].result_ja and school.reads[1].grounds == []

    page = disclosure_html(report)
    text = re.sub(r"<[^>]+>", " ", page)
    for name in ("別府市こども家庭センター", "別府市立南小学校", "大分県中央児童相談所"):
        assert text.count(name) == 1, name  # one section per organisation
    for when in ("令和8年5月10日 09:00", "令和8年5月10日 09:30", "令和8年5月10日 10:00", "令和8年5月10日 12:00"):
        assert when in text
    for ground in (
        "自機関の記録",
        "法令に基づく直接の提供先",
        "緊急時の例外",
        "児童福祉法 第21条の10の5",
        "個人情報保護法 第27条第1項第2号",
    ):
        assert ground in text
    assert "閲覧の目的が認められていないため、認められませんでした" in text
    assert "@page { size: A4" in page and "要対協" not in page and "beppu-center-staff" not in page
    assert not [v for v in payload_values(EVENTS) if v in page]

    target = tmp_path / "kaiji.html"
    result = CliRunner().invoke(
        app, ["audit", "disclosure", "c1", "--html", str(target), "--database", "sqlite:///:memory:"]
    )
    assert result.exit_code == 0 and target.read_text(encoding="utf-8").count("<h2>") == 0  # an empty store
    assert "これまでに、お子さまの記録を見た機関はありません" in target.read_text(encoding="utf-8")


def test_the_auditors_own_queries_are_recorded_before_they_are_answered(world):
    world.clock.at = at("2026-05-21T09:00:00+09:00")
    world.auditing.reads_of_child("c1", Period(), actor=AUDITOR)
    world.auditing.disclosure_report("c2", actor=Actor("oita-audit", "kansa-2", "cli"))
    world.auditing.emergency_accesses(Period(), actor=AUDITOR)
    trail = audit_trail(world.hub.store, "oita-audit")
    assert [(q["query"], q["child"], q["user"], q["via"], q["results"], q["at"]) for q in trail] == [
        ("reads_of_child", "c1", "kansa-1", "http", 5, "2026-05-21T09:00:00+09:00"),
        ("disclosure_report", "c2", "kansa-2", "cli", 1, "2026-05-21T09:00:00+09:00"),
        ("emergency_accesses", None, "kansa-1", "http", 1, "2026-05-21T09:00:00+09:00"),
    ]
    assert audit_trail(world.hub.store, "someone-else") == []
    assert verify(world.hub.store).ok  # the auditors' streams leave the access log and its chains alone


def test_auditors_streams_written_under_their_old_topics_still_load(tmp_path):
    """The audit trail and the findings of a store written before the audit room was split (``services.auditing:…``
    by the code of ec88ef8, then ``services.audit.auditors:…`` by dc8152b, in the same streams: see
    ``tests/fixtures/README.md``) load (``services.hub.MOVED_MODULES``), through the real CLI in a process of its own
    (a process opens stores of one stream secret only)."""
    shutil.copy(FIXTURES / "audit-topics.db", tmp_path / "hub.db")
    shutil.copy(FIXTURES / "audit-topics-keys.json", tmp_path / "keys.json")
    os.chmod(tmp_path / "keys.json", 0o600)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TSUNAGU_")},
        "TSUNAGU_KEYS_FILE": str(tmp_path / "keys.json"),
        "TSUNAGU_JOINT_LEDGER": "1",
    }

    def tsunagu(*args: str) -> Any:
        done = subprocess.run(
            [TSUNAGU, "audit", *args, "--database", f"sqlite:///{tmp_path / 'hub.db'}", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    trail = tsunagu("queries", "cli")
    assert [(q["query"], q["child"]) for q in trail] == [
        ("reads_of_child", "child-03"),
        ("emergency_accesses", None),
        ("reads_of_child", "child-03"),
    ]
    (access,) = tsunagu("emergencies")["accesses"]
    assert [(f["finding"], f["note"]) for f in access["findings"]] == [
        ("needs_follow_up", "翌朝に確認"),
        ("justified", "確認済み"),
    ]


# --- Through HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture
def client(world, keys):
    with TestClient(create_app(world.hub, keys[1])) as client:
        yield client


def calls(world: World) -> list[tuple[str, str, dict]]:
    """(method, url, options) of every auditor endpoint."""
    record = world.emergency.access_record
    return [
        ("GET", "/v1/audit/children/c1/reads", {"params": {"since": "2026-05-01", "until": "2026-05-31"}}),
        ("GET", f"/v1/audit/records/{world.center.access_record}/reconstruction", {}),
        ("GET", f"/v1/audit/records/{record}/reconstruction", {"params": {"child": "c1"}}),
        (
            "GET",
            "/v1/audit/children/c1/reconstruction",
            {"params": {"org": "beppu-center", "at": "2026-05-10T09:10:00+09:00"}},
        ),
        ("GET", "/v1/audit/emergencies", {}),
        ("POST", f"/v1/audit/emergencies/{record}/findings", {"json": {"finding": "justified", "note": "確認済み"}}),
        ("GET", "/v1/audit/children/c1/disclosure", {}),
        ("GET", "/v1/audit/children/c1/disclosure", {"params": {"format": "html"}}),
        (
            "POST",
            "/v1/audit/policy-impact",
            {"json": {"since": "2026-05-01", "until": "2026-05-31", "settings": {"joint_ledger": True}}},
        ),
    ]


def test_only_auditor_organisations_may_call_the_audit_endpoints(world, client, keys):
    for method, url, options in calls(world):
        for org, role, scopes, code in [
            ("beppu-center", "caseworker", None, "insufficient_scope"),  # no audit scope
            ("oita-audit", "auditor", ["read"], "insufficient_scope"),
            ("chuo-jiso", "auditor", None, "not_an_auditor"),  # the scope, but not an auditor organisation
            ("beppu-center", "clerk", ["read", "audit"], "not_an_auditor"),
            ("ghost-audit", "auditor", None, "unknown_organisation"),
        ]:
            token = keys[0].issue(org=org, role=role, user="x", scopes=scopes)
            response = client.request(method, url, headers={"Authorization": f"Bearer {token}"}, **options)
            status = 403
            assert response.status_code == status, (url, org, response.text)
            error = response.json()["error"]
            assert error["code"] == code and re.search(r"[ぁ-んァ-ン一-龥]", error["message_ja"])
        assert client.request(method, url, **options).status_code == 401
    assert audit_trail(world.hub.store, "beppu-center") == audit_trail(world.hub.store, "ghost-audit") == []
    assert world.auditing.emergency_accesses(Period(), actor=AUDITOR).accesses[0].findings == []


def test_auditor_responses_carry_metadata_and_never_a_payload_value(world, client, keys):
    world.later()
    values = set(payload_values(EVENTS + [LATER]))
    for method, url, options in calls(world):
        response = client.request(
            method, url, headers=token_header(keys[0], "oita-audit", "auditor", "kansa-1"), **options
        )
        assert response.status_code == 200, (url, response.text)
        leaked = {v for v in values if v in response.text}
        if "/emergencies" in url:  # the declared reason is the emergency's stated ground, for its review
            assert leaked == {REASON}, url
        else:
            assert leaked == set(), (url, leaked)
    assert len(audit_trail(world.hub.store, "oita-audit")) == len(calls(world)) - 1  # the finding is its own event


def test_the_audit_endpoints_answer_with_the_right_shapes(world, client, keys):
    headers = token_header(keys[0], "oita-audit", "auditor", "kansa-1")
    reads = client.get("/v1/audit/children/c1/reads", params={"since": "2026-05-10"}, headers=headers).json()
    assert [r["record"] for r in reads["reads"]][0] == world.center.access_record and len(reads["reads"]) == 5
    shown = client.get(f"/v1/audit/records/{world.school.access_record}/reconstruction", headers=headers).json()
    assert shown["exact"] is True and [e["id"] for e in shown["entries"]] == ["e1"]

    record = world.emergency.access_record
    first = client.post(
        f"/v1/audit/emergencies/{record}/findings", json={"finding": "not_justified", "note": "x"}, headers=headers
    ).json()
    again = client.post(
        f"/v1/audit/emergencies/{record}/findings", json={"finding": "not_justified", "note": "x"}, headers=headers
    ).json()
    assert first == again and [(f["finding"], f["reviewer"]) for f in again["findings"]] == [
        ("not_justified", "kansa-1")
    ]

    page = client.get("/v1/audit/children/c1/disclosure", headers={**headers, "Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and "大分県中央児童相談所" in page.text
    report = client.get("/v1/audit/children/c1/disclosure", headers=headers).json()
    assert [o["org"] for o in report["organisations"]] == ["beppu-center", "beppu-es-1", "chuo-jiso"]

    impact = client.post("/v1/audit/policy-impact", json={"settings": {"joint_ledger": True}}, headers=headers).json()
    assert [c["record"] for c in impact["changed"]] == [record, world.jiso.access_record]

    schema = client.get("/openapi.json").json()
    assert {
        "/v1/audit/children/{child}/reads",
        "/v1/audit/records/{record_id}/reconstruction",
        "/v1/audit/emergencies",
        "/v1/audit/emergencies/{record_id}/findings",
        "/v1/audit/children/{child}/disclosure",
        "/v1/audit/policy-impact",
    } <= set(schema["paths"])
    assert "exact" in schema["components"]["schemas"]["Reconstruction"]["properties"]


def test_bad_input_to_the_audit_endpoints_is_422_or_404_naming_what_is_wrong(world, client, keys):
    headers = token_header(keys[0], "oita-audit", "auditor", "kansa-1")
    cases = [
        ("GET", "/v1/audit/children/c1/reads", {"params": {"since": "2026-02-30"}}, 422, "since"),
        ("GET", "/v1/audit/emergencies", {"params": {"since": "2026-05-10", "until": "2026-05-01"}}, 422, "until"),
        ("GET", "/v1/audit/children/c1/reconstruction", {"params": {"org": "beppu-center", "at": "noon"}}, 422, "at"),
        ("POST", "/v1/audit/policy-impact", {"json": {"settings": {"nope": 1}}}, 422, "settings.nope"),
        (
            "POST",
            "/v1/audit/policy-impact",
            {"json": {"settings": {"joint_ledger": "maybe"}}},
            422,
            "settings.joint_ledger",
        ),
        (
            "POST",
            "/v1/audit/policy-impact",
            {"json": {"since": "yesterday", "settings": {"joint_ledger": True}}},
            422,
            "since",
        ),
        (
            "POST",
            f"/v1/audit/emergencies/{world.emergency.access_record}/findings",
            {"json": {"finding": "ok"}},
            422,
            "finding",
        ),
        ("GET", "/v1/audit/records/nope/reconstruction", {}, 404, None),
        (
            "POST",
            f"/v1/audit/emergencies/{world.jiso.access_record}/findings",
            {"json": {"finding": "justified"}},
            404,
            None,
        ),
    ]
    for method, url, options, status, field in cases:
        response = client.request(method, url, headers=headers, **options)
        assert response.status_code == status, (url, response.text)
        error = response.json()["error"]
        assert error.get("field") == field, (url, error)
        assert re.search(r"[ぁ-んァ-ン一-龥]", error["message_ja"]), error


def test_dates_and_settings_beyond_what_the_hub_can_reckon_with_are_422_naming_the_field(world, client, keys):
    """Extreme dates (the last day a date can hold, the first, a date-time whose Japan time is past the last day)
    and a huge emergency window are refused by name, never a server error."""
    headers = token_header(keys[0], "oita-audit", "auditor", "kansa-1")
    cases = [
        ("GET", "/v1/audit/children/c1/reads", {"params": {"until": "9999-12-31"}}, "until"),
        ("GET", "/v1/audit/children/c1/reads", {"params": {"since": "0001-01-01"}}, "since"),
        ("GET", "/v1/audit/children/c1/reads", {"params": {"until": "9999-12-31T23:59:59-12:00"}}, "until"),
        ("GET", "/v1/audit/emergencies", {"params": {"until": "9999-12-31"}}, "until"),
        ("GET", "/v1/audit/emergencies", {"params": {"since": "0001-01-01T00:00:00+14:00"}}, "since"),
        ("GET", "/v1/audit/children/c1/reconstruction", {"params": {"org": "beppu-center", "at": "9999-12-31"}}, "at"),
        (
            "POST",
            "/v1/audit/policy-impact",
            {"json": {"until": "9999-12-31", "settings": {"joint_ledger": True}}},
            "until",
        ),
        (
            "POST",
            "/v1/audit/policy-impact",
            {"json": {"settings": {"emergency_hours": 10**30}}},
            "settings.emergency_hours",
        ),
        (
            "POST",
            "/v1/audit/policy-impact",
            {"json": {"settings": {"emergency_hours": 10**8}}},
            "settings.emergency_hours",
        ),
        (
            "POST",
            "/v1/audit/policy-impact",
            {"json": {"settings": {"monthly_report_due_day": 10**30}}},
            "settings.monthly_report_due_day",
        ),
    ]
    for method, url, options, field in cases:
        response = client.request(method, url, headers=headers, **options)
        assert response.status_code == 422, (url, options, response.text)
        error = response.json()["error"]
        assert error["field"] == field, (url, options, error)
        assert re.search(r"[ぁ-んァ-ン一-龥]", error["message_ja"]), error
    # the widest period the hub does reckon with still answers
    response = client.get(
        "/v1/audit/emergencies", params={"since": "1900-01-01", "until": "2999-12-31"}, headers=headers
    )
    assert response.status_code == 200, response.text


# --- Through the CLI ------------------------------------------------------------------------------------------


def test_the_cli_answers_the_same_questions(make_hub, clock, tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    world = World(make_hub(settings=Settings(), database=database), clock)
    run = CliRunner().invoke

    def cli(*args: str):
        return run(app, ["audit", *args, "--database", database])

    reads = json.loads(cli("reads", "c1", "--since", "2026-05-10", "--until", "2026-05-10", "--json").stdout)
    assert [r["record"] for r in reads["reads"]] == [
        t.access_record for t in (world.center, world.school, world.emergency, world.jiso, world.refused)
    ]
    assert "5 件の閲覧記録" in cli("reads", "c1").stdout

    shown = json.loads(cli("reconstruct", world.center.access_record, "--json").stdout)
    assert shown["exact"] is True and shown["record"] == world.center.access_record
    assert (
        "再現は正確です" in cli("reconstruct", "--child", "c1", "--org", "chuo-jiso", "--at", "2026-05-10T23:00").stdout
    )

    record = world.emergency.access_record
    done = cli("finding", record, "--reviewer", "審査 花子", "--finding", "needs_follow_up", "--note", "翌日確認")
    assert done.exit_code == 0 and "要フォローアップ" in done.stdout
    (access,) = json.loads(cli("emergencies", "--json").stdout)["accesses"]
    assert access["declaration"]["reason"] == REASON and access["findings"][0]["reviewer"] == "審査 花子"

    impact = json.loads(
        cli(
            "policy-impact", "--since", "2026-05-01", "--until", "2026-05-31", "--set", "joint_ledger=true", "--json"
        ).stdout
    )
    assert [c["record"] for c in impact["changed"]] == [record, world.jiso.access_record]

    for args, code, words in [
        (("reads", "c1", "--since", "5月1日"), 2, "日付の形式"),
        (("policy-impact", "--set", "joint_ledger"), 2, "名前=値"),
        (("policy-impact", "--set", "ledger=true"), 2, "この設定はありません"),
        (("finding", record, "--reviewer", "x", "--finding", "great"), 2, "finding"),
        (("reads", "c1", "--until", "9999-12-31"), 2, "until"),
        (("emergencies", "--since", "0001-01-01"), 2, "since"),
        (("policy-impact", "--set", f"emergency_hours={10**30}"), 2, "emergency_hours"),
        (("policy-impact", "--until", "9999-12-31", "--set", "joint_ledger=true"), 2, "until"),
        (("reconstruct", "no-such-record"), 1, "見つかりません"),
    ]:
        result = cli(*args)
        assert result.exit_code == code and words in result.output, (args, result.output)
    trail = json.loads(run(app, ["audit", "queries", "cli", "--database", database, "--json"]).stdout)
    assert {q["query"] for q in trail} == {
        "reads_of_child",
        "reconstruct",
        "reconstruct_at",
        "emergency_accesses",
        "policy_impact",
    } and {q["via"] for q in trail} == {"cli"}
