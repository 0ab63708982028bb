"""Backup routes (paths from the product brief): list, contents, download, run, store-and-reingest, restore."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from kap.backups import pages as _pages  # noqa: F401  (registers the Restore Activity panel)
from kap.backups import service
from kap.backups.schemas import (
    BackupContents,
    BackupList,
    ReingestResult,
    RestoreActivityList,
    RestoreCreate,
    RestoreResult,
    RunResult,
)
from kap.core.deps import ProjectContext, RuntimeDep, require
from kap.core.errors import Busy, Conflict, NotFound, UnsupportedMediaType, ValidationFailed, raises
from kap.core.http import attachment_headers, content_types
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread

router = APIRouter(prefix="/api", tags=["backups"], route_class=AnswerInThread)

BackupsRead = Annotated[ProjectContext, require(Action.BACKUPS_READ)]
BackupsRun = Annotated[ProjectContext, require(Action.BACKUPS_RUN)]
BackupsRestore = Annotated[ProjectContext, require(Action.BACKUPS_RESTORE)]
Key = Annotated[str, Query(max_length=400, description="backups/<org>/<project>/YYYYMMDD.zip")]


@router.get("/backups")
def list_backups(ctx: BackupsRead, runtime: RuntimeDep) -> BackupList:
    """List the project's backups: key, date, size, entry count."""
    return service.list_backups(ctx, runtime)


@router.get("/backups/contents")
@raises(NotFound, ValidationFailed)
def backup_contents(ctx: BackupsRead, runtime: RuntimeDep, backup_key: Key) -> BackupContents:
    """The entries of one backup, with size and type."""
    return service.contents(ctx, runtime, backup_key)


@router.get("/backups/download", response_model=None, responses=content_types("application/zip", "*/*"))
@raises(NotFound, ValidationFailed)
def download_backup(ctx: BackupsRead, runtime: RuntimeDep, backup_key: Key,
                    entry: Annotated[str | None, Query(max_length=400)] = None) -> StreamingResponse:
    """The whole backup ZIP, or one entry of it, streamed."""
    name, media_type, size, pieces = service.open_download(ctx, runtime, backup_key, entry)
    return StreamingResponse(pieces, media_type=media_type, headers=attachment_headers(name, size))


@router.post("/backups/run")
@raises(Conflict)
def run_backup(ctx: BackupsRun, runtime: RuntimeDep) -> RunResult:
    """Back up the project now (today's backup is replaced)."""
    return service.run_now(ctx, runtime)


@router.post("/backups/store-and-reingest")
@raises(Busy, Conflict, NotFound, UnsupportedMediaType, ValidationFailed)
def store_and_reingest(ctx: BackupsRestore, runtime: RuntimeDep, backup_key: Key,
                       artifact_name: Annotated[str, Query(max_length=400)]) -> ReingestResult:
    """Store one file from a backup back into the project and ingest it like an upload."""
    return service.store_and_reingest(ctx, runtime, backup_key, artifact_name)


@router.post("/backups/restore")
@raises(Conflict, NotFound, ValidationFailed)
def restore_backup(ctx: BackupsRestore, runtime: RuntimeDep, backup_key: Key, body: RestoreCreate) -> RestoreResult:
    """Restore the whole project from a backup into a new project, or over this one after confirmation."""
    return service.restore_project(ctx, runtime, backup_key, body.target, body.confirm)


@router.get("/restore-activity")
def restore_activity(ctx: BackupsRead) -> RestoreActivityList:
    """What was restored from backups in this project, by whom, when."""
    return RestoreActivityList(activity=service.restore_activity(ctx.session, ctx.scope))
