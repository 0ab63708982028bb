"""Ask Kap answers questions about the RAID log from the log, citing each item's document."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import World
from tests.raid.conftest import CORPUS, by_ref, items, upload


def _ask(client: TestClient, world: World, question: str, who: str = "member") -> dict[str, Any]:
    response = client.post("/api/ask", params={"project_id": str(world.project_a)}, headers=world.h(who),
                           json={"question": question})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_who_owns_and_open_risks_come_from_the_log_with_citations(client: TestClient, world: World) -> None:
    minutes = upload(client, world, CORPUS / "Kickoff minutes 2026-01-13.docx")
    raid_log = upload(client, world, CORPUS / "RAID log.xlsx")
    found = by_ref(items(client, world))
    client.post(f"/api/raid/{found['R-07']['id']}/accept", params={"project_id": str(world.project_a)},
                headers=world.h("lead"), json={"severity": "high"})
    client.post(f"/api/raid/{found['R-03']['id']}/dismiss", params={"project_id": str(world.project_a)},
                headers=world.h("lead"))

    owner = _ask(client, world, "Who owns A-07?")
    assert owner["found"]
    assert owner["answer"].startswith("A-07 (Deliver the integration inventory) is owned by "
                                                         "Hannah Brooks. [1]")
    cite = owner["citations"][0]
    assert cite["artifact_id"] == minutes["id"]
    assert cite["quote"].startswith("Action A-07: Hannah Brooks")
    assert cite["link"].startswith(f"/p/{world.project_a}/documents/{minutes['id']}")

    risks = _ask(client, world, "What are the open risks?")
    assert risks["answer"].startswith("The RAID log lists 2 open risks: R-07 (Legacy payroll vendor contract")
    assert "owner Dana Whitfield" in risks["answer"]
    assert "high" in risks["answer"]
    assert "R-09" in risks["answer"]
    assert "R-03" not in risks["answer"]
    assert [c["locator"] for c in risks["citations"]] == ["Sheet RAID log, row 3", "Sheet RAID log, row 4"]
    assert {c["artifact_id"] for c in risks["citations"]} == {raid_log["id"]}

    # Questions that are not about the log are answered from the documents as before.
    other = _ask(client, world, "When is the weekly status meeting held?")
    assert "Tuesday" in other["answer"]
    assert other["citations"][0]["artifact_id"] == minutes["id"]
