"""A JWT whose algorithm does not fit the key its `kid` names is a 401, never a 500."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import World


@pytest.fixture(scope="module")
def mixed_jwks() -> Iterator[tuple[str, Any, Any]]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    rsa_jwk.update({"kid": "rsa-1", "use": "sig"})
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    ec_jwk.update({"kid": "ec-1", "use": "sig"})
    body = json.dumps({"keys": [rsa_jwk, ec_jwk]}).encode()

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
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", rsa_key, ec_key
    server.shutdown()


@pytest.mark.parametrize(("alg", "signer", "kid"), [
    ("ES256", "ec", "rsa-1"),   # an EC signature naming the RSA key
    ("RS256", "rsa", "ec-1"),   # an RSA signature naming the EC key
])
def test_algorithm_that_does_not_fit_the_kid_is_401(make_client: Any, world: World,
                                                      mixed_jwks: tuple[str, Any, Any],
                                                      alg: str, signer: str, kid: str) -> None:
    url, rsa_key, ec_key = mixed_jwks
    client = make_client(kap_jwks_url=url)
    claims = {"sub": str(world.users["owner"]), "aud": "authenticated", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, ec_key if signer == "ec" else rsa_key, algorithm=alg, headers={"kid": kid})
    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"


def test_matching_keys_still_verify(make_client: Any, world: World, mixed_jwks: tuple[str, Any, Any]) -> None:
    url, rsa_key, ec_key = mixed_jwks
    client = make_client(kap_jwks_url=url)
    claims = {"sub": str(world.users["owner"]), "aud": "authenticated", "exp": int(time.time()) + 60}
    for alg, key, kid in (("RS256", rsa_key, "rsa-1"), ("ES256", ec_key, "ec-1")):
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
        assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
