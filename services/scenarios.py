"""The scenario runner (``shared/spec/scenarios.md``): small worlds, publishes and reads, and what each must give.

Every step goes through the product's real paths (``Ingest.publish``, ``TimelineReader.read``); the runner only
sets the clock. Each scenario runs on a fresh, empty store and ends with the replay of its access records.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from consent.model import Settings
from services.hub import Hub, SettableClock
from services.reading.timeline import Timeline

RULE_NAMES = {"OWN", "DIRECT", "CASE", "LEDGER", "CONSENT", "TRANSFER", "EMERGENCY"}
READ_FIELDS = {"org", "role", "child", "purpose", "at", "user"}
# What the runner reports for each publish outcome (scenarios.md): a duplicate was accepted before; an event for a
# number not linked yet (queued) waits like one for a child whose residence is unknown.
PUBLISH_OUTCOMES = {
    "accepted": "accepted",
    "duplicate": "accepted",
    "rejected": "rejected",
    "waiting": "waiting",
    "queued": "waiting",
    "received": "accepted",
}


class ScenarioError(Exception):
    """A file that cannot be read or is not a valid scenario file."""


@dataclass
class StepResult:
    step: int
    ok: bool
    expected: Any
    actual: Any
    description: str = ""
    difference: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "ok": self.ok, "expected": self.expected, "actual": self.actual}


@dataclass
class ScenarioResult:
    file: str
    name: str
    steps: list[StepResult] = field(default_factory=list)
    replay_problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.ok for s in self.steps) and not self.replay_problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "name": self.name,
            "passed": self.passed,
            "steps": [s.to_dict() for s in self.steps],
            "replay": self.replay_problems,
        }


# --- Reading and checking files -------------------------------------------------------------------------------


def scenario_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise ScenarioError(f"{raw}: no such file or directory")
    return files


def _time(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ScenarioError(f"{where}: time {value} has no offset")
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ScenarioError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ScenarioError(f"{where}: time {value} has no offset (e.g. +09:00)")
    return parsed


def load_file(path: Path) -> list[dict[str, Any]]:
    """Parse and check a scenario file; raise ``ScenarioError`` naming the file, the step and the problem."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ScenarioError(f"{path}: cannot be read: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("scenarios"), list):
        raise ScenarioError(f"{path}: a scenario file has a top-level 'scenarios' list")
    for n, scenario in enumerate(document["scenarios"]):
        where = f"{path}: scenario {n}"
        if not isinstance(scenario, dict) or not scenario.get("name"):
            raise ScenarioError(f"{where}: a scenario needs a name")
        where = f"{path}: scenario {scenario['name']!r}"
        if not isinstance(scenario.get("orgs", []), list) or not isinstance(scenario.get("steps"), list):
            raise ScenarioError(f"{where}: 'orgs' and 'steps' must be lists")
        try:
            Settings.checked(scenario.get("settings"))
        except (ValueError, TypeError) as error:
            raise ScenarioError(f"{where}: settings: {error}") from None
        for i, step in enumerate(scenario["steps"]):
            _check_step(step, f"{where}, step {i}")
    return document["scenarios"]


def _check_step(step: Any, where: str) -> None:
    if not isinstance(step, dict) or len({"publish", "read"} & set(step)) != 1:
        raise ScenarioError(f"{where}: a step has exactly one of 'publish' or 'read'")
    unknown = set(step) - {"publish", "read", "expect"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    expect = step.get("expect")
    if "publish" in step:
        if not isinstance(step["publish"], dict):
            raise ScenarioError(f"{where}: 'publish' must be an event envelope")
        if expect not in (None, "rejected", "accepted", "waiting"):
            raise ScenarioError(f"{where}: a publish expects 'rejected' or 'waiting' (or nothing), not {expect!r}")
        return
    read = step["read"]
    if not isinstance(read, dict):
        raise ScenarioError(f"{where}: 'read' must be a mapping")
    missing = {"org", "role", "child", "purpose", "at"} - set(read)
    if missing or set(read) - READ_FIELDS:
        raise ScenarioError(
            f"{where}: read needs org, role, child, purpose, at (optional user); "
            f"missing {sorted(missing)}, unknown {sorted(set(read) - READ_FIELDS)}"
        )
    _time(read["at"], where)
    if expect is None or expect == "denied":
        return
    if not isinstance(expect, dict) or set(expect) - {"visible", "redacted", "rules"}:
        raise ScenarioError(f"{where}: a read expects 'denied' or a mapping of visible, redacted, rules")
    if "visible" in expect and not isinstance(expect["visible"], list):
        raise ScenarioError(f"{where}: visible must be a list of event ids")
    if not isinstance(expect.get("redacted", {}), dict) or not isinstance(expect.get("rules", {}), dict):
        raise ScenarioError(f"{where}: redacted and rules map event ids to fields and rules")
    bad_rules = {str(r) for r in expect.get("rules", {}).values()} - RULE_NAMES
    if bad_rules:
        raise ScenarioError(f"{where}: unknown rules {sorted(bad_rules)}")


# --- Running -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_hub(database: str | None, settings: Settings, clock: SettableClock) -> Iterator[Hub]:
    """A hub on a fresh, empty store: in-memory SQLite, or a schema of its own in the given PostgreSQL
    database, dropped afterwards."""
    if database is None or database.startswith("sqlite:"):
        hub = Hub("sqlite:///:memory:", settings=settings, clock=clock)
        try:
            yield hub
        finally:
            hub.close()
        return
    schema = f"tsunagu_scenario_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in database else "?"
    hub = Hub(f"{database}{separator}schema={schema}", settings=settings, clock=clock)
    try:
        yield hub
    finally:
        env = hub.store.env
        hub.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host=env.get("POSTGRES_HOST"),
            port=env.get("POSTGRES_PORT"),
            dbname=env.get("POSTGRES_DBNAME"),
            user=env.get("POSTGRES_USER"),
            password=env.get("POSTGRES_PASSWORD"),
            autocommit=True,
        ) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def read_outcome(timeline: Timeline) -> Any:
    if not timeline.allowed:
        return "denied"
    return {
        "visible": [e.id for e in timeline.entries],
        "redacted": {e.id: e.redacted for e in timeline.entries if e.redacted},
        "rules": {e.id: e.rule for e in timeline.entries},
    }


