"""People by name and events as sentences: dashboard activity, the audit viewer and its CSV."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

from fastapi.testclient import TestClient

from kap.core.models import User
from tests.conftest import World
from tests.test_web_shell import signed_in

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _name(runtime: Any, user: uuid.UUID, name: str, email: str) -> None:
    with runtime.db.service_transaction() as s:
        row = s.get(User, user)
        row.name, row.email = name, email


def _visible_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r'<(script|head)[\s\S]*?</\1>', " ", html))


def _activity(client: TestClient, world: World, runtime: Any) -> str:
    tag = uuid.uuid4().hex[:8]
    _name(runtime, world.users["pm"], "Priya PM", f"priya-{tag}@consult.example")
    _name(runtime, world.users["lead"], "Lee Lead", f"lee-{tag}@consult.example")
    q = {"project_id": str(world.project_a)}
    stage = client.post("/api/stages", params=q, headers=world.h("pm"), json={"title": "Design"}).json()
    sent = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=q, headers=world.h("pm"),
                       json={"email_to": "dana@client.example", "name": "Dana Whitfield"})
    assert sent.status_code == 201, sent.text
    changed = client.patch(f"/api/projects/{world.project_a}/members/{world.users['lead']}",
                           json={"role": "pm"}, headers=world.h("owner"))
    assert changed.status_code == 200, changed.text
    return f"priya-{tag}@consult"


def test_dashboard_activity_reads_as_sentences_with_names(app: Any, client: TestClient, world: World,
                                                          runtime: Any) -> None:
    _activity(client, world, runtime)
    with signed_in(app, world.users["admin"]) as browser:
        html = browser.get(f"/p/{world.project_a}/dashboard").text
    panel = _visible_text(html.split('id="panel-activity"', 1)[1].split("</section>", 1)[0])
    assert "Priya PM requested sign-off of Design from dana@client.example" in panel
    assert "Priya PM added the stage Design" in panel
    assert "made Lee Lead project manager (was lead)" in panel
    assert "Design moved from not started to awaiting sign-off (Priya PM)" in panel
    assert not UUID_RE.search(panel)
    assert "status_changed" not in panel
    assert "UTC" in panel


def test_audit_viewer_filters_by_name_or_email_and_pages(app: Any, client: TestClient, world: World,
                                                         runtime: Any) -> None:
    email = _activity(client, world, runtime)
    for n in range(205):
        client.patch(f"/api/projects/{world.project_a}", json={"name": f"A{n}"}, headers=world.h("owner"))
    with signed_in(app, world.users["owner"]) as browser:
        base = f"/p/{world.project_a}/admin"
        by_name = _visible_text(browser.get(base, params={"actor": "Priya"}).text)
        assert "Priya PM requested sign-off of Design" in by_name
        assert "renamed" not in by_name
        by_email = _visible_text(browser.get(base, params={"actor": email}).text)
        assert "Priya PM added the stage Design" in by_email
        first = browser.get(base).text
        assert "Events 1–200 of" in first
        assert "Older events" in first
        older = re.search(r'href="([^"]+offset=200[^"]*)"', first)
        assert older, "no link to the older events"
        second = browser.get(older.group(1).replace("&amp;", "&")).text
        assert "Events 201–" in second
        assert "Newer events" in second
        assert not UUID_RE.search(_visible_text(first).replace(str(world.project_a), ""))


def test_audit_csv_follows_the_filters_and_has_no_python_repr(app: Any, client: TestClient, world: World,
                                                               runtime: Any) -> None:
    _activity(client, world, runtime)
    with signed_in(app, world.users["owner"]) as browser:
        page = browser.get(f"/p/{world.project_a}/admin",
                           params={"actor": "Priya", "since": "2020-01-01", "until": "2099-12-31"}).text
        link = re.search(r'href="(/api/audit\?[^"]+)"', page)
        assert link is not None, page
        href = link.group(1).replace("&amp;", "&")
        assert "since=2020-01-01T00%3A00%3A00" in href
        assert "until=2100-01-01T00%3A00%3A00" in href
        rows = list(csv.DictReader(io.StringIO(browser.get(href, headers={"X-CSRF-Token": ""}).text)))
        assert rows
        assert all(r["actor"] == "Priya PM" for r in rows)
        created = next(r for r in rows if r["action"] == "signoff.created")
        assert "recipient: dana@client.example" in created["details"]
        assert "{'" not in created["details"]
        assert created["summary"] == "Priya PM requested sign-off of Design from dana@client.example"
        future = browser.get(href.replace("since=2020", "since=2098")).text
        assert len(list(csv.DictReader(io.StringIO(future)))) == 0
