"""Ask Kap: both corpora on both engines (hit rate vs bare BM25, refusals, latency), then at 10,000 chunks."""

from __future__ import annotations

from bench.ask_eval import evaluate, load_corpus, print_figures

SCALE = 10_000


def main() -> None:
    corpora = [load_corpus("northwind"), load_corpus("bayline")]
    for kind in ("sqlite", "postgresql"):
        print_figures(kind, evaluate(kind, corpora, scale=SCALE, rounds=3))


if __name__ == "__main__":
    main()
