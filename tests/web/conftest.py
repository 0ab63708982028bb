"""Browser tests: a real `kap serve` on loopback, driven by Playwright in Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

CHROMIUM = os.environ.get("KAP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"




@dataclass
class Server:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(data_dir: Path, **env: str) -> Server:
    """Start `kap serve` with the given settings and wait until it answers."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "DEV_AUTH", "MAILGUN_"))}
    full = {**base, "KAP_DATA_DIR": str(data_dir), "DEV_AUTH": "1", "KAP_LOG_LEVEL": "WARNING",
            "KAP_PUBLIC_URL": f"http://127.0.0.1:{port}", "RATE_LIMIT_MAX": "100000", **env}
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "kap", "serve", "--port", str(port)], env=full,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError((data_dir / "server.log").read_text())
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Server(url, data_dir, proc, full)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("kap serve did not start")


def shot(page: Any, name: str) -> None:
    """Keep a screenshot of the page as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster of its own, so a test can stop and start it."""

    folder: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"),
                        "-w", "-t", "30", *args], check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "-l",
                  str(self.folder / "pg.log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins or not shutil.which("runuser"):
        pytest.fail("PostgreSQL server binaries are required (Debian postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="kap-pg-"))  # pytest's own tmp is private to root
    folder.chmod(0o777)
    subprocess.run(["runuser", "-u", "postgres", "--", str(bins[-1] / "initdb"), "-D", str(folder / "data"),
                    "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    pg = Postgres(folder, free_port(), bins[-1])
    pg.start()
    yield pg
    try:
        pg.stop()
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
