"""QA routes: the seeder and the smoke runner (only with DEV_AUTH=1 or KAP_QA_TOOLS=1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import EmailStr

from kap.core.deps import ProjectContext, RuntimeDep, require
from kap.core.errors import Conflict, NotFound, ValidationFailed, raises
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread
from kap.core.schemas import Strict
from kap.qa import service
from kap.qa.schemas import Seeded, SmokePassed


@raises(NotFound)  # the QA tools are off: as if the routes did not exist
def qa_tools_enabled(runtime: RuntimeDep) -> None:
    """The QA routes do not exist unless dev auth or the QA tools are switched on."""
    if not (runtime.settings.dev_auth or runtime.settings.kap_qa_tools):
        raise NotFound("not found")


router = APIRouter(prefix="/api/dev", tags=["qa"], dependencies=[Depends(qa_tools_enabled)],
                   route_class=AnswerInThread)
QaRun = Annotated[ProjectContext, require(Action.QA_RUN)]


class SmokeRequest(Strict):
    email_to: EmailStr | None = None


@router.post("/seed-simple")
@raises(Conflict)
def seed_simple(ctx: QaRun, runtime: RuntimeDep) -> Seeded:
    """Seed the project with generated sample documents, the stage plan and two members."""
    return Seeded.model_validate(service.seed_simple(ctx, runtime))


@router.post("/smoke-run", response_model=SmokePassed)
@raises(Conflict, ValidationFailed)
def smoke_run(ctx: QaRun, runtime: RuntimeDep, body: SmokeRequest | None = None) -> SmokePassed | JSONResponse:
    """Discovery stage, external sign-off link and digest preview; each step with ok and ms."""
    result = service.smoke_run(ctx, runtime, str(body.email_to) if body and body.email_to else None)
    if not result["ok"]:
        return JSONResponse(result, status_code=503)
    return SmokePassed.model_validate(result)

