"""Find actions, risks, issues and decisions in a document's text, offline and deterministically.

Input is the document's extracted segments (each with its page and locator); every
proposal keeps the verbatim line it came from. Four readers share the work:

- RAID-shaped tables: spreadsheet, CSV and table rows ("ID: R-07; Type: Risk; ...")
  whose headers name a description and an owner or status, in any order and wording;
- labelled lines: "Decision D-01: …", "Action A-07: …", "Risk: …", "Issue: …";
- sections: lines under headings such as "Next steps" or "Decisions needed"
  (a slide's title counts as its heading);
- mail bodies: "X to send … by Friday", "a decision is needed by March 3",
  "open question on …" (quoted earlier messages are skipped).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date

from kap.raid import dates

Kind = str


@dataclass
class Segment:
    text: str
    page: int | None = None
    locator: str = ""


@dataclass
class Proposal:
    kind: Kind
    title: str
    quote: str
    page: int | None = None
    locator: str = ""
    ref: str | None = None
    owner: str | None = None
    due: date | None = None
    status: str = "open"
    severity: str | None = None
    details: str = ""
    extra: dict[str, str] = field(default_factory=dict)


REF = r"[A-Z]{1,4}-?\d{1,4}"
REF_PREFIX = {"A": "action", "AI": "action", "R": "risk", "I": "issue", "D": "decision"}
_BULLET = r"(?:[-*•·▪‣◦–]\s+|\d{1,2}[.)]\s+|\[[ xX]?\]\s+)"
LABELLED = re.compile(
    rf"^\s*(?:{_BULLET})?(?:\*\*)?(?P<label>(?i:decision|action(?:\s+item)?|risk|issue))"
    rf"(?:\s+(?P<ref>{REF}|#\d{{1,5}}))?(?:\*\*)?(?:\s*:|\s+[-–—])\s*(?:\*\*)?\s*(?P<rest>\S.*)$")
LEADING_REF = re.compile(rf"^(?P<ref>{REF})\s*(?::|[-–—]|\s)\s*(?P<rest>\S.*)$")
BULLET_LINE = re.compile(rf"^\s*{_BULLET}(?P<rest>\S.*)$")
NAME = r"(?:[A-Z][a-zA-Z'’.-]+(?:\s+(?:van|de|von|da|di|le))?(?:\s+[A-Z][a-zA-Z'’-]+){0,2})"
NOT_NAMES = {"The", "We", "All", "This", "That", "It", "They", "Need", "Needs", "Plan", "Team", "Please", "There",
             "Next", "Also", "And", "But", "If", "When", "Who", "What", "Any", "Each", "Design", "Build", "Test"}
OWNER_LEAD = re.compile(rf"^(?P<owner>(?:the\s+)?{NAME})\s+(?:to|will|shall|must|should|needs? to)\s+"
                        rf"(?P<verb>[a-z][\w-]*)\b")
OWNER_FIELD = re.compile(rf"[(\[,;.]?\s*\b(?i:owner|owned by|assigned to|assignee|responsible)\s*[:\-–]?\s*"
                         rf"(?P<owner>{NAME})\s*[)\]]?")
FIELD = re.compile(r"[(\[,;.]?\s*\b(?P<name>status|severity|priority|impact)\s*[:=]\s*(?P<value>[A-Za-z][\w -]{0,20}?)"
                   r"\s*(?:[)\];,.]|$)", re.IGNORECASE)
ROW_KEYS = re.compile(r"(?:^|; )([^;:]{1,40}): ")

HEADINGS: dict[str, tuple[Kind, str]] = {}
for _kind, _status, _names in [
    ("action", "open", ("next steps", "action items", "actions", "open actions", "follow-ups", "follow ups",
                        "follow-up actions", "to do", "todo", "to-dos", "action points", "new actions")),
    ("decision", "decided", ("decisions", "decisions made", "key decisions", "decisions taken", "agreed",
                             "decisions agreed")),
    ("decision", "pending", ("decisions needed", "decisions required", "decisions requested", "open decisions",
                             "decisions pending", "for decision", "decision needed", "decision required",
                             "asks", "approvals needed")),
    ("risk", "open", ("risks", "key risks", "top risks", "open risks", "new risks", "risks and mitigations")),
    ("issue", "open", ("issues", "open issues", "key issues", "open questions", "blockers", "new issues")),
]:
    for _name in _names:
        HEADINGS[_name] = (_kind, _status)

STATUS_WORDS = [
    ("in_progress", ("in progress", "ongoing", "wip", "started", "underway", "in hand", "amber")),
    ("pending", ("pending", "proposed", "awaiting", "needed", "for decision", "requested", "tbd", "on hold")),
    ("done", ("done", "complete", "completed", "delivered", "finished")),
    ("resolved", ("resolved", "fixed", "mitigated")),
    ("closed", ("closed", "cancelled", "canceled", "retired", "obsolete")),
    ("approved", ("approved", "agreed", "accepted", "signed off")),
    ("rejected", ("rejected", "declined", "not approved")),
    ("decided", ("decided", "made", "final")),
    ("open", ("open", "new", "active", "raised", "identified", "not started", "red", "live")),
]
SEVERITY_WORDS = [
    ("critical", ("critical", "very high", "severe", "showstopper", "5", "4")),
    ("high", ("high", "h", "red", "major", "3", "significant")),
    ("medium", ("medium", "med", "m", "amber", "moderate", "2")),
    ("low", ("low", "l", "green", "minor", "1")),
]


def normal_status(value: str, default: str = "open") -> str:
    """A free-text status mapped onto Kap's statuses."""
    text = value.strip().lower()
    for status, words in STATUS_WORDS:
        if text in words or any(re.search(rf"\b{re.escape(w)}\b", text) for w in words if len(w) > 3):
            return status
    return default


