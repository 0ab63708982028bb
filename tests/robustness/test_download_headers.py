"""Downloads are attachments that are never sniffed and, opened anyway, run sandboxed."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, outbox_messages, recipient, token_in

HOSTILE_HTML = b"<html><body><script>fetch('/api/me').then(r => r.text()).then(alert)</script>Notes</body></html>"


def _sandboxed_attachment(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("sandbox")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["content-disposition"].startswith("attachment;")


def test_uploaded_html_is_served_sandboxed(client: TestClient, world: World) -> None:
    pa = {"project_id": str(world.project_a)}
    uploaded = client.post("/api/ingest-sync", params=pa, headers=world.h("owner"),
                           files={"file": ("notes.html", HOSTILE_HTML, "text/html")})
    assert uploaded.status_code == 200, uploaded.text
    doc_id = uploaded.json()["document"]["id"]
    download = client.get(f"/api/documents/{doc_id}/download", params=pa, headers=world.h("owner"))
    assert download.status_code == 200
    _sandboxed_attachment(download)


def test_signoff_certificate_is_a_sandboxed_attachment(client: TestClient, world: World, data_dir: Path) -> None:
    stage = make_stage(client, world)
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    assert client.post(f"/api/signoff/{token}", json={"decision": "approve", "name": "Dana"}).status_code == 200
    cert = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params={"project_id": str(world.project_a)},
                      headers=world.h("member"))
    assert cert.status_code == 200
    assert cert.headers["content-type"].startswith("text/html")
    _sandboxed_attachment(cert)


def test_every_response_refuses_sniffing(client: TestClient, world: World) -> None:
    for response in (client.get("/healthz"), client.get("/api/nope"), client.get("/api/me", headers=world.h("owner"))):
        assert response.headers["x-content-type-options"] == "nosniff"
