"""Schemathesis against a real `kap serve`: every check, an owner of a seeded project, bounded in time.

The run must find nothing: no server error, no status or content type the OpenAPI
document does not declare, no wrong answer to a method a path does not take, no
schema-violating body accepted. The figures (operations, test cases, seconds) are
written to test-artifacts/schemathesis-<database>.json so the run can be quoted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import dev
from tests.robustness.conftest import LiveServer

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 4
MAX_SECONDS = 120
SIGNING_KEY = "schemathesis-signing-key"

# Statuses a schema-valid request may still get: Kap checks more than JSON Schema says —
# cross-field rules (a rejection needs a note, user_id or email, end after start), IANA
# zones, deliverable mail domains, a project member as owner, a non-empty query, the
# recipient setting, a confirm that names the project (422); random tokens of one-time
# links are spent or unknown (410). The check still fails on 400, 405, 415 and 5xx.
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "410", "422", "429", "5xx"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
UPLOADS = ("/api/ingest-sync", "/api/ingest", "/api/orgs/{org_id}/logo")


def _config(project_id: str) -> str:
    uploads = "\n".join(f"""
[[operations]]
include-path = "{path}"
# A file is bytes: the type of its content is checked (415), not the schema's.
checks.positive_data_acceptance.expected-statuses = {json.dumps(POSITIVE_STATUSES + ["415"])}
# Schemathesis sends its "not a string" value as a file part holding the bytes `null`,
# which is a valid four-byte file; a form field that is not a file is refused (422), see
# test_upload_field_that_is_not_a_file_is_refused.
checks.negative_data_rejection.enabled = false
""" for path in UPLOADS)
    return f"""
seed = 20261202
max-time = {MAX_SECONDS}
request-timeout = 60
# One request at a time: on SQLite a second writer waits for the first, and the QA seed
# route holds its transaction for seconds; concurrency here would measure lock waits.
workers = 1

[generation]
max-examples = {MAX_EXAMPLES}
# Kap refuses NUL in every text at the edge (a documented 422), so valid data has none.
allow-x00 = false

[parameters]
"query.project_id" = "{project_id}"

[checks]
# Every check, as `--checks all` would (named on the command line, a check could not be
# turned off for the few operations below).
enabled = true
max_response_time = 60

[checks.positive_data_acceptance]
expected-statuses = {json.dumps(POSITIVE_STATUSES)}
{uploads}
"""


def _seeded(server: LiveServer, headers: dict[str, str]) -> str:
    created = httpx.post(f"{server.url}/api/projects", json={"name": "Schemathesis"}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    project_id = str(created.json()["id"])
    seeded = httpx.post(f"{server.url}/api/dev/seed-simple", params={"project_id": project_id},
                        headers=headers, timeout=120)
    assert seeded.status_code == 200, seeded.text
    return project_id


def _run(server: LiveServer, headers: dict[str, str], config: Path, reports: Path) -> dict[str, Any]:
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
               f"{server.url}/openapi.json",
               "--report", "json", "--report-json-path", str(reports / "run.json"), "--no-color"]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=MAX_SECONDS + 240)
    (reports / "output.txt").write_text(done.stdout + done.stderr)
    assert (reports / "run.json").exists(), done.stdout[-4000:] + done.stderr[-4000:]
    report: dict[str, Any] = json.loads((reports / "run.json").read_text())
    report["output"] = done.stdout
    return report


def test_schemathesis_finds_nothing(live_server: LiveServer, tmp_path: Path) -> None:
    live_server.env["MAILGUN_WEBHOOK_SIGNING_KEY"] = SIGNING_KEY  # the webhook checks signatures (403)
    live_server.start()
    headers = dev(uuid.uuid4(), uuid.uuid4(), "owner")
    project_id = _seeded(live_server, headers)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(project_id))
    started = time.monotonic()
    report = _run(live_server, headers, config, tmp_path)
    seconds = time.monotonic() - started
    cases = report["test_cases"]
    figures = {"database": os.environ.get("KAP_TEST_DB", "sqlite"), "operations": report["operations"]["tested"],
               "test_cases": cases["generated"], "failures": cases["unique_failures"],
               "errors": len(report["errors"]), "seconds": round(seconds)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"schemathesis-{figures['database']}.json").write_text(json.dumps(figures, indent=1))
    summary = "\n".join(line[:300] for line in report["output"][report["output"].find("FAILURES"):].splitlines()[:400])
    assert report["operations"]["tested"] == report["operations"]["selected"] > 60
    assert report["failures"] == [], summary
    assert report["errors"] == [], summary
    assert "unhandled error" not in live_server.log(), live_server.log()[-4000:]


def test_upload_field_that_is_not_a_file_is_refused(client: Any, world: Any) -> None:
    params = {"project_id": str(world.project_a)}
    for path in ("/api/ingest-sync", "/api/ingest"):
        refused = client.post(path, params=params, data={"file": "null"}, headers=world.h("owner"))
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["error"]["details"]["fields"][0]["field"] == "file"
    logo = client.put(f"/api/orgs/{world.org1}/logo", data={"file": "null"}, headers=world.h("org_owner"))
    assert logo.status_code == 422, logo.text
