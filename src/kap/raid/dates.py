"""Dates as people write them in minutes, mails and logs, resolved against the document's own date."""

from __future__ import annotations

import re
from datetime import date, timedelta

MONTHS = {name: n for n, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for name in names}
WEEKDAYS = {name: n for n, names in enumerate(
    [("mon", "monday"), ("tue", "tues", "tuesday"), ("wed", "wednesday"), ("thu", "thur", "thurs", "thursday"),
     ("fri", "friday"), ("sat", "saturday"), ("sun", "sunday")]) for name in names}

_MON = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|" \
       r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>(?:19|20)\d{2}))?"
_WD = r"(?P<wd>mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|sat(?:urday)?|" \
      r"sun(?:day)?)"
PATTERNS = [
    ("iso", r"(?P<y>(?:19|20)\d{2})-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)\b"),
    ("numeric", r"\b(?P<a>[0-3]?\d)(?P<sep>[/.])(?P<b>[0-3]?\d)(?P=sep)(?P<y>(?:19|20)?\d{2})\b"),
    ("month_day", rf"\b(?:{_WD},?\s+)?{_MON}\s+{_DAY}\b{_YEAR}"),
    ("day_month", rf"\b(?:{_WD},?\s+)?(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MON}\b{_YEAR}"),
    ("relative", r"\b(?P<rel>today|tomorrow|end of (?:the )?(?:day|week|month)|eod|eow|eom|next week|"
                 r"in (?P<n>\d{1,3}|one|two|three|four) (?P<unit>days?|weeks?))\b"),
    ("weekday", rf"\b(?:(?P<next>next|this|coming)\s+)?{_WD}\b"),
]
COMPILED = [(name, re.compile(p, re.IGNORECASE)) for name, p in PATTERNS]
WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4}
# Words that introduce a deadline; a date after them is the item's due date.
DUE_CUE = re.compile(r"\b(?:by|due(?:\s+(?:date|by|on))?|before|until|no later than|deadline|target(?:\s+date)?)"
                     r"\s*:?\s*(?:the\s+)?(?:end\s+of\s+)?", re.IGNORECASE)


def _safe(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _with_year(m: int, d: int, year: str | None, ref: date) -> date | None:
    if year:
        return _safe(int(year), m, d)
    found = _safe(ref.year, m, d)
    # A date without a year is the next one from the document's date (a deadline is rarely long past).
    if found is not None and found < ref - timedelta(days=60):
        found = _safe(ref.year + 1, m, d)
    return found


def _weekday(name: str, ref: date) -> date:
    """The next such weekday after the document's date ("next Tuesday" reads the same)."""
    ahead = (WEEKDAYS[name.lower()] - ref.weekday()) % 7 or 7
    return ref + timedelta(days=ahead)


def _relative(m: re.Match[str], ref: date) -> date:
    rel = m.group("rel").lower()
    if rel == "today" or rel in ("eod", "end of day", "end of the day"):
        return ref
    if rel == "tomorrow":
        return ref + timedelta(days=1)
    if rel in ("eow", "end of week", "end of the week"):
        return ref + timedelta(days=(4 - ref.weekday()) % 7)
    if rel in ("eom", "end of month", "end of the month"):
        nxt = date(ref.year + (ref.month == 12), ref.month % 12 + 1, 1)
        return nxt - timedelta(days=1)
    if rel == "next week":
        return ref + timedelta(days=7 - ref.weekday() + 4)  # the Friday of next week
    raw = m.group("n").lower()
    n = WORD_NUMBERS.get(raw) or int(raw)
    return ref + timedelta(days=n * (7 if m.group("unit").lower().startswith("week") else 1))


def _resolve(name: str, m: re.Match[str], ref: date) -> date | None:
    if name == "iso":
        return _safe(int(m.group("y")), int(m.group("m")), int(m.group("d")))
    if name == "numeric":
        a, b, y = int(m.group("a")), int(m.group("b")), int(m.group("y"))
        y = y + 2000 if y < 100 else y
        if m.group("sep") == "." or a > 12:  # 23.01.2026 and 23/01/2026 are day first
            return _safe(y, b, a)
        return _safe(y, a, b)
    if name in ("month_day", "day_month"):
        month = MONTHS[m.group("mon").lower().rstrip(".")]
        return _with_year(month, int(m.group("day")), m.group("year"), ref)
    if name == "relative":
        return _relative(m, ref)
    return _weekday(m.group("wd"), ref)


def find_dates(text: str, ref: date) -> list[tuple[int, int, date]]:
    """Every date expression in the text as (start, end, date), earliest first, overlaps dropped."""
    found: list[tuple[int, int, date]] = []
    for name, pattern in COMPILED:
        for m in pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e, _ in found):
                continue
            value = _resolve(name, m, ref)
            if value is not None:
                found.append((m.start(), m.end(), value))
    return sorted(found)


def parse_date(text: str, ref: date) -> date | None:
    """The first date in a short text (a spreadsheet cell, a 'Due:' field)."""
    dates = find_dates(text, ref)
    return dates[0][2] if dates else None


def due_date(text: str, ref: date) -> tuple[date | None, tuple[int, int] | None]:
    """The deadline in a sentence: a date right after 'by', 'due', 'before' …, with its span (cue included)."""
    dates = find_dates(text, ref)
    for start, end, value in dates:
        for cue in DUE_CUE.finditer(text, 0, start):
            if cue.end() == start:
                return value, (cue.start(), end)
    return None, None


def document_date(name: str, text: str, fallback: date, *, prose: bool = True) -> date | None:
    """The date a document speaks from: its mail Date header, a date in its name or its title line; else None."""
    header = re.search(r"^Date:\s*(.+)$", text[:2000], re.MULTILINE)
    if header:
        found = parse_date(header.group(1), fallback)
        if found:
            return found
    for source in (name, text.split("\n", 1)[0] if prose else ""):
        for _, pattern in COMPILED[:4]:
            m = pattern.search(source)
            if m and (m.groupdict().get("year") or m.groupdict().get("y")):
                value = _resolve(_name_of(pattern), m, fallback)
                if value:
                    return value
    return None


def _name_of(pattern: re.Pattern[str]) -> str:
    return next(name for name, p in COMPILED if p is pattern)
