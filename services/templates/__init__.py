"""The hub's HTML pages (Jinja2 templates beside this file) and the one environment that renders them: autoescaped,
with the whitespace control every template is written for; and the one way dates are written for Japanese readers
(``wareki``, also the pages' ``wareki`` filter)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from adapters.csvfile import ERAS
from events.clock import JST


def wareki(moment: str | datetime, *, with_time: bool = True) -> str:
    """A date (and time) as Japanese readers write it: 令和8年5月12日 11:00 (Japan time)."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    value = value.astimezone(JST) if value.tzinfo else value
    era = next((e for e in ERAS if e.start <= value.date()), None)
    if era is None:
        text = f"{value.year}年{value.month}月{value.day}日"
    else:
        year = value.year - era.first_year + 1
        text = f"{era.name}{'元' if year == 1 else year}年{value.month}月{value.day}日"
    return f"{text} {value:%H:%M}" if with_time else text


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