def compare_read(expect: Any, actual: Any) -> str:
    """What differs between a read's expectation and the hub's answer ('' when it holds)."""
    if expect in (None,):
        return ""
    if expect == "denied" or actual == "denied":
        return "" if expect == actual else f"expected {expect!r}, got {actual!r}"
    problems = []
    if "visible" in expect:
        want, got = set(map(str, expect["visible"])), set(actual["visible"])
        if want != got:
            problems.append(f"visible: missing {sorted(want - got)}, unexpected {sorted(got - want)}")
        repeated = sorted({i for i in actual["visible"] if actual["visible"].count(i) > 1})
        if repeated:  # one entry per event returned: an event shown twice is a defect, not a match
            problems.append(f"visible: shown more than once {repeated}")
    want_redacted = {str(k): sorted(map(str, v or [])) for k, v in (expect.get("redacted") or {}).items()}
    want_redacted = {k: v for k, v in want_redacted.items() if v}
    got_redacted = {k: sorted(v) for k, v in actual["redacted"].items()}
    if want_redacted != got_redacted:
        problems.append(f"redacted: expected {want_redacted}, got {got_redacted}")
    for event_id, rule in (expect.get("rules") or {}).items():
        got_rule = actual["rules"].get(str(event_id))
        if got_rule != rule:
            problems.append(f"rule of {event_id}: expected {rule}, got {got_rule or 'not visible'}")
    return "; ".join(problems)


def run_scenario(path: Path, scenario: dict[str, Any], database: str | None = None) -> ScenarioResult:
    result = ScenarioResult(str(path), scenario["name"])
    clock = SettableClock()
    with fresh_hub(database, Settings.from_dict(scenario.get("settings")), clock) as hub:
        if scenario.get("orgs"):
            hub.load_orgs(scenario["orgs"])
        for i, step in enumerate(scenario["steps"]):
            if "publish" in step:
                envelope = step["publish"]
                with contextlib.suppress(ScenarioError):
                    clock.at = _time(envelope.get("at"), "")
                expected = step.get("expect") or "accepted"
                [published] = hub.publish([envelope])
                actual = PUBLISH_OUTCOMES[published.outcome]
                why = "; ".join(p.message for p in published.problems)
                difference = (
                    "" if actual == expected else f"expected {expected}, got {actual}" + (f" ({why})" if why else "")
                )
                result.steps.append(
                    StepResult(i, not difference, expected, actual, f"publish {envelope.get('id')}", difference)
                )
            else:
                read = step["read"]
                clock.at = _time(read["at"], "")
                timeline = hub.timeline(
                    org=str(read["org"]),
                    role=str(read["role"]),
                    child=str(read["child"]),
                    purpose=str(read["purpose"]),
                    user=read.get("user"),
                )
                actual = read_outcome(timeline)
                expected = step.get("expect", "accepted")
                difference = compare_read(step.get("expect"), actual)
                result.steps.append(
                    StepResult(
                        i,
                        not difference,
                        expected,
                        actual,
                        f"read {read['org']}/{read['role']} {read['purpose']}",
                        difference,
                    )
                )
        report = hub.verify()
        result.replay_problems = [f"{m.record}: {m.problem}: {m.detail}" for m in report.mismatches]
    return result


def run(paths: list[str], database: str | None = None) -> Iterator[ScenarioResult]:
    """Check every file first (exit 2 before anything runs), then run each scenario."""
    loaded = [(path, load_file(path)) for path in scenario_files(paths)]
    for path, scenarios in loaded:
        for scenario in scenarios:
            yield run_scenario(path, scenario, database)


def format_result(result: ScenarioResult) -> list[str]:
    lines = [f"{result.file}: {result.name}"]
    for s in result.steps:
        lines.append(
            f"  step {s.step} {s.description}: ok" if s.ok else f"  step {s.step} {s.description}: FAIL {s.difference}"
        )
    for problem in result.replay_problems:
        lines.append(f"  replay: FAIL {problem}")
    return lines


def as_json(result: ScenarioResult) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False, default=str)
