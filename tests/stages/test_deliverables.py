"""The signer's page shows the attached documents, with previews and downloads, and nothing else."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core.db import Database
from kap.core.models import AuditEvent
from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, outbox_messages, recipient, token_in

CORPUS = Path(__file__).parents[1] / "fixtures" / "northwind"
SOW = "SOW-2026-014 Northwind Workday.pdf"


def upload(client: TestClient, world: World, name: str, project: Any = None) -> dict[str, Any]:
    response = client.post("/api/ingest-sync", params={"project_id": str(project or world.project_a)},
                           headers=world.h("lead") if project is None else world.h("b_member"),
                           files={"file": (name, (CORPUS / name).read_bytes(), "application/octet-stream")})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()["document"]
    return document


def test_signer_sees_attached_documents_only(client: TestClient, world: World, db: Database, data_dir: Path,
                                             pa: dict[str, str]) -> None:
    sow, plan = upload(client, world, SOW), upload(client, world, "Test strategy.txt")
    unattached = upload(client, world, "Cutover notes.md")
    foreign = upload(client, world, "Cutover notes.md", project=world.project_b)
    stage = make_stage(client, world, "Design")
    put = client.put(f"/api/stages/{stage['id']}/documents", params=pa, headers=world.h("pm"),
                     json={"artifact_ids": [sow["id"], plan["id"]]})
    assert put.status_code == 200, put.text
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    base = f"/signoff/{token}"

    page = client.get(base)
    assert page.status_code == 200
    html = page.text
    sow_bytes = (CORPUS / SOW).read_bytes()
    assert SOW in html
    assert "Test strategy.txt" in html
    assert "Cutover notes.md" not in html
    assert hashlib.sha256(sow_bytes).hexdigest() in html
    assert plan["sha256"] in html
    previews = re.findall(rf'src="{re.escape(base)}/documents/([0-9a-f-]+)/preview\.png\?page=(\d)"', html)
    assert previews == [(sow["id"], "1"), (sow["id"], "2")]
    assert "Test strategy" in html  # text excerpt of the text document
    assert "img-src 'self' data:" in page.headers["content-security-policy"]

    image = client.get(f"{base}/documents/{sow['id']}/preview.png?page=1")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(image.content) > 5000
    download = client.get(f"{base}/documents/{sow['id']}")
    assert download.status_code == 200
    assert download.content == sow_bytes
    assert "attachment" in download.headers["content-disposition"]

    for other in (unattached["id"], foreign["id"]):
        missing = client.get(f"{base}/documents/{other}")
        assert missing.status_code == 404
        assert missing.json()["ok"] is False
        assert client.get(f"{base}/documents/{other}/preview.png?page=1").status_code == 404
    assert client.get(f"{base}/documents/{sow['id']}/preview.png?page=9").status_code == 404
    assert client.get(f"{base}/documents/{plan['id']}/preview.png?page=1").status_code == 404
    assert client.get(f"/signoff/{'x' * 43}/documents/{sow['id']}").status_code == 404

    digest = re.search(r'name="content_digest" value="([0-9a-f]{64})"', html)
    assert digest is not None
    done = client.post(base, data={"decision": "approve", "name": "Dana Sponsor", "note": "",
                                   "content_digest": digest.group(1)})
    assert done.status_code == 200
    assert "Thank you" in done.text
    assert client.get(f"{base}/documents/{sow['id']}").status_code == 410
    with db.service_session() as s:
        events = {e.action: e for e in s.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(("signoff.document_downloaded", "signoff.decided")),
            AuditEvent.project_id == world.project_a))}
    assert events["signoff.document_downloaded"].details["sha256"] == sow["sha256"]
    shown = {d["artifact_id"]: d["sha256"] for d in events["signoff.decided"].details["documents_shown"]}
    assert shown == {sow["id"]: sow["sha256"], plan["id"]: plan["sha256"]}
