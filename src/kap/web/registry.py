"""What domains contribute to the web shell: navigation entries and dashboard panels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from markupsafe import Markup

from kap.core.deps import ProjectContext
from kap.core.links import project_link
from kap.core.permissions import ACTIONS, Action


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
    action: Action
    order: int


PanelBuilder = Callable[[ProjectContext], Panel | None]
SectionBuilder = Callable[[ProjectContext], str | None]
NAV: list[NavItem] = []
PANELS: list[tuple[int, Action, PanelBuilder]] = []
SECTIONS: list[tuple[int, Action, SectionBuilder]] = []


def nav_item(href: str, label: str, action: Action, order: int) -> None:
    """Add a navigation entry (a section of `/p/<project>/`) shown to roles allowed `action`."""
    if all(item.href != href for item in NAV):
        NAV.append(NavItem(href, label, action, order))
        NAV.sort(key=lambda item: item.order)


B = TypeVar("B", bound=Callable[..., object])
ZoneSource = Callable[[ProjectContext], str]
ZONE: list[ZoneSource] = []


def _ordered(registry: list[tuple[int, Action, B]], order: int, action: Action) -> Callable[[B], B]:
    """A decorator adding a builder with its action to a registry once, kept sorted by `order`."""
    if action not in ACTIONS:
        raise KeyError(f"unknown action {action!r}")

    def register(builder: B) -> B:
        if builder not in [b for _, _, b in registry]:
            registry.append((order, action, builder))
            registry.sort(key=lambda item: item[0])
        return builder
    return register


def dashboard_panel(order: int, action: Action) -> Callable[[PanelBuilder], PanelBuilder]:
    """Register a dashboard panel shown to roles allowed `action` (the API's action for the same data)."""
    return _ordered(PANELS, order, action)


def settings_section(order: int, action: Action) -> Callable[[SectionBuilder], SectionBuilder]:
    """Register a settings section shown to roles allowed `action`; it returns HTML, or None to hide it."""
    return _ordered(SECTIONS, order, action)


def build_sections(ctx: ProjectContext) -> list[Markup]:
    """The settings sections this caller's role reaches."""
    return [Markup(html) for _, action, builder in SECTIONS
            if ctx.allows(action) and (html := builder(ctx)) is not None]


def visible_nav(ctx: ProjectContext) -> list[tuple[str, str]]:
    """The navigation entries this caller's role reaches, as links into the project."""
    return [(project_link(ctx.project_id, item.href), item.label) for item in NAV if ctx.allows(item.action)]


def build_panels(ctx: ProjectContext) -> list[Panel]:
    """The dashboard panels this caller's role reaches."""
    return [panel for _, action, builder in PANELS if ctx.allows(action) and (panel := builder(ctx)) is not None]


def project_zone_source(source: ZoneSource) -> ZoneSource:
    """Register where a project's time zone comes from (the comms settings own it)."""
    ZONE[:] = [source]
    return source


def project_zone(ctx: ProjectContext) -> str:
    """The project's IANA time zone, UTC when none is set."""
    return ZONE[0](ctx) if ZONE else "UTC"


nav_item("dashboard", "Dashboard", Action.PROJECT_READ, 10)
nav_item("settings", "Settings", Action.MEMBERS_READ, 80)
nav_item("admin", "Admin", Action.AUDIT_READ, 90)
