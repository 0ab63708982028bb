"""A real `kap serve` on loopback over the run's database, and raw HTTP helpers to strain it."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port


@dataclass
class LiveServer:
    """One `kap serve` process; `restart` keeps its data folder and database."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        log = (self.data_dir / "server.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "kap", "serve", "--port", str(self.port), *self.args],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError((self.data_dir / "server.log").read_text()[-4000:])
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("kap serve did not start")

    def kill(self) -> None:
        """SIGKILL the server alone, as a crash would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rss_mb(self) -> float:
        """The server process's resident memory."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text()


@pytest.fixture
def live_server(tmp_path: Path, database_url: str, settings: Any) -> Iterator[LiveServer]:
    """A server over the run's (migrated) database with its own data folder."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "DEV_AUTH", "MAILGUN_"))}
    env = {**base, "KAP_DATA_DIR": str(tmp_path), "DEV_AUTH": "1", "KAP_LOG_LEVEL": "WARNING",
           "KAP_DATABASE_URL": database_url, "RATE_LIMIT_MAX": "100000", "KAP_EMBEDDINGS": "off"}
    server = LiveServer(tmp_path, env)
    env["KAP_PUBLIC_URL"] = server.url
    try:
        yield server
    finally:
        server.stop()


def raw_post(url: str, path: str, *, headers: dict[str, str], size: int, chunked: bool,
             piece: int = 256 * 1024) -> int:
    """POST `size` bytes, stopping as soon as the server answers; return the status (0 if it only hung up)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        block = b"x" * piece
        sent = 0
        try:
            while sent < size:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered (or closed) before the end of the body
                data = block[: min(piece, size - sent)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        return _status(sock)


def _status(sock: socket.socket) -> int:
    try:
        head = sock.recv(64)
    except OSError:
        return 0
    if not head.startswith(b"HTTP/1.1 "):
        return 0
    return int(head.split()[1])
