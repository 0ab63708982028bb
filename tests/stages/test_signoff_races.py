"""Two signers clicking at once: exactly one decision wins, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kap.core.db import Database
from kap.core.models import AuditEvent
from kap.stages.external import AlreadyDecided, decide_by_token
from kap.stages.schemas import DecisionIn
from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, outbox_messages, recipient, stage_of, token_in


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in n threads released at the same moment; collect results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # collected and asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _fresh_token(client: TestClient, world: World, data_dir: Path) -> tuple[str, str]:
    stage = make_stage(client, world)
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    return stage["id"], token_in(outbox_messages(data_dir, email)[0])


def test_two_concurrent_posts_exactly_one_wins(client: TestClient, world: World, data_dir: Path,
                                               db: Database) -> None:
    stage_id, token = _fresh_token(client, world, data_dir)
    choices = [{"decision": "approve", "name": "Dana"}, {"decision": "reject", "name": "Eve", "note": "No"}]
    responses = _together(2, lambda i: client.post(f"/signoff/{token}", data=choices[i]))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.text[:200] for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    expected = "signed_off" if choices[winner]["decision"] == "approve" else "rejected"
    assert stage_of(client, world, stage_id)["status"] == expected
    with db.service_session() as s:
        decided = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "signoff.decided", AuditEvent.details["stage_id"].as_string() == stage_id))
    assert decided == 1


def test_concurrent_decisions_in_the_service_exactly_one_wins(client: TestClient, world: World,
                                                              data_dir: Path, db: Database) -> None:
    _, token = _fresh_token(client, world, data_dir)

    def decide(i: int) -> str:
        with db.service_transaction() as session:
            view = decide_by_token(session, token, DecisionIn(decision="approve", name=f"Signer {i}"),
                                   ip="127.0.0.1", user_agent=f"thread-{i}")
            return view.status

    results = _together(4, decide)
    assert sum(1 for r in results if r == "approved") == 1, results
    assert sum(1 for r in results if isinstance(r, AlreadyDecided)) == 3, results


def test_concurrent_json_posts_exactly_one_wins(client: TestClient, world: World, data_dir: Path) -> None:
    _, token = _fresh_token(client, world, data_dir)
    responses = _together(3, lambda i: client.post(f"/api/signoff/{token}",
                                                   json={"decision": "approve", "name": f"Signer {i}"}))
    assert sorted(r.status_code for r in responses) == [200, 409, 409]
