"""The console's pages: Jinja2 templates (bundled in templates/, autoescaped), rendered with the
request's language, its CSRF token and what the frame needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any

import jinja2

from bridge.app.console.web import Answer, Request
from bridge.app.console.words import word
from bridge.durations import format_duration

TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = lambda seconds: "" if seconds is None else format_duration(seconds)
    return env


_ENV = _environment()


class Views:
    def __init__(self, timezone: Callable[[], tzinfo], read_only: Callable[[], bool]) -> None:
        self._timezone = timezone
        self._read_only = read_only

    def when(self, stamp: float | None) -> str:
        """A time as the console shows it: in the config's zone, to the second."""
        if stamp is None:
            return ""
        return datetime.fromtimestamp(stamp, self._timezone()).strftime("%Y-%m-%d %H:%M:%S")

    def when_iso(self, text: str | None) -> str:
        """An ISO 8601 time (the reloader's) as `when` shows times; as given if unreadable."""
        try:
            return self.when(datetime.fromisoformat(str(text)).timestamp()) if text else ""
        except ValueError:
            return str(text)

    def page(
        self, req: Request, template: str, status: int = 200, nav: str = "", **values: Any
    ) -> Answer:
        html = _ENV.get_template(template).render(
            _=partial(word, req.locale),
            req=req,
            base=req.base,
            lang=req.locale,
            csrf=req.csrf,
            may_act=req.may_act,
            read_only=self._read_only(),
            when=self.when,
            when_iso=self.when_iso,
            nav=nav,
            **values,
        )
        return Answer(status, html.encode())


def template_words() -> Mapping[str, str]:
    """Every template's source by name (tests/test_console_words.py reads their `_()` calls)."""
    return {p.name: p.read_text("utf-8") for p in sorted(TEMPLATES.glob("*.html"))}
