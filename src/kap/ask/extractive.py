"""Extractive answers: the best answer units of the retrieved chunks, quoted and cited.

No model is needed. A chunk is cut into answer units that fit its text: sentences for
prose, lines for line-oriented text (scans, slides, e-mail headers, `key: value` lines,
lists, spreadsheet rows, which carry their header names), a line joined with the next
when it goes on in it. Each unit is scored by the question's terms it holds, each
weighted by its rarity in the project (terms of the unit's heading or document name
count for part), by whether it holds the kind of value asked for (a date for "when", money
for "how much", a person for "who", ...) and by its length. Weak evidence, relative to
the question's informative terms, is refused rather than guessed at.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from kap.ask.query import Expect, QTerm, Question, sentence_stems, stem, term_in
from kap.ask.retrieval import Candidate, Frequencies

MIN_COVERAGE = 0.5
CONTEXT_SHARE = 0.6
CONTEXT_SHARE_EXACT = 0.9
KEY_MATCH = 1.25
HEADING_ONLY = 0.4
TYPE_MATCH, TYPE_MISS = 1.4, 0.55
MAX_QUOTES = 3
SECOND_QUOTE_RATIO = 0.8
MAX_QUOTE_CHARS = 400
WRAP_WIDTH = 70

_KEY_LINE = re.compile(r"^\s*([-*•#>]|\d{1,2}[.)]\s|\w[\w ()/.'&-]{0,30}:\s)")
_ROW = re.compile(r";\s*[\w ()/.'&-]{1,30}:\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[$£€])")
_TRAILING_PUNCT = ".!?:;)\"'"
_GOES_ON = frozenset("the a an of for to and or with in on at by from per into than as that which who".split())
_NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                 "sixteen eighteen twenty thirty forty fifty sixty ninety hundred").split()
_NUMWORD = r"(?:\d[\d,.]*|" + "|".join(_NUMBER_WORDS) + r")"
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday "
           "saturday sunday today tomorrow").split()
TYPE_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"\b(" + "|".join(_MONTHS) + r")\b|\b\d{1,2}:\d{2}\b|\b\d{4}-\d{2}-\d{2}\b"
                       r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(q[1-4]|20\d\d)\b", re.IGNORECASE),
    "duration": re.compile(r"\b" + _NUMWORD + r"[ -]([a-z]+ )?(business |working |calendar )?"
                           r"(minutes?|hours?|days?|weeks?|months?|years?)\b", re.IGNORECASE),
    "frequency": re.compile(r"\bevery\b|\b(daily|weekly|monthly|nightly|hourly|quarterly|annually|fortnightly)\b"
                            r"|\bper (payroll|run|day|week|month|year)\b|\b\w+ times\b", re.IGNORECASE),
    "money": re.compile(r"[£$€]\s?\d|\b\d[\d,.]*\s?(k|m|million|thousand|gbp|usd|eur)\b", re.IGNORECASE),
    "percent": re.compile(r"\d\s?%|\bpercent\b", re.IGNORECASE),
    "number": re.compile(r"\d|\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE),
    "person": re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b|\b(committee|board|authority|team|council|client|"
                         r"consultant|ltd|llp|inc)\b"),
    "place": re.compile(r"\b(in|at|from|to|across)\s+(the\s+)?[A-Z][a-z]+"),
    "decision": re.compile(r"\b(decid\w*|decision|agreed|approv\w*|will use|chose|adopt\w*|retired?)\b",
                           re.IGNORECASE),
}
# A question asking for a value is answered only by a unit holding one (of these kinds).
VALUE_TYPES: dict[str, tuple[Expect, ...]] = {
    "date": ("date", "duration"), "duration": ("duration",), "frequency": ("frequency", "date"),
    "money": ("money", "percent"), "percent": ("percent",), "number": ("number",),
}
_CAPITALISED = re.compile(r"(?<![\w:])(?<!^)\s([A-Z][\w&-]*[A-Za-z0-9])")


@dataclass(frozen=True)
class Unit:
    """An answer unit of a chunk, and the heading it sits under."""

    text: str
    context: str
    heading: bool = False


@dataclass(frozen=True)
class Evidence:
    """One scored answer unit and where it comes from."""

    candidate: Candidate
    sentence: str
    score: float
    coverage: float
    in_unit: int
    typed: bool
    focused: bool = True


def _ends_open(line: str) -> bool:
    last = line.rstrip().rsplit(" ", 1)[-1].lower()
    return line.rstrip().endswith((",", "-", "/", "&")) or last in _GOES_ON


def _joins(line: str, following: str) -> bool:
    """Whether a line goes on in the next one (a wrapped PDF line, or a scan's broken line)."""
    if _KEY_LINE.match(following) is not None:
        return False
    if _ends_open(line) and not line.rstrip().endswith((".", "!", "?")):
        return True
    if following[:1].islower() and not line.rstrip().endswith((".", "!", "?", ":")):
        return True
    if len(line) <= WRAP_WIDTH or line.rstrip().endswith(tuple(_TRAILING_PUNCT)):
        return False
    return ";" not in line


def logical_lines(body: str) -> list[str]:
    """The chunk's lines, with lines that go on in the next joined to it (across one blank line, as OCR leaves)."""
    out: list[str] = []
    blank = False
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            blank = True
            continue
        if out and (_joins(out[-1], line) if not blank else _continues(out[-1], line)):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
        blank = False
    return out


def _continues(line: str, following: str) -> bool:
    """Whether a line after a blank one still goes on in the line before (it starts in lower case)."""
    return following[:1].islower() and not line.rstrip().endswith((".", "!", "?", ":", ";")) \
        and _KEY_LINE.match(following) is None


def _is_heading(line: str) -> bool:
    if line.startswith("#"):
        return True
    return (len(line) <= 60 and not line.endswith(tuple(".!?;,")) and ":" not in line
            and _KEY_LINE.match(line) is None and len(line.split()) <= 8)


def _is_title(line: str) -> bool:
    """A chunk's first line that reads as a title (a slide's, a scan's heading), not as a fact."""
    return len(line) <= 80 and not line.endswith(tuple(".!?;,")) and _ROW.search(line) is None


def _heads(lines: list[str]) -> list[bool]:
    """Which lines are headings: a title-like first line, `#` lines, short label lines over a paragraph or list."""
    flags = []
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        label = _is_heading(line) and len(line.split()) <= 5 and not any(c.isdigit() or c == "," for c in line) \
            and bool(following) and (len(following) > 60 or _KEY_LINE.match(following) is not None)
        shouted = line.isupper() and len(line.split()) <= 8 and _KEY_LINE.match(line) is None
        flags.append(line.startswith("#") or (index == 0 and _is_title(line)) or label or shouted)
    return flags


def units(body: str) -> list[Unit]:
    """Cut a chunk into answer units, each with the nearest heading above it (and, in prose, the sentence before)."""
    found: list[Unit] = []
    lines = logical_lines(body)
    heading = ""
    for line, is_head in zip(lines, _heads(lines), strict=True):
        clean = line.lstrip("-*•# ").strip()
        if is_head:
            found.append(Unit(clean, "", heading=True))
            heading = clean
            continue
        if _ROW.search(clean) or len(clean) <= 200 and not _SENTENCE_END.search(clean):
            parts = [clean]
        else:
            parts = [part.strip() for part in _SENTENCE_END.split(clean)]
        previous = ""
        for part in parts:
            if len(part) > 2:
                found.append(Unit(part, heading + (" " + previous if previous else "")))
                previous = part
    return found


def sentences(body: str) -> list[str]:
    """The texts of a chunk's answer units."""
    return [unit.text for unit in units(body)]


def required_terms(question: Question) -> list[QTerm]:
    """Terms an answer cannot do without: identifiers, long numbers, names and acronyms."""
    first = question.text.strip().split(" ", 1)[0].lower()
    out = []
    for term in question.terms:
        if term.kind == "ident" or (term.kind == "number" and len(term.text) > 1):
            out.append(term)
        elif term.kind == "word" and term.text != first and _is_proper(question.text, term.text):
            out.append(term)
    return out


def _is_proper(text: str, word: str) -> bool:
    for match in re.finditer(r"\b" + re.escape(word) + r"\b", text, re.IGNORECASE):
        token = match.group(0)
        if match.start() > 0 and (token.isupper() and len(token) > 1 or token[0].isupper()):
            return True
    return False


def holds_type(expect: Expect, question: Question, unit: str) -> bool:
    """Whether a unit holds a value of the expected kind that the question does not already give."""
    if expect == "any":
        return True
    text = unit
    for term in question.terms:
        if term.kind != "word":
            pattern = r"(?<!\w)" + r"\W{1,3}".join(re.escape(w) for w in term.words) + r"(?!\w)"
            text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    if expect == "entity":  # a name, or at least a specific value
        asked = {w.lower() for t in question.terms for w in t.words}
        return any(m.group(1).lower() not in asked for m in _CAPITALISED.finditer(" " + text)) \
            or TYPE_PATTERNS["number"].search(text) is not None
    if expect == "person":
        asked = {w.lower() for t in question.terms for w in t.words}
        return any(not set(m.group(0).lower().split()) & asked for m in TYPE_PATTERNS["person"].finditer(text))
    return TYPE_PATTERNS[expect].search(text) is not None


def score_unit(question: Question, unit: Unit, name: str, weights: dict[QTerm, float]) -> tuple[float, float, int]:
    """A unit's share of the question's weight (its heading and document name count for part) and its matches."""
    lowered, stems = unit.text.lower(), sentence_stems(unit.text)
    around = f"{unit.context} {name}"
    around_lower, around_stems = around.lower(), sentence_stems(around)
    total = sum(weights.values()) or 1.0
    got, count = 0.0, 0
    for term in question.terms:
        if term_in(term, lowered, stems):
            got += weights[term]
            count += 1
        elif term_in(term, around_lower, around_stems):
            got += (CONTEXT_SHARE if term.kind == "word" else CONTEXT_SHARE_EXACT) * weights[term]
    return got / total, got / total, count


def proximity(question: Question, text: str) -> float:
    """0.9 to 1.1: how close together the question's terms stand in the unit (matched terms over their span)."""
    words = re.findall(r"\w+", text.lower())
    positions = []
    for term in question.terms:
        first = term.words[0]
        stems = term.stems if term.kind == "word" else frozenset()
        at = next((i for i, w in enumerate(words) if w == first or (stems and stem(w) in stems)), None)
        if at is not None:
            positions.append(at)
    if len(positions) < 2:
        return 1.0
    span = max(positions) - min(positions) + 1
    return 0.9 + 0.2 * len(positions) / span


def _shape(question: Question, unit: Unit) -> float:
    """A `key: value` line whose key the question names is the answer's shape; a bare heading is not an answer."""
    key, sep, value = unit.text.partition(":")
    if sep and value.strip() and len(key.split()) <= 4 and not any(c.isdigit() for c in key):
        key_lower, key_stems = key.lower(), sentence_stems(key)
        if any(term_in(t, key_lower, key_stems) for t in question.terms if t.kind == "word"):
            return KEY_MATCH
    if unit.heading:
        return HEADING_ONLY
    return 1.0


def best_evidence(question: Question, candidates: Sequence[Candidate], chunk_scores: dict[uuid.UUID, float],
                  freq: Frequencies | None = None) -> list[Evidence]:
    """Every candidate unit that could support an answer, best first."""
    weights = _weights(question, candidates, freq)
    required = required_terms(question)
    top = max(chunk_scores.values(), default=1.0) or 1.0
    out = []
    for candidate in candidates:
        chunk = f"{candidate.text}\n{candidate.name}"
        chunk_lower, chunk_stems = chunk.lower(), sentence_stems(chunk)
        if not all(term_in(t, chunk_lower, chunk_stems) for t in required):
            continue
        prior = 0.9 + 0.1 * chunk_scores.get(candidate.chunk_id, 0.0) / top
        for unit in units(candidate.text):
            share, cover, count = score_unit(question, unit, candidate.name, weights)
            if not count:
                continue
            typed = holds_type(question.expect, question, unit.text)
            focused = all(_holds_term(t, f"{unit.text} {unit.context}") for t in question.focus)
            factor = 1.0 if question.expect == "any" else (TYPE_MATCH if typed else TYPE_MISS)
            density = 1.0 / (1.0 + max(len(unit.text) - 220, 0) / 500)
            score = share * factor * density * prior * _shape(question, unit) * proximity(question, unit.text)
            out.append(Evidence(candidate, unit.text, score, cover, count, typed, focused))
    out.sort(key=lambda e: e.score, reverse=True)
    return out


def _weights(question: Question, candidates: Sequence[Candidate], freq: Frequencies | None) -> dict[QTerm, float]:
    """Each term's weight: its rarity in the project when known, else among the candidates."""
    if freq is not None and freq.total:
        weights = {t: freq.idf(t) for t in question.terms}
        held = [w for t, w in weights.items() if freq.df.get(t, 0) > 0]
        if held:  # a term no chunk holds weighs as much as the rarest one held, not more
            weights = {t: w if freq.df.get(t, 0) > 0 else min(w, max(held)) for t, w in weights.items()}
        return weights
    lowered = [(c.text.lower(), sentence_stems(c.text)) for c in candidates]
    counts = {t: sum(1 for text, stems in lowered if term_in(t, text, stems)) for t in question.terms}
    return Frequencies(df=counts, total=len(candidates)).weights(question.terms)


def _holds_term(term: QTerm, text: str) -> bool:
    return term_in(term, text.lower(), sentence_stems(text))


def strong_enough(question: Question, evidence: Evidence) -> bool:
    """Whether a unit supports an answer, rather than merely sharing a word with the question.

    It must cover MIN_COVERAGE of the question's weight, name the question's focus (the X
    counted in "how many X", the role in "who is the X") and, when a value is asked for (a
    date, a duration, an amount...), hold one.
    """
    accepted = VALUE_TYPES.get(question.expect)
    if accepted and not evidence.typed and not any(holds_type(k, question, evidence.sentence) for k in accepted):
        return False
    return evidence.coverage >= MIN_COVERAGE and evidence.in_unit > 0 and evidence.focused


def pick_quotes(question: Question, evidence: Sequence[Evidence]) -> list[Evidence]:
    """The best unit strong enough to answer, plus close runners-up from other chunks."""
    eligible = [e for e in evidence if strong_enough(question, e)]
    if not eligible:
        return []
    chosen = [eligible[0]]
    for item in eligible[1:]:
        if len(chosen) >= MAX_QUOTES or item.score < SECOND_QUOTE_RATIO * chosen[0].score:
            break
        if all(item.candidate.chunk_id != c.candidate.chunk_id and item.sentence != c.sentence for c in chosen):
            chosen.append(item)
    return chosen


def trim_quote(sentence: str, question: Question) -> str:
    """A quote no longer than MAX_QUOTE_CHARS, centred on the first question term it holds."""
    if len(sentence) <= MAX_QUOTE_CHARS:
        return sentence
    lowered = sentence.lower()
    positions = [lowered.find(t.words[0]) for t in question.terms if lowered.find(t.words[0]) >= 0]
    start = max(0, min(positions, default=0) - MAX_QUOTE_CHARS // 3)
    piece = sentence[start:start + MAX_QUOTE_CHARS].strip()
    return ("…" if start > 0 else "") + piece + ("…" if start + MAX_QUOTE_CHARS < len(sentence) else "")
