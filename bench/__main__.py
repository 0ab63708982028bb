"""Run every benchmark module (`bench/bench_*.py`), or the ones named: `python -m bench foundation`.

Arguments after `--` (or from the first `--option` on) go to the modules: `python -m bench documents -- --big`,
`python -m bench ask_eval --db postgresql --scale 10000`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    args = sys.argv[1:]
    if "--" not in args and any(a.startswith("--") for a in args):  # `python -m bench ask_eval --db postgresql`
        first = next(i for i, a in enumerate(args) if a.startswith("--"))
        args = [*args[:first], "--", *args[first:]]
    module_args = args[args.index("--") + 1:] if "--" in args else []
    wanted = set(args[:args.index("--")] if "--" in args else args)
    sys.argv = [sys.argv[0], *module_args]
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    for name in names:
        short = name.removeprefix("bench_")
        if wanted and short not in wanted:
            continue
        print(f"\n## {short}", flush=True)  # noqa: T201
        importlib.import_module(f"bench.{name}").main()


main()
