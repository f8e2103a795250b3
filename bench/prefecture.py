"""A synthetic prefecture for benchmarks: municipalities with a centre, schools, nurseries, a provider; 児童相談所
covering them; children with realistic mixes of events (registration, target lists, monthly reports, daily
attendance, concerns, notes, 要対協 cases with members and shares, plans and consents, ledger updates).

Deterministic for a seed. Every envelope is valid under policy.md, so a benchmark measures the accept path.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

JST = timezone(timedelta(hours=9))
START = datetime(2025, 4, 1, 9, 0, tzinfo=JST)


@dataclass
class Prefecture:
    orgs: list[dict[str, Any]]
    centers: dict[str, str]  # municipality code -> centre id
    schools: dict[str, list[str]]  # municipality code -> school ids
    nurseries: dict[str, list[str]]
    providers: dict[str, str]
    jiso: dict[str, str]  # municipality code -> covering 児相 id
    municipalities: list[str] = field(default_factory=list)


def make_prefecture(
    municipalities: int = 18, schools_per: int = 12, nurseries_per: int = 6, seed: int = 44
) -> Prefecture:
    codes = [f"44{2000 + 10 * i + 1:04d}"[-6:] for i in range(municipalities)]
    orgs, centers, schools, nurseries, providers, jiso = [], {}, {}, {}, {}, {}
    for n, m in enumerate(codes):
        centers[m] = f"center-{m}"
        orgs.append(
            {"id": centers[m], "type": "municipal_center", "municipality": m, "name": f"市町村{n} こども家庭センター"}
        )
        schools[m] = [f"school-{m}-{k}" for k in range(schools_per)]
        for k, s in enumerate(schools[m]):
            orgs.append(
                {
                    "id": s,
                    "type": "school",
                    "regime": "public",
                    "municipality": m,
                    "code": f"B1442{m[-4:]}{k:04d}"[:13],
                    "name": f"第{k + 1}学校",
                }
            )
        nurseries[m] = [f"nursery-{m}-{k}" for k in range(nurseries_per)]
        for k, s in enumerate(nurseries[m]):
            orgs.append({"id": s, "type": "nursery", "regime": "private" if k % 2 else "public", "municipality": m})
        providers[m] = f"provider-{m}"
        orgs.append({"id": providers[m], "type": "service_provider", "regime": "private", "municipality": m})
    for j in range(3):
        covered = codes[j::3]
        orgs.append({"id": f"jiso-{j}", "type": "child_guidance_center", "prefecture": "44", "covers": covered})
        for m in covered:
            jiso[m] = f"jiso-{j}"
    orgs.append({"id": "hokenjo-44", "type": "health_center", "prefecture": "44"})
    return Prefecture(orgs, centers, schools, nurseries, providers, jiso, codes)


def _at(day: int, minute: int = 0) -> str:
    return (START + timedelta(days=day, minutes=minute)).isoformat()


def child_events(pref: Prefecture, child: str, n_events: int, rng: random.Random) -> list[dict[str, Any]]:
    """About ``n_events`` envelopes for one child, in publication order, spread over about 18 months."""
    m = rng.choice(pref.municipalities)
    center, school = pref.centers[m], rng.choice(pref.schools[m])
    nursery, provider = rng.choice(pref.nurseries[m]), pref.providers[m]
    student_no = f"S{rng.randrange(10**6):06d}"
    out: list[dict[str, Any]] = []

    def add(kind: str, source: str, basis: str, day: int, payload: dict[str, Any], **extra: Any) -> None:
        out.append(
            {
                "id": f"{child}-{len(out)}",
                "kind": kind,
                "child": child,
                "source": source,
                "basis": basis,
                "at": _at(day, len(out) % 600),
                "payload": payload,
                **extra,
            }
        )

    add("child.registered", center, "internal", 0, {"residence": m})
    add("target_list.assigned", center, "cwa-25-3", 1, {"school": school, "student_no": student_no}, to=school)
    abuse = rng.random() < 0.4
    add(
        "case.registered",
        center,
        "internal",
        2,
        {
            "case": f"K-{child}",
            "category": "youhogo" if abuse else "youshien",
            "case_type": "abuse_neglect" if abuse else "neglect",
        },
    )
    add("case.member_assigned", center, "internal", 2, {"case": f"K-{child}", "member": school})
    spread = zlib.crc32(child.encode()) % 365  # a stable offset per child, no draw
    # the first review decides the next one, spread over a year: without it, every child not reviewed again would
    # keep the default day (registration + 3 months), the same day for all
    add(
        "case.reviewed",
        center,
        "internal",
        4,
        {
            "case": f"K-{child}",
            "decision": "継続",
            "next_review": (START + timedelta(days=96 + spread)).date().isoformat(),
        },
    )
    add(
        "plan.created",
        center,
        "internal",
        3,
        {
            "plan": f"P-{child}",
            "version": 1,
            "wishes": "生活を安定させたい",
            "issues": "家事の負担",
            "supports": ["子育て世帯訪問支援事業"],
        },
    )
    add("consent.granted", center, "internal", 3, {"plan": f"P-{child}", "version": 1, "recipients": [nursery]})
    day = 5
    month = 0
    while len(out) < n_events:
        day += 1
        roll = rng.random()
        if day % 30 == 0 and month < 18:
            month_start = (START + timedelta(days=day - 30)).date().replace(day=1)
            days = 20
            absent = rng.randrange(0, 8)
            add(
                "attendance.monthly",
                school,
                "cwa-25-3",
                day,
                {
                    "month": f"{month_start:%Y-%m}",
                    "school_days": days,
                    "attended": days - absent,
                    "absent": absent,
                    "absent_without_contact": rng.randrange(0, absent + 1),
                },
            )
            month += 1
        elif roll < 0.55:
            status = rng.choices(["present", "absent", "late"], [0.8, 0.15, 0.05])[0]
            add(
                "attendance.daily",
                school,
                "cwa-25-3",
                day,
                {
                    "date": (START + timedelta(days=day)).date().isoformat(),
                    "status": status,
                    "contacted": status != "absent" or rng.random() < 0.5,
                },
                to=center,
            )
        elif roll < 0.65:
            add(
                "concern.reported",
                rng.choice([school, nursery]),
                "cwa-21-10-5",
                day,
                {"summary": "服装の汚れが続いている", "signs": ["衛生"]},
            )
        elif roll < 0.75:
            add(
                "note.recorded",
                center,
                "internal",
                day,
                {"text": "家庭訪問。母親と面談。", "shelter": "非公開"},
                sensitive=["shelter"],
            )
        elif roll < 0.82:
            add("case.shared", center, "cwa-25-2", day, {"case": f"K-{child}", "summary": "実務者会議の方針"})
        elif roll < 0.88:
            add(
                "case.reviewed",
                center,
                "internal",
                day,
                {
                    "case": f"K-{child}",
                    "decision": "継続",
                    "next_review": (START + timedelta(days=day + 90 + spread)).date().isoformat(),
                },
            )
        elif roll < 0.93:
            add(
                "visit.report",
                provider,
                "commissioned",
                day,
                {"date": (START + timedelta(days=day)).date().isoformat(), "observations": "室内は片付いていた"},
                to=center,
            )
        elif abuse and roll < 0.97:
            add("ledger.updated", pref.jiso[m], "joint-ledger", day, {"case": f"K-{child}", "severity": "中度"})
        else:
            add(
                "service.usage",
                provider,
                "commissioned",
                day,
                {"service": "ショートステイ", "from": (START + timedelta(days=day)).date().isoformat()},
                to=center,
            )
        if day > 560:  # keep `at` in the past: wrap around within the period
            day = 5
    return out[:n_events]


def event_stream(
    pref: Prefecture, children: int, events_per_child: int, *, prefix: str = "c", seed: int = 7, window: int = 100
) -> Iterator[dict[str, Any]]:
    """Interleave the children's events the way a hub receives them (many organisations at once, each child's
    events in order), ``window`` children at a time so memory stays flat at any store size."""
    rng = random.Random(seed)
    for first in range(0, children, window):
        group = [
            child_events(pref, f"{prefix}{i:07d}", events_per_child, rng)
            for i in range(first, min(first + window, children))
        ]
        cursors = [0] * len(group)
        live = list(range(len(group)))
        while live:
            k = rng.randrange(len(live))
            i = live[k]
            yield group[i][cursors[i]]
            cursors[i] += 1
            if cursors[i] == len(group[i]):
                live[k] = live[-1]
                live.pop()
