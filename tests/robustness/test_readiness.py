"""A database that does not exist is reported as such, not as 'not migrated'."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kap.app import create_app
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.postgres_only


def _missing_db_url() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/kap_missing_{uuid.uuid4().hex[:8]}"


def test_missing_database_is_named_in_readyz_and_the_api(base_settings: dict[str, Any]) -> None:
    s = load_settings(**{**base_settings, "kap_database_url": _missing_db_url(), "kap_auto_migrate": False})
    rt = Runtime.build(s)
    with TestClient(create_app(runtime=rt), raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        database = ready.json()["checks"]["database"]
        assert database["state"] == "no_database"
        assert "does not exist" in database["message"]
        api = client.get("/api/me", headers={"X-Dev-User": str(uuid.uuid4())})
        assert api.status_code == 503
        assert "does not exist" in api.json()["error"]["message"]
        assert "not migrated" not in api.json()["error"]["message"]
    rt.close()


def test_kap_migrate_says_the_database_does_not_exist() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "DEV_AUTH"))}
    result = subprocess.run([sys.executable, "-m", "kap", "migrate"], capture_output=True, text=True, timeout=120,
                            env={**base, "KAP_DATABASE_URL": _missing_db_url()})
    assert result.returncode == 1
    assert "does not exist: create it" in result.stderr
    assert "Traceback" not in result.stderr
