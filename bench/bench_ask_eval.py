"""Ask Kap quality harness with its own options: `python -m bench ask_eval --db postgresql --scale 10000`."""

from __future__ import annotations

import sys

from bench.ask_eval import main as run


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
