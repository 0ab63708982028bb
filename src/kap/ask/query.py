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
Expect = Literal["date", "number", "person", "any"]

STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves tell please show give know find
much many anything something get got say says said s t
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

    @property
    def stem(self) -> str:
        return stem(self.words[0]) if self.kind == "word" else self.text

    @property
    def weight(self) -> float:
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
    return QTerm(lowered, words, "word")


def expected_answer(text: str) -> Expect:
    """Guess what kind of fact answers the question, from its first words."""
    lowered = text.lower()
    if re.search(r"\b(when|what date|which date|what day|by when|deadline)\b", lowered):
        return "date"
    if re.search(r"\b(how many|how much|what percentage|what number|what is the (fee|cost|budget|price))\b",
                 lowered):
        return "number"
    if re.search(r"\b(who|whom)\b", lowered):
        return "person"
    return "any"


def parse_question(text: str) -> Question:
    """Split a question into its content terms, dropping stop words and repeats."""
    seen: set[str] = set()
    terms: list[QTerm] = []
    for token in _TOKEN.findall(text):
        term = _classify(token)
        if term is None or term.text in seen:
            continue
        seen.add(term.text)
        terms.append(term)
    return Question(text=text, terms=tuple(terms[:MAX_TERMS]), expect=expected_answer(text))


@lru_cache(maxsize=8192)
def sentence_stems(sentence: str) -> frozenset[str]:
    """The stems of a sentence's words, for matching against question terms."""
    return frozenset(stem(w) for w in _WORDS.findall(sentence.lower()))


def term_in(term: QTerm, lowered_sentence: str, stems: frozenset[str]) -> bool:
    """Whether a sentence (lower-cased, with its stems) contains a question term."""
    if term.kind == "word":
        return term.stem in stems
    pattern = r"(?<!\w)" + r"\W{1,3}".join(re.escape(w) for w in term.words) + r"(?!\w)"
    return re.search(pattern, lowered_sentence) is not None
