"""The hub's HTML pages (Jinja2 templates beside this file) and the one environment that renders them: autoescaped,
with the whitespace control every template is written for; and the one way dates are written for Japanese readers
(``wareki``, also the pages' ``wareki`` filter)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from adapters.csvfile import ERAS
from events.clock import JST


def wareki(moment: str | date | datetime, *, with_time: bool = True, western: bool = False) -> str:
    """A date (and time) as Japanese readers write it: 令和8年5月12日 11:00 (Japan time). ``western``: the staff UI's
    form (ui.md), with the weekday and the 西暦 beside it: 令和8年5月12日(火) / 2026-05-12 (and the time)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment) if "T" in moment else date.fromisoformat(moment[:10])
    if isinstance(moment, datetime):
        value = moment.astimezone(JST) if moment.tzinfo else moment
    else:
        value = datetime(moment.year, moment.month, moment.day, tzinfo=JST)
        with_time = False
    era = next((e for e in ERAS if e.start <= value.date()), None)
    if era is None:
        text = f"{value.year}年{value.month}月{value.day}日"
    else:
        year = value.year - era.first_year + 1
        text = f"{era.name}{'元' if year == 1 else year}年{value.month}月{value.day}日"
    if western:
        text = f"{text}({WEEKDAYS[value.weekday()]}) / {value:%Y-%m-%d}"
    return f"{text} {value:%H:%M}" if with_time else text


WEEKDAYS = "月火水木金土日"


PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
PAGES.filters["wareki"] = wareki


def render(template: str, **context: Any) -> str:
    """The page ``template`` (e.g. ``agenda.html``) rendered with ``context``."""
    return PAGES.get_template(template).render(**context)
