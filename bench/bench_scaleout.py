"""Two API processes against one: the same authenticated GET through `kap serve --workers 1` and `--workers 2`.

    python -m bench scaleout                 # PostgreSQL with RLS, rate limits shared through Redis
    python -m bench scaleout -- --rounds 5 --seconds 3 --redis redis://127.0.0.1:6379/14

Both servers run on a fresh PostgreSQL database with row-level security and share their
rate-limit budget through Redis, as in production. wrk -t1 -c16 loads each in alternating
rounds; the figure is the ratio of the median req/s (goal >= 1.7 on two cores).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.bench_http import seed
from bench.common import PG_ADMIN_URL, median, out, postgres_url
from bench.server import kap_env, kap_serve, load, load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    tool = load_generator().split(" -c")[0]
    out(f"kap serve --workers 2 vs --workers 1 on PostgreSQL + RLS + Redis ({tool}, 16 connections)")
    with tempfile.TemporaryDirectory(prefix="kap-bench-scale-") as tmp, postgres_url(PG_ADMIN_URL) as url:
        work = Path(tmp)
        env = kap_env(url, work / "data", KAP_REDIS_URL=args.redis)
        seeded = seed(env)
        path = f"/api/projects/{seeded.project}"
        servers = {n: kap_serve(env, work, workers=n) for n in (1, 2)}
        try:
            for server in servers.values():
                load(server.base + path, seeded.headers, 2, connections=16)  # warm-up, every worker
            rates: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(args.rounds):
                for n, server in servers.items():
                    rates[n].append(load(server.base + path, seeded.headers, args.seconds, connections=16))
        finally:
            for server in servers.values():
                server.stop()
    one, two = median(rates[1]), median(rates[2])
    out(f"1 process {one:7.0f} req/s   2 processes {two:7.0f} req/s   2/1 {two / one:.2f} (goal >= 1.7)")
