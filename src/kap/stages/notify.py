"""Mail that closes the loop on a decision: the team hears the outcome, the signer gets a copy with the PDF.

Everything is queued in the decision's transaction (core.mail), so a decision that rolls back
mails nobody. Mail about a project comes from "<Org> via Kap"; a reply to the signer's copy
goes to the requester, a reply to the team's notice goes to the signer.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from kap.core.links import stage_link as project_stage_link
from kap.core.mail import Attachment, Mail, Mailer, normalise_address
from kap.core.models import Project, User
from kap.core.settings import Settings
from kap.stages.certificate import Certificate, build, pdf_digest
from kap.stages.models import SignoffRequest, Stage
from kap.stages.records import Actor, audit
from kap.stages.render import render

OUTCOME = {"approved": "Approved", "rejected": "Rejected"}


def certificate_link(settings: Settings, stage: Stage, req: SignoffRequest) -> str:
    """Where a team member downloads the PDF certificate of a decision."""
    return (f"{settings.public_url}/api/stages/{stage.id}/signoff-certificate?project_id={stage.project_id}"
            f"&request_id={req.id}&format=pdf")


def stage_link(settings: Settings, stage: Stage) -> str:
    """The stage on the project's Stages page."""
    return settings.public_url + project_stage_link(stage.project_id, stage.id)


def team_of(session: Session, stage: Stage, req: SignoffRequest) -> list[User]:
    """The requester and the stage owner, once each, without the signer."""
    seen = {normalise_address(req.signer_email or "")}
    out = []
    for user_id in (req.created_by, stage.owner_id):
        user = session.get(User, user_id) if user_id else None
        if user is None or not user.email or normalise_address(user.email) in seen:
            continue
        seen.add(normalise_address(user.email))
        out.append(user)
    return out


def record_certificate(session: Session, actor: Actor, request_id: object, data: bytes, *, reason: str) -> str:
    """Audit that a certificate file was issued, with its SHA-256; return the digest."""
    digest = pdf_digest(data)
    audit(session, actor, "signoff.certificate_issued", "signoff_request", request_id, sha256=digest,
          format="pdf", size=len(data), reason=reason)
    return digest


def notify_decided(session: Session, mailer: Mailer, settings: Settings, request_id: uuid.UUID,
                   actor: Actor | None = None) -> list[Mail]:
    """Queue the mails of a decision just recorded in this session's transaction."""
    req = session.get(SignoffRequest, request_id)
    if req is None or req.status not in OUTCOME:
        return []
    stage = session.get(Stage, req.stage_id)
    project = session.get(Project, req.project_id)
    assert stage is not None
    assert project is not None
    who = actor or Actor(org_id=req.org_id, project_id=req.project_id, user_id=req.signer_user_id,
                         label=f"link:{req.recipient_email}" if req.channel == "external" else (req.signer_email or ""))
    return decision_mails(session, mailer, settings, who, stage, req, project.name)


def decision_mails(session: Session, mailer: Mailer, settings: Settings, actor: Actor, stage: Stage,
                   req: SignoffRequest, project_name: str) -> list[Mail]:
    """Queue the decision notices and the signer's copy (with the PDF certificate); return them."""
    cert = build(session, stage, req, project_name)
    pdf = cert.pdf()
    digest = record_certificate(session, actor, req.id, pdf, reason="mailed to the signer")
    requester = session.get(User, req.created_by) if req.created_by else None
    context = {"cert": cert, "record": cert.record, "outcome": OUTCOME[req.status], "digest": digest,
               "certificate_link": certificate_link(settings, stage, req), "stage_link": stage_link(settings, stage),
               "requester": cert.record.get("requester")}
    mails = [_team_mail(cert, context, user, stage, req) for user in team_of(session, stage, req)]
    if req.signer_email:
        mails.append(Mail(
            to=req.signer_email, subject=f"Your sign-off: {OUTCOME[req.status]} · {cert.record['stage']['title']} "
                                         f"({cert.record['project']})",
            text=render("signer_copy_email.txt", **context), html=render("signer_copy_email.html", **context),
            kind="signoff_copy", org_id=stage.org_id, project_id=stage.project_id, sender_name=cert.brand.name,
            reply_to=requester.email if requester and requester.email else None,
            attachments=[Attachment(f"{cert.filename}.pdf", pdf, "application/pdf")]))
    for mail in mails:
        mailer.queue(session, mail)
    audit(session, actor, "signoff.decision_mailed", "signoff_request", req.id,
          recipients=[m.to for m in mails], certificate_sha256=digest)
    return mails


def _team_mail(cert: Certificate, context: dict[str, object], user: User, stage: Stage,
               req: SignoffRequest) -> Mail:
    assert user.email
    personal = {**context, "recipient": user.name or user.email}
    return Mail(to=user.email, subject=f"{OUTCOME[req.status]}: {cert.record['stage']['title']} "
                                       f"({cert.record['project']}) by {req.signer_name}",
                text=render("decision_email.txt", **personal), html=render("decision_email.html", **personal),
                kind="signoff_decision", org_id=stage.org_id, project_id=stage.project_id,
                sender_name=cert.brand.name, reply_to=req.signer_email)
