"""The schedule runs once per tick however many processes run it: the first to claim a minute enqueues."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from kap.core import jobs
from kap.core.settings import Settings, load_settings

NIGHTLY = datetime(2026, 3, 2, 2, 30)  # 02:30 UTC: the nightly backup, the 5- and 10-minute jobs, the sweep
EVERY_JOB = {"kap.backups.jobs.nightly_backups", "kap.comms.jobs.digest_tick",
             "kap.stages.jobs.expire_signoff_requests", "kap.ask.jobs.embed_all_pending", "kap.core.recovery.recover"}


@pytest.fixture(params=["redis", "sqlite"])
def queue(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The queue a worker cluster shares: Redis, or the SQLite queue file of one data folder."""
    jobs.load_all_tasks()
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    shared = load_settings(**{**settings.model_dump(), "kap_env": "development", "kap_data_dir": tmp_path,
                              "kap_redis_url": redis_url})
    jobs.configure(shared)
    try:
        yield request.param
    finally:
        jobs.huey.storage.flush_queue()
        jobs.configure(settings)


def _kap(names: list[str]) -> set[str]:
    """The product's own periodic jobs (other tests may declare more on the same queue)."""
    return {name for name in names if name.startswith("kap.")}


def test_the_first_process_to_claim_a_tick_enqueues_every_job_due_and_the_others_none(queue: str) -> None:
    first = jobs.enqueue_due(NIGHTLY)
    assert _kap(first) == EVERY_JOB
    assert jobs.enqueue_due(NIGHTLY.replace(second=41)) == []  # a second scheduler, later in the same minute
    assert jobs.enqueue_due(NIGHTLY) == []
    assert jobs.pending_count() == len(first)
    assert jobs.tick_holder(NIGHTLY) is not None


def test_the_next_minute_is_a_new_tick(queue: str) -> None:
    first = jobs.enqueue_due(NIGHTLY)
    second = jobs.enqueue_due(NIGHTLY.replace(minute=31))
    assert _kap(second) == {"kap.core.recovery.recover"}
    assert jobs.enqueue_due(NIGHTLY.replace(minute=31)) == []
    assert jobs.pending_count() == len(first) + len(second)


def test_claims_older_than_an_hour_are_forgotten(queue: str) -> None:
    jobs.enqueue_due(NIGHTLY)
    jobs.enqueue_due(NIGHTLY.replace(hour=4))
    if queue == "sqlite":  # the SQLite file trims at each claim; Redis expires its keys on its own clock
        assert jobs.tick_holder(NIGHTLY) is None
    else:
        assert 0 < jobs.huey.storage.conn.ttl(jobs.tick_key(NIGHTLY)) <= 3600
    assert jobs.tick_holder(NIGHTLY.replace(hour=4)) is not None
