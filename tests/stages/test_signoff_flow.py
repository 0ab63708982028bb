"""The whole external sign-off flow, captured from the outbox, and every way a link can fail."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core.db import Database, utcnow
from kap.core.models import AuditEvent, EmailLog, User
from kap.core.security import hash_token
from kap.stages.models import SignoffRequest
from kap.stages.records import LINK_INVALID
from kap.stages.signoff import expire_overdue
from tests.conftest import World
from tests.stages.conftest import (
    add_artifact,
    ask_signoff,
    make_stage,
    outbox_messages,
    parts,
    recipient,
    stage_of,
    token_in,
)

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _audit_actions(db: Database, request_id: str) -> list[str]:
    with db.service_session() as s:
        return list(s.scalars(select(AuditEvent.action).where(AuditEvent.target_id == request_id)
                              .order_by(AuditEvent.created_at)))


def test_request_email_open_approve_certificate(client: TestClient, world: World, db: Database,
                                                data_dir: Path, pa: dict[str, str]) -> None:
    doc1 = add_artifact(db, world.org1, world.project_a, "Test strategy.txt", version=3)
    doc2 = add_artifact(db, world.org1, world.project_a, "Cutover notes.md")
    stage = make_stage(client, world, "Test", summary="UAT complete; 3 defects deferred.",
                       artifact_ids=[str(doc1.id), str(doc2.id)])
    email = recipient()
    asked = ask_signoff(client, world, stage["id"], email, name="Dana Sponsor", message="Please review.")
    assert asked["ok"] is True
    assert asked["email"]["status"] == "queued"
    got = stage_of(client, world, stage["id"])
    assert got["status"] == "in_review"
    assert got["latest_request"]["email_status"] == "saved"

    [msg] = outbox_messages(data_dir, email)
    text, html = parts(msg)
    token = token_in(msg)
    assert asked["token_link"] == f"http://testserver/signoff/{token}"
    assert "Test" in str(msg["Subject"])
    assert "expires on" in text
    assert "Please review." in html
    assert "Test strategy.txt" in text
    assert doc1.sha256 in text

    page = client.get(f"/signoff/{token}", headers={"User-Agent": "HumanBrowser/1.0"})
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in page.headers["x-robots-tag"]
    assert "UAT complete" in page.text
    assert doc1.sha256 in page.text
    assert '<form method="post"' in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text), "no third-party assets"
    assert stage_of(client, world, stage["id"])["status"] == "in_review", "opening decides nothing"

    done = client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana Sponsor", "note": "OK"},
                       headers={"User-Agent": "HumanBrowser/1.0"})
    assert done.status_code == 200
    assert "You approved" in done.text
    assert stage_of(client, world, stage["id"])["status"] == "signed_off"

    cert = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params=pa, headers=world.h("member"))
    assert cert.status_code == 200
    assert cert.headers["content-type"].startswith("text/html")
    assert "attachment" in cert.headers["content-disposition"]
    for needle in (doc1.sha256, doc2.sha256, "Dana Sponsor", email, "APPROVED", "HumanBrowser/1.0",
                   "Test strategy.txt", "opened", "decided", "emailed", "created"):
        assert needle in cert.text, needle
    assert _audit_actions(db, asked["request_id"]) == [
        "signoff.created", "signoff.emailed", "signoff.opened", "signoff.decided", "signoff.certificate_issued",
        "signoff.decision_mailed"]


def test_certificate_keeps_the_document_versions_of_decision_time(client: TestClient, world: World, db: Database,
                                                                  data_dir: Path, pa: dict[str, str]) -> None:
    doc = add_artifact(db, world.org1, world.project_a, "Test strategy.txt")
    stage = make_stage(client, world, artifact_ids=[str(doc.id)])
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    assert client.post(f"/api/signoff/{token}", json={"decision": "approve", "name": "Dana"}).status_code == 200
    client.patch(f"/api/stages/{stage['id']}", params=pa, json={"artifact_ids": []}, headers=world.h("pm"))
    cert = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params={**pa, "format": "json"},
                      headers=world.h("member")).json()
    assert cert["certificate"]["documents"] == [
        {"artifact_id": str(doc.id), "name": doc.name, "version": 1, "sha256": doc.sha256}]
    assert len(cert["fingerprint"]) == 64


def test_external_link_is_single_use(client: TestClient, world: World, data_dir: Path) -> None:
    stage = make_stage(client, world)
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    first = client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana"})
    assert first.status_code == 200
    replay = client.post(f"/signoff/{token}", data={"decision": "reject", "name": "Eve", "note": "no"})
    assert replay.status_code == 409
    assert "Already decided" in replay.text
    assert "approved" in replay.text
    again = client.post(f"/api/signoff/{token}", json={"decision": "reject", "name": "Eve", "note": "no"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_decided"
    reopened = client.get(f"/signoff/{token}")
    assert reopened.status_code == 200
    assert "Already decided" in reopened.text
    assert stage_of(client, world, stage["id"])["status"] == "signed_off"


def test_scanner_get_then_human_post_still_works(client: TestClient, world: World, data_dir: Path,
                                                 db: Database) -> None:
    stage = make_stage(client, world)
    email = recipient()
    asked = ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    for _ in range(3):
        assert client.get(f"/signoff/{token}", headers={"User-Agent": "SafeLinks-Scanner"}).status_code == 200
        assert client.head(f"/signoff/{token}").status_code in (200, 405)
    assert client.get(f"/api/signoff/{token}").json()["signoff"]["status"] == "pending"
    done = client.post(f"/signoff/{token}", data={"decision": "reject", "name": "Dana", "note": "Fix CR-004"})
    assert done.status_code == 200
    assert "You rejected" in done.text
    assert stage_of(client, world, stage["id"])["status"] == "rejected"
    with db.service_session() as s:
        req = s.get(SignoffRequest, uuid.UUID(asked["request_id"]))
        assert req is not None
        assert req.open_count >= 4
        assert req.opened_at is not None


def test_reject_needs_a_note_and_a_name(client: TestClient, world: World, data_dir: Path) -> None:
    stage = make_stage(client, world)
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    page = client.post(f"/signoff/{token}", data={"decision": "reject", "name": "Dana"})
    assert page.status_code == 422
    assert "A note is required to reject" in page.text
    page = client.post(f"/signoff/{token}", data={"decision": "approve", "name": ""})
    assert page.status_code == 422
    assert "Enter your name" in page.text
    page = client.post(f"/signoff/{token}", data={"decision": "maybe", "name": "Dana"})
    assert page.status_code == 422
    assert "Choose approve or reject" in page.text
    api = client.post(f"/api/signoff/{token}", json={"decision": "reject", "name": "Dana"})
    assert api.status_code == 422
    assert api.json()["error"]["code"] == "validation_error"
    assert stage_of(client, world, stage["id"])["status"] == "in_review"


def test_html_in_name_and_note_is_escaped_everywhere(client: TestClient, world: World, data_dir: Path,
                                                     pa: dict[str, str]) -> None:
    stage = make_stage(client, world, title=f"Design {HOSTILE}", summary=HOSTILE)
    email = recipient()
    ask_signoff(client, world, stage["id"], email, name=HOSTILE, message=HOSTILE)
    msg = outbox_messages(data_dir, email)[0]
    _, html = parts(msg)
    token = token_in(msg)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    page = client.get(f"/signoff/{token}")
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    done = client.post(f"/signoff/{token}", data={"decision": "reject", "name": HOSTILE, "note": HOSTILE})
    assert done.status_code == 200
    assert "<script>" not in done.text
    cert = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params=pa, headers=world.h("member"))
    assert cert.status_code == 200
    assert "<script>" not in cert.text
    assert "<img" not in cert.text
    assert "&lt;script&gt;" in cert.text


def _invalid(response: object, status: int) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert LINK_INVALID.split(".")[0] in response.text  # type: ignore[attr-defined]


def test_unknown_and_tampered_tokens_get_the_same_plain_404(client: TestClient, world: World,
                                                           data_dir: Path) -> None:
    stage = make_stage(client, world)
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get("/signoff/..%2f..%2fetc").status_code == 404
    for bad in (tampered, "x", "a" * 500, "%00%ff", "%3Cscript%3E"):
        _invalid(client.get(f"/signoff/{bad}"), 404)
        _invalid(client.post(f"/signoff/{bad}", data={"decision": "approve", "name": "x"}), 404)
        api = client.get(f"/api/signoff/{bad}")
        assert api.status_code == 404
        assert api.json()["error"]["code"] == "link_invalid"
    assert client.get(f"/signoff/{token}").status_code == 200


def test_expired_link_gets_410_and_the_job_marks_it(client: TestClient, world: World, db: Database,
                                                    data_dir: Path) -> None:
    stage = make_stage(client, world)
    email = recipient()
    asked = ask_signoff(client, world, stage["id"], email, expires_in_hours=1)
    token = token_in(outbox_messages(data_dir, email)[0])
    with db.service_transaction() as s:
        req = s.get(SignoffRequest, uuid.UUID(asked["request_id"]))
        assert req is not None
        req.expires_at = utcnow() - timedelta(minutes=1)
    _invalid(client.get(f"/signoff/{token}"), 410)
    _invalid(client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana"}), 410)
    assert client.post(f"/api/signoff/{token}", json={"decision": "approve", "name": "D"}).status_code == 410
    assert expire_overdue(db) >= 1
    assert expire_overdue(db) == 0
    with db.service_session() as s:
        req = s.get(SignoffRequest, uuid.UUID(asked["request_id"]))
        assert req is not None
        assert req.status == "expired"
    assert "signoff.expired" in _audit_actions(db, asked["request_id"])
    assert stage_of(client, world, stage["id"])["status"] == "in_progress"


def test_expire_overdue_takes_a_clock(client: TestClient, world: World, db: Database) -> None:
    stage = make_stage(client, world)
    asked = ask_signoff(client, world, stage["id"], recipient(), expires_in_hours=2)
    assert expire_overdue(db, now=utcnow() + timedelta(hours=1)) == 0
    assert expire_overdue(db, now=utcnow() + timedelta(hours=3)) >= 1
    listed = client.get(f"/api/stages/{stage['id']}/signoff-requests", params={"project_id": str(world.project_a)},
                        headers=world.h("member")).json()["requests"]
    assert [r["status"] for r in listed if r["id"] == asked["request_id"]] == ["expired"]


def test_revoked_link_gets_410(client: TestClient, world: World, data_dir: Path, db: Database,
                               pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    email = recipient()
    asked = ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    url = f"/api/stages/{stage['id']}/signoff-requests/{asked['request_id']}/revoke"
    assert client.post(url, params=pa, headers=world.h("member")).status_code == 403
    revoked = client.post(url, params=pa, headers=world.h("pm"))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert client.post(url, params=pa, headers=world.h("pm")).status_code == 409
    _invalid(client.get(f"/signoff/{token}"), 410)
    _invalid(client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana"}), 410)
    assert stage_of(client, world, stage["id"])["status"] == "in_progress"
    assert "signoff.revoked" in _audit_actions(db, asked["request_id"])


def test_resend_kills_the_old_link_and_mails_a_new_one(client: TestClient, world: World, data_dir: Path,
                                                       pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    email = recipient()
    first = ask_signoff(client, world, stage["id"], email)
    old = token_in(outbox_messages(data_dir, email)[0])
    url = f"/api/stages/{stage['id']}/signoff-requests/{first['request_id']}/resend"
    resent = client.post(url, params=pa, headers=world.h("pm"))
    assert resent.status_code == 201, resent.text
    assert resent.json()["request_id"] != first["request_id"]
    messages = outbox_messages(data_dir, email)
    assert len(messages) == 2
    new = token_in(messages[1])
    assert new != old
    assert resent.json()["token_link"].endswith(new)
    _invalid(client.get(f"/signoff/{old}"), 410)
    assert client.post(url, params=pa, headers=world.h("pm")).status_code == 409
    assert client.post(f"/signoff/{new}", data={"decision": "approve", "name": "Dana"}).status_code == 200
    listed = client.get(f"/api/stages/{stage['id']}/signoff-requests", params=pa, headers=world.h("member")).json()
    assert {r["id"]: r["status"] for r in listed["requests"]} == {
        first["request_id"]: "revoked", resent.json()["request_id"]: "approved"}
    cert = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params=pa, headers=world.h("member"))
    # The timeline tells the whole story, including the link that was replaced.
    for event in ("<td>created</td>", "<td>revoked</td>", "<td>resent</td>", "<td>decided</td>"):
        assert event in cert.text, event


def test_one_open_link_per_stage(client: TestClient, world: World, pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    ask_signoff(client, world, stage["id"], recipient())
    second = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=pa,
                         json={"email_to": recipient()}, headers=world.h("pm"))
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "signoff_pending"


def test_token_for_a_deleted_stage_stops_working(client: TestClient, world: World, data_dir: Path,
                                                 pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    assert client.delete(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm")).status_code == 200
    _invalid(client.get(f"/signoff/{token}"), 410)
    _invalid(client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana"}), 410)
    assert client.get(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm")).status_code == 404


def test_requests_list_never_shows_tokens_and_only_hashes_are_stored(client: TestClient, world: World,
                                                                     data_dir: Path, db: Database,
                                                                     pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    email = recipient()
    asked = ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    assert len(token) >= 22, "at least 128 random bits"
    listed = client.get(f"/api/stages/{stage['id']}/signoff-requests", params=pa, headers=world.h("member"))
    assert listed.status_code == 200
    assert token not in listed.text
    assert "token" not in listed.text
    assert token not in client.get("/api/stages", params=pa, headers=world.h("member")).text
    with db.service_session() as s:
        req = s.get(SignoffRequest, uuid.UUID(asked["request_id"]))
        assert req is not None
        assert req.token_hash == hash_token(token)
        log = s.scalar(select(EmailLog).where(EmailLog.recipient == email))
        assert log is not None
        assert log.kind == "signoff"
        assert log.project_id == world.project_a


def test_project_b_routes_cannot_reach_project_a_requests(client: TestClient, world: World, data_dir: Path) -> None:
    stage = make_stage(client, world)
    asked = ask_signoff(client, world, stage["id"], recipient())
    pb = {"project_id": str(world.project_b)}
    base = f"/api/stages/{stage['id']}"
    b_owner = world.h("b_member")
    assert client.get(base, params=pb, headers=b_owner).status_code == 404
    assert client.get(f"{base}/signoff-requests", params=pb, headers=b_owner).status_code == 404
    assert client.post(f"{base}/signoff-requests/{asked['request_id']}/revoke", params=pb,
                       headers=b_owner).status_code == 404
    assert client.post(f"{base}/signoff-requests/{asked['request_id']}/resend", params=pb,
                       headers=b_owner).status_code == 404
    assert client.get(f"{base}/signoff-certificate", params=pb, headers=b_owner).status_code == 404
    assert client.post(f"{base}/decision", params=pb, json={"decision": "approve"},
                       headers=b_owner).status_code == 404
    # project A's owner pointing project B's id at A's stage is refused too
    assert client.get(base, params=pb, headers=world.h("owner")).status_code == 404


def test_error_pages_keep_the_privacy_headers(client: TestClient) -> None:
    page = client.get("/signoff/not-a-real-token")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in page.headers["x-robots-tag"]
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_sentinel_sees_no_stage_rows_across_projects(client: TestClient, world: World) -> None:
    stage = make_stage(client, world)
    ask_signoff(client, world, stage["id"], recipient())
    response = client.get("/api/sentinel/tenant-leak", headers=world.h("b_member"),
                          params={"project_id": str(world.project_b), "target_project_id": str(world.project_a)})
    body = response.json()
    assert response.status_code == 200
    assert body["leak"] is False
    names = {c["check"] for c in body["checks"]}
    assert {"table:stages", "table:signoff_requests", "table:stage_artifacts", "table:stage_signers"} <= names


def test_request_mail_names_a_person_never_a_user_id(client: TestClient, world: World, db: Database,
                                                    data_dir: Path) -> None:
    with db.service_transaction() as s:
        pm = s.get(User, world.users["pm"])
        assert pm is not None
        pm.name, pm.email = None, None  # a user known only by id, as dev sign-in creates them
    stage = make_stage(client, world, "Design")
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    [msg] = outbox_messages(data_dir, email)
    text, html = parts(msg)
    assert "The project team (Org One) asks you to sign off" in text
    assert str(world.users["pm"]) not in text
    assert str(world.users["pm"]) not in html
