"""The one table of who may do what: each action maps to the lowest project role allowed."""

from __future__ import annotations

PROJECT_ROLE_RANK: dict[str, int] = {"member": 1, "lead": 2, "pm": 3, "admin": 4, "owner": 5}
ORG_ROLE_RANK: dict[str, int] = {"member": 1, "admin": 4, "owner": 5}

ACTIONS: dict[str, str] = {
    "project.read": "member",
    "project.update": "admin",
    "project.archive": "owner",
    "members.read": "member",
    "members.manage": "admin",
    "audit.read": "admin",
    "telemetry.read": "admin",
    "sentinel.run": "member",
    "documents.read": "member",
    "documents.write": "lead",
    "search.read": "member",
    "ask.use": "member",
    "ask.audit": "owner",
    "stages.read": "member",
    "stages.write": "pm",
    "signoff.request": "pm",
    "signoff.decide_internal": "admin",
    "comms.read": "member",
    "comms.manage": "pm",
    "subscriptions.self": "member",
    "digest.preview": "pm",
    "digest.send": "pm",
    "backups.read": "admin",
    "backups.run": "admin",
    "backups.restore": "owner",
    "qa.run": "admin",
}


def role_allows(role: str, action: str) -> bool:
    """Whether a project role may perform an action."""
    return PROJECT_ROLE_RANK.get(role, 0) >= PROJECT_ROLE_RANK[ACTIONS[action]]


def higher_role(a: str | None, b: str | None) -> str | None:
    """The higher of two project roles (either may be missing)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if PROJECT_ROLE_RANK[a] >= PROJECT_ROLE_RANK[b] else b


def lower_role(a: str, b: str) -> str:
    """The lower of two project roles."""
    return a if PROJECT_ROLE_RANK[a] <= PROJECT_ROLE_RANK[b] else b


def role_below(role: str) -> str | None:
    """The next lower project role, or None for the lowest."""
    rank = PROJECT_ROLE_RANK[role]
    lower = [r for r, n in PROJECT_ROLE_RANK.items() if n < rank]
    return max(lower, key=PROJECT_ROLE_RANK.__getitem__) if lower else None


def org_role_as_project_role(org_role: str) -> str | None:
    """Org owners and admins reach every project of their org with that role."""
    return org_role if org_role in ("owner", "admin") else None
