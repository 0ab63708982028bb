"""The brief's self-test, exactly as `kap demo` prints it, run with curl against a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from kap.demo import DemoIds, self_test_lines
from tests.web.conftest import start_server

pytestmark = pytest.mark.slow


def _blocks(lines: list[str]) -> dict[str, str]:
    """Split the printed self-test into its lettered commands."""
    blocks: dict[str, str] = {}
    letter = None
    for line in lines:
        if line.startswith("# ") and line[2:3].isalpha() and line[3:4] == ")":
            letter = line[2]
            blocks[letter] = ""
        elif letter and line and not line.startswith("#"):
            blocks[letter] += line + "\n"
    return blocks


def _curl(command: str, app: str) -> Any:
    result = subprocess.run(["bash", "-c", command], env={**os.environ, "APP": app}, capture_output=True,
                            text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def test_the_five_printed_commands_work_as_pasted(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is required")
    env = {**os.environ, "KAP_DATA_DIR": str(tmp_path), "DEV_AUTH": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("KAP_DATABASE")}
    subprocess.run([sys.executable, "-m", "kap", "demo", "--no-serve"], env=env, check=True, capture_output=True)
    server = start_server(tmp_path)
    try:
        ids = DemoIds()
        blocks = _blocks(self_test_lines(ids))
        assert sorted(blocks) == ["A", "B", "C", "D", "E"]

        seeded = _curl(blocks["A"], server.url)
        assert seeded["ok"] is True
        assert seeded["documents"] >= 1

        smoke = _curl(blocks["B"], server.url)
        assert smoke["ok"] is True
        page = httpx.get(smoke["token_link"])
        assert page.status_code == 200
        assert "<form" in page.text

        owner = {"X-Dev-User": str(ids.owner), "X-Dev-Org": str(ids.org), "X-Dev-Role": "owner"}
        params = {"project_id": str(ids.project_a)}
        run = httpx.post(f"{server.url}/api/backups/run", params=params, headers=owner, timeout=60).json()
        contents = httpx.get(f"{server.url}/api/backups/contents", params={**params, "backup_key": run["key"]},
                             headers=owner).json()
        entry = next(e for e in contents["entries"] if e["type"] == "artifact")
        command = blocks["C"].replace("<KEY>", run["key"]).replace("artifacts/<FILE>", entry["name"])
        stored = _curl(command, server.url)
        assert stored["ok"] is True
        assert stored["link"] == f"/p/{ids.project_a}/documents/{stored['artifact_id']}"
        listed = httpx.get(f"{server.url}/api/documents", params=params, headers=owner).json()
        assert stored["artifact_id"] in {d["id"] for d in listed["documents"]}

        digest = _curl(blocks["D"], server.url)
        assert digest["ok"] is True
        assert isinstance(digest["counts"], dict)

        sentinel = _curl(blocks["E"], server.url)
        assert sentinel["leak"] is False
        assert len(sentinel["checks"]) > 3
    finally:
        server.stop()
