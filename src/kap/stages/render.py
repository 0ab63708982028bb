"""Jinja2 templates of the stages domain: HTML autoescaped, plain text left as typed."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _filesize(size: int | None) -> str:
    if not size:
        return ""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The template environment (autoescape on for .html, off for .txt)."""
    env = Environment(loader=PackageLoader("kap.stages", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["filesize"] = _filesize
    return env


def render(name: str, **context: Any) -> str:
    """Render one template of this domain."""
    return environment().get_template(name).render(**context)
