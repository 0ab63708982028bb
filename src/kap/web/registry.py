"""What domains contribute to the web shell: navigation entries and dashboard panels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from markupsafe import Markup

from kap.core.deps import ProjectContext
from kap.core.links import project_link


@dataclass
class Row:
    text: str
    href: str | None = None
    meta: str | None = None


@dataclass
class Panel:
    id: str
    title: str
    rows: list[Row] = field(default_factory=list)
    chip: str | None = None
    empty: str | None = None


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    action: str
    order: int


PanelBuilder = Callable[[ProjectContext], Panel | None]
SectionBuilder = Callable[[ProjectContext], str | None]
NAV: list[NavItem] = []
PANELS: list[tuple[int, PanelBuilder]] = []
SECTIONS: list[tuple[int, SectionBuilder]] = []


def nav_item(href: str, label: str, action: str, order: int) -> None:
    """Add a navigation entry (a section of `/p/<project>/`) shown to roles allowed `action`."""
    if all(item.href != href for item in NAV):
        NAV.append(NavItem(href, label, action, order))
        NAV.sort(key=lambda item: item.order)


B = TypeVar("B", bound=Callable[..., object])


def _ordered(registry: list[tuple[int, B]], order: int) -> Callable[[B], B]:
    """A decorator adding a builder to a registry once, kept sorted by `order`."""
    def register(builder: B) -> B:
        if builder not in [b for _, b in registry]:
            registry.append((order, builder))
            registry.sort(key=lambda item: item[0])
        return builder
    return register


def dashboard_panel(order: int) -> Callable[[PanelBuilder], PanelBuilder]:
    """Register a dashboard panel; the builder returns None to hide it for this caller."""
    return _ordered(PANELS, order)


def settings_section(order: int) -> Callable[[SectionBuilder], SectionBuilder]:
    """Register a section of the settings page; the builder returns rendered HTML, or None to hide it."""
    return _ordered(SECTIONS, order)


def build_sections(ctx: ProjectContext) -> list[Markup]:
    return [Markup(html) for _, builder in SECTIONS if (html := builder(ctx)) is not None]


def visible_nav(ctx: ProjectContext) -> list[tuple[str, str]]:
    """The navigation entries this caller's role reaches, as links into the project."""
    return [(project_link(ctx.project_id, item.href), item.label) for item in NAV if ctx.allows(item.action)]


def build_panels(ctx: ProjectContext) -> list[Panel]:
    return [panel for _, builder in PANELS if (panel := builder(ctx)) is not None]


nav_item("dashboard", "Dashboard", "project.read", 10)
nav_item("settings", "Settings", "members.read", 80)
nav_item("admin", "Admin", "audit.read", 90)
