"""Which tables a backup holds, and how their rows travel as JSON lines.

The set is derived from SQLAlchemy metadata, never listed by hand: every table with
a `project_id` column, in dependency order, once every domain's models are imported.
Logs and ledgers (audit, telemetry, mail, digest sends) stay out, as does any table
whose `info` says `{"backup": False}`.
"""

from __future__ import annotations

import base64
import importlib
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Date, DateTime, LargeBinary, Numeric, Table, Uuid, select
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

from kap.core.db import Base

EXCLUDED = frozenset({"audit_events", "telemetry_events", "email_log", "digest_sends"})
READ_BATCH = 1000
_PACKAGE = Path(__file__).resolve().parent.parent


def load_models() -> list[str]:
    """Import every domain's models module so the metadata knows all tables."""
    importlib.import_module("kap.core.models")
    found = []
    for path in sorted(_PACKAGE.glob("*/models.py")):
        if path.parent.name != "core":
            importlib.import_module(f"kap.{path.parent.name}.models")
            found.append(path.parent.name)
    return found


def backup_tables() -> list[Table]:
    """Every project-scoped table to back up, parents before children."""
    load_models()
    return [t for t in Base.metadata.sorted_tables
            if "project_id" in t.c and t.name not in EXCLUDED and t.info.get("backup", True) is not False]


def table_by_name(name: str) -> Table | None:
    """A backed-up table by name, or None when this code does not back it up."""
    return next((t for t in backup_tables() if t.name == name), None)


@cache
def primary_key(table: Table) -> str:
    """The single primary-key column's name (restore remaps it)."""
    cols = list(table.primary_key.columns)
    if len(cols) != 1:
        raise ValueError(f"table {table.name} needs a single-column primary key to be backed up")
    return cols[0].name


def iter_rows(session: Session, table: Table, project_id: uuid.UUID) -> Iterator[dict[str, Any]]:
    """The project's rows of a table as JSON-ready dicts, read in batches."""
    stmt = (select(table).where(table.c.project_id == project_id).order_by(table.c[primary_key(table)])
            .execution_options(yield_per=READ_BATCH))
    for row in session.execute(stmt).mappings():
        yield {name: encode(table.c[name].type, value) for name, value in row.items()}


def _base_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    return type_.impl_instance if isinstance(type_, TypeDecorator) else type_


def encode(type_: TypeEngine[Any], value: Any) -> Any:
    """A column value as JSON."""
    if value is None:
        return None
    base = _base_type(type_)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(base, LargeBinary) or isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def decode(type_: TypeEngine[Any], value: Any) -> Any:
    """A JSON value back into what the column takes."""
    if value is None:
        return None
    base = _base_type(type_)
    if isinstance(base, JSON):
        return value
    if isinstance(base, Uuid):
        return uuid.UUID(str(value))
    if isinstance(base, DateTime):
        return datetime.fromisoformat(str(value))
    if isinstance(base, Date):
        return date.fromisoformat(str(value))
    if isinstance(base, LargeBinary):
        return base64.b64decode(str(value), validate=True)
    if isinstance(base, Numeric) and isinstance(value, str):
        return Decimal(value)
    return value


@cache
def uuid_columns(table: Table) -> tuple[str, ...]:
    """Columns holding ids."""
    return tuple(c.name for c in table.c if isinstance(_base_type(c.type), Uuid))


@cache
def json_columns(table: Table) -> tuple[str, ...]:
    """Columns holding JSON documents (ids inside them are remapped too)."""
    return tuple(c.name for c in table.c if isinstance(_base_type(c.type), JSON))


@cache
def unique_value_columns(table: Table) -> tuple[str, ...]:
    """Plain columns unique on their own (tokens, hashes): a copy beside the original needs new values."""
    single: set[str] = {c.name for c in table.c if c.unique}
    for constraint in table.constraints:
        cols = list(getattr(constraint, "columns", []))
        if constraint.__class__.__name__ == "UniqueConstraint" and len(cols) == 1:
            single.add(cols[0].name)
    for index in table.indexes:
        if index.unique and len(index.columns) == 1 and index.dialect_options["postgresql"].get("where") is None:
            single.add(next(iter(index.columns)).name)
    pk = primary_key(table)
    return tuple(sorted(name for name in single
                  if name not in (pk, "project_id", "org_id") and not table.c[name].foreign_keys
                  and not isinstance(_base_type(table.c[name].type), Uuid)))
