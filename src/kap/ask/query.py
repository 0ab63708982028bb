"""Question understanding: content terms, identifiers, numbers and dates, light stemming.

Stop words go; numbers, dates and identifiers such as `R-07` or `CR-004` stay as exact
terms (matched as phrases of the index's tokens); other words are also matched by a
stem prefix, so "converted" finds "conversion".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Kind = Literal["ident", "number", "phrase", "word"]
Expect = Literal["date", "duration", "frequency", "money", "percent", "number", "person", "place", "entity",
                 "decision", "any"]

STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves tell please show give know find
much many anything something get got say says said s t
""".split())

# Words of a question's phrasing that say little about the fact asked for: they count, lightly.
LIGHT_WORDS = frozenset("""
side today currently current roughly approximately exactly exist exists existing happen happens happened take takes
taken use used uses using handle handles problem approach terms fast quickly soon need needs needed include included
includes cover covers covered mean means plan planned planning new old still overall total main kind type sort way
whole part full actually really also become becomes run runs provide provided provides done made make
""".split())

_TOKEN = re.compile(r"\w(?:[\w,.:/'’-]*\w)?", re.UNICODE)
_IDENT = re.compile(r"^[a-z]{1,8}(?:-\d+)+[a-z]?$|^[a-z]{1,8}\d+$", re.IGNORECASE)
_WORDS = re.compile(r"\w+", re.UNICODE)
_SUFFIXES = ("ies", "ings", "ing", "ers", "ed", "er", "es", "ly", "s")
MAX_TERMS = 16
STEM_LENGTH = 6


@dataclass(frozen=True)
class QTerm:
    """One content term of a question: its exact tokens and, for words, a stem."""

    text: str
    words: tuple[str, ...]
    kind: Kind
    alts: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        return stem(self.words[0]) if self.kind == "word" else self.text

    @property
    def stems(self) -> frozenset[str]:
        """The stem and the stems of the term's synonyms."""
        return frozenset({self.stem, *(stem(a) for a in self.alts)})

    @property
    def weight(self) -> float:
        if self.kind == "word" and self.text in LIGHT_WORDS:
            return 0.35
        if self.kind == "ident":
            return 3.0
        if self.kind == "number":
            return 1.5 if len(self.text) > 1 else 0.6
        return 1.5 if self.kind == "phrase" else 1.0


@dataclass(frozen=True)
class Question:
    """A parsed question: its terms and the kind of answer it expects."""

    text: str
    terms: tuple[QTerm, ...]
    expect: Expect
    focus: tuple[QTerm, ...] = ()


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """Reduce a word to a short comparable stem (suffix stripping, then truncation)."""
    word = word.lower()
    if len(word) > 3 and not word.endswith(("ss", "us", "is")):
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
                break
        if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
            word = word[:-1]
    return word[:STEM_LENGTH]


def _classify(token: str) -> QTerm | None:
    token = token.strip(".,:/'’-").removesuffix("'s").removesuffix("’s")
    words = tuple(w.lower() for w in _WORDS.findall(token))
    if not words:
        return None
    lowered = token.lower()
    if _IDENT.match(token) and any(c.isdigit() for c in token):
        return QTerm(lowered, words, "ident")
    if any(c.isdigit() for c in token):
        return QTerm(lowered, words, "number")
    if len(words) > 1:
        return QTerm(lowered, words, "phrase")
    if lowered in STOP_WORDS or len(lowered) < 2:
        return None
    return QTerm(lowered, words, "word", synonyms(lowered))


# Words consultants use for the same thing; a term also matches its group's words.
SYNONYM_GROUPS = [
    "launch live go-live golive", "start starts begin begins kick-off kickoff commence", "fee fees price charge",
    "sites depots locations", "staff employees workers people headcount", "decide decided decision agreed chose",
    "spend spent used", "finish finished end ends", "vendor provider supplier", "meeting meets call",
    "approve approved approval sign-off", "cost costs price", "owner owns responsible", "sync synced interface",
]
_GROUPS: dict[str, list[str]] = {}
for _group in SYNONYM_GROUPS:
    for _word in _group.split():
        _GROUPS.setdefault(stem(_word), _group.split())


def synonyms(word: str) -> tuple[str, ...]:
    """Other words for the same thing (plain words only), from SYNONYM_GROUPS."""
    return tuple(w for w in _GROUPS.get(stem(word), []) if w != word and "-" not in w)


