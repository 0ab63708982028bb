"""Run an extractor in a child process with CPU, memory, file-size and wall-clock limits.

A hostile file (decompression bomb, entity expansion, a PDF that loops) can then
only exhaust its own process: the child is killed and the document is marked
`failed` with a reason, while the server and its workers carry on.

The child writes one JSON object per line to `result.jsonl` in its work folder:
segments first, then a final `{"type": "done", ...}` or `{"type": "error", ...}`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kap.documents.extract import ExtractionError, Outcome, Segment

MEMORY_LIMIT = 2 * 1024**3
CPU_SECONDS = 120
WALL_SECONDS = 300
OUTPUT_LIMIT = 1024**3
RESULT = "result.jsonl"
PAGE_IMAGE = "page.png"  # what mode "preview" writes
STDERR = "stderr.txt"


@dataclass
class Limits:
    memory: int
    cpu_seconds: int
    wall_seconds: int
    output_bytes: int

    @classmethod
    def current(cls) -> Limits:
        """The module's limits as they are now (operators and tests may tighten them)."""
        return cls(MEMORY_LIMIT, CPU_SECONDS, WALL_SECONDS, OUTPUT_LIMIT)


@dataclass
class SandboxResult:
    """What the child reported: the result file to stream segments from, or the failure reason."""

    ok: bool
    work: Path
    pages: int = 0
    ocr_pages: list[int] = field(default_factory=list)
    attachments: list[dict[str, str]] = field(default_factory=list)
    reason: str | None = None

    def segments(self) -> Iterator[Segment]:
        """Stream the segments the child wrote, without loading them all."""
        with (self.work / RESULT).open(encoding="utf-8") as handle:
            for line in handle:
                item = json.loads(line)
                if item.get("type") == "segment":
                    yield Segment(item["text"], item.get("page"), item.get("locator", ""))


def _apply_limits(spec: str) -> None:
    """Called first thing in the child: cap memory, CPU time, written bytes and core dumps."""
    memory, cpu, output = (int(v) for v in spec.split(":"))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# Imported once in the fork server, so a child starts with every reader loaded: importing
# python-docx, openpyxl or python-pptx in each child cost 0.2-0.8 s per file.
PRELOAD = ["kap.documents.sandbox", "kap.documents.extract", "kap.documents.render", "pypdfium2", "docx",
           "openpyxl", "pptx", "defusedxml.ElementTree", "PIL.Image", "pytesseract"]

_CONTEXT: Any = None
_CONTEXT_LOCK = threading.Lock()


def _context() -> Any:
    """A fork server with the readers already imported: a child starts in milliseconds, not seconds.

    The server is a fresh single-threaded process, so forking from it is safe even
    though the app itself runs threads; each child is still a separate process with
    its own limits.
    """
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _CONTEXT = ctx
    return _CONTEXT