def normal_severity(value: str) -> str | None:
    text = value.strip().lower()
    for severity, words in SEVERITY_WORDS:
        if text in words or any(re.search(rf"\b{re.escape(w)}\b", text) for w in words if len(w) > 2):
            return severity
    return None


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" \t-–—:;,*")
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _owner_ok(name: str) -> bool:
    first = name.split()[0]
    return first not in NOT_NAMES and not re.fullmatch(REF, name)


def parse_phrase(rest: str, ref_date: date) -> dict[str, object]:
    """Owner, due date, status, severity and a clean title from one item's text."""
    found: dict[str, object] = {}
    text = rest
    m = OWNER_FIELD.search(text)
    if m and _owner_ok(m.group("owner")):
        found["owner"] = m.group("owner").strip()
        text = text[:m.start()] + text[m.end():]
    for fm in list(FIELD.finditer(text))[::-1]:
        name, value = fm.group("name").lower(), fm.group("value")
        if name == "status":
            found["status"] = normal_status(value)
        elif (severity := normal_severity(value)) is not None:
            found["severity"] = severity
        else:
            continue
        text = text[:fm.start()] + text[fm.end():]
    due, span = dates.due_date(text, ref_date)
    if due is not None and span is not None:
        found["due"] = due
        if span[1] >= len(text.rstrip(" .;")) - 1:  # a trailing "by <date>" is not part of the title
            text = text[:span[0]]
    lead = OWNER_LEAD.match(text.strip())
    if lead and _owner_ok(lead.group("owner")) and "owner" not in found:
        found["owner"] = re.sub(r"^the\s+", "", lead.group("owner")).strip()
        text = text.strip()[lead.start("verb"):]
    found["title"] = _capital(_tidy(text))
    return found


def _proposal(kind: Kind, rest: str, quote: str, seg: Segment, ref_date: date, *, ref: str | None = None,
              status: str = "open") -> Proposal | None:
    parts = parse_phrase(rest, ref_date)
    title = str(parts.get("title") or "")
    if len(title) < 4:
        return None
    return Proposal(kind=kind, title=title[:500], quote=quote.strip(), page=seg.page, locator=seg.locator, ref=ref,
                    owner=parts.get("owner"), due=parts.get("due"),  # type: ignore[arg-type]
                    status=str(parts.get("status") or status), severity=parts.get("severity"))  # type: ignore[arg-type]


def _label_kind(label: str) -> Kind:
    word = label.lower().split()[0]
    return {"decision": "decision", "action": "action", "risk": "risk", "issue": "issue"}[word]


