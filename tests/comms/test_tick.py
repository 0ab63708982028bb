"""The digest tick with frozen time: windows, idempotency, quiet hours, caps, late sends."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import delete

from kap.comms.models import Subscription
from kap.comms.scheduler import SendFailed, deliver, delivery_wait, digest_tick, give_up
from kap.core.db import utcnow
from kap.core.mail import Mail, Mailer, MailSuppression, SmtpTransport
from kap.core.models import Project, ProjectMember
from kap.core.runtime import Runtime
from kap.core.security import new_token
from tests.comms.conftest import add_artifact, count_sends, digest_log, sends, set_rules
from tests.conftest import World

MONDAY_9 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # the default window: Monday 09:00 UTC
A_MEMBERS = 5


def tick(runtime: Runtime, world: World, when: datetime) -> None:
    with time_machine.travel(when, tick=False):
        digest_tick(runtime, utcnow(), projects=[world.project_a])


def test_window_sends_one_digest_to_every_member(bound: Runtime, world: World) -> None:
    add_artifact(bound.db, world.project_a, "Blueprint.docx", created_at=datetime(2027, 1, 1, tzinfo=UTC))
    tick(bound, world, datetime(2027, 1, 4, 9, 5, tzinfo=UTC))
    log = digest_log(bound.db, world.project_a)
    assert len(log) == A_MEMBERS
    assert {row.status for row in log} == {"saved"}
    assert all("Blueprint.docx" in Path(row.path or "").read_text() for row in log)
    assert {s.status for s in sends(bound.db, world.project_a)} == {"sent"}
    assert {s.iso_week for s in sends(bound.db, world.project_a)} == {"2027-W01"}
    tick(bound, world, datetime(2027, 1, 11, 8, 59, tzinfo=UTC))  # a minute before the next window
    assert len(digest_log(bound.db, world.project_a)) == A_MEMBERS


def test_the_same_tick_twice_sends_once(bound: Runtime, world: World) -> None:
    tick(bound, world, MONDAY_9)
    tick(bound, world, MONDAY_9)
    tick(bound, world, datetime(2027, 1, 6, 12, 0, tzinfo=UTC))
    log = digest_log(bound.db, world.project_a)
    assert len(log) == A_MEMBERS
    assert max(Counter(row.recipient for row in log).values()) == 1


def test_two_workers_at_once_send_once(bound: Runtime, world: World) -> None:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            digest_tick(bound, MONDAY_9, projects=[world.project_a], dispatch=lambda sid: deliver(bound, sid))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with time_machine.travel(MONDAY_9, tick=False):
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    log = digest_log(bound.db, world.project_a)
    assert len(log) == A_MEMBERS
    assert max(Counter(row.recipient for row in log).values()) == 1
    assert count_sends(bound.db, world.project_a) == A_MEMBERS


def test_next_week_sends_again(bound: Runtime, world: World) -> None:
    tick(bound, world, MONDAY_9)
    tick(bound, world, datetime(2027, 1, 11, 9, 0, tzinfo=UTC))
    assert len(digest_log(bound.db, world.project_a)) == 2 * A_MEMBERS
    assert {s.iso_week for s in sends(bound.db, world.project_a)} == {"2027-W01", "2027-W02"}


def test_a_missed_window_still_sends_late(bound: Runtime, world: World) -> None:
    tick(bound, world, datetime(2027, 1, 7, 15, 0, tzinfo=UTC))  # Thursday: Monday's tick never ran
    assert len(digest_log(bound.db, world.project_a)) == A_MEMBERS
    assert {s.iso_week for s in sends(bound.db, world.project_a)} == {"2027-W01"}


def test_a_window_before_the_project_existed_is_not_sent(bound: Runtime, world: World) -> None:
    tick(bound, world, datetime(2026, 1, 5, 9, 0, tzinfo=UTC))  # long before the project was created
    assert digest_log(bound.db, world.project_a) == []


def test_digest_disabled_sends_nothing(bound: Runtime, world: World) -> None:
    set_rules(bound.db, world.project_a, digest_enabled=False)
    tick(bound, world, MONDAY_9)
    assert count_sends(bound.db, world.project_a) == 0


def test_quiet_hours_defer_across_midnight_and_dst(bound: Runtime, world: World) -> None:
    # Saturday 27 March 2027 23:00 in Berlin, the night the clocks go forward; quiet 22:00-07:00.
    set_rules(bound.db, world.project_a, timezone="Europe/Berlin", digest_weekday=5, digest_hour=23,
              quiet_start="22:00", quiet_end="07:00")
    tick(bound, world, datetime(2027, 3, 27, 22, 5, tzinfo=UTC))
    waiting = sends(bound.db, world.project_a)
    assert len(waiting) == A_MEMBERS
    assert {(s.status, s.defer_reason) for s in waiting} == {("deferred", "quiet_hours")}
    assert {s.not_before for s in waiting} == {datetime(2027, 3, 28, 5, 0, tzinfo=UTC)}  # 07:00 CEST
    tick(bound, world, datetime(2027, 3, 27, 23, 30, tzinfo=UTC))  # 00:30 local, still quiet
    tick(bound, world, datetime(2027, 3, 28, 4, 59, tzinfo=UTC))   # 06:59 CEST
    assert digest_log(bound.db, world.project_a) == []
    tick(bound, world, datetime(2027, 3, 28, 5, 0, tzinfo=UTC))
    assert len(digest_log(bound.db, world.project_a)) == A_MEMBERS
    done = sends(bound.db, world.project_a)
    assert {s.status for s in done} == {"sent"}
    assert {s.deferrals for s in done} == {1}
    assert {s.iso_week for s in done} == {"2027-W12"}


def test_daily_cap_defers_to_the_next_local_day(bound: Runtime, world: World) -> None:
    set_rules(bound.db, world.project_a, timezone="America/New_York", daily_cap=1, quiet_start=None,
              quiet_end=None, digest_hour=9)
    with bound.db.service_session() as s:
        from kap.core.models import User

        pm_email = s.get(User, world.users["pm"]).email  # type: ignore[union-attr]
    assert pm_email
    monday_9_ny = datetime(2027, 1, 4, 14, 0, tzinfo=UTC)
    with time_machine.travel(datetime(2027, 1, 4, 13, 0, tzinfo=UTC), tick=False):
        bound.mailer.send(Mail(to=pm_email, subject="Sign-off", text="x", kind="signoff",
                               project_id=world.project_a))
    tick(bound, world, monday_9_ny)
    by_email = {s.email: s for s in sends(bound.db, world.project_a)}
    capped = by_email[pm_email]
    assert (capped.status, capped.defer_reason) == ("deferred", "daily_cap")
    assert capped.not_before == datetime(2027, 1, 5, 5, 0, tzinfo=UTC)  # midnight in New York
    assert len(digest_log(bound.db, world.project_a)) == A_MEMBERS - 1
    tick(bound, world, datetime(2027, 1, 5, 4, 59, tzinfo=UTC))
    assert len(digest_log(bound.db, world.project_a)) == A_MEMBERS - 1
    tick(bound, world, datetime(2027, 1, 5, 5, 0, tzinfo=UTC))
    log = digest_log(bound.db, world.project_a)
    assert len(log) == A_MEMBERS
    assert pm_email in {row.recipient for row in log}


def test_the_default_dispatch_runs_the_send_job(bound: Runtime, world: World) -> None:
    with time_machine.travel(MONDAY_9, tick=False):
        report = digest_tick(bound, utcnow(), projects=[world.project_a])
    assert len(report.dispatched) == A_MEMBERS
    assert {s.status for s in sends(bound.db, world.project_a)} == {"sent"}


def test_status_reports_the_last_digest_and_what_waits(bound: Runtime, world: World, client: TestClient) -> None:
    tick(bound, world, MONDAY_9)
    response = client.get("/api/scheduler/status", params={"project_id": str(world.project_a)},
                          headers=world.h("member"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["last_digest"]["recipients"] == A_MEMBERS
    assert body["last_digest"]["iso_week"] == "2027-W01"
    assert body["last_digest"]["at"].startswith("2027-01-04T09:00")
    assert body["waiting"]["total"] == 0


def test_suppressed_external_and_departed_recipients(bound: Runtime, world: World) -> None:
    saturday = datetime(2027, 1, 2, tzinfo=UTC)
    add_artifact(bound.db, world.project_a, "Shared plan.pdf", shareable=True, created_at=saturday)
    add_artifact(bound.db, world.project_a, "Internal memo.pdf", created_at=saturday)
    with bound.db.service_transaction() as s:
        org = s.get(Project, world.project_a).org_id  # type: ignore[union-attr]
        for address in ("client@example.com", "bounced@example.com"):
            s.add(Subscription(org_id=org, project_id=world.project_a, recipient_key=f"email:{address}",
                               email=address, category="digest", subscribed=True, token=new_token()))
        s.add(MailSuppression(email="bounced@example.com", reason="bounce"))
    with time_machine.travel(MONDAY_9, tick=False):
        digest_tick(bound, utcnow(), projects=[world.project_a], dispatch=lambda sid: None)  # plan and claim only
        with bound.db.service_transaction() as s:
            s.execute(delete(ProjectMember).where(ProjectMember.user_id == world.users["lead"]))
        for send in sends(bound.db, world.project_a):
            deliver(bound, send.id)
    outcome = {s.email: s.status for s in sends(bound.db, world.project_a)}
    assert outcome["bounced@example.com"] == "suppressed"
    assert outcome["client@example.com"] == "sent"
    assert sorted(outcome.values()).count("failed") == 1  # the lead left before delivery
    client_mail = next(r for r in digest_log(bound.db, world.project_a) if r.recipient == "client@example.com")
    text = Path(client_mail.path or "").read_text()
    assert "Shared plan.pdf" in text
    assert "Internal memo" not in text
    assert "/unsubscribe/" in text


def test_a_failed_handoff_is_retried_then_marked_failed(bound: Runtime, world: World) -> None:
    broken = dataclasses.replace(bound, mailer=Mailer(bound.settings, bound.db,
                                                      SmtpTransport("smtp://127.0.0.1:9", timeout=2)))
    with time_machine.travel(MONDAY_9, tick=False):
        report = digest_tick(broken, utcnow(), projects=[world.project_a], dispatch=lambda sid: None)
        first = report.dispatched[0]
        with pytest.raises(SendFailed):
            deliver(broken, first)
        row = next(s for s in sends(bound.db, world.project_a) if s.id == first)
        assert (row.status, row.attempts) == ("sending", 1)
        assert row.error
        assert deliver(bound, first) == "sent"  # the retry, once the backend answers
        second = report.dispatched[1]
        give_up(bound.db, second, "SendFailed: connection refused")
    states = {s.id: s.status for s in sends(bound.db, world.project_a)}
    assert states[first] == "sent"
    assert states[second] == "failed"


def test_a_send_stuck_in_a_dead_worker_is_reclaimed(bound: Runtime, world: World) -> None:
    with time_machine.travel(MONDAY_9, tick=False):
        digest_tick(bound, utcnow(), projects=[world.project_a], dispatch=lambda sid: None)
    assert {s.status for s in sends(bound.db, world.project_a)} == {"sending"}
    tick(bound, world, datetime(2027, 1, 4, 9, 20, tzinfo=UTC))  # claims are still fresh
    assert digest_log(bound.db, world.project_a) == []
    tick(bound, world, datetime(2027, 1, 4, 9, 45, tzinfo=UTC))
    assert len(digest_log(bound.db, world.project_a)) == A_MEMBERS


def test_delivery_wait_answers_for_other_kinds_of_mail(bound: Runtime, world: World) -> None:
    set_rules(bound.db, world.project_a, quiet_start="22:00", quiet_end="07:00", daily_cap=1)
    assert delivery_wait(bound.db, world.project_a, "x@example.com", datetime(2027, 1, 4, 23, 0, tzinfo=UTC)) == \
        ("quiet_hours", datetime(2027, 1, 5, 7, 0, tzinfo=UTC))
    with time_machine.travel(datetime(2027, 1, 4, 12, 0, tzinfo=UTC), tick=False):
        assert delivery_wait(bound.db, world.project_a, "X@example.com") is None
        bound.mailer.send(Mail(to="x@example.com", subject="s", text="t", project_id=world.project_a))
        assert delivery_wait(bound.db, world.project_a, "X@example.com") == \
            ("daily_cap", datetime(2027, 1, 5, 7, 0, tzinfo=UTC))


def test_the_tick_is_a_periodic_job_every_five_minutes() -> None:
    from kap.comms import jobs as comms_jobs
    from kap.core.jobs import huey

    assert comms_jobs.digest_tick.task_class in huey._registry._periodic_tasks
    task = comms_jobs.digest_tick.task_class()
    assert task.validate_datetime(datetime(2027, 1, 4, 9, 5))
    assert not task.validate_datetime(datetime(2027, 1, 4, 9, 6))
