"""The sentinel's answer: one check per wall, and whether anything of the target came back."""

from __future__ import annotations

from pydantic import BaseModel

from kap.core.schemas import Ok


class AccessCheck(BaseModel):
    check: str
    denied: bool


class ReadCheck(BaseModel):
    check: str
    leaked: int
    skipped: str | None


class TableCheck(BaseModel):
    check: str
    app_rows: int
    # None on SQLite, which has no row-level security to count through.
    rls_rows: int | None


class LeakReport(Ok):
    leak: bool
    checks: list[AccessCheck | ReadCheck | TableCheck]


class EntitledReport(LeakReport):
    """The caller reaches the target project: nothing it returns is a leak."""

    authorized: bool = True