def _heading(line: str) -> tuple[Kind, str, str] | None:
    """A section heading's (kind, status, text after it on the same line), or None."""
    text = line.strip().lstrip("#").strip().strip("*_").strip()
    head, _, after = text.partition(":") if ":" in text else (text, "", "")
    candidates = [head]
    # "Steering committee - March 5, 2026: Decisions needed" is a slide titled by its last part.
    for sep in (": ", " - ", " – ", " — ", " | "):
        if sep in text:
            candidates.append(text.rsplit(sep, 1)[1])
    for candidate in candidates:
        key = candidate.strip().strip("*_:").strip().lower()
        if key in HEADINGS:
            kind, status = HEADINGS[key]
            rest = after.strip() if candidate is head else ""
            return kind, status, rest
    return None


def _section_ref(kind: Kind, rest: str) -> tuple[str | None, str]:
    """A reference that leads an item ("A-12 Send …") belongs to it if its letter fits the kind."""
    m = LEADING_REF.match(rest)
    if m:
        prefix = re.sub(r"[-\d]", "", m.group("ref"))
        if REF_PREFIX.get(prefix) in (kind, None):
            return _ref(m.group("ref")), m.group("rest")
    return None, rest


def _ref(raw: str) -> str:
    raw = raw.upper().lstrip("#")
    m = re.fullmatch(r"([A-Z]{1,4})-?(\d{1,4})", raw)
    return f"{m.group(1)}-{m.group(2)}" if m else raw


def _is_subheading(line: str) -> bool:
    text = line.strip()
    return text.startswith("#") or text.endswith(":") or text.lower().startswith("notes:")


def prose_items(seg: Segment, ref_date: date, *, is_slide: bool = False) -> Iterator[Proposal]:
    """Labelled lines and items under RAID headings."""
    section: tuple[Kind, str] | None = None
    bullets: bool | None = None
    lines = seg.text.split("\n")
    for index, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            if section and bullets is False:
                section = None
            continue
        labelled = LABELLED.match(line)
        if labelled:
            section = None
            kind = _label_kind(labelled.group("label"))
            ref = _ref(labelled.group("ref")) if labelled.group("ref") else None
            status = "decided" if kind == "decision" else "open"
            if (p := _proposal(kind, labelled.group("rest"), line, seg, ref_date, ref=ref, status=status)):
                yield p
            continue
        heading = _heading(line) if len(line) < 120 else None
        if heading and (index == 0 or not is_slide):
            kind, status, after = heading
            section, bullets = (kind, status), None
            if after and (p := _proposal(kind, after, line, seg, ref_date, status=status)):
                yield p
            continue
        if section is None:
            continue
        bullet = BULLET_LINE.match(line)
        if bullets is None:
            bullets = bool(bullet)
        if (bullets and not bullet) or _is_subheading(line):
            section = None
            continue
        kind, status = section
        rest = bullet.group("rest") if bullet else line
        ref, rest = _section_ref(kind, rest)
        if (p := _proposal(kind, rest, line, seg, ref_date, ref=ref, status=status)):
            yield p


# ---- mail --------------------------------------------------------------------------------------

SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
DECISION_NEEDED = re.compile(r"(?:,|;)?\s*(?:and\s+)?(?:a\s+)?(?:decision|sign-off|approval)\s+(?:is\s+|are\s+)?"
                             r"(?:needed|required|requested|due)\b.*$", re.IGNORECASE)
NEED_DECISION = re.compile(r"\b(?:need|needs|require|requires)\s+(?:a\s+)?decision\s+(?:on|about)\s+(?P<what>.+)$",
                           re.IGNORECASE)
OPEN_QUESTION = re.compile(r"\bopen (?:question|issue|point)s?\s+(?:on|about|regarding|around)\s+(?P<what>[^.;]+)",
                           re.IGNORECASE)
HEADER_LINE = re.compile(r"^(?:Subject|From|To|Cc|Bcc|Date|Sent):", re.IGNORECASE)
REPLY_START = re.compile(r"^(?:On .+ wrote:|-{2,}\s*Original Message\s*-{2,}|From: .+)$", re.IGNORECASE)


def is_mail(seg: Segment) -> bool:
    head = seg.text[:600]
    return seg.locator == "Message" or (bool(re.search(r"^Subject:", head, re.M))
                                        and bool(re.search(r"^From:", head, re.M)))


