"""The hub's HTML pages (Jinja2 templates beside this file) and the one environment that renders them: autoescaped,
with the whitespace control every template is written for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """The page ``template`` (e.g. ``agenda.html``) rendered with ``context``."""
    return PAGES.get_template(template).render(**context)
