"""policy.md, "Rejections leak nothing": a rejection tells the publisher what is wrong with its own envelope, never
names an organisation the publisher did not name, never states a fact about the child it may not read (where the
child lives, whether a case exists or is on the ledger, who holds it), and the same fault gets the same message
whether or not the child or case exists.

Each fault is published three times, through ``Hub.publish`` and through the HTTP API as the publishing
organisation: about a child the hub knows (with a case, on the joint ledger), about a made-up child, and about the
known child with a made-up case. The problems must be identical, and must name none of the hub's other
organisations nor the child's municipality.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from consent.model import Settings
from services.auth.tokens import keys_from_file
from services.http.app import create_app

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011", "name": "大分市こども家庭センター"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "hoikuen-a", "type": "nursery", "regime": "private", "municipality": "442020"},
]
HIDDEN = ["beppu-center", "chuo-jiso", "442020", "別府", "K-1", "P-1"]  # what a school must not learn from an error
AT = "2026-05-01T09:00:00+09:00"


def world(hub) -> None:
    hub.load_orgs(ORGS)
    results = hub.publish(
        [
            {
                "id": "r1",
                "kind": "child.registered",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-01T09:00:00+09:00",
                "payload": {"residence": "442020"},
            },
            {
                "id": "k1",
                "kind": "case.registered",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-02T09:00:00+09:00",
                "payload": {"case": "K-1", "category": "youhogo", "case_type": "abuse_neglect"},
            },
            {
                "id": "p1",
                "kind": "plan.created",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-03T09:00:00+09:00",
                "payload": {"plan": "P-1", "version": 1, "wishes": "w", "issues": "i", "supports": "s"},
            },
            {
                "id": "g1",
                "kind": "consent.granted",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-04T09:00:00+09:00",
                "payload": {"plan": "P-1", "version": 1, "recipients": ["hoikuen-a"]},
            },
        ]
    )
    assert [r.outcome for r in results] == ["accepted"] * 4, results


def fault(kind: str, source: str, payload: dict, basis: str = "internal", to: str | None = None):
    return {"kind": kind, "source": source, "basis": basis, "at": AT, "payload": payload, **({"to": to} if to else {})}


# (fault, which of its payload fields names a case or plan, so that the made-up variant replaces it)
FAULTS = [
    fault("case.member_assigned", "beppu-es-1", {"case": "K-1", "member": "beppu-es-1"}),
    fault("case.closed", "beppu-es-1", {"case": "K-1", "reason": "改善"}),
    fault("case.shared", "beppu-es-1", {"case": "K-1", "summary": "学校から"}, basis="cwa-25-2"),
    fault("note.recorded", "beppu-es-1", {"case": "K-1", "text": "台帳へ"}, basis="joint-ledger"),
    fault("ledger.updated", "beppu-es-1", {"case": "K-1", "status": "終結"}, basis="joint-ledger"),
    fault("protection.ended", "beppu-es-1", {"case": "K-1"}),
    fault("case.transfer_acknowledged", "oita-center", {"case": "K-1", "from": "beppu-center"}),
    fault("consent.granted", "hoikuen-a", {"plan": "P-1", "version": 1, "recipients": ["hoikuen-a"]}),
    fault("consent.withdrawn", "hoikuen-a", {"consent": "g1"}),
    fault("plan.revised", "hoikuen-a", {"plan": "P-1", "version": 2, "wishes": "w", "issues": "i", "supports": "s"}),
    fault("residence.changed", "beppu-es-1", {"residence": "442011"}),
    fault("child.erased", "oita-center", {"reason": "誤登録"}),
    fault("emergency.declared", "beppu-es-1", {"reason": "心配"}),
    fault(
        "target_list.assigned",
        "oita-center",
        {"school": "beppu-es-1", "student_no": "0412"},
        basis="cwa-25-3",
        to="beppu-es-1",
    ),
    fault("concern.reported", "beppu-es-1", {"summary": "宛先違い"}, basis="cwa-21-10-5", to="oita-center"),
]


def variants(f: dict) -> list[dict]:
    """The fault about the known child, about a made-up child, and (when it names one) a made-up case or plan."""
    out = [dict(f, id="x-known", child="c1"), dict(f, id="x-nochild", child="c-unknown")]
    for field, made_up in (("case", "K-404"), ("plan", "P-404"), ("consent", "g-404")):
        if field in f["payload"]:
            out.append(dict(f, id="x-noid", child="c1", payload=dict(f["payload"], **{field: made_up})))
    return out


def told(problems, envelope: dict) -> list[tuple]:
    """The problems, with the ids the publisher itself sent put back to one form (they differ by design)."""

    def same(text: str) -> str:
        for field in ("case", "plan", "consent"):
            value = envelope["payload"].get(field)
            if value:
                text = text.replace(str(value), "<" + field + ">")
        return text

    return [(p["code"], p["field"], same(p["message"]), same(p["message_ja"])) for p in problems]


@pytest.mark.parametrize("f", FAULTS, ids=[f"{f['kind']}/{f['source']}/{f['basis']}" for f in FAULTS])
def test_the_same_fault_gets_the_same_message_whether_or_not_the_child_or_case_exists(make_hub, clock, f):
    clock.at = datetime.fromisoformat("2026-05-02T09:00:00+09:00")
    hub = make_hub(Settings(joint_ledger=True))
    world(hub)
    answers = []
    for envelope in variants(f):
        [result] = hub.publish([envelope])
        if f["kind"] == "concern.reported" and envelope["child"] == "c-unknown":
            assert result.outcome == "waiting"  # not rejected: it waits for the centre (policy.md)
            continue
        assert result.outcome == "rejected", (envelope, result)
        problems = [p.to_dict() for p in result.problems]
        answers.append(told(problems, envelope))
        text = json.dumps(problems, ensure_ascii=False)
        for hidden in HIDDEN:
            named_by_publisher = hidden in json.dumps(envelope, ensure_ascii=False)
            if not named_by_publisher and hidden not in ("K-1", "P-1"):
                assert hidden not in text, (hidden, text)
    assert all(a == answers[0] for a in answers), answers


def test_over_http_a_school_is_told_received_for_a_concern_about_a_known_and_an_unknown_child(
    make_hub, clock, tmp_path
):
    """Whether the hub knows the child must not show in the answer to a school (受付 for both)."""
    clock.at = datetime.fromisoformat("2026-05-02T09:00:00+09:00")
    hub = make_hub(Settings(joint_ledger=True))
    world(hub)
    issuer, verifier = keys_from_file(tmp_path / "signing-key.pem")

    def post(org: str, envelope: dict) -> list:
        token = issuer.issue(org=org, role="adapter", user="tester")
        response = client.post("/v1/events", headers={"Authorization": f"Bearer {token}"}, json=envelope)
        assert response.status_code == 200, response.text
        return [(r["outcome"], r["problems"]) for r in response.json()["results"]]

    with TestClient(create_app(hub, verifier)) as client:
        answers = [
            post(
                "beppu-es-1",
                {
                    "id": f"e-{child}",
                    "kind": "concern.reported",
                    "child": child,
                    "source": "beppu-es-1",
                    "basis": "cwa-21-10-5",
                    "at": AT,
                    "payload": {"summary": "連絡なしの欠席が続く"},
                },
            )
            for child in ("c1", "c-unknown")
        ]
        assert answers == [[("received", [])], [("received", [])]]
        # the centre is told the difference
        assert post(
            "beppu-center",
            {
                "id": "n-unknown",
                "kind": "concern.reported",
                "child": "c-other",
                "source": "beppu-center",
                "basis": "cwa-21-10-5",
                "at": AT,
                "payload": {"summary": "所在不明"},
            },
        ) == [("waiting", [])]
