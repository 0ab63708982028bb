"""Stage and sign-off routes for project members."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import Field

from kap.core.deps import ProjectContext, RuntimeDep, require
from kap.core.errors import Conflict, Forbidden, ValidationFailed, raises
from kap.core.http import attachment_headers, content_types
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread
from kap.core.schemas import Ok, Strict
from kap.stages import jobs as _jobs  # noqa: F401  (registers the expiry schedule)
from kap.stages import project_settings, service, signoff
from kap.stages.certificate import certificate
from kap.stages.notify import notify_decided, record_certificate
from kap.stages.records import actor_of
from kap.stages.schemas import (
    MAX_EXPIRY_HOURS,
    DocumentsIn,
    InternalDecisionIn,
    RequestList,
    SignerFlag,
    SignerList,
    SignoffRequestCreate,
    SignoffRequested,
    SignoffRequestRead,
    SignoffSettingsRead,
    SignoffSettingsUpdate,
    StageCreate,
    StageList,
    StageRead,
    StageUpdate,
)

router = APIRouter(prefix="/api", tags=["stages"], route_class=AnswerInThread)

StagesRead = Annotated[ProjectContext, require(Action.STAGES_READ)]
# Members with the can_sign flag record decisions too; admins without it.
Decider = Annotated[ProjectContext, require(Action.STAGES_READ, also=(Action.SIGNOFF_DECIDE_INTERNAL,))]
StagesWrite = Annotated[ProjectContext, require(Action.STAGES_WRITE)]
SignoffRequester = Annotated[ProjectContext, require(Action.SIGNOFF_REQUEST)]
MembersRead = Annotated[ProjectContext, require(Action.MEMBERS_READ)]
MembersManage = Annotated[ProjectContext, require(Action.MEMBERS_MANAGE)]


class ResendIn(Strict):
    expires_in_hours: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_HOURS)


def _issued(issued: signoff.IssuedRequest) -> SignoffRequested:
    return SignoffRequested(request_id=issued.request.id, token_link=issued.token_link,
                            expires_at=issued.request.expires_at, email=issued.email, request=issued.request)


@router.get("/stages")
def list_stages(ctx: StagesRead, include_archived: bool = False) -> StageList:
    """The project's stages in order (archived ones too with include_archived=true)."""
    return StageList(stages=service.list_stages(ctx, archived=include_archived))


@router.post("/stages", status_code=status.HTTP_201_CREATED)
@raises(ValidationFailed)
def create_stage(body: StageCreate, ctx: StagesWrite) -> StageRead:
    """Add a stage."""
    return service.create_stage(ctx, body)


@router.post("/stages/apply-template")
def apply_template(ctx: StagesWrite) -> StageList:
    """Add the default stages (Discovery to Hypercare) the project lacks."""
    return StageList(stages=service.apply_template(ctx))


@router.get("/stages/{stage_id:uuid}")
def get_stage(stage_id: uuid.UUID, ctx: StagesRead) -> StageRead:
    return service.stage_read(ctx, service.find_stage(ctx, stage_id))


@router.patch("/stages/{stage_id:uuid}")
@raises(Conflict, ValidationFailed)
def update_stage(stage_id: uuid.UUID, body: StageUpdate, ctx: StagesWrite) -> StageRead:
    """Edit a stage's title, order, dates, owner, summary, documents or working status."""
    return service.update_stage(ctx, stage_id, body)


@router.put("/stages/{stage_id:uuid}/documents")
@raises(Conflict, ValidationFailed)
def set_documents(stage_id: uuid.UUID, body: DocumentsIn, ctx: StagesWrite) -> StageRead:
    """Attach exactly these project documents to the stage; the signer sees them."""
    return service.set_documents(ctx, stage_id, body.artifact_ids)


@router.post("/stages/{stage_id:uuid}/archive")
@raises(Conflict)
def archive_stage(stage_id: uuid.UUID, ctx: StagesWrite) -> StageRead:
    """Take a stage off the plan; it, its revisions and certificates stay readable."""
    return service.archive_stage(ctx, stage_id)


@router.delete("/stages/{stage_id:uuid}")
@raises(Conflict)
def delete_stage(stage_id: uuid.UUID, ctx: StagesWrite) -> Ok:
    """Remove a stage never signed off (409 stage_signed_off otherwise: archive it)."""
    service.delete_stage(ctx, stage_id)
    return Ok()


