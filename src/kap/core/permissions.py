"""The one table of who may do what: each action maps to the lowest project role allowed.

Role ranks, the org roles that reach every project of their org, and how a project
role and an org role combine live here and nowhere else; the SQL behind row-level
security is generated from the same names (see `core/rls.py`).
"""

from __future__ import annotations

PROJECT_ROLE_RANK: dict[str, int] = {"member": 1, "lead": 2, "pm": 3, "admin": 4, "owner": 5}
ORG_ROLE_RANK: dict[str, int] = {"member": 1, "admin": 4, "owner": 5}
# Org roles at or above this one reach every project of the org, acting with the same project role.
ORG_ADMIN_FLOOR = "admin"

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
    "signoff.alerts": "pm",
    "raid.read": "member",
    "raid.comment": "member",
    "raid.write": "lead",
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


ROLE_LABELS: dict[str, str] = {"member": "member", "lead": "lead", "pm": "project manager",
                               "admin": "project admin", "owner": "project owner"}

# What each action lets a person do, in words for error messages and the 403 page.
ACTION_LABELS: dict[str, str] = {
    "project.read": "Opening this project", "project.update": "Changing the project",
    "project.archive": "Archiving the project", "members.read": "Seeing the members",
    "members.manage": "Managing members", "audit.read": "Reading the audit log",
    "telemetry.read": "Reading telemetry", "sentinel.run": "Running the sentinel",
    "documents.read": "Reading documents", "documents.write": "Uploading and changing documents",
    "search.read": "Searching documents", "ask.use": "Asking Kap", "ask.audit": "Reading the Ask Kap log",
    "stages.read": "Seeing the stages", "stages.write": "Changing the stage plan",
    "signoff.request": "Requesting a sign-off", "signoff.decide_internal": "Recording a sign-off decision",
    "comms.read": "Seeing the email settings", "comms.manage": "Changing the email settings",
    "subscriptions.self": "Changing your subscriptions", "digest.preview": "Previewing the digest",
    "digest.send": "Sending the digest", "backups.read": "Seeing backups", "backups.run": "Running a backup",
    "backups.restore": "Restoring a backup", "qa.run": "Running the quality checks",
}


def forbidden_message(action: str, role: str | None) -> str:
    """Why an action is refused, in plain words: what it needs and what the caller is."""
    def a(label: str) -> str:
        return f"{'an' if label[0] in 'aeiou' else 'a'} {label}"
    higher = "" if ACTIONS[action] == "owner" else " or higher"
    you = f" You are {a(ROLE_LABELS.get(role, role))} here." if role else ""
    return (f"{ACTION_LABELS.get(action, 'This')} needs {a(ROLE_LABELS[ACTIONS[action]])}{higher}.{you} "
            "Ask a project admin if you need it.")


def role_allows(role: str, action: str) -> bool:
    """Whether a project role may perform an action."""
    return PROJECT_ROLE_RANK.get(role, 0) >= PROJECT_ROLE_RANK[ACTIONS[action]]


def outranks(a: str, b: str) -> bool:
    """Whether project role `a` ranks strictly above project role `b`."""
    return PROJECT_ROLE_RANK[a] > PROJECT_ROLE_RANK[b]


def roles_at_least(role: str) -> tuple[str, ...]:
    """The project roles ranked at or above `role`, highest first."""
    floor = PROJECT_ROLE_RANK[role]
    return tuple(sorted((r for r, n in PROJECT_ROLE_RANK.items() if n >= floor),
                        key=PROJECT_ROLE_RANK.__getitem__, reverse=True))


def roles_allowed(action: str) -> tuple[str, ...]:
    """The project roles that may perform an action, highest first."""
    return roles_at_least(ACTIONS[action])


def grantable_roles(role: str) -> list[str]:
    """The project roles a caller acting as `role` may hand out (their own rank and below)."""
    return [r for r in PROJECT_ROLE_RANK if not outranks(r, role)]


def org_admin_roles() -> tuple[str, ...]:
    """The org roles that administer the org and reach every project in it."""
    floor = ORG_ROLE_RANK[ORG_ADMIN_FLOOR]
    return tuple(r for r, n in sorted(ORG_ROLE_RANK.items(), key=lambda kv: -kv[1]) if n >= floor)


def is_org_admin(org_role: str | None) -> bool:
    """Whether an org role administers its org."""
    return org_role in org_admin_roles()


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
    return org_role if is_org_admin(org_role) else None


def effective_role(member_role: str | None, org_role: str | None, dev_role: str | None = None) -> str | None:
    """The role a caller acts with in a project: the higher of membership and org reach,
    capped (never raised) by a dev-auth role header; None when the project is out of reach."""
    role = higher_role(member_role, org_role_as_project_role(org_role) if org_role else None)
    if role is not None and dev_role:
        role = lower_role(role, dev_role)
    return role


def sql_list(roles: tuple[str, ...]) -> str:
    """Roles as a SQL literal list (`'owner', 'admin'`) for generated policy functions."""
    if not all(r.isalpha() for r in roles):
        raise ValueError(f"invalid role names {roles!r}")
    return ", ".join(f"'{r}'" for r in roles)


# Who may create projects in an org (the org's `project_creators` setting): the lowest org role.
PROJECT_CREATORS: dict[str, str] = {"admins": "admin", "members": "member"}
PROJECT_CREATORS_LABELS: dict[str, str] = {"admins": "Org owners and admins", "members": "Every org member"}


def may_create_projects(org_role: str | None, project_creators: str) -> bool:
    """Whether an org role may create projects under the org's setting (owners and admins by default)."""
    floor = PROJECT_CREATORS.get(project_creators, ORG_ADMIN_FLOOR)
    return ORG_ROLE_RANK.get(org_role or "", 0) >= ORG_ROLE_RANK[floor]
