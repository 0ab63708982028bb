"""Decisions recorded in the app, the can_sign flag, the service API for other domains, the schedule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core import jobs
from kap.core.db import Database, utcnow
from kap.core.jobs import huey
from kap.core.runtime import Runtime
from kap.stages import service, signoff
from kap.stages.jobs import expire_signoff_requests
from kap.stages.models import SignoffRequest
from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, outbox_messages, project_context, recipient, token_in


def test_admin_records_a_decision_and_the_open_link_dies(client: TestClient, world: World, data_dir: Path,
                                                         pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    decided = client.post(f"/api/stages/{stage['id']}/decision", params=pa, headers=world.h("admin"),
                          json={"decision": "reject", "note": "Missing <b>CR-004</b>"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["channel"] == "internal"
    assert decided.json()["status"] == "rejected"
    assert client.get(f"/signoff/{token}").status_code == 410
    cert = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params=pa, headers=world.h("member"))
    assert "REJECTED" in cert.text
    assert "&lt;b&gt;CR-004&lt;/b&gt;" in cert.text
    statuses = [r["status"] for r in client.get(f"/api/stages/{stage['id']}/signoff-requests", params=pa,
                                                headers=world.h("member")).json()["requests"]]
    assert sorted(statuses) == ["rejected", "revoked"]


def test_members_decide_only_with_the_can_sign_flag(client: TestClient, world: World, pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    url = f"/api/stages/{stage['id']}/decision"
    refused = client.post(url, params=pa, json={"decision": "approve"}, headers=world.h("pm"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    member = str(world.users["member"])
    assert client.put(f"/api/stage-signers/{member}", params=pa, headers=world.h("pm")).status_code == 403
    assert client.put(f"/api/stage-signers/{member}", params=pa, headers=world.h("admin")).status_code == 200
    signers = client.get("/api/stage-signers", params=pa, headers=world.h("member")).json()["signers"]
    assert [s["user_id"] for s in signers] == [member]
    allowed = client.post(url, params=pa, json={"decision": "approve", "name": "Morgan Member"},
                          headers=world.h("member"))
    assert allowed.status_code == 200
    assert allowed.json()["signer_name"] == "Morgan Member"
    twice = client.post(url, params=pa, json={"decision": "approve"}, headers=world.h("member"))
    assert twice.status_code == 409
    assert client.delete(f"/api/stage-signers/{member}", params=pa, headers=world.h("admin")).status_code == 200
    outsider = str(world.users["outsider"])
    assert client.put(f"/api/stage-signers/{outsider}", params=pa, headers=world.h("admin")).status_code == 404


def test_service_api_for_the_smoke_runner(runtime: Runtime, world: World, db: Database, data_dir: Path) -> None:
    email = recipient()
    with project_context(db, world.users["admin"], world.project_a) as ctx:
        stage = service.ensure_stage(ctx, "Discovery")
        assert service.ensure_stage(ctx, "discovery").id == stage.id
        request, link, mail = signoff.request_signoff(ctx, stage.id, email, name="Dana", mailer=runtime.mailer,
                                                      settings=runtime.settings)
        assert link.startswith("http://testserver/signoff/")
        assert request.status == "pending"
    # Mail is out once the transaction is committed, whichever path the mailer took.
    [msg] = outbox_messages(data_dir, email)
    assert link.endswith(token_in(msg))
    with db.service_session() as s:
        row = s.get(SignoffRequest, request.id)
        assert row is not None
        assert row.email_status == "saved"
    # The answer is given inside the transaction: the mail is only queued then.
    assert mail["status"] == "queued"


def test_mail_is_dropped_when_the_transaction_rolls_back(runtime: Runtime, world: World, db: Database,
                                                        data_dir: Path) -> None:
    email = recipient()
    def request_then_fail() -> None:
        with project_context(db, world.users["admin"], world.project_a) as ctx:
            stage = service.ensure_stage(ctx, f"Rollback {uuid.uuid4().hex[:6]}")
            signoff.request_signoff(ctx, stage.id, email, mailer=runtime.mailer, settings=runtime.settings)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        request_then_fail()
    with db.service_session() as s:
        assert s.scalar(select(SignoffRequest).where(SignoffRequest.recipient_email == email)) is None
    assert outbox_messages(data_dir, email) == []


def test_expiry_runs_every_five_minutes(runtime: Runtime, client: TestClient, world: World, db: Database) -> None:
    due = [t.name for t in huey.read_periodic(datetime(2026, 11, 27, 9, 5, tzinfo=UTC))]
    assert any(name.endswith("expire_signoff_requests") for name in due)
    assert not [t for t in huey.read_periodic(datetime(2026, 11, 27, 9, 7, tzinfo=UTC))
                if t.name.endswith("expire_signoff_requests")]
    stage = make_stage(client, world)
    asked = ask_signoff(client, world, stage["id"], recipient(), expires_in_hours=1)
    with db.service_transaction() as s:
        row = s.get(SignoffRequest, uuid.UUID(asked["request_id"]))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    jobs.bind_runtime(runtime)
    try:
        expire_signoff_requests.call_local()
    finally:
        jobs.unbind_runtime(runtime)
    with db.service_session() as s:
        row = s.get(SignoffRequest, uuid.UUID(asked["request_id"]))
        assert row is not None
        assert row.status == "expired"
