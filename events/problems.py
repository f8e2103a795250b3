"""Why the hub refuses something (one problem per field, in English for operators and Japanese for end users), and
what became of each published event."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Problem:
    """One reason an input cannot be accepted.

    ``code`` is stable and machine-readable; ``field`` names the envelope or payload field (``payload.month``)
    or is ``None`` for the whole input; ``message`` is English, ``message_ja`` is what a school clerk or a
    caseworker reads.
    """

    code: str
    message: str
    message_ja: str
    field: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Rejected(Exception):
    """An input the hub refuses, with every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.field or '-'}: {p.message}" for p in problems))

    @property
    def code(self) -> str:
        return self.problems[0].code


# queued: handed to a transport, or 紐付け待ち (waiting for a local number's link); waiting: a 第21条の10の5 event
# waiting for the child's residence to be recorded; received (受付): what a publisher other than a centre or 児相
# is told for accepted, queued and waiting alike (policy.md, "Rejections leak nothing": ``told_to``).
Outcome = Literal["accepted", "duplicate", "rejected", "queued", "waiting", "received"]


@dataclass
class PublishResult:
    """What became of one published event."""

    index: int
    id: str | None
    outcome: Outcome
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "id": self.id, "outcome": self.outcome}
        if self.problems:
            out["problems"] = [p.to_dict() for p in self.problems]
        return out


def told_to(result: PublishResult, learns_whether_published: bool) -> PublishResult:
    """``result`` as its publisher is told it. Centres and 児童相談所 learn whether an event was published at once
    or waits (``consent.policy.learns_whether_published``); any other publisher is told only that it was received
    (受付), since "waiting" would tell it that the hub does not know the child or the number yet."""
    if learns_whether_published or result.outcome not in ("accepted", "queued", "waiting"):
        return result
    return PublishResult(result.index, result.id, "received")
