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

    def to_dict(self) -> dict[str, Any]:
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


class Busy(Exception):
    """A request the hub could not serve within its time budget: other writers kept getting to the same records
    first (``events.retry``), or the store did not answer. Nothing of the request was stored or returned; the same
    request may be sent again after ``retry_after`` seconds. The HTTP API answers 503 with ``Retry-After`` and
    ``problem`` in its error format; the command line prints ``problem`` in Japanese and exits 75 (EX_TEMPFAIL)."""

    def __init__(self, problem: Problem, retry_after: int):
        self.problem = problem
        self.retry_after = retry_after
        super().__init__(problem.message)

    @classmethod
    def contended(cls, retry_after: int) -> Busy:
        """Other writers kept changing the same records (a child's stream, its access log, …) until the budget
        was spent."""
        return cls(
            Problem(
                "busy",
                f"the hub is busy with other changes to the same records; nothing was stored, try again in "
                f"{retry_after} seconds",
                f"同じ記録への処理が混み合っているため、処理できませんでした（何も保存されていません）。"
                f"{retry_after}秒ほど待ってから、もう一度お試しください",
            ),
            retry_after,
        )

    @classmethod
    def store_unavailable(cls, retry_after: int) -> Busy:
        """The event store did not answer (a lost connection, no free connection, a locked database file)."""
        return cls(
            Problem(
                "store_unavailable",
                f"the event store is not reachable; try again in {retry_after} seconds",
                f"データベースに接続できないため、処理できませんでした。{retry_after}秒ほど待ってから、もう一度お試しください",
            ),
            retry_after,
        )


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