def mail_body(text: str) -> list[str]:
    """The newest message's own lines: headers, quoted text and earlier messages left out."""
    lines = text.split("\n")
    start = 0
    while start < len(lines) and HEADER_LINE.match(lines[start]):
        start += 1
    body: list[str] = []
    for line in lines[start:]:
        if line.lstrip().startswith(">") or (body and REPLY_START.match(line.strip())):
            break
        body.append(line)
    return body


def mail_items(seg: Segment, ref_date: date) -> Iterator[Proposal]:
    """Commitments, decisions asked for and open questions in the newest message of a mail."""
    for line in mail_body(seg.text):
        for m in SENTENCE.finditer(line):
            sentence = m.group(0).strip()
            if len(sentence) < 8 or LABELLED.match(sentence):
                continue
            yield from _mail_sentence(sentence, seg, ref_date)


def _mail_sentence(sentence: str, seg: Segment, ref_date: date) -> Iterator[Proposal]:
    decision = DECISION_NEEDED.search(sentence)
    need = NEED_DECISION.search(sentence)
    if decision or need:
        due, _ = dates.due_date(sentence, ref_date)
        title = _tidy(need.group("what")) if need else _tidy(sentence[:decision.start()]) if decision else ""
        if len(title) >= 4:
            yield Proposal(kind="decision", title=_capital(title)[:500], quote=sentence, page=seg.page,
                           locator=seg.locator, due=due, status="pending")
        return
    question = OPEN_QUESTION.search(sentence)
    if question:
        yield Proposal(kind="issue", title=_capital(_tidy(question.group(0))), quote=sentence, page=seg.page,
                       locator=seg.locator, status="open")
        return
    lead = OWNER_LEAD.search(sentence)
    due, _ = dates.due_date(sentence, ref_date)
    if lead and due and _owner_ok(lead.group("owner")):
        p = _proposal("action", sentence[lead.start():], sentence, seg, ref_date)
        if p:
            yield p


# ---- tables --------------------------------------------------------------------------------------

ROLE_WORDS: list[tuple[str, tuple[str, ...]]] = [
    ("owner", ("owner", "owners", "assigned", "assignee", "responsible", "who", "accountable", "owned")),
    ("due", ("due", "deadline", "target", "when", "eta", "by")),
    ("status", ("status", "state")),
    ("severity", ("severity", "priority", "impact", "rating", "rag", "criticality", "score", "level")),
    ("mitigation", ("mitigation", "resolution", "response", "plan", "steps", "contingency", "comments",
                    "notes", "update", "remarks", "outcome")),
    ("type", ("type", "category", "kind", "class")),
    ("id", ("id", "ref", "reference", "no", "number", "#", "key")),
    ("title", ("description", "title", "summary", "subject", "detail", "details", "item", "risk", "issue",
               "action", "decision", "raid", "what", "topic")),
]


def column_role(header: str) -> str | None:
    """What a RAID log column holds, from its header in any common wording."""
    words = re.findall(r"[a-z#]+", header.lower())
    if not words or "raised" in words or "created" in words or ("date" in words and len(words) == 1):
        return None
    for role, cues in ROLE_WORDS:
        if any(w in cues for w in words):
            return role
    return None


def _row_cells(line: str, headers: list[str]) -> dict[str, str]:
    pattern = "|".join(re.escape(h) for h in sorted(headers, key=len, reverse=True))
    parts = re.split(rf"(?:^|; )({pattern}): ", line)
    cells: dict[str, str] = {}
    for i in range(1, len(parts) - 1, 2):
        cells[parts[i]] = parts[i + 1].strip()
    return cells


def _row_number(locator: str, offset: int) -> tuple[str, int | None]:
    m = re.match(r"^(?P<where>.*?)(?:,\s*)?[Rr]ows (?P<first>\d+)-\d+$", locator)
    if not m:
        return locator, None
    row = int(m.group("first")) + offset
    where = m.group("where").strip()
    return (f"{where}, row {row}" if where else f"Row {row}"), row