@router.post("/stages/{stage_id:uuid}/signoff-requests", status_code=status.HTTP_201_CREATED)
@raises(Conflict, ValidationFailed)
def request_signoff(stage_id: uuid.UUID, body: SignoffRequestCreate, ctx: SignoffRequester,
                    runtime: RuntimeDep) -> SignoffRequested:
    """Mail a single-use sign-off link for the stage to an outside signer."""
    issued = signoff.request_signoff(ctx, stage_id, str(body.email_to), body.name, body.message,
                                     body.expires_in_hours, mailer=runtime.mailer, settings=runtime.settings)
    return _issued(issued)


@router.get("/stages/{stage_id:uuid}/signoff-requests")
def list_requests(stage_id: uuid.UUID, ctx: StagesRead) -> RequestList:
    """The stage's sign-off requests with their status (never their tokens)."""
    return RequestList(requests=signoff.list_requests(ctx, stage_id))


@router.post("/stages/{stage_id:uuid}/signoff-requests/{request_id}/revoke")
@raises(Conflict)
def revoke_request(stage_id: uuid.UUID, request_id: uuid.UUID, ctx: SignoffRequester) -> SignoffRequestRead:
    """Withdraw an open link."""
    return signoff.revoke_request(ctx, stage_id, request_id)


@router.post("/stages/{stage_id:uuid}/signoff-requests/{request_id}/resend", status_code=status.HTTP_201_CREATED)
@raises(Conflict, ValidationFailed)
def resend_request(stage_id: uuid.UUID, request_id: uuid.UUID, ctx: SignoffRequester, runtime: RuntimeDep,
                   body: ResendIn | None = None) -> SignoffRequested:
    """Mail a fresh link to the same signer; the old one stops working."""
    issued = signoff.resend_request(ctx, stage_id, request_id, mailer=runtime.mailer, settings=runtime.settings,
                                    expires_in_hours=body.expires_in_hours if body else None)
    return _issued(issued)


@router.post("/stages/{stage_id:uuid}/decision")
@raises(Conflict, Forbidden)
def decide_internal(stage_id: uuid.UUID, body: InternalDecisionIn, ctx: Decider,
                    runtime: RuntimeDep) -> SignoffRequestRead:
    """Record a decision in the app (owners, admins and members with the can_sign flag); the team is mailed."""
    decided = signoff.decide_internal(ctx, stage_id, body)
    notify_decided(ctx.session, runtime.mailer, runtime.settings, decided.id, actor_of(ctx))
    return decided


@router.get("/stages/{stage_id:uuid}/signoff-certificate", response_model=None,
            responses=content_types("text/html", "application/pdf"))
def signoff_certificate(stage_id: uuid.UUID, ctx: StagesRead, request_id: uuid.UUID | None = None,
                        format: Literal["html", "json", "pdf"] = "html") -> Response:
    """Download the certificate of the stage's latest (or a given) decision: HTML, PDF, or JSON."""
    cert = certificate(ctx, stage_id, request_id)
    if format == "json":
        return JSONResponse({"ok": True, "certificate": cert.record, "fingerprint": cert.fingerprint})
    if format == "pdf":
        data = cert.pdf()
        record_certificate(ctx.session, actor_of(ctx), cert.record["request_id"], data, reason="downloaded")
        return Response(data, media_type="application/pdf",
                        headers=attachment_headers(f"{cert.filename}.pdf", len(data)))
    return HTMLResponse(cert.html(), headers=attachment_headers(f"{cert.filename}.html"))


@router.get("/signoff-settings")
def get_signoff_settings(ctx: StagesRead) -> SignoffSettingsRead:
    """The project's sign-off settings: reminder delay (days, 0 = off) and whether signers confirm a code."""
    return project_settings.get_settings(ctx)


@router.put("/signoff-settings")
def update_signoff_settings(body: SignoffSettingsUpdate, ctx: StagesWrite) -> SignoffSettingsRead:
    """Change the project's sign-off settings (only the fields given)."""
    return project_settings.update_settings(ctx, body)


@router.get("/stage-signers")
def list_signers(ctx: MembersRead) -> SignerList:
    """Members who may record decisions in the app without the admin role."""
    return SignerList(signers=signoff.list_signers(ctx))


@router.put("/stage-signers/{user_id}")
def add_signer(user_id: uuid.UUID, ctx: MembersManage) -> SignerFlag:
    """Give a project member the can_sign flag."""
    signoff.set_signer(ctx, user_id, True)
    return SignerFlag(user_id=user_id, can_sign=True)


@router.delete("/stage-signers/{user_id}")
def remove_signer(user_id: uuid.UUID, ctx: MembersManage) -> SignerFlag:
    """Take the can_sign flag away."""
    signoff.set_signer(ctx, user_id, False)
    return SignerFlag(user_id=user_id, can_sign=False)
