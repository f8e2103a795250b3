"""Usage and visit reports from 委託事業者 (service providers working under contract for a municipality: ショート
ステイ, 子育て世帯訪問支援, 児童育成支援拠点 …): one CSV row per use or visit, parsed into ``service.usage`` and
``visit.report`` events.

Basis ``commissioned`` (委託): the provider reports back to the commissioning municipality, whose data it handles
on its behalf; ``to`` is the commissioning centre, from the row's 委託元 column or, for a file that has none,
the one the sender names for the whole file. A row with 利用開始日 is a ``service.usage``; a row with 訪問日 is a
``visit.report`` (様子 is then required); a row with both is both.

The child is named by the provider's own number (利用者番号) in ``local_child``. This module reads and words;
it looks nothing up and decides nothing about access.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from adapters.csvfile import CellError, Column, CsvRow, cell_problem, normalise, to_date
from adapters.feed import Cells, FeedRow, feed_id, not_future, start_of
from events.kinds import normalise_payload

BASIS = "commissioned"  # 委託

COLUMNS = (  # 委託事業の利用・訪問報告の様式
    Column("local_number", "利用者番号", aliases=("対象者番号", "宛名番号")),
    Column("service", "サービス種別", aliases=("サービス名", "事業名", "事業種別")),
    Column("from", "利用開始日", required=False, aliases=("開始日",)),
    Column("until", "利用終了日", required=False, aliases=("終了日",)),
    Column("visit", "訪問日", required=False, aliases=("訪問年月日",)),
    Column("observations", "様子", required=False, aliases=("訪問時の様子", "所見", "特記事項")),
    Column("to", "委託元", required=False, aliases=("委託元機関", "委託元ID")),
)


def parse_provider_row(
    row: CsvRow, headers: Mapping[str, str], *, org: str, today: date, to: str | None = None
) -> FeedRow:
    """One usage/visit row from provider ``org``, checked (a number, a service, readable dates not in the future,
    the end not before the start, 様子 for a visit, a commissioning centre), as its envelopes. ``to``: the
    commissioning centre for rows without a 委託元."""
    cells = Cells(row, headers)
    number = cells.ident("local_number")
    service = cells.ident("service")
    start = not_future(cells, "from", cells.optional("from", to_date), today)
    end = cells.optional("until", to_date)
    visit = not_future(cells, "visit", cells.optional("visit", to_date), today)
    observations = row.get("observations")
    addressee = normalise(row.get("to")) or to
    if not row.get("from") and not row.get("visit"):
        cells.problems.append(
            cell_problem(
                row.line,
                None,
                CellError(
                    "neither a start date nor a visit date",
                    "利用開始日か訪問日のどちらかを入力してください",
                    "missing_value",
                ),
            )
        )
    if row.get("until") and not row.get("from"):
        cells.fail(
            "from",
            CellError(
                "an end date without a start date",
                "利用終了日があるときは利用開始日も入力してください",
                "missing_value",
            ),
        )
    if start is not None and end is not None and end < start:
        cells.fail(
            "until",
            CellError(
                f"end {end} before start {start}",
                f"利用終了日（{end.isoformat()}）が利用開始日（{start.isoformat()}）より前です",
                "end_before_start",
            ),
        )
    if row.get("visit") and not observations:
        cells.fail(
            "observations",
            CellError("a visit without observations", "訪問日がある行は様子を入力してください", "missing_value"),
        )
    if not addressee:
        cells.problems.append(
            cell_problem(
                row.line,
                headers["to"],
                CellError(
                    "no commissioning centre",
                    "委託元がありません（「委託元」列に入力するか、取り込み時に委託元を指定してください）",
                    "missing_value",
                ),
            )
        )
    if cells.problems:
        return FeedRow(row.line, problems=cells.problems, raw=row.raw)

    def envelope(prefix: str, kind: str, day: date, payload: dict[str, Any]) -> dict[str, Any]:
        payload = normalise_payload(kind, payload)
        return {
            "id": feed_id(prefix, org, number, addressee, payload),
            "kind": kind,
            "local_child": number,
            "source": org,
            "basis": BASIS,
            "to": addressee,
            "at": start_of(day),
            "payload": payload,
        }

    envelopes = []
    if start is not None:
        usage: dict[str, Any] = {"service": service, "from": start.isoformat()}
        if end is not None:
            usage["to"] = end.isoformat()
        if observations and visit is None:
            usage["notes"] = observations
        envelopes.append(envelope("usage", "service.usage", start, usage))
    if visit is not None:
        envelopes.append(
            envelope(
                "visit",
                "visit.report",
                visit,
                {"date": visit.isoformat(), "observations": observations, "service": service},
            )
        )
    return FeedRow(row.line, envelopes, raw=row.raw)
