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


Outcome = Literal["accepted", "duplicate", "rejected", "queued"]  # queued: handed to a transport, or 紐付け待ち


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
