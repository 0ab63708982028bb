"""Question understanding, sentence splitting, fusion and citation checks, on their own."""

from __future__ import annotations

import uuid

from kap.ask.extractive import sentences
from kap.ask.llm import chat_url, parse_reply
from kap.ask.query import parse_question, stem
from kap.ask.retrieval import fts5_stemmed, rrf


def test_stop_words_go_and_identifiers_numbers_dates_stay() -> None:
    question = parse_question("When does CR-004 for the ADP contract end, and is R-07 due on 2026-08-31 at 10:00?")
    kinds = {t.text: t.kind for t in question.terms}
    assert kinds["cr-004"] == "ident"
    assert kinds["r-07"] == "ident"
    assert kinds["2026-08-31"] == "number"
    assert kinds["10:00"] == "number"
    assert kinds["adp"] == "word"
    assert kinds["contract"] == "word"
    assert not {"when", "does", "the", "is", "and", "on", "at"} & set(kinds)
    assert question.expect == "date"


def test_phrases_and_money_keep_their_tokens() -> None:
    terms = {t.text: t for t in parse_question("How many end-to-end scripts cost $1,240,000?").terms}
    assert terms["end-to-end"].words == ("end", "to", "end")
    assert terms["end-to-end"].kind == "phrase"
    assert terms["1,240,000"].words == ("1", "240", "000")


def test_stems_join_word_forms() -> None:
    assert stem("converted") == stem("conversion")
    assert stem("owns") == stem("owner") == "own"
    assert stem("fixed") == stem("fix")
    assert stem("status") == "status"


def test_stemmed_fts_query_holds_the_words_and_exact_identifiers() -> None:
    expression = fts5_stemmed(parse_question("converted records of R-07 who owns").terms)
    assert expression.startswith("{head body} : (")
    assert '"converted"' in expression
    assert '"r 07"' in expression
    assert " AND " in expression
    assert '("owns" OR "owner" OR "responsible")' in expression


def test_wrapped_pdf_lines_are_joined_but_rows_stay_apart() -> None:
    body = ("Timeline. Discovery runs from January 12, 2026 to February 6, 2026. Design runs from February\n"
            "9 to March 20, 2026. The planned go-live date is September 1, 2026, followed by six weeks of\n"
            "hypercare.\n"
            "ID: R-07; Type: Risk; Description: ADP contract ends August 31, 2026; Owner: Dana Whitfield\n"
            "ID: R-09; Type: Risk; Description: Kronos has no connector; Owner: Hannah Brooks")
    found = sentences(body)
    assert "Design runs from February 9 to March 20, 2026." in found
    assert "The planned go-live date is September 1, 2026, followed by six weeks of hypercare." in found
    assert sum(1 for s in found if s.startswith("ID: R-0")) == 2


def test_rrf_rewards_agreement() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    scores = rrf([[a, b], [b, c]])
    assert max(scores, key=lambda k: scores[k]) == b


def test_citations_outside_the_given_chunks_are_dropped() -> None:
    parsed = parse_reply("It ends in August [2][5]. The fee is fixed [1, 0, 3].", 3)
    assert parsed.cited == [2, 1, 3]
    assert sorted(parsed.dropped) == [0, 5]
    assert parsed.text == "It ends in August [2]. The fee is fixed [1][3]."
    assert parse_reply("NOT_FOUND", 3).not_found


def test_base_urls_of_common_servers() -> None:
    assert chat_url("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1/chat/completions"
    assert chat_url("http://vllm:8000") == "http://vllm:8000/v1/chat/completions"


def test_rare_terms_weigh_more_and_a_term_no_chunk_holds_counts_as_held_once() -> None:
    from kap.ask.retrieval import Frequencies

    time, clock, punches = parse_question("time clock punches").terms
    freq = Frequencies(df={time: 900, clock: 40, punches: 0}, total=1000)
    assert freq.idf(punches) > freq.idf(clock) > freq.idf(time)
    assert freq.idf(punches) == Frequencies(df={punches: 1}, total=1000).idf(punches)