def _row_kind(cells: dict[str, str], roles: dict[str, str], context: str) -> Kind | None:
    type_col = roles.get("type")
    value = (cells.get(type_col, "") if type_col else "").lower()
    for kind, words in (("risk", ("risk", "threat")), ("issue", ("issue", "problem", "blocker")),
                        ("action", ("action", "task", "to do")), ("decision", ("decision",))):
        if any(w in value for w in words):
            return kind
    if value:  # an assumption, dependency or anything else is not one of the four
        return None
    ref = cells.get(roles.get("id", ""), "")
    m = re.fullmatch(r"([A-Z]{1,2})-?\d{1,4}", ref.strip().upper())
    if m and m.group(1) in REF_PREFIX and m.group(1) != "A":
        return REF_PREFIX[m.group(1)]
    for kind in ("risk", "issue", "action", "decision"):
        if kind in context.lower():
            return kind
    return None


def table_items(seg: Segment, ref_date: date, context: str = "") -> Iterator[Proposal]:
    """Rows of a table whose columns look like a RAID log."""
    lines = [line for line in seg.text.split("\n") if "; " in line or ROW_KEYS.match(line)]
    body = [ln for ln in seg.text.split("\n") if ln.strip() and not (ln.startswith("Sheet ") and "; " not in ln)]
    rows = list(enumerate(body))
    if not lines:
        return
    counts: dict[str, int] = {}
    for line in lines:
        for key in set(ROW_KEYS.findall(line)):
            counts[key] = counts.get(key, 0) + 1
    headers = [k for k, n in counts.items() if n >= max(1, len(lines) // 2)]
    roles: dict[str, str] = {}
    for header in headers:
        role = column_role(header)
        if role and role not in roles:
            roles[role] = header
    if "title" not in roles or not ({"owner", "status"} & roles.keys()):
        return
    if "type" not in roles and "id" not in roles and not re.search(r"risk|issue|action|decision|raid", context, re.I):
        return
    context = f"{context} {seg.locator}"
    for offset, line in rows:
        cells = _row_cells(line, headers)
        if roles["title"] not in cells:
            continue
        kind = _row_kind(cells, roles, context)
        if kind is None:
            continue
        yield _row_proposal(kind, cells, roles, line, seg, offset, ref_date)


def _row_proposal(kind: Kind, cells: dict[str, str], roles: dict[str, str], line: str, seg: Segment,
                  offset: int, ref_date: date) -> Proposal:
    def cell(role: str) -> str:
        return cells.get(roles.get(role, ""), "").strip()
    locator, _ = _row_number(seg.locator, offset)
    ref = cell("id")
    used = {roles[r] for r in ("title", "id", "type", "owner", "status", "due", "severity") if r in roles}
    notes = [f"{k}: {v}" for k, v in cells.items() if k not in used and v]
    default = "decided" if kind == "decision" else "open"
    return Proposal(kind=kind, title=_capital(_tidy(cell("title")))[:500], quote=line.strip(), page=seg.page,
                    locator=locator, ref=_ref(ref) if re.fullmatch(rf"#?{REF}", ref.upper()) else (ref or None),
                    owner=cell("owner") or None, due=dates.parse_date(cell("due"), ref_date) if cell("due") else None,
                    status=normal_status(cell("status"), default) if cell("status") else default,
                    severity=normal_severity(cell("severity")) if cell("severity") else None,
                    details="\n".join(notes))


# ---- the whole document ---------------------------------------------------------------------------

def extract(segments: list[Segment], *, name: str, kind: str, ref_date: date) -> list[Proposal]:
    """Every proposal in a document, each item once (by reference, else by kind and title)."""
    found: list[Proposal] = []
    for seg in segments:
        if is_mail(seg):
            found += list(mail_items(seg, ref_date))
            found += [p for p in prose_items(replace(seg, text="\n".join(mail_body(seg.text))), ref_date)]
            continue
        table = list(table_items(seg, ref_date, context=name))
        found += table
        if not table:
            found += list(prose_items(seg, ref_date, is_slide=kind == "pptx"))
    unique: dict[str, Proposal] = {}
    for p in found:
        unique.setdefault(fingerprint(p.kind, p.ref, p.title), p)
    return list(unique.values())


def fingerprint(kind: Kind, ref: str | None, title: str) -> str:
    """The identity of an item within its project: its reference, else its kind and normalised title."""
    if ref:
        return f"ref:{ref.upper()}"[:80]
    words = " ".join(re.findall(r"[a-z0-9]+", title.lower()))
    return f"{kind}:{hashlib.sha256(words.encode()).hexdigest()[:32]}"
