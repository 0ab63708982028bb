"""The digest's RAID sections: what a member reads about the log's week, and what nobody else does."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from kap.comms.digest import Period, Recipient, build_digest
from kap.core.db import utcnow
from kap.core.runtime import Runtime
from kap.core.scope import reach, trusted_scope
from kap.raid.models import RaidItem
from tests.conftest import World
from tests.raid.conftest import CORPUS, by_ref, items, upload

RAID_KEYS = ["raid_actions", "raid_risks_issues", "raid_decisions", "raid_comments"]


def _q(world: World) -> dict[str, str]:
    return {"project_id": str(world.project_a)}


def _week_of_work(client: TestClient, world: World) -> None:
    upload(client, world, CORPUS / "Kickoff minutes 2026-01-13.docx")
    upload(client, world, CORPUS / "RAID log.xlsx")
    found = by_ref(items(client, world))
    soon = (date.today() + timedelta(days=3)).isoformat()
    for ref, edits in (("A-07", {}), ("A-08", {"due": soon}), ("R-07", {}), ("I-03", {}), ("D-05", {})):
        response = client.post(f"/api/raid/{found[ref]['id']}/accept", params=_q(world), headers=world.h("lead"),
                               json=edits)
        assert response.status_code == 200, response.text
    client.patch(f"/api/raid/{found['R-07']['id']}", params=_q(world), headers=world.h("lead"),
                 json={"status": "closed", "severity": "high"})
    client.post(f"/api/raid/{found['R-07']['id']}/comments", params=_q(world), headers=world.h("member"),
                json={"body": "ADP signed the extension."})
    client.post(f"/api/raid/{found['R-09']['id']}/comments", params=_q(world), headers=world.h("member"),
                json={"body": "Still only a suggestion."})
    other = client.post("/api/raid", params={"project_id": str(world.project_b)}, headers=world.h("b_member"),
                        json={"kind": "action", "title": "B-secret payroll action", "due": "2026-01-02"})
    assert other.status_code == 201


def test_members_get_the_raid_sections_of_their_project_only(client: TestClient, world: World) -> None:
    _week_of_work(client, world)
    body = client.get("/api/digest/preview", params=_q(world), headers=world.h("pm")).json()
    sections = {s["key"]: s for s in body["sections"]}
    assert [k for k in sections if k.startswith("raid_")] == RAID_KEYS
    actions = sections["raid_actions"]
    assert [i["title"] for i in actions["items"]] == ["A-07 Deliver the integration inventory",
                                                      "A-08 Confirm the number of pay groups (currently estimated "
                                                      "at 14)"]
    assert actions["items"][0]["detail"] == "Hannah Brooks · overdue since 23 Jan"
    assert actions["items"][1]["detail"].startswith("Priyanka Shah · due ")
    assert body["counts"]["raid_actions_overdue"] == 1
    assert body["counts"]["raid_actions_due"] == 1
    assert actions["items"][0]["url"].startswith(f"http://testserver/p/{world.project_a}/raid/items/")
    risks = {i["title"]: i["detail"] for i in sections["raid_risks_issues"]["items"]}
    assert risks["I-03 2.3% of legacy worker records have invalid Social Security numbers"] == "Issue · new · open"
    assert [t for t in risks if t.startswith("R-07")]
    assert [i["title"] for i in sections["raid_decisions"]["items"]] == [
        "D-05 Position management instead of job management for all hospitals"]
    comments = sections["raid_comments"]["items"]
    assert [c["detail"].split(": ", 1)[1] for c in comments] == ["ADP signed the extension."]
    for text in (body["text"], body["html"]):
        assert "Deliver the integration inventory" in text
        assert "B-secret payroll" not in text
        assert "Kronos time clock" not in text
        assert "Still only a suggestion" not in text


def test_risk_changes_say_what_changed(client: TestClient, world: World, runtime: Runtime) -> None:
    _week_of_work(client, world)
    with runtime.db.service_transaction() as s:  # R-07 has been in the log for a month
        s.execute(update(RaidItem).where(RaidItem.project_id == world.project_a, RaidItem.ref == "R-07")
                  .values(created_at=utcnow() - timedelta(days=30)))
    period = Period(utcnow() - timedelta(days=7), utcnow() + timedelta(minutes=1))
    member = Recipient.member(world.users["member"], "member@example.com")
    with runtime.db.app_session(member.user_id) as session:
        found = reach(session, world.users["member"], world.project_a)
        assert found is not None
        digest = build_digest(session, found.scope, period, member)
    sections = {s.key: s for s in digest.sections}
    r07 = next(i for i in sections["raid_risks_issues"].items if i.title.startswith("R-07"))
    assert r07.detail == "Risk · changed: status open → closed, severity — → high · high · closed"
    assert "B-secret payroll" not in digest.text


def test_outside_recipients_get_no_raid_sections(client: TestClient, world: World, runtime: Runtime) -> None:
    _week_of_work(client, world)
    period = Period(utcnow() - timedelta(days=7), utcnow() + timedelta(minutes=1))
    with runtime.db.service_session() as session:
        scope = trusted_scope(session, world.project_a, purpose="test")
        assert scope is not None
        digest = build_digest(session, scope, period, Recipient.outside("client@example.com"))
    assert not [s for s in digest.sections if s.key.startswith("raid_")]
    assert "Deliver the integration inventory" not in digest.text
