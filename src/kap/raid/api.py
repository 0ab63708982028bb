"""RAID routes: the log, the review queue's accept and dismiss, comments and the CSV export."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from kap.core.deps import ProjectContext, require
from kap.core.errors import Conflict, ValidationFailed, raises
from kap.core.http import content_types
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread
from kap.raid import jobs as _jobs  # noqa: F401  (registers the extraction job)
from kap.raid import service
from kap.raid.schemas import (
    CommentCreate,
    CommentList,
    CommentRead,
    Kind,
    RaidItemCreate,
    RaidItemDetail,
    RaidItemList,
    RaidItemRead,
    RaidItemUpdate,
    State,
    Status,
)

router = APIRouter(prefix="/api", tags=["raid"], route_class=AnswerInThread)

RaidRead = Annotated[ProjectContext, require(Action.RAID_READ)]
RaidWrite = Annotated[ProjectContext, require(Action.RAID_WRITE)]
RaidComment = Annotated[ProjectContext, require(Action.RAID_COMMENT)]
StatusFilter = Status | None


def _filtered(ctx: ProjectContext, kind: Kind | None, status: StatusFilter, owner: str | None,
              state: State | None, overdue: bool | None, q: str | None) -> list[RaidItemRead]:
    return service.list_items(ctx, kind=kind, status=status, owner=owner, state=state, overdue=overdue, q=q)


@router.get("/raid")
def list_items(ctx: RaidRead, kind: Kind | None = None, status: StatusFilter = None,
               owner: Annotated[str | None, Query(max_length=200)] = None, state: State | None = None,
               overdue: bool | None = None, q: Annotated[str | None, Query(max_length=200)] = None) -> RaidItemList:
    """The project's actions, risks, issues and decisions, each with the document text it came from."""
    return RaidItemList(items=_filtered(ctx, kind, status, owner, state, overdue, q))


@router.get("/raid/export.csv", response_model=None, responses=content_types("text/csv"))
def export_csv(ctx: RaidRead, kind: Kind | None = None, status: StatusFilter = None,
               owner: Annotated[str | None, Query(max_length=200)] = None, state: State | None = None) -> Response:
    """The log as a CSV file (the same filters as the list)."""
    text = service.export_csv(ctx, _filtered(ctx, kind, status, owner, state, None, None))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="raid-log.csv"'})


@router.post("/raid", status_code=status.HTTP_201_CREATED)
@raises(Conflict, ValidationFailed)
def create_item(body: RaidItemCreate, ctx: RaidWrite) -> RaidItemRead:
    """Add an item by hand."""
    return service.create_item(ctx, body)


@router.get("/raid/{item_id:uuid}")
def get_item(item_id: uuid.UUID, ctx: RaidRead) -> RaidItemDetail:
    """One item with its comments and what changed in it."""
    item = service.item_read(ctx, service.find_item(ctx, item_id))
    return RaidItemDetail(item=item, comments=service.list_comments(ctx, item_id),
                          changes=service.list_changes(ctx, item_id))


@router.patch("/raid/{item_id:uuid}")
@raises(Conflict, ValidationFailed)
def update_item(item_id: uuid.UUID, body: RaidItemUpdate, ctx: RaidWrite) -> RaidItemRead:
    """Edit an item's kind, reference, title, owner, due date, status, severity or details."""
    return service.update_item(ctx, item_id, body)


@router.post("/raid/{item_id:uuid}/accept")
@raises(Conflict, ValidationFailed)
def accept_item(item_id: uuid.UUID, ctx: RaidWrite, body: RaidItemUpdate | None = None) -> RaidItemRead:
    """Take a suggested item into the log, with any edits given."""
    if body is not None and body.model_dump(exclude_unset=True):
        service.update_item(ctx, item_id, body)
    return service.set_state(ctx, item_id, "accepted")


@router.post("/raid/{item_id:uuid}/dismiss")
@raises(Conflict)
def dismiss_item(item_id: uuid.UUID, ctx: RaidWrite) -> RaidItemRead:
    """Set a suggestion aside; it stays dismissed when the document is ingested again."""
    return service.set_state(ctx, item_id, "dismissed")


@router.get("/raid/{item_id:uuid}/comments")
def list_comments(item_id: uuid.UUID, ctx: RaidRead) -> CommentList:
    return CommentList(comments=service.list_comments(ctx, item_id))


@router.post("/raid/{item_id:uuid}/comments", status_code=status.HTTP_201_CREATED)
@raises(ValidationFailed)
def add_comment(item_id: uuid.UUID, body: CommentCreate, ctx: RaidComment) -> CommentRead:
    """Comment on an item."""
    return service.add_comment(ctx, item_id, body)
