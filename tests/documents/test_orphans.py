"""After `kill -9` of `kap serve`, nothing it started for extraction outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from bench.bench_documents import _pdf

from kap.core.settings import Settings
from tests.conftest import free_port


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) for every process on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry.name)] = (int(fields[1]), fields[0])
    return found


def _descendants(root: int) -> dict[int, int]:
    """pid -> depth below `root`, for the living processes under it."""
    table = _processes()
    depth = {root: 0}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, state) in table.items():
            if pid not in depth and ppid in depth and state != "Z":
                depth[pid] = depth[ppid] + 1
                changed = True
    depth.pop(root)
    return depth


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_kill_9_of_the_server_mid_extraction_leaves_no_extraction_process(settings: Settings,
                                                                           tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "KAP_DATABASE_URL": settings.database_url, "KAP_DATA_DIR": str(tmp_path / "data"),
           "DEV_AUTH": "1", "KAP_PORT": str(port), "KAP_LOG_LEVEL": "WARNING", "KAP_MAX_UPLOAD_MB": "200"}
    server = subprocess.Popen([sys.executable, "-m", "kap", "serve"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "kap serve exited"
            time.sleep(0.1)
        headers = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
        project = httpx.post(base + "/api/projects", json={"name": "Orphans"}, headers=headers).json()["id"]
        queued = httpx.post(base + "/api/ingest", params={"project_id": project}, headers=headers, timeout=60,
                            files={"file": ("Big handbook.pdf", _pdf(4000, seed=1), "application/pdf")})
        assert queued.status_code == 202, queued.text

        # The fork server and its resource tracker are children of the server; an extraction
        # child is a child of the fork server.
        seen: dict[int, int] = {}
        for _ in range(600):
            seen = _descendants(server.pid)
            if any(depth >= 2 for depth in seen.values()):
                break
            time.sleep(0.05)
        assert any(depth >= 2 for depth in seen.values()), f"no extraction child started: {seen}"
        assert len(seen) >= 3, seen  # fork server, resource tracker, extraction child

        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in seen):
            time.sleep(0.1)
        assert [pid for pid in seen if _alive(pid)] == [], "processes outlived kap serve"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