def warm() -> None:
    """Start the fork server now (it imports the readers) and fork the first waiting child."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()
    _refill()


# Children forked ahead of time, each waiting for one job: an upload does not wait for a fork
# (30-40 ms a file). A child runs one file and exits, so no file sees another's process; its
# limits are set when its job arrives, from the limits in force then.
POOL_SIZE = 2  # back-to-back uploads find one ready while the next is forked
_POOL: list[_Waiting] = []
_POOL_LOCK = threading.Lock()
_REFILLING = threading.Event()


@dataclass
class _Waiting:
    """A forked child blocked on its job pipe; the write end stays here as its lifeline."""

    proc: Any
    pipe: Any

    def discard(self) -> None:
        self.pipe.close()  # EOF: the child exits
        self.proc.join(timeout=1)


def _fork_waiting() -> _Waiting:
    ctx = _context()
    reader, pipe = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_pooled_child, args=(reader,), daemon=True)
    proc.start()
    reader.close()
    return _Waiting(proc, pipe)


def _take() -> _Waiting:
    """A waiting child from the pool (refilled in the background), or a new one."""
    waiting = None
    with _POOL_LOCK:
        while _POOL and waiting is None:
            candidate = _POOL.pop()
            if candidate.proc.is_alive():
                waiting = candidate
            else:
                candidate.discard()
    if waiting is None:  # nothing ready (a burst, or the first upload): fork one now, refill after
        _start_refill()
        return _fork_waiting()
    return waiting


def _start_refill() -> None:
    """Fork the pool back to POOL_SIZE in the background (once at a time)."""
    if not _REFILLING.is_set():
        _REFILLING.set()
        threading.Thread(target=_refill, name="kap-extractor-pool", daemon=True).start()


def waiting() -> list[int]:
    """Process ids of the children waiting for a job."""
    with _POOL_LOCK:
        return [child.proc.pid for child in _POOL if child.proc.is_alive()]


def _refill() -> None:
    try:
        while True:
            with _POOL_LOCK:
                if len(_POOL) >= POOL_SIZE:
                    return
            child = _fork_waiting()
            with _POOL_LOCK:
                _POOL.append(child)
    except (OSError, ValueError, RuntimeError):  # shutting down: the next upload forks its own
        return
    finally:
        _REFILLING.clear()


class Running:
    """An extraction in progress: stream its segments while it runs, then collect the outcome."""

    def __init__(self, child: _Waiting, work: Path, limits: Limits) -> None:
        self.child, self.work, self.limits = child, work, limits
        self.started = time.monotonic()
        self.result: SandboxResult | None = None

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.result is None:  # abandoned by its reader: stop the child
            self._stop()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return int(self.child.proc.pid)

    def elapsed(self) -> float:
        """Seconds since the child got its job."""
        return time.monotonic() - self.started

    def batches(self, poll: float = 0.01) -> Iterator[list[Segment]]:
        """Yield the segments written so far, batch by batch, until the child ends (or is stopped)."""
        pending = b""
        with (self.work / RESULT).open("rb") as handle:
            while True:
                alive = self.child.proc.is_alive()
                pending += handle.read()
                lines = pending.split(b"\n")
                pending = lines.pop()
                found = [s for s in map(_segment, lines) if s is not None]
                if found:
                    yield found
                if not alive or (lines and lines[-1].startswith(_FINAL)):
                    return
                if self.elapsed() > self.limits.wall_seconds:
                    self._stop()
                    return
                if not found:
                    self.child.proc.join(timeout=poll)

    def finish(self) -> SandboxResult:
        """Wait for the child's last line (within the wall-clock limit) and read how it ended."""
        if self.result is not None:
            return self.result
        last = _last_line(self.work / RESULT)
        if not (last and last.get("type") in ("done", "error")):  # still working, or died without a word
            self.child.proc.join(timeout=max(self.limits.wall_seconds - self.elapsed(), 0.001))
            if self.child.proc.is_alive():
                self._stop()
                assert self.result is not None
                return self.result
        # a child that wrote its last line is exiting: it is reaped later, not waited for
        self.result = _read_outcome(self.work, self.child.proc.exitcode or 0, _read_stderr(self.work))
        self.child.pipe.close()
        _start_refill()  # now, not when the job started: the fork competed with the extraction for the CPU
        return self.result

    def _stop(self) -> None:
        _kill_group(self.child.proc.pid)
        self.child.proc.join()
        self.child.pipe.close()
        _start_refill()
        self.result = SandboxResult(False, self.work,
                                    reason=f"extraction took longer than {self.limits.wall_seconds} s (stopped)")


_FINAL = (b'{"type": "done"', b'{"type": "error"')


def _segment(raw: bytes) -> Segment | None:
    if not raw.startswith(b'{"type": "segment"'):
        return None
    item = json.loads(raw)
    return Segment(item["text"], item.get("page"), item.get("locator", ""))


def start(mode: str, kind: str, source: Path, work: Path, *, pages: list[int] | None = None,
          limits: Limits | None = None) -> Running:
    """Hand `source` to a waiting child for extraction (mode 'text'), OCR (mode 'ocr') or the
    image of one page (mode 'preview', written to PAGE_IMAGE)."""
    limits = limits or Limits.current()
    work.mkdir(parents=True, exist_ok=True)
    (work / RESULT).touch()
    spec = f"{limits.memory}:{limits.cpu_seconds}:{limits.output_bytes}"
    argv = [spec, mode, kind, str(source), str(work), ",".join(str(p) for p in pages or [])]
    child = _take()
    try:
        child.pipe.send(argv)
    except OSError:  # the waiting child died: fork a fresh one
        child.discard()
        child = _fork_waiting()
        child.pipe.send(argv)
    return Running(child, work, limits)


def run(mode: str, kind: str, source: Path, work: Path, *, pages: list[int] | None = None,
        limits: Limits | None = None) -> SandboxResult:
    """Extract (mode 'text') or OCR (mode 'ocr') `source` in a limited child process."""
    return start(mode, kind, source, work, pages=pages, limits=limits).finish()


