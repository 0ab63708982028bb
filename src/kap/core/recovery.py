"""One recovery pass for what a crash leaves behind, run at start and every minute.

A process killed mid-work leaves work folders in `<data>/tmp`, half-written
`.upload-*` files beside stored files, stored files no row points at, and rows
still marked as being worked on. Whatever creates such leftovers tags it with its
owner (`owner_tag()`: a hash of the host name and the process id), so the pass can
tell a dead owner's leftovers, swept at once, from a live one's work in progress.
Untagged leftovers, and those of owners on other hosts, are swept only once they
are older than KAP_RECOVERY_GRACE_SEC.

Domains add their own steps with `@recovery_step`; core runs them all and never
imports a domain.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from kap.core.db import utcnow
from kap.core.jobs import current_runtime, periodic
from kap.core.owner import owner_state

if TYPE_CHECKING:
    from kap.core.runtime import Runtime

log = logging.getLogger("kap.recovery")
PID_REUSE_GUARD = timedelta(days=1)
@dataclass(frozen=True)
class Pass:
    """What one recovery pass may sweep."""

    runtime: Runtime
    grace: timedelta

    @property
    def cutoff(self) -> datetime:
        return utcnow() - self.grace

    def abandoned(self, name: str | None, modified: datetime | None) -> bool:
        """Whether a tagged or dated leftover can go: its owner is dead, or it is older than the grace."""
        state = owner_state(name)
        if state == "dead":
            return True
        if modified is None:
            return False
        if state == "alive":  # a live owner's work is left alone; a day guards against a reused pid
            return modified < utcnow() - max(self.grace, PID_REUSE_GUARD)
        return modified < self.cutoff


Step = Callable[[Pass], int]
_steps: dict[str, Step] = {}
_running = threading.Lock()


def recovery_step(name: str) -> Callable[[Step], Step]:
    """Register a step of the recovery pass; it returns how many things it repaired or swept."""
    def decorator(func: Step) -> Step:
        _steps[name] = func
        return func
    return decorator


def run_recovery(runtime: Runtime) -> dict[str, int]:
    """Run every step once (skipped while another pass runs here); a failing step is logged."""
    if not _running.acquire(blocking=False):
        return {}
    try:
        return _run_steps(runtime)
    finally:
        _running.release()


def _run_steps(runtime: Runtime) -> dict[str, int]:
    from kap.core import jobs

    jobs.load_all_tasks()  # each domain's jobs module registers its steps
    sweep = Pass(runtime, timedelta(seconds=runtime.settings.kap_recovery_grace_sec))
    done: dict[str, int] = {}
    for name, step in _steps.items():
        try:
            done[name] = step(sweep)
        except Exception:
            log.exception("recovery step %s failed", name)
            done[name] = -1
    if any(done.values()):
        log.warning("recovery: %s", ", ".join(f"{k}={v}" for k, v in done.items() if v))
    return done


@periodic("* * * * *")
def recover() -> None:
    """Sweep crash leftovers every minute."""
    run_recovery(current_runtime())


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=utcnow().tzinfo)
    except OSError:
        return None


def _newest_mtime(folder: Path) -> datetime | None:
    """A work folder's age is its newest file's: a slow job keeps writing into it."""
    stamps = [folder.stat().st_mtime] if folder.exists() else []
    for path in folder.rglob("*"):
        try:
            stamps.append(path.stat().st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(max(stamps), tz=utcnow().tzinfo) if stamps else None


@recovery_step("work_folders")
def sweep_work_folders(sweep: Pass) -> int:
    """Remove `<data>/tmp` folders and files whose owner died or that outlived the grace."""
    root = sweep.runtime.settings.kap_data_dir.resolve() / "tmp"
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        age = _newest_mtime(entry) if entry.is_dir() else _mtime(entry)
        if sweep.abandoned(entry.name, age):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed


@recovery_step("partial_uploads")
def sweep_partial_uploads(sweep: Pass) -> int:
    """Remove half-written `.upload-*` files that local storage leaves when a write is cut short."""
    removed = 0
    for storage in (sweep.runtime.storage.artifacts, sweep.runtime.storage.backups):
        root = getattr(storage, "root", None)
        if not isinstance(root, Path) or not root.is_dir():
            continue
        for path in root.rglob(".upload-*"):
            if path.is_file() and sweep.abandoned(path.name, _mtime(path)):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


@recovery_step("unsent_mail")
def send_unsent_mail(sweep: Pass) -> int:
    """Send the messages a stopped process committed but never handed to the mail backend."""
    return sweep.runtime.mailer.send_unsent(sweep.abandoned)
