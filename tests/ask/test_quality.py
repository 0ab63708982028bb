"""Quality floors of Ask Kap on both fixture corpora, on the suite's database engine.

The harness of `bench/ask_eval.py` runs here unchanged: every answerable question
against its expected strings and, side by side, a bare BM25 sentence ranker over the
same text; the unanswerable questions; and the look-alike project of another org for
bleed. A change that lowers recall, precision or refusals below these floors fails.
Latency is not asserted (the benchmark prints it).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bench.ask_eval import _asker, load_corpus, load_corpus_pair, make_tenant, run_corpus
from fastapi.testclient import TestClient

from kap.core.db import Database

# Measured figures, rounded down (see docs/ask.md for the figures themselves).
FLOORS = {
    "northwind": {"hit": 1.0, "ratio": 1.2, "precision": 0.8, "refused": 1.0},
    "bayline": {"hit": 0.8, "ratio": 1.4, "precision": 0.8, "refused": 0.95},
}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_hit_rate_precision_and_refusals_hold_their_floor_with_no_bleed(
        name: str, make_client: Callable[..., TestClient], db: Database) -> None:
    client = make_client(kap_embeddings="off")
    corpus = load_corpus(name)
    main, twin = make_tenant(db, name.title()), make_tenant(db, f"Look-alike {name}")
    texts, twin_texts = load_corpus_pair(client, db, corpus, main, twin)
    figures = run_corpus(corpus, _asker(client, main), _asker(client, twin), texts, twin_texts)
    floor = FLOORS[name]
    misses = [(r.question, r.answer[:120]) for r in figures.results if not r.hit]
    assert figures.crossings == []
    assert figures.hit_rate >= floor["hit"], misses
    assert figures.hit_rate >= floor["ratio"] * figures.baseline_rate, (figures.hit_rate, figures.baseline_rate)
    assert figures.precision >= floor["precision"]
    assert figures.refusal_rate >= floor["refused"], figures.wrongly_answered
