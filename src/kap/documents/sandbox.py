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
PRELOAD = ["kap.documents.sandbox", "kap.documents.extract", "pypdfium2", "docx", "openpyxl", "pptx",
           "defusedxml.ElementTree", "PIL.Image", "pytesseract"]

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
    """Start the fork server now (it imports the readers), so the first upload does not wait for it."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def run(mode: str, kind: str, source: Path, work: Path, *, pages: list[int] | None = None,
        limits: Limits | None = None) -> SandboxResult:
    """Extract (mode 'text') or OCR (mode 'ocr') `source` in a limited child process."""
    limits = limits or Limits.current()
    work.mkdir(parents=True, exist_ok=True)
    spec = f"{limits.memory}:{limits.cpu_seconds}:{limits.output_bytes}"
    argv = [spec, mode, kind, str(source), str(work), ",".join(str(p) for p in pages or [])]
    ctx = _context()
    # The child holds the read end of this pipe; the end written to lives only in this process.
    # When this process dies, even by SIGKILL, the child reads EOF and kills its own group.
    lifeline, keep = ctx.Pipe(duplex=False)
    try:
        proc = ctx.Process(target=_forked_child, args=(argv, lifeline), daemon=True)
        proc.start()
        lifeline.close()
        proc.join(timeout=limits.wall_seconds or 0.001)
        if proc.is_alive():
            _kill_group(proc.pid)
            proc.join()
            return SandboxResult(False, work, reason=f"extraction took longer than {limits.wall_seconds} s (stopped)")
    finally:
        keep.close()
    return _read_outcome(work, proc.exitcode or 0, _read_stderr(work))


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
            if mode == "ocr":
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
