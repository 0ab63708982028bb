"""The one table of who may do what: each action maps to the lowest project role allowed.

Role ranks, the org roles that reach every project of their org, and how a project
role and an org role combine live here and nowhere else; the SQL behind row-level
security is generated from the same names (see `core/rls.py`).
"""

from __future__ import annotations

from enum import StrEnum

PROJECT_ROLE_RANK: dict[str, int] = {"member": 1, "lead": 2, "pm": 3, "admin": 4, "owner": 5}
ORG_ROLE_RANK: dict[str, int] = {"member": 1, "admin": 4, "owner": 5}
# Org roles at or above this one reach every project of the org, acting with the same project role.
ORG_ADMIN_FLOOR = "admin"

class Action(StrEnum):
    """Everything a project role can be allowed to do; `ACTIONS` says the lowest role for each."""

    PROJECT_READ = "project.read"
    PROJECT_UPDATE = "project.update"
    PROJECT_ARCHIVE = "project.archive"
    MEMBERS_READ = "members.read"
    MEMBERS_MANAGE = "members.manage"
    AUDIT_READ = "audit.read"
    TELEMETRY_READ = "telemetry.read"
    SENTINEL_RUN = "sentinel.run"
    DOCUMENTS_READ = "documents.read"
    DOCUMENTS_WRITE = "documents.write"
    SEARCH_READ = "search.read"
    ASK_USE = "ask.use"
    ASK_AUDIT = "ask.audit"
    STAGES_READ = "stages.read"
    STAGES_WRITE = "stages.write"
    SIGNOFF_REQUEST = "signoff.request"
    SIGNOFF_DECIDE_INTERNAL = "signoff.decide_internal"
    SIGNOFF_ALERTS = "signoff.alerts"
    RAID_READ = "raid.read"
    RAID_COMMENT = "raid.comment"
    RAID_WRITE = "raid.write"
    COMMS_READ = "comms.read"
    COMMS_MANAGE = "comms.manage"
    SUBSCRIPTIONS_SELF = "subscriptions.self"
    DIGEST_PREVIEW = "digest.preview"
    DIGEST_SEND = "digest.send"
    BACKUPS_READ = "backups.read"
    BACKUPS_RUN = "backups.run"
    BACKUPS_RESTORE = "backups.restore"
    QA_RUN = "qa.run"


ACTIONS: dict[Action, str] = {
    Action.PROJECT_READ: "member",
    Action.PROJECT_UPDATE: "admin",
    Action.PROJECT_ARCHIVE: "owner",
    Action.MEMBERS_READ: "member",
    Action.MEMBERS_MANAGE: "admin",
    Action.AUDIT_READ: "admin",
    Action.TELEMETRY_READ: "admin",
    Action.SENTINEL_RUN: "member",
    Action.DOCUMENTS_READ: "member",
    Action.DOCUMENTS_WRITE: "lead",
    Action.SEARCH_READ: "member",
    Action.ASK_USE: "member",
    Action.ASK_AUDIT: "owner",
    Action.STAGES_READ: "member",
    Action.STAGES_WRITE: "pm",
    Action.SIGNOFF_REQUEST: "pm",
    Action.SIGNOFF_DECIDE_INTERNAL: "admin",
    Action.SIGNOFF_ALERTS: "pm",
    Action.RAID_READ: "member",
    Action.RAID_COMMENT: "member",
    Action.RAID_WRITE: "lead",
    Action.COMMS_READ: "member",
    Action.COMMS_MANAGE: "pm",
    Action.SUBSCRIPTIONS_SELF: "member",
    Action.DIGEST_PREVIEW: "pm",
    Action.DIGEST_SEND: "pm",
    Action.BACKUPS_READ: "admin",
    Action.BACKUPS_RUN: "admin",
    Action.BACKUPS_RESTORE: "owner",
    Action.QA_RUN: "admin",
}

