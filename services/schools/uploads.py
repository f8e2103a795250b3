"""A file sent over HTTP as an organisation (``POST /v1/imports/...`` and the staff UI's uploads): the same
imports as ``tsunagu import`` (``services.schools.imports``, ``services.feeds.imports``), run as the sending
organisation, answering the summary ``--json`` prints.

The organisation is the caller's (the token's, or the signed-in person's), never the file's: a school file's rows
must be the sender's own (``SchoolImporter``'s ``org``: another school's 学校コード is refused, a blank one is the
sender's), a feed's envelopes must have the sender as ``source``. Every envelope is published with
``publisher=org``, and each result is told as the sender may learn it (``events.problems.told_to``): a school or a
provider learns that its rows were received (受付), never whether the hub knew the child yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, get_args

from consent.policy import learns_whether_published
from consent.reports import REPORTING_ORGS
from events.limits import MAX_ID_CHARS
from events.problems import Problem, PublishResult, told_to
from services.feeds.imports import FeedImporter
from services.schools.imports import SchoolImporter

if TYPE_CHECKING:
    from services.hub import Hub

UploadFormat = Literal["school-monthly", "school-daily", "health-checkup", "provider", "jsonl"]
FORMATS: tuple[str, ...] = get_args(UploadFormat)
SCHOOL_FORMATS = frozenset({"school-monthly", "school-daily"})
FORMAT_JA = {
    "school-monthly": "月次の定期的な情報提供",
    "school-daily": "日次出欠",
    "health-checkup": "乳幼児健診の結果",
    "provider": "委託事業者の利用・訪問報告",
    "jsonl": "イベント（JSON Lines）",
}


def file_name(sent: str | None) -> str:
    """The file's own name as sent (without the sender's folders), as the summary and the quarantine name it."""
    name = PureWindowsPath(PurePosixPath(sent or "upload").name).name.strip()
    return (name or "upload")[:MAX_ID_CHARS]


class NotAllowed(Exception):
    """The organisation may not send files of this format (a school file from an organisation that is not a
    school or nursery)."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


class _AsSender:
    """Publishes into the hub as ``org``, telling each result as ``org`` may learn it."""

    def __init__(self, hub: Hub, org: str):
        self.hub = hub
        self.org = org
        self.tell = learns_whether_published(hub.orgs().get(org))

    def publish(self, envelopes: Sequence[dict[str, Any]]) -> list[PublishResult]:
        return [told_to(r, self.tell) for r in self.hub.publish(list(envelopes), publisher=self.org)]


def run_upload(
    hub: Hub,
    *,
    org: str,
    fmt: str,
    file: BinaryIO,
    name: str,
    basis: str = "cwa-21-10-5",
    to: str | None = None,
) -> dict[str, Any]:
    """Import ``file`` (an open binary file) of format ``fmt`` as organisation ``org``: the summary as a dict
    (``ImportSummary.to_dict`` / ``FeedSummary.to_dict``). Raises ``NotAllowed`` when ``org`` may not send the
    format. ``basis`` (health-checkup) and ``to`` (provider) as for ``tsunagu import``."""
    orgs = hub.orgs()
    if fmt in SCHOOL_FORMATS and (org not in orgs or orgs[org].type not in REPORTING_ORGS):
        raise NotAllowed(
            Problem(
                "not_a_school",
                f"only schools and nurseries send {fmt} files",
                f"{FORMAT_JA[fmt]}のファイルは学校・保育所等だけが送れます",
                "format",
            )
        )
    publisher = _AsSender(hub, org)
    if fmt in SCHOOL_FORMATS:
        importer = SchoolImporter(hub.store, publisher, now=hub.clock())
        run = importer.monthly if fmt == "school-monthly" else importer.daily
        return run(file, name=name, org=org).to_dict()
    feeds = FeedImporter(hub.store, publisher, now=hub.clock())
    if fmt == "health-checkup":
        summary = feeds.health_checkup(file, org=org, basis=basis, name=name)  # type: ignore[arg-type]
    elif fmt == "provider":
        summary = feeds.provider(file, org=org, to=to, name=name)
    else:
        summary = feeds.jsonl(file, org=org, name=name)
    return summary.to_dict()
