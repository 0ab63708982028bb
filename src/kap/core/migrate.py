"""Alembic driven from code: one script folder for core, one per domain that has tables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from kap.core.settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def version_locations() -> list[str]:
    """Core's versions folder plus every domain's `migrations/` folder."""
    folders = [PACKAGE_DIR / "migrations" / "versions"]
    folders += sorted(p for p in PACKAGE_DIR.glob("*/migrations") if p.is_dir() and p.parent.name != "core")
    return [str(p) for p in folders]


def alembic_config(url: str | None = None, app_role: str = "kap_app") -> Config:
    """An Alembic config pointing at Kap's scripts and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    cfg.set_main_option("version_locations", " ".join(version_locations()))
    cfg.set_main_option("path_separator", "space")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["app_role"] = app_role
    return cfg


@lru_cache(maxsize=1)
def script_heads() -> set[str]:
    """The revisions a fully migrated database is at."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def upgrade(url: str, app_role: str = "kap_app") -> None:
    """Migrate the database at `url` to every head."""
    command.upgrade(alembic_config(url, app_role), "heads")


def migrate(settings: Settings) -> None:
    """Migrate the configured database, creating the data folder for SQLite."""
    if not settings.is_postgres:
        settings.kap_data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url, settings.kap_app_db_role)
