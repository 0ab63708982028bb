"""Comms settings, subscriptions and scheduler status through the API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World


def settings_of(client: TestClient, world: World, who: str = "pm") -> Any:
    return client.get("/api/comms/settings", params={"project_id": str(world.project_a)}, headers=world.h(who))


def put_settings(client: TestClient, world: World, body: dict[str, Any], who: str = "pm") -> Any:
    return client.put("/api/comms/settings", params={"project_id": str(world.project_a)}, json=body,
                      headers=world.h(who))


def test_settings_start_from_defaults(client: TestClient, world: World) -> None:
    response = settings_of(client, world)
    assert response.status_code == 200, response.text
    assert response.json()["settings"] == {"timezone": "UTC", "quiet_start": "22:00", "quiet_end": "07:00",
                                           "daily_cap": 20, "digest_weekday": 0, "digest_hour": 9,
                                           "digest_enabled": True}


def test_pm_changes_settings_and_it_is_audited(client: TestClient, world: World) -> None:
    body = {"timezone": "Europe/Berlin", "quiet_start": "21:30", "quiet_end": "06:15", "daily_cap": 3,
            "digest_weekday": 4, "digest_hour": 16}
    response = put_settings(client, world, body)
    assert response.status_code == 200, response.text
    assert response.json()["settings"] == {**body, "digest_enabled": True}
    assert settings_of(client, world).json()["settings"]["timezone"] == "Europe/Berlin"
    audit = client.get("/api/audit", params={"project_id": str(world.project_a)}, headers=world.h("owner"))
    assert audit.status_code == 200, audit.text
    assert "comms.settings_updated" in audit.text


def test_quiet_hours_can_be_switched_off(client: TestClient, world: World) -> None:
    response = put_settings(client, world, {"quiet_start": "", "quiet_end": None})
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["quiet_start"] is None
    assert response.json()["settings"]["quiet_end"] is None


@pytest.mark.parametrize(("field", "value"), [
    ("timezone", "Mars/Olympus"), ("timezone", "../etc/passwd"), ("quiet_start", "25:00"),
    ("quiet_end", "7am"), ("daily_cap", 0), ("digest_weekday", 7), ("digest_hour", 24),
    ("digest_enabled", "sometimes"), ("colour", "blue"), ("daily_cap", None),
])
def test_invalid_settings_are_422_naming_the_field(client: TestClient, world: World, field: str,
                                                   value: Any) -> None:
    response = put_settings(client, world, {field: value})
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]


def test_lead_cannot_read_or_change_settings(client: TestClient, world: World) -> None:
    assert settings_of(client, world, "lead").status_code == 403
    assert put_settings(client, world, {"daily_cap": 5}, "lead").status_code == 403


def subs(client: TestClient, world: World, who: str, body: dict[str, Any] | None = None) -> Any:
    params = {"project_id": str(world.project_a)}
    if body is None:
        return client.get("/api/subscriptions", params=params, headers=world.h(who))
    return client.put("/api/subscriptions", params=params, json=body, headers=world.h(who))


def test_member_changes_only_their_own_subscriptions(client: TestClient, world: World) -> None:
    assert subs(client, world, "member").json() == {
        "ok": True, "mine": {"digest": True, "signoff": True, "alerts": True}, "external": None}
    response = subs(client, world, "member", {"mine": {"digest": False}})
    assert response.status_code == 200, response.text
    assert response.json()["mine"]["digest"] is False
    assert subs(client, world, "lead").json()["mine"]["digest"] is True
    refused = subs(client, world, "member", {"external": [{"email": "client@example.com"}]})
    assert refused.status_code == 403


def test_pm_manages_external_recipients(client: TestClient, world: World) -> None:
    body = {"external": [{"email": "Client@Example.com", "name": "Client"},
                         {"email": "cfo@example.com", "categories": ["digest", "signoff"]}]}
    response = subs(client, world, "pm", body)
    assert response.status_code == 200, response.text
    external = {e["email"]: e for e in response.json()["external"]}
    assert set(external) == {"client@example.com", "cfo@example.com"}
    assert external["cfo@example.com"]["categories"] == {"digest": True, "signoff": True}
    response = subs(client, world, "pm", {"external": [{"email": "cfo@example.com"}]})
    assert [e["email"] for e in response.json()["external"]] == ["cfo@example.com"]


def test_bad_subscription_bodies_are_422(client: TestClient, world: World) -> None:
    assert subs(client, world, "pm", {"external": [{"email": "not-an-email"}]}).status_code == 422
    assert subs(client, world, "pm", {"mine": {"weather": True}}).status_code == 422
    assert subs(client, world, "pm", {"external": [{"email": "a@b.com", "categories": ["alerts"]}]}) \
        .status_code == 422


def test_scheduler_status_shows_the_next_window_in_both_zones(client: TestClient, world: World) -> None:
    put_settings(client, world, {"timezone": "Asia/Kolkata", "digest_weekday": 2, "digest_hour": 10})
    response = client.get("/api/scheduler/status", params={"project_id": str(world.project_a)},
                          headers=world.h("member"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["last_digest"] is None
    window = body["next_window"]
    assert window["timezone"] == "Asia/Kolkata"
    assert window["start"].endswith("+05:30")
    assert "T10:00:00" in window["start"]
    assert window["start_utc"].endswith("+00:00")
    assert "T04:30:00" in window["start_utc"]
    assert body["backups"]["last"] is None
    assert body["backups"]["last_failure"] is None
    assert body["backups"]["next"]  # the coming nightly window
