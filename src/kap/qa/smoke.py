"""`kap smoke`: the self-test run headless against any deployment, over HTTP.

seed → stage → sign-off token → open the token page (a GET must not decide) →
digest preview → tenant sentinel. Against production (Bearer token, QA tools off)
the seeder is skipped and says so; everything else uses the regular API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

SMOKE_STAGE = "Discovery"
FALLBACK_STAGE = "Smoke check"


class SmokeFailure(Exception):
    """A step did not get the answer it needed."""


@dataclass
class SmokeClient:
    url: str
    headers: dict[str, str]
    project: str | None
    email_to: str
    target: str | None = None
    timeout: float = 60.0
    lines: list[str] = field(default_factory=list)
    failed: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url.rstrip("/"), headers=self.headers, timeout=self.timeout)

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code not in expect:
            raise SmokeFailure(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    def step(self, name: str, action: Callable[[], str]) -> bool:
        """Run one step, print it with its time, remember a failure."""
        start = time.perf_counter()
        try:
            detail = action()
            ok = True
        except (SmokeFailure, httpx.HTTPError, KeyError, ValueError) as exc:
            detail, ok = str(exc), False
        ms = (time.perf_counter() - start) * 1000
        mark = "ok  " if ok else "FAIL"
        self.lines.append(f"{mark} {name:<16} {ms:8.1f} ms  {detail}")
        self.failed = self.failed or not ok
        return ok

    def params(self) -> dict[str, str]:
        return {"project_id": str(self.project)}

    def ready(self) -> str:
        body = self.call("GET", "/readyz").json()
        return ", ".join(f"{k}={'ok' if v.get('ok') else 'down'}" for k, v in body["checks"].items())

    def identity(self) -> str:
        body = self.call("GET", "/api/me").json()
        if self.project is None:
            made = self.call("POST", "/api/projects", json={"name": f"Kap smoke {time.strftime('%Y-%m-%d %H:%M')}"})
            self.project = made.json()["id"]
        return f"user {body['user']['id']} on project {self.project}"

    def seed(self) -> str:
        response = self.call("POST", "/api/dev/seed-simple", params=self.params(), expect=(200, 404))
        if response.status_code == 404:
            return "skipped: QA tools are off on this deployment"
        body = response.json()
        return f"documents={body['documents']} stages={body['stages']} needs_ocr={body['needs_ocr']}"

    def stage(self) -> str:
        stages = self.call("GET", "/api/stages", params=self.params()).json()["stages"]
        chosen = next((s for s in stages if s["title"].lower() == SMOKE_STAGE.lower()), None)
        if chosen is not None and chosen["status"] == "signed_off":
            chosen = next((s for s in stages if s["title"].lower() == FALLBACK_STAGE.lower()), None)
            title = FALLBACK_STAGE
        else:
            title = SMOKE_STAGE
        if chosen is None:
            chosen = self.call("POST", "/api/stages", params=self.params(), json={"title": title}).json()
        self.state["stage"] = chosen["id"]
        return f"{chosen['title']} ({chosen['status']})"

    def signoff(self) -> str:
        stage = self.state["stage"]
        base = f"/api/stages/{stage}/signoff-requests"
        for req in self.call("GET", base, params=self.params()).json()["requests"]:
            if req["status"] == "pending":
                self.call("POST", f"{base}/{req['id']}/revoke", params=self.params())
        body = self.call("POST", base, params=self.params(),
                         json={"email_to": self.email_to, "message": "Kap smoke check: please ignore."}).json()
        self.state["request"] = body["request_id"]
        self.state["token_link"] = body["token_link"]
        return f"link mailed to {self.email_to} ({body.get('email', {}).get('status', '?')})"

    def open_link(self) -> str:
        link = self.state["token_link"]
        token = link.rstrip("/").rsplit("/", 1)[1]
        page = self.http.get(f"/signoff/{token}")
        if page.status_code != 200 or "<form" not in page.text:
            raise SmokeFailure(f"the sign-off page answered {page.status_code}")
        status = self.call("GET", f"/api/signoff/{token}").json()["signoff"]["status"]
        if status != "pending":
            raise SmokeFailure(f"opening the link changed the request to {status!r}")
        return "page shown, request still pending"

    def digest(self) -> str:
        body = self.call("GET", "/api/digest/preview", params=self.params()).json()
        counts = body["counts"]
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no activity"

    def sentinel(self) -> str:
        target = self.target or str(uuid.uuid4())
        body = self.call("GET", "/api/sentinel/tenant-leak",
                         params={**self.params(), "target_project_id": target}).json()
        if body["leak"] is not False:
            raise SmokeFailure(f"tenant leak reported: {body}")
        return f"leak=false over {len(body['checks'])} checks"

    def cleanup(self) -> str:
        stage, request = self.state.get("stage"), self.state.get("request")
        if not (stage and request):
            return "nothing to clean"
        self.call("POST", f"/api/stages/{stage}/signoff-requests/{request}/revoke", params=self.params(),
                  expect=(200, 409))
        return "smoke sign-off link revoked"

    def run(self) -> bool:
        """Run every step in order; later steps need the earlier ones."""
        if not (self.step("ready", self.ready) and self.step("identity", self.identity)):
            return False
        for name, action in (("seed", self.seed), ("stage", self.stage), ("signoff", self.signoff),
                             ("open link", self.open_link)):
            if not self.step(name, action):
                break
        self.step("digest preview", self.digest)
        self.step("sentinel", self.sentinel)
        self.step("cleanup", self.cleanup)
        return not self.failed


def dev_headers(user: str, org: str | None, role: str) -> dict[str, str]:
    headers = {"X-Dev-User": user, "X-Dev-Role": role}
    if org:
        headers["X-Dev-Org"] = org
    return headers