def _pooled_child(jobs: Any) -> None:
    """Entry point of a waiting child: block until its job (or EOF) arrives, then run it."""
    try:
        argv = jobs.recv()
    except (EOFError, OSError):
        os._exit(0)
    _forked_child(argv, jobs)


def _watch_lifeline(lifeline: Any) -> None:
    """In the child: block on the pipe from the server; EOF means the server is gone, so stop everything."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os.killpg(os.getpid(), signal.SIGKILL)  # the child leads its own group: OCR helpers die with it


def _forked_child(argv: list[str], lifeline: Any = None) -> None:
    """Entry point in the forked child: its own session (so OCR helpers die with it), then extract."""
    os.setsid()
    if lifeline is not None:
        threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True, name="kap-lifeline").start()
    work = argv[4]
    os.chdir(work)
    os.environ.update({"LANG": "C.UTF-8", "HOME": work, "OMP_THREAD_LIMIT": "1"})
    stderr = os.open(os.path.join(work, STDERR), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(stderr, 2)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    code = _child(argv)
    sys.stderr.flush()
    os._exit(code)


def _read_stderr(work: Path) -> str:
    try:
        return (work / STDERR).read_text("utf-8", "replace")[-4000:]
    except OSError:
        return ""


def _kill_group(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _read_outcome(work: Path, code: int, stderr: str) -> SandboxResult:
    last = _last_line(work / RESULT)
    if last and last.get("type") == "done":
        return SandboxResult(True, work, pages=int(last.get("pages", 0)), ocr_pages=list(last.get("ocr_pages", [])),
                             attachments=list(last.get("attachments", [])))
    if last and last.get("type") == "error":
        return SandboxResult(False, work, reason=str(last.get("reason")))
    if code < 0:
        return SandboxResult(False, work, reason=_signal_reason(-code))
    if "MemoryError" in stderr:
        return SandboxResult(False, work, reason="the file needs more memory than allowed to read (refused)")
    if "[Errno 27]" in stderr:  # EFBIG: Python ignores SIGXFSZ, so the output limit shows as an error
        return SandboxResult(False, work, reason=_signal_reason(25))
    return SandboxResult(False, work, reason=f"the extractor stopped unexpectedly (exit {code})")


def _signal_reason(signum: int) -> str:
    if signum in (9, 24):  # SIGKILL / SIGXCPU
        return "the file needs more CPU time than allowed to read (stopped)"
    if signum == 25:  # SIGXFSZ
        return "the file expands to more text than allowed (stopped)"
    if signum == 6:  # SIGABRT: native readers abort when an allocation is refused
        return "the file needs more memory than allowed to read (the reader stopped)"
    return f"the extractor crashed on this file (signal {signum})"


def _last_line(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read().splitlines()
    for raw in reversed(tail):
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        return item if isinstance(item, dict) else None
    return None


def _child(argv: list[str]) -> int:
    spec, mode, kind, source, work_dir, page_list = argv
    _apply_limits(spec)
    from kap.documents import extract

    work = Path(work_dir)
    outcome = Outcome()
    pages = [int(p) for p in page_list.split(",") if p]
    with (work / RESULT).open("w", encoding="utf-8") as out:
        try:
            if mode == "preview":
                from kap.documents import render

                (work / PAGE_IMAGE).write_bytes(render.page_png(kind, Path(source), pages[0]))
                segments: Iterator[Segment] = iter(())
            elif mode == "ocr":
                segments = extract.ocr(kind, Path(source), pages, outcome)
            else:
                segments = extract.extract(kind, Path(source), outcome, work)
            for seg in segments:
                out.write(json.dumps({"type": "segment", "text": seg.text, "page": seg.page,
                                      "locator": seg.locator}) + "\n")
        except ExtractionError as exc:
            out.write(json.dumps({"type": "error", "reason": str(exc)}) + "\n")
            return 0
        except MemoryError:
            out.write(json.dumps({"type": "error", "reason": "the file needs more memory than allowed "
                                  "to read (refused)"}) + "\n")
            return 0
        except Exception as exc:  # any parser failure is a property of the file, reported as such
            reason = f"the file cannot be read ({exc.__class__.__name__}: {str(exc)[:200]})"
            out.write(json.dumps({"type": "error", "reason": reason}) + "\n")
            return 0
        out.write(json.dumps({"type": "done", "pages": outcome.pages, "ocr_pages": outcome.ocr_pages,
                              "attachments": outcome.attachments}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))
