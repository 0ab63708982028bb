"""Optional signer verification: a mailed 6-digit code, single use, 10 minutes, five tries."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from kap.core.db import Database, utcnow
from kap.stages.models import SignoffRequest
from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, outbox_messages, parts, recipient, token_in

CODE = re.compile(r"^\s+(\d{6})$", re.MULTILINE)


@pytest.fixture
def link(client: TestClient, world: World, data_dir: Path) -> tuple[str, str, str, str]:
    """A project that requires codes and an open link: (token, request id, signer, stage id)."""
    q = {"project_id": str(world.project_a)}
    saved = client.put("/api/signoff-settings", params=q, json={"require_code": True}, headers=world.h("pm"))
    assert saved.status_code == 200, saved.text
    stage = make_stage(client, world, f"Design {uuid.uuid4().hex[:6]}")
    signer = recipient()
    sent = ask_signoff(client, world, stage["id"], signer, name="Dana Sponsor")
    return token_in(outbox_messages(data_dir, signer)[0]), sent["request_id"], signer, stage["id"]


def _code(data_dir: Path, signer: str) -> str:
    [mail] = [m for m in outbox_messages(data_dir, signer) if str(m["Subject"]).startswith("Your code")]
    found = CODE.search(parts(mail)[0])
    assert found, "no code in the message"
    return found.group(1)


def _decide(client: TestClient, token: str, code: str | None = None) -> object:
    body = {"decision": "approve", "name": "Dana Sponsor", **({"code": code} if code else {})}
    return client.post(f"/api/signoff/{token}", json=body)


def _row(db: Database, request_id: str) -> SignoffRequest:
    with db.service_session() as s:
        req = s.get(SignoffRequest, uuid.UUID(request_id))
        assert req is not None
        return req


def test_a_decision_without_the_code_is_refused_with_a_clear_error(
        client: TestClient, link: tuple[str, str, str, str], db: Database) -> None:
    token, request_id, _, _ = link
    assert client.get(f"/api/signoff/{token}").json()["signoff"]["code"]["required"] is True
    refused = _decide(client, token)
    assert refused.status_code == 422  # type: ignore[attr-defined]
    error = refused.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "code_required"
    assert "6-digit code" in error["message"]
    assert _row(db, request_id).status == "pending"


def test_the_correct_code_accepts_once_and_cannot_be_used_again(
        client: TestClient, link: tuple[str, str, str, str], db: Database, data_dir: Path, world: World) -> None:
    token, request_id, signer, stage_id = link
    sent = client.post(f"/api/signoff/{token}/code")
    assert sent.status_code == 200, sent.text
    assert sent.json()["sent_to"].endswith("@client.example.com")
    code = _code(data_dir, signer)
    stored = _row(db, request_id)
    assert stored.code_hash is not None
    assert code not in stored.code_hash  # only a keyed hash is kept
    assert stored.code_expires_at is not None
    assert timedelta(minutes=9) < stored.code_expires_at - utcnow() <= timedelta(minutes=10)

    done = _decide(client, token, code)
    assert done.status_code == 200, done.text  # type: ignore[attr-defined]
    decided = _row(db, request_id)
    assert decided.status == "approved"
    assert decided.code_verified_at is not None
    assert decided.code_hash is None
    again = _decide(client, token, code)
    assert again.status_code == 409  # type: ignore[attr-defined]

    q = {"project_id": str(world.project_a), "request_id": request_id}
    html = client.get(f"/api/stages/{stage_id}/signoff-certificate", params=q, headers=world.h("member")).text
    assert f"6-digit code mailed to {signer}, confirmed" in html
    pdf = client.get(f"/api/stages/{stage_id}/signoff-certificate", params={**q, "format": "pdf"},
                     headers=world.h("member")).content
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "6-digit code mailed to" in " ".join(text.split())


def test_five_wrong_codes_lock_the_link(
        client: TestClient, link: tuple[str, str, str, str], db: Database, data_dir: Path) -> None:
    token, request_id, signer, _ = link
    assert client.post(f"/api/signoff/{token}/code").status_code == 200
    code = _code(data_dir, signer)
    wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
    for left in (4, 3, 2, 1):
        refused = _decide(client, token, wrong)
        assert refused.status_code == 422  # type: ignore[attr-defined]
        assert refused.json()["error"]["code"] == "code_invalid"  # type: ignore[attr-defined]
        assert refused.json()["error"]["details"]["tries_left"] == left  # type: ignore[attr-defined]
    locked = _decide(client, token, wrong)
    assert locked.status_code == 429  # type: ignore[attr-defined]
    assert locked.json()["error"]["code"] == "code_locked"  # type: ignore[attr-defined]
    assert _decide(client, token, code).status_code == 429  # type: ignore[attr-defined]
    assert client.post(f"/api/signoff/{token}/code").status_code == 429
    row = _row(db, request_id)
    assert (row.status, row.code_tries) == ("pending", 5)
    page = client.get(f"/signoff/{token}")
    assert "this link is locked" in page.text
    assert "Record my decision" not in page.text


def test_an_expired_code_is_refused(
        client: TestClient, link: tuple[str, str, str, str], db: Database, data_dir: Path) -> None:
    token, request_id, signer, _ = link
    assert client.post(f"/api/signoff/{token}/code").status_code == 200
    code = _code(data_dir, signer)
    with db.service_transaction() as s:
        req = s.get(SignoffRequest, uuid.UUID(request_id))
        assert req is not None
        req.code_expires_at = utcnow() - timedelta(seconds=1)
    refused = _decide(client, token, code)
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert refused.json()["error"]["code"] == "code_expired"  # type: ignore[attr-defined]
    assert _row(db, request_id).status == "pending"


def test_codes_are_not_resent_within_a_minute_and_not_offered_when_not_required(
        client: TestClient, link: tuple[str, str, str, str], world: World) -> None:
    token, _, _, _ = link
    assert client.post(f"/api/signoff/{token}/code").status_code == 200
    again = client.post(f"/api/signoff/{token}/code")
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "code_recently_sent"
    client.put("/api/signoff-settings", params={"project_id": str(world.project_a)}, json={"require_code": False},
               headers=world.h("pm"))
    assert client.post(f"/api/signoff/{token}/code").json()["error"]["code"] == "code_not_required"
    assert _decide(client, token).status_code == 200  # type: ignore[attr-defined]


def test_the_page_asks_for_a_code_and_shows_a_wrong_one_plainly(
        client: TestClient, link: tuple[str, str, str, str], data_dir: Path) -> None:
    token, _, signer, _ = link
    page = client.get(f"/signoff/{token}")
    assert "Send me a code" in page.text
    sent = client.post(f"/signoff/{token}/code")
    assert sent.status_code == 200
    assert "We sent a 6-digit code to" in sent.text
    assert 'name="code"' in sent.text
    code = _code(data_dir, signer)
    form = {"decision": "approve", "name": "Dana Sponsor", "note": ""}
    wrong = client.post(f"/signoff/{token}", data={**form, "code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 422
    assert "This code is not right: 4 tries left." in wrong.text
    missing = client.post(f"/signoff/{token}", data=form)
    assert "Enter the 6-digit code we mailed you" in missing.text
    done = client.post(f"/signoff/{token}", data={**form, "code": code})
    assert done.status_code == 200
    assert "Thank you" in done.text
