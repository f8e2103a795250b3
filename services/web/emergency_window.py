"""The emergency window (緊急時アクセス) as the child's page shows it: who may declare, and the reader's open window
with the time left, from the declarations the emergency read returned and the setting ``emergency_hours``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from events.model import CENTER, JISO
from services.reading.timeline import Timeline

if TYPE_CHECKING:
    from services.hub import Hub
    from services.web.session import Person

DECLARERS = frozenset({CENTER, JISO})


@dataclass(frozen=True)
class Window:
    """The open emergency window of the reader's organisation: declared at, ends at, and what is left."""

    declared: str
    ends: datetime
    left: timedelta
    hours: int

    @property
    def left_ja(self) -> str:
        minutes = max(0, int(self.left.total_seconds() // 60))
        hours, minutes = divmod(minutes, 60)
        return f"{hours}時間{minutes}分" if hours else f"{minutes}分"


def may_declare(hub: Hub, person: Person) -> bool:
    org = hub.orgs().get(person.org)
    return org is not None and org.type in DECLARERS


def window(hub: Hub, person: Person, timeline: Timeline) -> Window | None:
    """The reader's open window, from the declarations the (emergency) read returned and ``emergency_hours``."""
    hours = hub.settings.emergency_hours
    now = datetime.fromisoformat(timeline.t)
    open_ = [
        datetime.fromisoformat(e.at)
        for e in timeline.entries
        if e.kind == "emergency.declared" and e.source == person.org
    ]
    open_ = [at for at in open_ if at <= now < at + timedelta(hours=hours)]
    if not open_:
        return None
    declared = max(open_)
    ends = declared + timedelta(hours=hours)
    return Window(declared.isoformat(), ends, ends - now, hours)
