"""乳幼児健診 results from a 保健所 or a centre's 母子保健 function: one CSV row per child and check-up, parsed into
``health.checkup`` events. A missed check-up (未受診) is among the first signs a centre looks for, so every row
records ``attended`` true or false.

Basis. A 保健所 that comes across a child who appears to need support provides it to the municipality where
the child lives (児童福祉法 第21条の10の5): basis ``cwa-21-10-5``, no ``to`` (the hub addresses the centre of
the child's residence at the check-up date, and refuses the row while that residence is unknown). A centre
sending the results of its own 母子保健 check-ups (母子保健法 第12条) records them as its own: basis
``internal``, function ``maternal_health``.

The child is named by the sender's own number (対象者番号 or 宛名番号) in ``local_child``. This module reads and
words; it looks nothing up and decides nothing about access.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Literal, TypeGuard

from adapters.csvfile import Column, CsvRow, to_choice, to_date
from adapters.feed import Cells, FeedRow, feed_id, not_future, start_of
from events.kinds import normalise_payload

Basis = Literal["cwa-21-10-5", "internal"]
BASES: tuple[str, ...] = ("cwa-21-10-5", "internal")


def is_basis(value: str) -> TypeGuard[Basis]:
    """Whether ``value`` is one of ``BASES`` (a basis given on the command line, checked)."""
    return value in BASES


COLUMNS = (  # 乳幼児健診結果の様式
    Column("local_number", "対象者番号", aliases=("宛名番号", "住民番号", "対象者ID")),
    Column("checkup", "健診名", aliases=("健診種別", "健診区分")),
    Column("date", "健診日", aliases=("受診日", "実施日", "健診年月日")),
    Column("attended", "受診", aliases=("受診状況", "受診有無")),
    Column("findings", "所見", required=False, aliases=("健診所見", "特記事項")),
)

ATTENDED = {  # 受診 → attended
    "受診": True,
    "受診済": True,
    "受診済み": True,
    "済": True,
    "○": True,
    "未受診": False,
    "未": False,
    "×": False,
}


def parse_checkup(
    row: CsvRow, headers: Mapping[str, str], *, org: str, today: date, basis: Basis = "cwa-21-10-5"
) -> FeedRow:
    """One check-up row, checked (a number, a check-up name, a readable date not in the future, 受診 or 未受診),
    as a ``health.checkup`` envelope from ``org``."""
    cells = Cells(row, headers)
    number = cells.ident("local_number")
    checkup = cells.ident("checkup")
    day = not_future(cells, "date", cells.read("date", to_date), today)
    attended = cells.read("attended", to_choice, ATTENDED)
    if cells.problems or day is None:  # no date comes with a problem on it
        return FeedRow(row.line, problems=cells.problems, raw=row.raw)
    payload = {"checkup": checkup, "date": day.isoformat(), "attended": attended}
    if row.get("findings"):
        payload["findings"] = row.get("findings")
    payload = normalise_payload("health.checkup", payload)
    envelope = {
        "id": feed_id("checkup", org, number, basis, payload),
        "kind": "health.checkup",
        "local_child": number,
        "source": org,
        "basis": basis,
        "at": start_of(day),
        "payload": payload,
    }
    if basis == "internal":
        envelope["function"] = "maternal_health"  # the centre's 母子保健 function
    return FeedRow(row.line, [envelope], raw=row.raw)
