"""What part of a ledger to show (台帳の絞り込み・並べ替え・ページ): filters, sort and page, read from a query string
by the API (``GET /v1/ledger``, ``/v1/joint-ledger``) and the web ledger alike, and applied by ``CaseViews.ledger``
on the server to the rows decided ahead (``services.casework.rows``), so that only the rows shown are read and
recorded. A value that is not one of the choices is named in ``errors`` (in Japanese) and not applied."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from urllib.parse import urlencode

from events.labels import CASE_TYPE_JA, CATEGORY_JA, STATUS_JA
from services.casework.ledger import CaseRow

PAGE_SIZE = 50  # the web ledger's page, and the API's default
MAX_PER_PAGE = 500
SORTS: dict[str, tuple[str, Callable[[CaseRow], Any]]] = {  # 並べ替え: its Japanese name, and the key
    "case": ("ケース番号", lambda r: r.case),
    "child": ("児童", lambda r: (r.child, r.case)),
    "status": ("状況", lambda r: (r.status, r.case)),
    "category": ("要対協区分", lambda r: (r.category, r.case)),
    "case_type": ("相談種別", lambda r: (r.case_type, r.case)),
    "registered": ("登録日", lambda r: (r.registered_at, r.case)),
    "next_review": ("次回検討予定日", lambda r: (r.next_review, r.case)),
}
REVIEW_JA = {"due": "今月末までに検討予定", "overdue": "検討予定日を過ぎている"}
ALERTS_JA = {
    "open": "未検討の警告がある",
    "concerns": "未検討の気づき・通告がある",
    "any": "警告・気づきのいずれかがある",
}
ORDER_JA = {"asc": "昇順", "desc": "降順"}


def month_end(on: date) -> date:
    following = date(on.year + (on.month == 12), on.month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


class LedgerQuery:
    """The ledger's filters (``status``, ``category``, ``case_type``, ``review``, ``alerts``, ``member``), sort,
    order and page, from query parameters; ``per_page`` None: every row on one page (the CSV)."""

    def __init__(self, params: Mapping[str, str], *, per_page: int | None = PAGE_SIZE):
        self.errors: dict[str, str] = {}
        self.status = self._choice(params, "status", STATUS_JA, "状況")
        self.category = self._choice(params, "category", CATEGORY_JA, "要対協区分")
        self.case_type = self._choice(params, "case_type", CASE_TYPE_JA, "相談種別")
        self.review = self._choice(params, "review", REVIEW_JA, "検討予定")
        self.alerts = self._choice(params, "alerts", ALERTS_JA, "警告・気づき")
        self.member = str(params.get("member", ""))[:200]
        self.sort = self._choice(params, "sort", SORTS, "並べ替え") or "next_review"
        self.order = self._choice(params, "order", ORDER_JA, "順序") or "asc"
        self.page = self._number(params, "page", 1, 99_999, "ページ")
        self.per_page = per_page
        if per_page is not None and params.get("per_page"):
            self.per_page = self._number(params, "per_page", per_page, MAX_PER_PAGE, "1ページの件数")

    def _choice(self, params: Mapping[str, str], name: str, table: Mapping[str, Any], label: str) -> str:
        value = str(params.get(name, ""))
        if value and value not in table:
            self.errors[name] = f"{label}の指定「{value[:40]}」は選べる値ではありません"
            return ""
        return value

    def _number(self, params: Mapping[str, str], name: str, default: int, high: int, label: str) -> int:
        text = str(params.get(name, ""))
        if not text:
            return default
        if text.isdigit() and 0 < int(text) <= high:
            return int(text)
        self.errors[name] = f"{label}は 1 から {high} までの数で指定してください"
        return default

    def keep(self, row: CaseRow, on: date) -> bool:
        if self.status and row.status != self.status:
            return False
        if self.category and row.category != self.category:
            return False
        if self.case_type and row.case_type != self.case_type:
            return False
        if self.member and self.member not in row.members:
            return False
        due = date.fromisoformat(row.next_review)
        if self.review == "due" and not (row.status == "open" and due <= month_end(on)):
            return False
        if self.review == "overdue" and not (row.status == "open" and due < on):
            return False
        if self.alerts == "open" and not row.open_alerts:
            return False
        if self.alerts == "concerns" and not row.concerns:
            return False
        return not (self.alerts == "any" and not row.needs_attention)

    def apply(self, rows: list[CaseRow], on: date) -> list[CaseRow]:
        """The rows kept by the filters, in the order asked for."""
        kept = [r for r in rows if self.keep(r, on)]
        return sorted(kept, key=SORTS[self.sort][1], reverse=self.order == "desc")

    def pages(self, total: int) -> int:
        return 1 if self.per_page is None else max(1, -(-total // self.per_page))

    def window(self, rows: list[CaseRow]) -> list[CaseRow]:
        """The rows of the page asked for (a page past the last is the last, named in ``errors``)."""
        pages = self.pages(len(rows))
        if self.page > pages:
            self.errors["page"] = f"ページは 1 から {pages} までです"
            self.page = pages
        if self.per_page is None:
            return rows
        return rows[(self.page - 1) * self.per_page : self.page * self.per_page]

    def to_dict(self) -> dict[str, Any]:
        """What this view asks for (its record in the view log, ``services.reading.view_log``)."""
        return self.values() | {"per_page": self.per_page or "all"}

    def values(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "category": self.category,
            "case_type": self.case_type,
            "review": self.review,
            "alerts": self.alerts,
            "member": self.member,
            "sort": self.sort,
            "order": self.order,
            "page": self.page,
        }

    def query(self, **changes: Any) -> str:
        """The query string of this view with ``changes`` (for links to other pages and sorts)."""
        values = self.values() | changes
        return urlencode({k: v for k, v in values.items() if v not in ("", None) and (k != "page" or v != 1)})
