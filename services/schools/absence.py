"""Absence streaks (連続欠席) from daily attendance, for the immediate notice schools owe the centre.

domain.md, flow 2, and school-reports.md: the school informs the municipality without waiting for the monthly
report when a listed child has been absent **7 or more consecutive school days, whatever the reason**
(休業日を除き引き続き7日以上), and when absences continue **without contact** (3 consecutive school days here).

- School days are the days of the school's calendar (days on which it sent any row); other days are 休業日 and
  neither count nor break a streak.
- A day counts towards the 7-day streak when the child did not attend: 欠席, 出席停止 or 忌引. A day attended
  (出席, 遅刻, 早退) ends it, and so does a school day without any row for the child: the rule needs every day
  of the streak reported as absent (if the row arrives later, the streak is found then).
- A day counts towards the no-contact streak when it is 欠席 with 連絡無; any other school day ends it.
- One alert per streak: a streak that already has an alert of the same reason starting within it gets no
  other, however the streak later grows (or starts earlier, when older days arrive late).

Pure: the import service passes the calendar, the child's days and the alerts already raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

CONSECUTIVE_ABSENCE_DAYS = 7  # 休業日を除き引き続き7日以上の欠席
NO_CONTACT_DAYS = 3  # 連絡のない欠席が3日続く
ATTENDED = frozenset({"present", "late", "early_leave"})  # 出席・遅刻・早退


@dataclass(frozen=True)
class Streak:
    reason: str  # consecutive_absence | no_contact
    since: date  # the first school day of the streak
    reached: date  # the school day on which it reached the threshold
    last: date  # the last school day of the streak known so far
    days: int  # the threshold (the fact the alert states: "7 school days absent since …")


def streaks(school_days: Iterable[date], attendance: Mapping[date, tuple[str, bool | None]]) -> list[Streak]:
    """Every streak that reaches a threshold. ``attendance``: date → (status, contacted) for the child."""
    found: list[Streak] = []
    runs: dict[str, list[date]] = {"consecutive_absence": [], "no_contact": []}
    thresholds = {"consecutive_absence": CONSECUTIVE_ABSENCE_DAYS, "no_contact": NO_CONTACT_DAYS}

    def close(reason: str) -> None:
        run = runs[reason]
        if len(run) >= thresholds[reason]:
            found.append(Streak(reason, run[0], run[thresholds[reason] - 1], run[-1], thresholds[reason]))
        runs[reason] = []

    for day in sorted(set(school_days) | set(attendance)):
        status, contacted = attendance.get(day, (None, None))
        not_attended = status is not None and status not in ATTENDED
        for reason, counts in (
            ("consecutive_absence", not_attended),
            ("no_contact", status == "absent" and contacted is False),
        ):
            if counts:
                runs[reason].append(day)
            else:
                close(reason)
    for reason in runs:
        close(reason)
    return sorted(found, key=lambda s: (s.since, s.reason))


def unalerted(found: Iterable[Streak], raised: Iterable[tuple[str, date]]) -> list[Streak]:
    """The streaks that have no alert yet: ``raised`` holds (reason, since) of the alerts already raised."""
    raised = list(raised)
    return [s for s in found if not any(reason == s.reason and s.since <= since <= s.last for reason, since in raised)]
