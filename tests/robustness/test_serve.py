"""`kap serve`: dev mode stays on loopback unless told otherwise; mailed links follow the port served."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from kap.core.settings import load_settings
from tests.robustness.conftest import LiveServer


def _kap(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "DEV_AUTH", "MAILGUN_"))}
    return subprocess.run([sys.executable, "-m", "kap", *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_dev_auth_refuses_a_non_loopback_bind(tmp_path: Path) -> None:
    result = _kap("serve", "--host", "0.0.0.0", DEV_AUTH="1", KAP_DATA_DIR=str(tmp_path))
    assert result.returncode == 1
    assert "DEV_AUTH=1 binds to loopback only" in result.stderr
    assert "KAP_DEV_ALLOW_REMOTE=1" in result.stderr


def test_public_url_follows_the_address_served() -> None:
    assert load_settings(kap_port=5101).public_url == "http://127.0.0.1:5101"
    assert load_settings(kap_host="0.0.0.0", kap_port=5101).public_url == "http://localhost:5101"
    assert load_settings(kap_host="::1", kap_port=5101).public_url == "http://[::1]:5101"
    assert load_settings(kap_public_url="https://kap.example.com/").public_url == "https://kap.example.com"


@pytest.mark.slow
def test_dev_server_on_a_remote_bind_needs_the_setting_and_shows_the_banner(live_server: LiveServer) -> None:
    live_server.env["KAP_DEV_ALLOW_REMOTE"] = "1"
    live_server.args = ["--host", "0.0.0.0"]
    server = live_server.start()
    assert "identity by assertion" in server.log()
    assert "X-Dev-User / X-Dev-Org" in server.log()


@pytest.mark.slow
def test_mailed_links_point_at_the_port_served(live_server: LiveServer) -> None:
    live_server.env.pop("KAP_PUBLIC_URL")
    server = live_server.start()
    headers = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
    project = httpx.post(f"{server.url}/api/projects", json={"name": "Links"}, headers=headers).json()["id"]
    smoke = httpx.post(f"{server.url}/api/dev/smoke-run", params={"project_id": project}, headers=headers,
                       json={"email_to": "sponsor@example.com"}, timeout=60).json()
    assert smoke["token_link"].startswith(f"http://127.0.0.1:{server.port}/signoff/"), smoke
    assert "identity by assertion" in server.log()


def test_production_warns_when_the_public_url_is_unset(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the server warns, then cannot bind and exits
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = _kap("serve", "--port", port, KAP_ENV="production", KAP_DATA_DIR=str(tmp_path),
                      KAP_DATABASE_URL=f"sqlite:///{tmp_path}/kap.db", KAP_AUTO_MIGRATE="0",
                      KAP_JWT_SECRET="s" * 40)
    assert f"KAP_PUBLIC_URL is not set; links in mail will point at http://127.0.0.1:{port}" in result.stderr
