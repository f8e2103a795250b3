"""Helpers for the school-file tests: a small world, target lists, and CSV files written as schools write them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from adapters.publisher import HubPublisher
from services.hub import Hub
from services.schools.imports import ImportSummary, SchoolImporter

ES1_CODE = "B144210000015"  # 別府市立 第一小学校 (beppu-es-1)
ES2_CODE = "B144210000023"  # 別府市立 第二小学校 (beppu-es-2)
NURSERY_CODE = "N442020000011"  # 別府市 中央保育園 (beppu-ns-1)

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "code": ES1_CODE},
    {"id": "beppu-es-2", "type": "school", "regime": "public", "municipality": "442020", "code": ES2_CODE},
    {"id": "beppu-ns-1", "type": "nursery", "regime": "private", "municipality": "442020", "code": NURSERY_CODE},
]

MONTHLY_HEADER = [
    "学校コード",
    "児童生徒番号",
    "対象年月",
    "授業日数",
    "出席日数",
    "欠席日数",
    "うち連絡なし欠席日数",
    "遅刻日数",
    "早退日数",
    "欠席理由",
    "特記事項",
]
DAILY_HEADER = ["学校コード", "児童生徒番号", "日付", "出欠", "連絡有無", "理由"]


def setup(hub: Hub) -> Hub:
    hub.load_orgs(ORGS)
    return hub


def register_child(
    hub: Hub, child: str, *, centre: str = "beppu-center", at: str = "2026-04-01T00:00:00+09:00"
) -> None:
    """The centre registers the child as living in its municipality (once: a second call changes nothing)."""
    municipality = next(o["municipality"] for o in ORGS if o["id"] == centre)
    result = hub.publish(
        [
            {
                "id": f"reg-{child}",
                "kind": "child.registered",
                "child": child,
                "source": centre,
                "basis": "internal",
                "at": at,
                "payload": {"residence": municipality},
            }
        ]
    )
    assert result[0].outcome in ("accepted", "duplicate") or [p.code for p in result[0].problems] == [
        "already_registered"
    ], result


def list_child(
    hub: Hub,
    child: str,
    student_no: str,
    *,
    school: str = "beppu-es-1",
    centre: str = "beppu-center",
    at: str = "2026-04-01T09:00:00+09:00",
    from_month: str | None = "2026-04",
) -> None:
    """The centre registers the child (policy version 2: only the centre of residence lists a child) and puts it
    on a school's target list (target_list.assigned, cwa-25-3, to the school)."""
    register_child(hub, child, centre=centre, at=min(at, "2026-04-01T00:00:00+09:00"))
    payload = {"school": school, "student_no": student_no, **({"from_month": from_month} if from_month else {})}
    result = hub.publish(
        [
            {
                "id": f"list-{school}-{student_no}-{child}-{at}",
                "kind": "target_list.assigned",
                "child": child,
                "source": centre,
                "basis": "cwa-25-3",
                "to": school,
                "at": at,
                "payload": payload,
            }
        ]
    )
    assert result[0].outcome == "accepted", result


def unlist_child(
    hub: Hub, child: str, student_no: str, *, at: str, school: str = "beppu-es-1", centre: str = "beppu-center"
) -> None:
    result = hub.publish(
        [
            {
                "id": f"unlist-{school}-{student_no}-{at}",
                "kind": "target_list.removed",
                "child": child,
                "source": centre,
                "basis": "cwa-25-3",
                "to": school,
                "at": at,
                "payload": {"school": school, "student_no": student_no},
            }
        ]
    )
    assert result[0].outcome == "accepted", result


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    encoding: str = "cp932",
    newline: str = "\r\n",
    bom: bool = False,
    trailing_blank: int = 0,
) -> Path:
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    lines += ["," * (len(header) - 1)] * trailing_blank
    data = (newline.join(lines) + newline).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def importer(hub: Hub) -> SchoolImporter:
    return SchoolImporter(hub.store, HubPublisher(hub), now=hub.clock())


def import_monthly(hub: Hub, path: Path) -> ImportSummary:
    return importer(hub).monthly(path, name=path.name)


def import_daily(hub: Hub, path: Path) -> ImportSummary:
    return importer(hub).daily(path, name=path.name)


def kinds(hub: Hub, child: str, kind: str) -> list[dict]:
    """The envelopes of one kind in the child's stream, as stored (not a read: the stored log itself)."""
    from events.store import ChildRecord

    record = hub.store.peek(ChildRecord.create_id(child))
    return [e for e in (record.envelopes if record else []) if e["kind"] == kind]


def school_days(start: date, end: date) -> list[date]:
    """Monday to Friday between ``start`` and ``end``."""
    from datetime import timedelta

    days, d = [], start
    while d <= end:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days
