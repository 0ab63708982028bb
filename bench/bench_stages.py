"""Sign-off links: the cost of one whole cycle, and many signers racing on one link.

Cycle = create a stage, request sign-off (mail to the outbox), open the page, approve.
Race = 8 threads POST the same link at once, repeated; exactly one must win each time.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.common import median, out, pct, postgres_url, sqlite_url
from kap.app import create_app
from kap.core.migrate import migrate
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from kap.demo import create_demo

CYCLES = 60
RACES = 25
RACERS = 8


def _client(url: str, data_dir: Path) -> tuple[TestClient, Runtime, dict[str, str], dict[str, str]]:
    settings = load_settings(kap_database_url=url, kap_data_dir=data_dir, dev_auth=True, kap_env="test",
                             rate_limit_max=10_000_000, kap_public_url="http://testserver")
    migrate(settings)
    ids = create_demo(settings)
    runtime = Runtime.build(settings)
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    headers = {"X-Dev-User": str(ids.owner), "X-Dev-Org": str(ids.org), "X-Dev-Role": "owner"}
    return client, runtime, headers, {"project_id": str(ids.project_a)}


def _ask(client: TestClient, headers: dict[str, str], params: dict[str, str], n: int) -> str:
    stage = client.post("/api/stages", params=params, json={"title": f"Bench {n}"}, headers=headers).json()
    asked = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=params, headers=headers,
                        json={"email_to": f"bench{n}@example.com"}).json()
    found = re.search(r"/signoff/(.+)$", asked["token_link"])
    assert found
    return found.group(1)


def _cycles(client: TestClient, headers: dict[str, str], params: dict[str, str]) -> list[float]:
    times = []
    for n in range(CYCLES):
        start = time.perf_counter()
        token = _ask(client, headers, params, n)
        assert client.get(f"/signoff/{token}").status_code == 200
        assert client.post(f"/signoff/{token}", data={"decision": "approve", "name": "B"}).status_code == 200
        times.append((time.perf_counter() - start) * 1000)
    return times


def _race(client: TestClient, token: str) -> list[int]:
    barrier = threading.Barrier(RACERS)
    codes: list[int] = []

    def run() -> None:
        barrier.wait()
        codes.append(client.post(f"/api/signoff/{token}", json={"decision": "approve", "name": "B"}).status_code)

    threads = [threading.Thread(target=run) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def _engine(name: str, url: str, data_dir: Path) -> None:
    client, runtime, headers, params = _client(url, data_dir)
    with client:
        times = _cycles(client, headers, params)
        out(f"{name}: full cycle median {median(times):.1f} ms, p95 {pct(times, 0.95):.1f} ms ({CYCLES} cycles)")
        winners: list[Any] = []
        start = time.perf_counter()
        for n in range(RACES):
            codes = _race(client, _ask(client, headers, params, 10_000 + n))
            winners.append(codes.count(200))
            assert sorted(set(codes)) == [200, 409], codes
        elapsed = (time.perf_counter() - start) * 1000 / RACES
        out(f"{name}: {RACES} races of {RACERS} concurrent POSTs: winners per race {sorted(set(winners))} "
            f"(must be [1]); {elapsed:.1f} ms per race incl. setup")
    runtime.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with sqlite_url(Path(tmp)) as url:
            _engine("sqlite", url, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp, postgres_url() as url:
        _engine("postgresql", url, Path(tmp))


if __name__ == "__main__":
    main()
