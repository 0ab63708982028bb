"""The `kap` command: configuration errors, masked config, demo data, user add."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kap.core.settings import ConfigError, load_settings


def kap(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "DEV_AUTH", "MAILGUN_", "SUPABASE_"))}
    return subprocess.run([sys.executable, "-m", "kap", *args], env={**base, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_dev_auth_in_production_refuses_to_start(tmp_path: Path) -> None:
    result = kap("serve", env={"DEV_AUTH": "1", "KAP_ENV": "production", "KAP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["kap: DEV_AUTH=1 is refused when KAP_ENV=production"]


@pytest.mark.parametrize(("env", "variable"), [
    ({"RATE_LIMIT_MAX": "lots"}, "RATE_LIMIT_MAX"),
    ({"KAP_DATABASE_URL": "mysql://x"}, "KAP_DATABASE_URL"),
    ({"MAILGUN_DOMAIN": "mg.example.com"}, "MAILGUN_API_KEY"),
    ({"KAP_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}, "KAP_S3_ACCESS_KEY_ID"),
    ({"KAP_TRUSTED_PROXIES": "not-a-network"}, "KAP_TRUSTED_PROXIES"),
])
def test_bad_setting_fails_with_one_line_naming_the_variable(env: dict[str, str], variable: str,
                                                              tmp_path: Path) -> None:
    result = kap("config", env={**env, "KAP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0], result.stderr


def test_config_masks_secrets(tmp_path: Path) -> None:
    result = kap("config", env={"KAP_JWT_SECRET": "supersecretvalue", "MAILGUN_DOMAIN": "mg.example.com",
                                "MAILGUN_API_KEY": "key-123456", "KAP_DATA_DIR": str(tmp_path),
                                "KAP_DATABASE_URL": "postgresql://kap:hunter2@db.example.com/kap"})
    assert result.returncode == 0, result.stderr
    assert "supersecretvalue" not in result.stdout
    assert "key-123456" not in result.stdout
    assert "hunter2" not in result.stdout
    assert 'KAP_JWT_SECRET="****"' in result.stdout
    assert "kap:****@db.example.com" in result.stdout


def test_load_settings_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="DEV_AUTH=1 is refused"):
        load_settings(dev_auth=True, kap_env="production")


def test_demo_is_idempotent_and_prints_the_self_test(tmp_path: Path) -> None:
    env = {"KAP_DATA_DIR": str(tmp_path)}
    first = kap("demo", "--no-serve", env=env)
    assert first.returncode == 0, first.stderr
    second = kap("demo", "--no-serve", env=env)
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    out = first.stdout
    assert "PROJ_A" in out
    assert "USER_A" in out
    assert "/api/sentinel/tenant-leak?project_id=" in out
    assert "X-Dev-Role:member" in out
    settings = load_settings(kap_data_dir=tmp_path)
    from kap.core.db import Database
    from kap.core.models import Project, ProjectMember

    db = Database(settings)
    with db.service_session() as s:
        assert s.query(Project).count() == 2
        assert s.query(ProjectMember).count() == 5
    db.dispose()


def test_user_add_puts_a_user_in_an_org_and_project(tmp_path: Path) -> None:
    env = {"KAP_DATA_DIR": str(tmp_path)}
    kap("demo", "--no-serve", env=env)
    from kap.demo import DemoIds

    ids = DemoIds()
    result = kap("user", "add", "new.pm@example.com", "--org", str(ids.org), "--project", str(ids.project_a),
                 "--role", "pm", env=env)
    assert result.returncode == 0, result.stderr
    bad = kap("user", "add", "x@example.com", "--org", str(ids.org), "--role", "boss", env=env)
    assert bad.returncode == 1
    assert "--role must be one of" in bad.stderr


def test_demo_self_test_sentinel_line_works(client: Any, settings: Any) -> None:
    from kap.demo import create_demo, self_test_lines

    ids = create_demo(settings)
    lines = "\n".join(self_test_lines(ids))
    assert f"target_project_id={ids.project_b}" in lines
    response = client.get("/api/sentinel/tenant-leak",
                          params={"project_id": str(ids.project_a), "target_project_id": str(ids.project_b)},
                          headers={"X-Dev-User": str(ids.member), "X-Dev-Org": str(ids.org), "X-Dev-Role": "member"})
    assert response.status_code == 200
    assert response.json()["leak"] is False
