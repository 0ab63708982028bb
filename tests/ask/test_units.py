"""Answer units, expected answer types and evidence scoring, on their own (no database)."""

from __future__ import annotations

import uuid

import pytest

from kap.ask.extractive import best_evidence, holds_type, pick_quotes, units
from kap.ask.query import parse_question
from kap.ask.retrieval import Candidate, Frequencies

SCAN = """BRIGHTLINE ADVISORY
CHANGE REQUEST CR-004
Change: add Workday Time Tracking
for 3,400 hourly workers
Reason: the union agreement requires
electronic timesheets
Cost impact: $86,500
Approved by: Dana Whitfield"""


def _candidate(text: str, name: str = "doc.txt") -> Candidate:
    return Candidate(uuid.uuid4(), uuid.uuid4(), name, None, "", text)


def test_a_scan_is_cut_into_lines_and_a_broken_line_joins_the_next() -> None:
    texts = [u.text for u in units(SCAN)]
    assert "Change: add Workday Time Tracking for 3,400 hourly workers" in texts
    assert "Reason: the union agreement requires electronic timesheets" in texts
    assert "Cost impact: $86,500" in texts
    assert "Approved by: Dana Whitfield" in texts
    assert all(u.context.startswith("CHANGE REQUEST CR-004") for u in units(SCAN)[2:])


def test_prose_is_cut_into_sentences_and_rows_stay_whole() -> None:
    prose = ("Go-live is planned for October 5, 2026, followed by eight weeks of hypercare. During hypercare the "
             "Consultant provides a support team of four consultants.")
    assert [u.text for u in units(prose)] == [
        "Go-live is planned for October 5, 2026, followed by eight weeks of hypercare.",
        "During hypercare the Consultant provides a support team of four consultants."]
    row = "ID: R-07; Type: Risk; Description: ADP ends Aug. 31. Fallback agreed; Owner: Dana Whitfield"
    assert [u.text for u in units(row)] == [row]


def test_slide_and_mail_header_lines_are_units() -> None:
    slide = "Key milestones\nDesign sign-off: 8 May 2026\nGo-live: 5 October 2026"
    assert [u.text for u in units(slide)][1:] == ["Design sign-off: 8 May 2026", "Go-live: 5 October 2026"]
    mail = "Subject: RE: results\nFrom: Aisha Mensah <a@example.com>\n\nThe run matched 97.8% of employees."
    assert "From: Aisha Mensah <a@example.com>" in [u.text for u in units(mail)]


@pytest.mark.parametrize(("question", "expect"), [
    ("What is the hypercare period?", "duration"), ("How long is hypercare?", "duration"),
    ("When is the go/no-go call?", "date"), ("What is the cost impact of CR-004?", "money"),
    ("How much does change order CO-12 cost?", "money"), ("What percentage is invoiced at go-live?", "percent"),
    ("How many hourly workers does Time Tracking cover?", "number"), ("Who owns R-07?", "person"),
    ("Where is the hypercare team based?", "place"), ("Which bank receives the payments file?", "entity"),
    ("How often are pension contributions sent?", "frequency"),
    ("What did we decide about position management?", "decision"), ("What does CO-12 change?", "any"),
])
def test_expected_answer_types(question: str, expect: str) -> None:
    assert parse_question(question).expect == expect


def test_a_value_the_question_already_gives_does_not_count() -> None:
    question = parse_question("What is the cost impact of CR-004?")
    assert not holds_type("money", question, "CHANGE REQUEST CR-004")
    assert holds_type("money", question, "Cost impact: $86,500")
    assert not holds_type("number", parse_question("What is in CO-12?"), "ORDER CO-12")


def test_the_value_line_beats_the_heading_that_shares_the_identifier() -> None:
    candidate = _candidate(SCAN)
    for question, fact in [("What is the cost impact of change request CR-004?", "$86,500"),
                           ("How many hourly workers does Time Tracking cover?", "3,400"),
                           ("Who approved CR-004?", "Dana Whitfield")]:
        parsed = parse_question(question)
        freq = Frequencies(df={t: 1 for t in parsed.terms}, total=40)
        quotes = pick_quotes(parsed, best_evidence(parsed, [candidate], {candidate.chunk_id: 1.0}, freq))
        assert quotes, (question, quotes)
        assert fact in quotes[0].sentence, (question, quotes)


def test_weak_evidence_is_refused() -> None:
    candidate = _candidate("During hypercare the Consultant provides a dedicated support team of four consultants.")
    parsed = parse_question("How many laptops are provided to the offshore team?")
    freq = Frequencies(df={t: (0 if t.text in ("laptops", "offshore") else 2) for t in parsed.terms}, total=40)
    assert pick_quotes(parsed, best_evidence(parsed, [candidate], {candidate.chunk_id: 1.0}, freq)) == []