_EXPECT: list[tuple[Expect, str]] = [
    ("duration", r"\bhow long\b|\bhow many (minutes|hours|days|weeks|months|years)\b|\bduration\b"
                 r"|\b(period|window|notice|length)\b(?!.*\b(when|date)\b)"),
    ("frequency", r"\bhow often\b|\bhow frequently\b|\bwhat frequency\b"),
    ("percent", r"\bwhat (percentage|share|proportion|rate|percent)\b|\bpercentage\b|\bmatch rate\b"),
    ("money", r"\bhow much\b(?! notice| time| training)|\bwhat (is|was) the (total |fixed |blended )?"
              r"(fee|cost|budget|price|day rate|rate|amount|savings?)\b|\bcost impact\b|\bwhat does .* cost\b"),
    ("number", r"\bhow many\b|\bwhat number\b|\bnumber of\b|\bcount of\b"),
    ("date", r"\b(when|what date|which date|what day (is|does|of|do)|what time|by when|deadline|due date|due)\b"),
    ("person", r"\b(who|whom|whose)\b|\bwhich person\b"),
    ("place", r"\bwhere\b|\bwhich (city|country|site|location|office|depot|warehouses?)\b"),
    ("decision", r"\bwhat (did|have) we (decide|agree|choose)|\bwhat was (decided|agreed)\b"
                 r"|\bwhat did the .* (decide|agree)"),
    ("entity", r"\bwhich\b|\bwhat (vendor|bank|provider|system|tool|platform|company|module)"),
]


def expected_answer(text: str) -> Expect:
    """Guess what kind of fact answers the question: a date, a duration, money, a person, a place..."""
    lowered = text.lower()
    if re.match(r"\s*(when|by when|what date|what time)\b", lowered):
        return "date"
    for kind, pattern in _EXPECT:
        if re.search(pattern, lowered):
            return kind
    return "any"


_HOW = re.compile(r"\bhow (long|often|much|many|soon|far|frequently)\b", re.IGNORECASE)


def parse_question(text: str) -> Question:
    """Split a question into its content terms, dropping stop words and repeats."""
    seen: set[str] = {m.group(1).lower() for m in _HOW.finditer(text)}
    terms: list[QTerm] = []
    for token in _TOKEN.findall(text):
        term = _classify(token)
        if term is None or term.text in seen:
            continue
        seen.add(term.text)
        terms.append(term)
    return Question(text=text, terms=tuple(terms[:MAX_TERMS]), expect=expected_answer(text),
                    focus=_focus(text, terms))


_COUNTED = re.compile(r"\bhow (?:many|much)\s+(?:of\s+(?:the\s+)?)?([a-z][\w-]*)", re.IGNORECASE)
_ROLE = re.compile(r"^\s*who (?:is|was|are|were) (?:the |our |their |its )?([\w' -]+?)\s*"
                   r"(?:\bfor\b|\bof\b|\bon\b|\bin\b|\bat\b|\?|$)", re.IGNORECASE)


_DECIDED = re.compile(r"\b(?:decide|agree|choose)\w* (?:about|on|for) (?:the |our )?([\w' -]+?)\s*(?:\?|$)",
                      re.IGNORECASE)


def _focus(text: str, terms: list[QTerm]) -> tuple[QTerm, ...]:
    """What an answer has to name: the X of "how many X", "who is the X", "what did we decide about X"."""
    by_text = {t.text: t for t in terms if t.kind == "word"}
    counted = _COUNTED.search(text)
    if counted is not None:
        word = by_text.get(counted.group(1).lower())
        return (word,) if word else ()
    for pattern in (_ROLE, _DECIDED):
        found = pattern.search(text)
        if found is not None:
            words = [w.lower().removesuffix("'s") for w in found.group(1).split()]
            return tuple(by_text[w] for w in words if w in by_text)
    return ()


@lru_cache(maxsize=8192)
def sentence_stems(sentence: str) -> frozenset[str]:
    """The stems of a sentence's words, for matching against question terms."""
    return frozenset(stem(w) for w in _WORDS.findall(sentence.lower()))


def term_in(term: QTerm, lowered_sentence: str, stems: frozenset[str]) -> bool:
    """Whether a sentence (lower-cased, with its stems) contains a question term."""
    if term.kind == "word":
        return not term.stems.isdisjoint(stems)
    pattern = r"(?<!\w)" + r"\W{1,3}".join(re.escape(w) for w in term.words) + r"(?!\w)"
    return re.search(pattern, lowered_sentence) is not None
