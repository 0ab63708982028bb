"""The loop closes: a decision mails the team and the signer (with the PDF certificate), nobody else."""

from __future__ import annotations

import hashlib
import io
from email.message import EmailMessage
from pathlib import Path

from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from kap.core.db import Database
from kap.core.models import AuditEvent, Org, User
from tests.conftest import World
from tests.stages.conftest import add_artifact, ask_signoff, make_stage, outbox_messages, parts, recipient, token_in


def _named(db: Database, world: World) -> dict[str, str]:
    """Give the requester (pm) and the owner (lead) names; return their addresses."""
    out = {}
    with db.service_transaction() as s:
        for who, name in (("pm", "Priya PM"), ("lead", "Lee Owner")):
            user = s.get(User, world.users[who])
            assert user is not None
            assert user.email
            user.name = name
            out[who] = user.email
        org = s.get(Org, world.org1)
        assert org is not None
        org.display_name = "Brightline Advisory"
    return out


def _pdf_of(msg: EmailMessage) -> bytes:
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    data = attachment.get_content()
    assert isinstance(data, bytes)
    return data


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_one_decision_sends_exactly_the_expected_mails(client: TestClient, world: World, db: Database,
                                                       data_dir: Path, pa: dict[str, str]) -> None:
    people = _named(db, world)
    doc = add_artifact(db, world.org1, world.project_a, "Test strategy.txt")
    stage = make_stage(client, world, "Design", summary="Core HR design.", artifact_ids=[str(doc.id)],
                       owner_id=str(world.users["lead"]))
    signer = recipient()
    ask_signoff(client, world, stage["id"], signer, name="Dana Sponsor")
    [invite] = outbox_messages(data_dir, signer)
    assert str(invite["From"]).startswith("Brightline Advisory via Kap")
    assert people["pm"] in str(invite["Reply-To"])
    token = token_in(invite)
    before = {p.name for p in (data_dir / "outbox").glob("*.eml")}
    client.get(f"/signoff/{token}", headers={"User-Agent": "SignerBrowser/2.0"})
    done = client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana Sponsor", "note": "Go ahead"},
                       headers={"User-Agent": "SignerBrowser/2.0"})
    assert done.status_code == 200

    new = sorted(p.name for p in (data_dir / "outbox").glob("*.eml") if p.name not in before)
    assert len(new) == 3
    [to_pm] = outbox_messages(data_dir, people["pm"])
    [to_owner] = outbox_messages(data_dir, people["lead"])
    copy = outbox_messages(data_dir, signer)[1]
    for msg in (to_pm, to_owner):
        text, _ = parts(msg)
        assert str(msg["Subject"]) == "Approved: Design (A) by Dana Sponsor"
        assert "Dana Sponsor" in text
        assert "Go ahead" in text
        assert "format=pdf" in text
        assert str(msg["From"]).startswith("Brightline Advisory via Kap")
        assert signer in str(msg["Reply-To"])
        assert list(msg.iter_attachments()) == []
    assert "Hello Priya PM" in parts(to_pm)[0]
    assert "Hello Lee Owner" in parts(to_owner)[0]
    assert people["pm"] in str(copy["Reply-To"])
    assert "Your sign-off" in str(copy["Subject"])

    pdf = _pdf_of(copy)
    text = _text(pdf)
    for expected in ("Sign-off certificate", "APPROVED", "Dana Sponsor", "Design", "Core HR design.",
                     "Test strategy.txt", doc.sha256[:32], "Priya PM", "SignerBrowser/2.0", "opened", "decided",
                     "Brightline Advisory", "revision 1"):
        assert expected in text, expected
    with db.service_session() as s:
        issued = s.scalars(select(AuditEvent).where(AuditEvent.action == "signoff.certificate_issued",
                                                    AuditEvent.project_id == world.project_a)).all()
    assert [e.details["sha256"] for e in issued] == [hashlib.sha256(pdf).hexdigest()]

    download = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params={**pa, "format": "pdf"},
                          headers=world.h("member"))
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.content == pdf  # the same decision, the same bytes
    assert "attachment" in download.headers["content-disposition"]
    bad = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params={**pa, "format": "doc"},
                     headers=world.h("member"))
    assert bad.status_code == 422
    assert bad.json()["ok"] is False


def test_rejection_and_internal_decision_mail_the_team(client: TestClient, world: World, db: Database,
                                                       data_dir: Path, pa: dict[str, str]) -> None:
    people = _named(db, world)
    stage = make_stage(client, world, "Build")
    signer = recipient()
    ask_signoff(client, world, stage["id"], signer)
    token = token_in(outbox_messages(data_dir, signer)[0])
    rejected = client.post(f"/api/signoff/{token}", json={"decision": "reject", "name": "Dana", "note": "Gaps"})
    assert rejected.status_code == 200
    [notice] = outbox_messages(data_dir, people["pm"])
    assert str(notice["Subject"]).startswith("Rejected: Build")
    assert "Gaps" in parts(notice)[0]
    assert "REJECTED" in _text(_pdf_of(outbox_messages(data_dir, signer)[1]))

    other = make_stage(client, world, "Test")
    with db.service_session() as s:
        admin = s.get(User, world.users["admin"])
        assert admin is not None
        assert admin.email
    decided = client.post(f"/api/stages/{other['id']}/decision", params=pa, headers=world.h("admin"),
                          json={"decision": "approve", "name": "Ada Admin"})
    assert decided.status_code == 200, decided.text
    [copy] = outbox_messages(data_dir, admin.email)
    assert "APPROVED" in _text(_pdf_of(copy))
    assert "Ada Admin" in _text(_pdf_of(copy))
