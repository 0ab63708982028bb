"""An org's display name and logo: set by its owners and admins, shown to clients on pages and in mail."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from kap.stages.previews import encode_png
from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, outbox_messages, recipient, token_in

PNG = encode_png(bytes([31, 94, 255] * 16 * 16), 16, 16, 48, 3)


def test_org_admins_set_the_display_name_members_read_it(client: TestClient, world: World) -> None:
    url = f"/api/orgs/{world.org1}/branding"
    assert client.get(url, headers=world.h("member")).json()["shown_as"] == "Org One"
    refused = client.put(url, json={"display_name": "Brightline"}, headers=world.h("owner"))
    assert refused.status_code == 403  # a project owner is not an org admin
    assert client.get(url, headers=world.h("outsider")).status_code == 404
    assert client.get(f"/api/orgs/{uuid.uuid4()}/branding", headers=world.h("member")).status_code == 404
    done = client.put(url, json={"display_name": "  Brightline Advisory "}, headers=world.h("org_admin"))
    assert done.status_code == 200
    assert done.json()["from"] == "Brightline Advisory via Kap"
    assert client.put(url, json={"display_name": "x" * 201}, headers=world.h("org_owner")).status_code == 422
    assert client.put(url, json={"display_name": ""}, headers=world.h("org_owner")).json()["shown_as"] == "Org One"


def test_logo_is_checked_and_shown_on_the_signer_page(client: TestClient, world: World, data_dir: Path) -> None:
    url = f"/api/orgs/{world.org1}/logo"
    bad = client.put(url, files={"file": ("logo.png", b"<svg onload=alert(1)>", "image/png")},
                     headers=world.h("org_owner"))
    assert bad.status_code == 415
    assert bad.json()["error"]["code"] == "unsupported_logo"
    huge = client.put(url, files={"file": ("logo.png", PNG + b"\0" * 300_000, "image/png")},
                      headers=world.h("org_owner"))
    assert huge.status_code == 413
    assert client.put(url, files={"file": ("logo.png", PNG, "image/png")}, headers=world.h("member")).status_code == 403
    set_ = client.put(url, files={"file": ("logo.png", PNG, "image/png")}, headers=world.h("org_owner"))
    assert set_.status_code == 200
    assert set_.json()["logo"].startswith("data:image/png;base64,")
    client.put(f"/api/orgs/{world.org1}/branding", json={"display_name": "Brightline Advisory"},
               headers=world.h("org_owner"))

    stage = make_stage(client, world, "Discovery")
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    [msg] = outbox_messages(data_dir, email)
    assert str(msg["From"]).startswith("Brightline Advisory via Kap")
    page = client.get(f"/signoff/{token_in(msg)}").text
    assert 'class="brand-name">Brightline Advisory<' in page
    assert 'src="data:image/png;base64,' in page
    assert client.delete(url, headers=world.h("org_owner")).json()["logo"] is None
