"""Page images of PDFs and scans, rendered once and kept in storage beside the originals.

A page is rendered in the extractor sandbox (`sandbox.py`, mode "preview"), under limits of
its own: a hostile file can only exhaust or crash its own child process, never the server,
and one slow page holds up no other.
"""

from __future__ import annotations

import io
import shutil
import uuid

from kap.core.deps import ProjectContext
from kap.core.errors import NotFound
from kap.core.runtime import Runtime
from kap.documents import ingest, sandbox
from kap.documents.models import Artifact
from kap.documents.render import NO_SUCH_PAGE, WIDTH
from kap.documents.service import get_artifact, previews_below

MAX_PAGES = 500
PREVIEW_KINDS = ("pdf", "png", "jpeg", "tiff")
# A page renders in 20-200 ms; these bound a hostile one (read when each render starts).
PREVIEW_MEMORY = 1024**3
PREVIEW_CPU_SECONDS = 20
PREVIEW_WALL_SECONDS = 30


def has_pages(artifact: Artifact) -> bool:
    """Whether a document has page images (PDFs and images)."""
    return artifact.kind in PREVIEW_KINDS


def preview_key(artifact: Artifact, page: int) -> str:
    """Where the image of one page of one version is cached."""
    return f"{previews_below(artifact, artifact.version)}p{page}-w{WIDTH}.png"


def page_image(ctx: ProjectContext, runtime: Runtime, artifact_id: uuid.UUID, page: int) -> bytes:
    """The PNG of one page of a document of the caller's project, rendered on first use and cached."""
    artifact = get_artifact(ctx, artifact_id)
    if not has_pages(artifact) or page < 1 or page > max(artifact.page_count or 1, 1) or page > MAX_PAGES:
        raise NotFound(NO_SUCH_PAGE, code="no_page_image")
    store = runtime.storage.artifacts
    key = preview_key(artifact, page)
    if store.exists(key):
        with store.open(key) as cached:
            return cached.read()
    png = _render(runtime, artifact, page)
    store.put(key, io.BytesIO(png))
    return png


def _render(runtime: Runtime, artifact: Artifact, page: int) -> bytes:
    """Render one page in a sandboxed child; a page it cannot render is the one 404 of a missing page."""
    source = ingest.fetch(runtime.storage.artifacts, artifact, runtime.settings)
    limits = sandbox.Limits(PREVIEW_MEMORY, PREVIEW_CPU_SECONDS, PREVIEW_WALL_SECONDS, 64 * 1024**2)
    try:
        result = sandbox.run("preview", artifact.kind, source, source.parent / "preview", pages=[page],
                             limits=limits)
        if not result.ok:
            if result.reason == NO_SUCH_PAGE:
                raise NotFound(NO_SUCH_PAGE, code="no_page_image")
            raise NotFound(f"this page cannot be shown: {result.reason}", code="no_page_image")
        return (result.work / sandbox.PAGE_IMAGE).read_bytes()
    finally:
        shutil.rmtree(source.parent, ignore_errors=True)