# An archived project is read-only until it is unarchived: `core/deps.py` refuses a request that
# would change it with 409 `project_archived`. Every request but a GET changes the project, except
# for these actions: a question to Ask Kap is sent by POST but only reads, and the archive action
# is how the project is unarchived. So a route added later is refused on an archived project
# unless it is named here.
WORKS_WHILE_ARCHIVED: frozenset[Action] = frozenset({Action.ASK_USE, Action.PROJECT_ARCHIVE})
# The actions that change nothing: the pages of an archived project offer controls for these alone.
READ_ACTIONS: frozenset[Action] = frozenset({
    Action.PROJECT_READ, Action.MEMBERS_READ, Action.AUDIT_READ, Action.TELEMETRY_READ, Action.SENTINEL_RUN,
    Action.DOCUMENTS_READ, Action.SEARCH_READ, Action.ASK_USE, Action.ASK_AUDIT, Action.STAGES_READ,
    Action.RAID_READ, Action.COMMS_READ, Action.DIGEST_PREVIEW, Action.BACKUPS_READ})


ROLE_LABELS: dict[str, str] = {"member": "member", "lead": "lead", "pm": "project manager",
                               "admin": "project admin", "owner": "project owner"}

# What each action lets a person do, in words for error messages and the 403 page.
ACTION_LABELS: dict[Action, str] = {
    Action.PROJECT_READ: "Opening this project",
    Action.PROJECT_UPDATE: "Changing the project",
    Action.PROJECT_ARCHIVE: "Archiving the project",
    Action.MEMBERS_READ: "Seeing the members",
    Action.MEMBERS_MANAGE: "Managing members",
    Action.AUDIT_READ: "Reading the audit log",
    Action.TELEMETRY_READ: "Reading telemetry",
    Action.SENTINEL_RUN: "Running the sentinel",
    Action.DOCUMENTS_READ: "Reading documents",
    Action.DOCUMENTS_WRITE: "Uploading and changing documents",
    Action.SEARCH_READ: "Searching documents",
    Action.ASK_USE: "Asking Kap",
    Action.ASK_AUDIT: "Reading the Ask Kap log",
    Action.STAGES_READ: "Seeing the stages",
    Action.STAGES_WRITE: "Changing the stage plan",
    Action.SIGNOFF_REQUEST: "Requesting a sign-off",
    Action.SIGNOFF_DECIDE_INTERNAL: "Recording a sign-off decision",
    Action.COMMS_READ: "Seeing the email settings",
    Action.COMMS_MANAGE: "Changing the email settings",
    Action.SUBSCRIPTIONS_SELF: "Changing your subscriptions",
    Action.DIGEST_PREVIEW: "Previewing the digest",
    Action.DIGEST_SEND: "Sending the digest",
    Action.BACKUPS_READ: "Seeing backups",
    Action.BACKUPS_RUN: "Running a backup",
    Action.BACKUPS_RESTORE: "Restoring a backup",
    Action.QA_RUN: "Running the quality checks",
}


def forbidden_message(action: Action, role: str | None) -> str:
    """Why an action is refused, in plain words: what it needs and what the caller is."""
    def a(label: str) -> str:
        return f"{'an' if label[0] in 'aeiou' else 'a'} {label}"
    higher = "" if ACTIONS[action] == "owner" else " or higher"
    you = f" You are {a(ROLE_LABELS.get(role, role))} here." if role else ""
    return (f"{ACTION_LABELS.get(action, 'This')} needs {a(ROLE_LABELS[ACTIONS[action]])}{higher}.{you} "
            "Ask a project admin if you need it.")


def role_allows(role: str, action: Action) -> bool:
    """Whether a project role may perform an action."""
    return PROJECT_ROLE_RANK.get(role, 0) >= PROJECT_ROLE_RANK[ACTIONS[action]]


def changes_project(method: str, action: str) -> bool:
    """Whether a request by `method` to a route declared for `action` changes its project."""
    return method not in ("GET", "HEAD") and action not in WORKS_WHILE_ARCHIVED


def offered_while_archived(action: str) -> bool:
    """Whether the pages of an archived project still offer an action's controls."""
    return action in READ_ACTIONS or action in WORKS_WHILE_ARCHIVED


def outranks(a: str, b: str) -> bool:
    """Whether project role `a` ranks strictly above project role `b`."""
    return PROJECT_ROLE_RANK[a] > PROJECT_ROLE_RANK[b]


def roles_at_least(role: str) -> tuple[str, ...]:
    """The project roles ranked at or above `role`, highest first."""
    floor = PROJECT_ROLE_RANK[role]
    return tuple(sorted((r for r, n in PROJECT_ROLE_RANK.items() if n >= floor),
                        key=PROJECT_ROLE_RANK.__getitem__, reverse=True))


def roles_allowed(action: Action) -> tuple[str, ...]:
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
