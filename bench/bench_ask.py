"""Ask Kap: hit rate, citation precision and p50/p95 latency on the Northwind questions, then at 10,000 chunks."""

from __future__ import annotations

import json

from bench.ask_eval import DEFAULT_CORPUS, DEFAULT_QUESTIONS, evaluate, print_figures

SCALE = 10_000


def main() -> None:
    questions = json.loads(DEFAULT_QUESTIONS.read_text())
    for kind in ("sqlite", "postgresql"):
        print_figures(kind, evaluate(kind, DEFAULT_CORPUS, questions, scale=SCALE, rounds=5))


if __name__ == "__main__":
    main()
