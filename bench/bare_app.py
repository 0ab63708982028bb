"""The bare engine for HTTP figures: FastAPI on uvicorn + httptools returning fixed JSON bodies.

`BENCH_BARE_BODIES` names a JSON file `{"one": {...}, "list": {...}}`; each key becomes `GET /bare/<key>`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

app = FastAPI()
_bodies: dict[str, Any] = json.loads(Path(os.environ["BENCH_BARE_BODIES"]).read_text()) \
    if os.environ.get("BENCH_BARE_BODIES") else {}


@app.get("/bare/health")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.get("/bare/{name}")
def body(name: str) -> Any:
    return _bodies[name]
