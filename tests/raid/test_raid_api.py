"""The RAID API: the log, review, edits, comments, CSV, roles and the tenant wall."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import openpyxl
from fastapi.testclient import TestClient

from tests.conftest import World
from tests.raid.conftest import CORPUS, by_ref, items, upload


def _q(world: World, project: uuid.UUID | None = None) -> dict[str, str]:
    return {"project_id": str(project or world.project_a)}


def _create(client: TestClient, world: World, who: str = "lead", project: uuid.UUID | None = None,
            **body: Any) -> Any:
    return client.post("/api/raid", params=_q(world, project), headers=world.h(who),
                       json={"kind": "action", "title": "Send the cutover plan", **body})


def test_lead_adds_edits_and_comments_and_member_reads(client: TestClient, world: World) -> None:
    created = _create(client, world, ref="a-12", owner="Luis Ortega", due="2026-02-01", severity="high")
    assert created.status_code == 201, created.text
    item = created.json()
    assert (item["ref"], item["state"], item["origin"], item["overdue"]) == ("A-12", "accepted", "manual", True)
    patched = client.patch(f"/api/raid/{item['id']}", params=_q(world), headers=world.h("lead"),
                           json={"status": "done", "owner": "Dana Whitfield"})
    assert patched.status_code == 200
    assert patched.json()["status"] == "done"
    assert not patched.json()["overdue"]
    comment = client.post(f"/api/raid/{item['id']}/comments", params=_q(world), headers=world.h("member"),
                          json={"body": "Sent on Friday."})
    assert comment.status_code == 201, comment.text
    detail = client.get(f"/api/raid/{item['id']}", params=_q(world), headers=world.h("member")).json()
    assert [c["body"] for c in detail["comments"]] == ["Sent on Friday."]
    edit = next(c for c in detail["changes"] if c["origin"] == "edit" and "status" in c["changes"])
    assert edit["changes"]["status"] == ["open", "done"]
    assert edit["changes"]["owner"] == ["Luis Ortega", "Dana Whitfield"]
    assert [i["id"] for i in items(client, world, owner="dana")] == [item["id"]]
    assert items(client, world, owner="nobody") == []


def test_members_read_but_only_leads_and_above_edit(client: TestClient, world: World) -> None:
    assert _create(client, world, who="member").status_code == 403
    item = _create(client, world).json()
    for path in (f"/api/raid/{item['id']}/accept", f"/api/raid/{item['id']}/dismiss"):
        assert client.post(path, params=_q(world), headers=world.h("member")).status_code == 403
    denied = client.patch(f"/api/raid/{item['id']}", params=_q(world), headers=world.h("member"), json={"title": "x"})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert len(items(client, world, who="member")) == 1


def test_bad_input_gets_a_clear_json_error(client: TestClient, world: World) -> None:
    bad = _create(client, world, kind="assumption")
    assert bad.status_code == 422
    assert bad.json()["ok"] is False
    assert _create(client, world, due="someday").status_code == 422
    assert client.get("/api/raid", params={**_q(world), "kind": "nonsense"}, headers=world.h("member")).status_code \
        == 422
    _create(client, world, ref="R-01", kind="risk")
    taken = _create(client, world, ref="r-01", kind="risk")
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "raid_ref_taken"
    item = _create(client, world).json()
    empty = client.patch(f"/api/raid/{item['id']}", params=_q(world), headers=world.h("lead"), json={"title": None})
    assert empty.status_code == 422
    cleared = client.post(f"/api/raid/{item['id']}/accept", params=_q(world), headers=world.h("lead"),
                          json={"details": None})
    assert cleared.status_code == 200
    assert cleared.json()["details"] == ""


def test_review_accept_with_edits_and_dismiss(client: TestClient, world: World) -> None:
    doc = upload(client, world, CORPUS / "Kickoff minutes 2026-01-13.docx")
    found = by_ref(items(client, world, state="suggested"))
    assert set(found) == {"D-01", "D-02", "D-03", "D-04", "A-07", "A-08"}
    accepted = client.post(f"/api/raid/{found['A-08']['id']}/accept", params=_q(world), headers=world.h("lead"),
                           json={"due": "2026-01-30"})
    assert accepted.status_code == 200
    assert accepted.json()["state"] == "accepted"
    assert accepted.json()["due"] == "2026-01-30"
    client.post(f"/api/raid/{found['D-01']['id']}/dismiss", params=_q(world), headers=world.h("lead"))
    assert [i["ref"] for i in items(client, world, state="accepted")] == ["A-08"]
    # Ingesting the same minutes again neither duplicates nor revives what was dismissed.
    again = client.post("/api/reingest-stored", params={**_q(world), "artifact_id": doc["id"]},
                        headers=world.h("lead"))
    assert again.status_code == 200, again.text
    again = items(client, world)
    assert len(again) == 6
    assert by_ref(again)["D-01"]["state"] == "dismissed"
    assert by_ref(again)["A-08"]["state"] == "accepted"


def _raid_workbook(rows: list[list[Any]], header: list[str]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "RAID log"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_newer_raid_spreadsheet_updates_items_by_reference(client: TestClient, world: World) -> None:
    upload(client, world, CORPUS / "RAID log.xlsx")
    first = by_ref(items(client, world))
    client.post(f"/api/raid/{first['R-07']['id']}/accept", params=_q(world), headers=world.h("lead"))
    newer = _raid_workbook([
        ["Closed", "R-07", "Risk", "Legacy payroll vendor contract with ADP ends August 31, 2026", "Dana Whitfield",
         "ADP agreed a 60-day extension", "High"],
        ["Open", "R-10", "Risk", "Benefits open enrollment overlaps hypercare", "Marcus Lee", "", "Medium"],
    ], header=["Status", "Ref", "Category", "Risk description", "Assigned to", "Response", "Impact"])
    upload(client, world, name="RAID log 2026-03-10.xlsx", content=newer)
    after = items(client, world)
    refs = by_ref(after)
    assert len(after) == len(first) + 1
    assert "R-10" in refs
    r07 = refs["R-07"]
    assert (r07["id"], r07["status"], r07["severity"], r07["state"]) == (first["R-07"]["id"], "closed", "high",
                                                                           "accepted")
    assert r07["source"]["quote"].startswith("Status: Closed; Ref: R-07")
    changes = client.get(f"/api/raid/{r07['id']}", params=_q(world), headers=world.h("member")).json()["changes"]
    source_change = next(c for c in changes if c["origin"] == "source" and "status" in c["changes"])
    assert source_change["changes"]["status"] == ["open", "closed"]
    assert source_change["changes"]["severity"] == [None, "high"]
    assert source_change["artifact_id"] == r07["source"]["artifact_id"]
    assert refs["R-09"]["status"] == "open"  # not in the newer file: left as it was


def test_csv_export_lists_items_with_their_sources(client: TestClient, world: World) -> None:
    upload(client, world, CORPUS / "RAID log.xlsx")
    _create(client, world, title="=HYPERLINK(\"http://evil\")")
    response = client.get("/api/raid/export.csv", params=_q(world), headers=world.h("member"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    r07 = next(r for r in rows if r["ref"] == "R-07")
    assert (r07["kind"], r07["owner"], r07["source_document"], r07["source_locator"]) == \
        ("risk", "Dana Whitfield", "RAID log.xlsx", "Sheet RAID log, row 3")
    assert any(r["title"].startswith("'=") for r in rows)


def test_another_projects_items_stay_invisible(client: TestClient, world: World) -> None:
    mine = _create(client, world, title="Project A action").json()
    theirs = _create(client, world, who="b_member", project=world.project_b, title="Project B action").json()
    assert [i["title"] for i in items(client, world)] == ["Project A action"]
    for method, path in (("GET", f"/api/raid/{theirs['id']}"), ("PATCH", f"/api/raid/{theirs['id']}"),
                         ("POST", f"/api/raid/{theirs['id']}/accept"), ("POST", f"/api/raid/{theirs['id']}/comments")):
        body = {"body": "x"} if path.endswith("comments") else {}
        response = client.request(method, path, params=_q(world), headers=world.h("owner"), json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "raid_item_not_found"
    # Asking for project B outright is the project 404, whatever the item.
    response = client.get(f"/api/raid/{mine['id']}", params=_q(world, world.project_c), headers=world.h("owner"))
    assert response.status_code == 404
    leak = client.get("/api/sentinel/tenant-leak", params={**_q(world), "target_project_id": str(world.project_c)},
                      headers=world.h("member")).json()
    checks = {c["check"]: c for c in leak["checks"]}
    assert leak["leak"] is False
    assert {"table:raid_items", "table:raid_comments", "table:raid_changes"} <= set(checks)
