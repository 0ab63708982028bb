"""Real servers for the benchmarks: `kap serve` and a bare FastAPI + uvicorn app, each its own process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer: {log.read_text()[-2000:]}")


def _pythonpath() -> str:
    parts = [str(ROOT / "src"), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


class Process:
    """A child server process on a free loopback port, stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, health: str, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        _wait_ready(self.base + health, self.proc, log)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process (all its threads) has used so far."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def kap_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "RATE_LIMIT_", "DEV_AUTH"))}
    env.update({"KAP_DATABASE_URL": database_url, "KAP_DATA_DIR": str(data_dir), "DEV_AUTH": "1",
                "KAP_ENV": "development", "RATE_LIMIT_MAX": "1000000000", "KAP_LOG_LEVEL": "WARNING",
                "KAP_MAX_UPLOAD_MB": "200", "PYTHONPATH": _pythonpath()})
    env.update(extra)
    return env


def kap_serve(env: dict[str, str], data_dir: Path, *, workers: int = 1, port: int | None = None) -> Process:
    """`kap serve` as a user runs it (uvicorn + httptools)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "kap", "serve", "--port", str(port), "--workers", str(workers)]
    return Process(argv, {**env, "KAP_PORT": str(port)}, data_dir / f"kap-serve-{port}.log", "/healthz", port)


def bare_serve(bodies: dict[str, Any], folder: Path, *, workers: int = 1) -> Process:
    """A bare FastAPI app on uvicorn + httptools returning the given JSON bodies, one route each."""
    body_file = folder / f"bare-{uuid.uuid4().hex[:6]}.json"
    body_file.write_text(json.dumps(bodies))
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--http", "httptools", "--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    env = {**os.environ, "BENCH_BARE_BODIES": str(body_file), "PYTHONPATH": _pythonpath()}
    return Process(argv, env, folder / f"bare-{port}.log", "/bare/health", port)


def migrate_and_seed(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "kap", "migrate"], env=env, check=True, capture_output=True)


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """One load run: requests per second, and the server's CPU time per request."""

    rps: float
    cpu_ms: float


def measure(server: Process, url: str, headers: dict[str, str], seconds: float, connections: int = 8) -> Measured:
    before = server.cpu_seconds()
    started = time.monotonic()
    rps = load(url, headers, seconds, connections)
    used = server.cpu_seconds() - before
    requests = rps * (time.monotonic() - started)
    return Measured(rps, used * 1000 / max(requests, 1))


# ---- load generation --------------------------------------------------------------------------

WRK = shutil.which("wrk")


def load(url: str, headers: dict[str, str], seconds: float, connections: int = 8) -> float:
    """Requests per second for GET url: wrk -t1 -cN when installed, else a threaded keep-alive client."""
    if WRK:
        argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s"]
        for key, value in headers.items():
            argv += ["-H", f"{key}: {value}"]
        result = subprocess.run([*argv, url], capture_output=True, text=True, check=True)
        if "Non-2xx" in result.stdout:
            raise RuntimeError(f"non-2xx answers from {url}: {result.stdout}")
        found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
        if not found:
            raise RuntimeError(result.stdout + result.stderr)
        return float(found.group(1))
    return _threaded_load(url, headers, seconds, connections)


def _threaded_load(url: str, headers: dict[str, str], seconds: float, connections: int) -> float:
    count = [0] * connections
    stop = time.monotonic() + seconds

    def worker(slot: int) -> None:
        with httpx.Client(headers=headers, timeout=10) as client:
            while time.monotonic() < stop:
                response = client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
                count[slot] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(count) / (time.monotonic() - started)


def load_generator() -> str:
    return "wrk -t1 -c8" if WRK else "threaded httpx client, 8 connections"
