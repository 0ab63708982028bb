"""Extractive answers: the best supporting sentences of the top chunks, quoted and cited.

No model is needed. Each sentence of the retrieved chunks is scored by the question
terms it holds (weighted by how rare each term is among the candidates), by the
chunk's retrieval rank and by whether it holds the kind of fact asked for (a date,
a number, a name). Weak evidence is refused rather than guessed at.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from kap.ask.query import QTerm, Question, sentence_stems, term_in
from kap.ask.retrieval import Candidate

MIN_COVERAGE = 0.5
MAX_QUOTES = 3
SECOND_QUOTE_RATIO = 0.8
MAX_QUOTE_CHARS = 400
WRAP_WIDTH = 70

_KEY_LINE = re.compile(r"^\s*([-*•#>]|\w[\w ()/.'-]{0,30}:\s)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[$])")
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday "
           "saturday sunday today tomorrow weekly monthly daily").split()
_DATE = re.compile(r"\b(" + "|".join(_MONTHS) + r")\b"
                   r"|\b\d{1,2}:\d{2}\b|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
_NAME = re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b")
_TRAILING_PUNCT = ".!?:;)\"'"


@dataclass(frozen=True)
class Evidence:
    """One supporting sentence and where it comes from."""

    candidate: Candidate
    sentence: str
    score: float
    coverage: float


def _joins(line: str, following: str) -> bool:
    """Whether a wrapped line goes on in the next one (PDF text), rather than ending a row or bullet."""
    if len(line) <= WRAP_WIDTH or line.rstrip().endswith(tuple(_TRAILING_PUNCT)):
        return False
    return _KEY_LINE.match(following) is None and ";" not in line


def logical_lines(body: str) -> list[str]:
    """The chunk's lines with wrapped lines joined back together."""
    out: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        if out and _joins(out[-1], line):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return out


def sentences(body: str) -> list[str]:
    """Split a chunk's text into sentences (rows and bullets count as sentences)."""
    found: list[str] = []
    for line in logical_lines(body):
        line = line.lstrip("-*•# ").strip()
        found += [part.strip() for part in _SENTENCE_END.split(line) if len(part.strip()) > 2]
    return found


def term_weights(question: Question, candidates: Sequence[Candidate]) -> dict[QTerm, float]:
    """Each term's weight times its rarity among the candidate chunks."""
    n = max(len(candidates), 1)
    lowered = [(c.text.lower(), sentence_stems(c.text)) for c in candidates]
    weights = {}
    for term in question.terms:
        df = sum(1 for text, stems in lowered if term_in(term, text, stems))
        weights[term] = term.weight * math.log(1 + n / (df or 0.5))
    return weights


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


def _kind_bonus(question: Question, sentence: str) -> float:
    if question.expect == "date" and _DATE.search(sentence):
        return 1.2
    if question.expect == "number" and _NUMBER.search(sentence):
        return 1.15
    if question.expect == "person" and _NAME.search(sentence):
        return 1.1
    return 1.0


def score_sentence(question: Question, sentence: str, weights: dict[QTerm, float]) -> tuple[float, float, int]:
    """A sentence's score, the share of the question's weight it covers, and its matched terms."""
    lowered, stems = sentence.lower(), sentence_stems(sentence)
    matched = [t for t in question.terms if term_in(t, lowered, stems)]
    total = sum(weights.values()) or 1.0
    got = sum(weights[t] for t in matched)
    # Short sentences that hold the terms beat long ones that merely mention them.
    density = 1.0 / (1.0 + max(len(sentence) - 200, 0) / 400)
    return got * _kind_bonus(question, sentence) * density, got / total, len(matched)


def best_evidence(question: Question, candidates: Sequence[Candidate],
                  chunk_scores: dict[uuid.UUID, float]) -> list[Evidence]:
    """Every candidate sentence that could support an answer, best first."""
    weights = term_weights(question, candidates)
    required = required_terms(question)
    top = max(chunk_scores.values(), default=1.0) or 1.0
    out = []
    for candidate in candidates:
        chunk_lower, chunk_stems = candidate.text.lower(), sentence_stems(candidate.text)
        if not all(term_in(t, chunk_lower, chunk_stems) for t in required):
            continue
        prior = 0.85 + 0.15 * chunk_scores.get(candidate.chunk_id, 0.0) / top
        for sentence in sentences(candidate.text):
            score, cover, count = score_sentence(question, sentence, weights)
            if count:
                out.append(Evidence(candidate, sentence, score * prior, cover))
    out.sort(key=lambda e: e.score, reverse=True)
    return out


def strong_enough(question: Question, evidence: Evidence) -> bool:
    """Whether a sentence supports an answer, rather than merely sharing a word with the question."""
    lowered, stems = evidence.sentence.lower(), sentence_stems(evidence.sentence)
    matched = [t for t in question.terms if term_in(t, lowered, stems)]
    specific = any(t.kind == "ident" for t in matched)
    return evidence.coverage >= MIN_COVERAGE and (len(matched) >= min(2, len(question.terms)) or specific)


def pick_quotes(question: Question, evidence: Sequence[Evidence]) -> list[Evidence]:
    """The best sentence, plus close runners-up from other chunks."""
    if not evidence or not strong_enough(question, evidence[0]):
        return []
    chosen = [evidence[0]]
    for item in evidence[1:]:
        if len(chosen) >= MAX_QUOTES or item.score < SECOND_QUOTE_RATIO * chosen[0].score:
            break
        if all(item.candidate.chunk_id != c.candidate.chunk_id and item.sentence != c.sentence for c in chosen) \
                and strong_enough(question, item):
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
