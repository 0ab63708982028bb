"""Identity: JWT (HS256 and JWKS), dev headers, the internal bearer, magic links and cookie sessions."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import update

from kap.core.db import Database, utcnow
from kap.core.models import LoginToken
from tests.conftest import Factory, World

SECRET = "test-secret-" + "x" * 32


def hs_token(sub: str, *, secret: str = SECRET, aud: str = "authenticated", exp_in: int = 300,
             **extra: Any) -> str:
    claims = {"sub": sub, "aud": aud, "exp": int(time.time()) + exp_in, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_hs256_token_authenticates_the_subject(client: TestClient, world: World) -> None:
    uid = world.users["pm"]
    response = client.get("/api/me", headers=bearer(hs_token(str(uid), email="pm@example.com")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["id"] == str(uid)
    assert body["auth"] == "jwt"
    assert [p["id"] for p in body["projects"]] == [str(world.project_a)]


@pytest.mark.parametrize("case", ["wrong_signature", "alg_none", "expired", "wrong_audience", "no_sub",
                                  "garbage", "sub_not_uuid"])
def test_bad_tokens_are_refused(client: TestClient, world: World, case: str) -> None:
    sub = str(world.users["owner"])
    token = {
        "wrong_signature": lambda: hs_token(sub, secret="another-secret-" + "z" * 32),
        "alg_none": lambda: jwt.encode({"sub": sub, "aud": "authenticated", "exp": int(time.time()) + 60},
                                       None, algorithm="none"),  # type: ignore[arg-type]  # unsigned on purpose
        "expired": lambda: hs_token(sub, exp_in=-10),
        "wrong_audience": lambda: hs_token(sub, aud="someone-else"),
        "no_sub": lambda: jwt.encode({"aud": "authenticated", "exp": int(time.time()) + 60}, SECRET,
                                     algorithm="HS256"),
        "garbage": lambda: "not.a.jwt",
        "sub_not_uuid": lambda: hs_token("alice"),
    }[case]()
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] in ("invalid_token", "token_expired")
    if case == "expired":
        assert response.json()["error"]["code"] == "token_expired"


def test_authorization_header_must_be_bearer(client: TestClient) -> None:
    response = client.get("/api/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert response.status_code == 401


def test_roles_never_come_from_the_token(client: TestClient, world: World) -> None:
    token = hs_token(str(world.users["member"]), role="service_role", app_metadata={"role": "owner"})
    response = client.patch(f"/api/projects/{world.project_a}", json={"name": "x"}, headers=bearer(token))
    assert response.status_code == 403


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[tuple[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public_jwk.update({"kid": "kap-test-1", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [public_jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", key
    server.shutdown()


def test_rs256_token_verified_with_jwks(make_client: Any, world: World, jwks_server: tuple[str, Any]) -> None:
    url, key = jwks_server
    client = make_client(kap_jwks_url=url)
    claims = {"sub": str(world.users["owner"]), "aud": "authenticated", "exp": int(time.time()) + 60}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "kap-test-1"})
    assert client.get("/api/me", headers=bearer(good)).status_code == 200
    unknown_kid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "nope"})
    assert client.get("/api/me", headers=bearer(unknown_kid)).status_code == 401
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "kap-test-1"})
    assert client.get("/api/me", headers=bearer(forged)).status_code == 401


def test_supabase_url_derives_the_jwks_url(make_client: Any) -> None:
    from kap.core.settings import load_settings

    s = load_settings(supabase_url="https://abc.supabase.co/")
    assert s.jwks_url == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"


def test_dev_headers_refused_when_dev_auth_is_off(make_client: Any, world: World) -> None:
    client = make_client(dev_auth=False)
    response = client.get("/api/me", headers=world.h("owner"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "dev_auth_disabled"


def test_dev_headers_must_be_uuids(client: TestClient) -> None:
    response = client.get("/api/me", headers={"X-Dev-User": "alice"})
    assert response.status_code == 401
    assert client.get("/api/me", headers={"X-Dev-User": str(uuid.uuid4()), "X-Dev-Role": "god"}).status_code == 422


def test_first_dev_user_of_a_new_org_owns_it_and_later_ones_are_members(client: TestClient) -> None:
    org = uuid.uuid4()
    first, second = uuid.uuid4(), uuid.uuid4()
    me1 = client.get("/api/me", headers={"X-Dev-User": str(first), "X-Dev-Org": str(org)}).json()
    me2 = client.get("/api/me", headers={"X-Dev-User": str(second), "X-Dev-Org": str(org)}).json()
    assert me1["orgs"][0]["role"] == "owner"
    assert me2["orgs"][0]["role"] == "member"


def test_dev_user_created_on_first_use_cannot_open_a_foreign_project(client: TestClient, world: World) -> None:
    stranger = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
    assert client.get(f"/api/projects/{world.project_a}", headers=stranger).status_code == 404
    joiner = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(world.org1), "X-Dev-Role": "owner"}
    assert client.get(f"/api/projects/{world.project_a}", headers=joiner).status_code == 404


def test_internal_bearer_is_refused_on_user_routes(client: TestClient) -> None:
    response = client.get("/api/me", headers=bearer("internal-" + "y" * 32))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "internal_not_allowed"


def _outbox_link(data_dir: Path, email: str) -> str:
    for path in sorted((data_dir / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        text = path.read_text()
        if f"To: {email}" in text:
            match = re.search(r"/auth/magic/([A-Za-z0-9_-]+)", text)
            assert match
            return match.group(1)
    raise AssertionError(f"no mail to {email}")


def test_magic_link_signs_in_once(client: TestClient, factory: Factory, settings: Any) -> None:
    org = factory.org()
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    factory.user(org, "owner", email=email)
    assert client.post("/api/auth/magic-link", json={"email": email}).status_code == 200
    token = _outbox_link(settings.kap_data_dir, email)
    page = client.get(f"/auth/magic/{token}")
    assert page.status_code == 200
    assert "Sign in" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    first = client.post("/api/auth/magic-link/consume", json={"token": token})
    assert first.status_code == 200, first.text
    again = client.post("/api/auth/magic-link/consume", json={"token": token})
    assert again.status_code == 410
    assert client.post(f"/auth/magic/{token}", follow_redirects=False).status_code == 410


def test_magic_link_for_unknown_email_says_the_same(client: TestClient) -> None:
    response = client.post("/api/auth/magic-link", json={"email": "nobody-here@example.com"})
    assert response.status_code == 200
    assert "If this address" in response.json()["message"]


def test_expired_magic_link_is_refused(client: TestClient, factory: Factory, settings: Any, db: Database) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    factory.user(factory.org(), "owner", email=email)
    client.post("/api/auth/magic-link", json={"email": email})
    token = _outbox_link(settings.kap_data_dir, email)
    from kap.core.security import hash_token

    with db.service_transaction() as s:
        s.execute(update(LoginToken).where(LoginToken.token_hash == hash_token(token))
                  .values(expires_at=utcnow() - timedelta(minutes=1)))
    assert client.post("/api/auth/magic-link/consume", json={"token": token}).status_code == 410


def test_cookie_session_needs_csrf_on_writes(app: Any, factory: Factory, settings: Any) -> None:
    org = factory.org()
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    factory.user(org, "owner", email=email)
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser.post("/api/auth/magic-link", json={"email": email})
        token = _outbox_link(settings.kap_data_dir, email)
        signed_in = browser.post(f"/auth/magic/{token}", follow_redirects=False)
        assert signed_in.status_code == 303
        me = browser.get("/api/me")
        assert me.status_code == 200
        assert me.json()["auth"] == "session"
        csrf = me.json()["csrf_token"]
        refused = browser.post("/api/projects", json={"name": "No CSRF"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "csrf_failed"
        made = browser.post("/api/projects", json={"name": "With CSRF"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
        assert browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.get("/api/me").status_code == 401
