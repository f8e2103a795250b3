"""The returned entries built once (``services.reading.timeline.returned``): each shown entry's dict is its
``TimelineEntry.to_dict``, and the returned JSON and its digest are byte for byte those of the former path (a
``TimelineEntry`` built field by field, then a dict made from each for the JSON), on random decisions."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.model import EventDecision, ReadDecision
from consent.policy import learns_of_withheld, redact
from events.envelope import canonical_json
from events.model import CENTER, JISO, Org, Recorded
from events.store import recorded_from
from services.reading.timeline import TimelineEntry, returned, returned_digest, returned_json

pytestmark = [pytest.mark.unit]

START = datetime.fromisoformat("2026-04-01T09:00:00+09:00")
texts = st.text(max_size=6) | st.sampled_from(["面談", "a \\u0041", "🙂", "12345678901234567890"])
payload_values = st.none() | st.booleans() | st.integers() | texts | st.lists(texts, max_size=3)


def former_path(
    decision: ReadDecision, entries: list[Recorded], envelopes: list[dict[str, Any]], reader_org: Org | None
) -> tuple[list[TimelineEntry], bytes]:
    """What ``returned`` and ``returned_json`` did before the entries were built once (main at d221e3e)."""
    shown: list[TimelineEntry] = []
    if decision.allowed:
        by_id = {e.id: (e, env) for e, env in zip(entries, envelopes)}
        for d in decision.events:
            if not d.allowed:
                continue
            e, env = by_id[d.event]
            shown.append(
                TimelineEntry(
                    id=e.id,
                    kind=e.kind,
                    source=e.source,
                    basis=e.basis,
                    at=env["at"],
                    payload=redact(e, d),
                    rule=d.rule or "",
                    redacted=list(d.redacted),
                    function=e.function,
                    to=e.to,
                    sensitive=list(e.sensitive),
                )
            )
    withheld = (
        sum(1 for d in decision.events if not d.allowed)
        if decision.allowed and learns_of_withheld(reader_org)
        else None
    )
    content = canonical_json(
        {
            "allowed": decision.allowed,
            "reason": decision.reason,
            "entries": [e.to_dict() for e in shown],
            "withheld": withheld,
        }
    )
    return shown, content


@st.composite
def reads(draw: st.DrawFn) -> tuple[ReadDecision, list[Recorded], list[dict[str, Any]], Org | None]:
    entries, envelopes, decisions = [], [], []
    for n in range(draw(st.integers(0, 12))):
        payload = draw(st.dictionaries(st.sampled_from(["text", "case", "note", "date", "level"]), payload_values))
        envelope: dict[str, Any] = {
            "id": f"e{n}",
            "kind": draw(st.sampled_from(["note.recorded", "child.registered", "residence.changed"])),
            "child": "c1",
            "source": draw(st.sampled_from(["cA", "s1", "p1"])),
            "basis": "internal",
            "at": (START + timedelta(minutes=draw(st.integers(-1000, 1000)))).isoformat(),
            "payload": payload,
        }
        for name in ("function", "to"):
            value = draw(st.none() | st.sampled_from(["child_welfare", "maternal_health", "beppu-center"]))
            if value is not None:
                envelope[name] = value
        if draw(st.booleans()):
            envelope["sensitive"] = draw(st.lists(st.sampled_from(sorted(payload) or ["text"]), unique=True))
        envelopes.append(envelope)
        entries.append(recorded_from(envelope, ["cA"], n + 1))
        allowed = draw(st.booleans())
        redacted = tuple(draw(st.lists(st.sampled_from(sorted(payload) or ["text"]), unique=True))) if allowed else ()
        rule = draw(st.none() | st.sampled_from(["same_org", "consent", "emergency"])) if allowed else None
        decisions.append(EventDecision(envelope["id"], allowed, rule, redacted))
    order = draw(st.permutations(decisions))
    decision = ReadDecision(draw(st.booleans()), draw(st.sampled_from(["evaluated", "purpose"])), tuple(order), "v")
    org = draw(st.none() | st.sampled_from([Org("cA", CENTER), Org("j1", JISO), Org("s1", "school")]))
    return decision, entries, envelopes, org


@settings(max_examples=400, deadline=None)
@given(reads())
def test_the_returned_entries_built_once_give_the_former_entries_json_and_digest(read):
    decision, entries, envelopes, org = read
    shown = returned(decision, entries, envelopes, org)
    former_entries, former_content = former_path(decision, entries, envelopes, org)
    assert shown.entries == former_entries
    assert [list(d.items()) for d in shown.as_dicts] == [list(e.to_dict().items()) for e in shown.entries]
    assert returned_json(decision, shown) == former_content
    assert returned_digest(decision, shown) == hashlib.sha256(former_content).hexdigest()
