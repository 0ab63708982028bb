"""The storage interface, the same tests on a local folder and on a real S3-protocol server."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kap.core.errors import NotFound, ValidationFailed
from kap.core.settings import load_settings
from kap.core.storage import LocalStorage, S3Storage, Storage, build_storage
from tests.documents.conftest import S3_KEYS


class Pattern(io.RawIOBase):
    """A large stream generated on the fly, so the test itself holds no big buffer."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        data = bytes((self.left + i) % 251 for i in range(min(n, 4096))) * (n // 4096 + 1)
        data = data[:n]
        buffer[:n] = data
        self.digest.update(data)
        self.left -= n
        return n


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "storage", "artifacts")
        return
    url = request.getfixturevalue("s3_url")
    settings = load_settings(kap_s3_endpoint_url=url, **S3_KEYS)
    yield S3Storage(settings, f"t-{uuid.uuid4().hex[:12]}")


def test_put_open_size_exists_delete(storage: Storage) -> None:
    key = "artifacts/org/proj/a1/1"
    assert not storage.exists(key)
    assert storage.put(key, io.BytesIO(b"hello storage")) == 13
    assert storage.exists(key)
    assert storage.size(key) == 13
    with storage.open(key) as handle:
        assert handle.read() == b"hello storage"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting twice is fine


def test_list_by_prefix(storage: Storage) -> None:
    for key in ("backups/o1/p1/20260101.zip", "backups/o1/p1/20260102.zip", "backups/o1/p2/20260101.zip"):
        storage.put(key, io.BytesIO(b"x"))
    assert list(storage.list("backups/o1/p1/")) == ["backups/o1/p1/20260101.zip", "backups/o1/p1/20260102.zip"]
    assert len(list(storage.list("backups/"))) == 3
    assert list(storage.list("nothing/")) == []
    # A prefix that ends inside a folder's or a file's name matches as a string prefix.
    assert list(storage.list("backups/o1/p1/2026010")) == ["backups/o1/p1/20260101.zip", "backups/o1/p1/20260102.zip"]
    assert len(list(storage.list("backups/o1/p"))) == 3
    assert len(list(storage.list("back"))) == 3
    assert list(storage.list("backups/o1/p3/")) == []


def test_missing_key_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFound):
        storage.open("artifacts/none/1")
    with pytest.raises(NotFound):
        storage.size("artifacts/none/1")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "a//b", "a/../b", "", "a/b\x00c", "a/ b", "é/x"])
def test_unsafe_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValidationFailed):
        storage.put(key, io.BytesIO(b"x"))


def test_large_files_stream_through(storage: Storage) -> None:
    size = 24 * 1024 * 1024 + 7  # over the multipart threshold on S3
    source = Pattern(size)
    assert storage.put("artifacts/big/1", io.BufferedReader(source, 1024 * 1024)) == size
    digest = hashlib.sha256()
    total = 0
    with storage.open("artifacts/big/1") as handle:
        while piece := handle.read(1024 * 1024):
            digest.update(piece)
            total += len(piece)
    assert total == size
    assert digest.hexdigest() == source.digest.hexdigest()


def test_probe_reports_the_backend(storage: Storage) -> None:
    result = storage.probe()
    assert result["ok"] is True
    assert result["backend"] == storage.backend


def test_build_storage_follows_the_settings(tmp_path: Path, s3_url: str) -> None:
    local = build_storage(load_settings(kap_data_dir=tmp_path))
    assert local.artifacts.backend == "local"
    assert local.backups.bucket == "backups"
    remote = build_storage(load_settings(kap_data_dir=tmp_path, kap_s3_endpoint_url=s3_url,
                                         kap_s3_bucket_artifacts="a-" + uuid.uuid4().hex[:8], **S3_KEYS))
    assert remote.artifacts.backend == "s3"
    assert remote.probe()["ok"] is True


def test_readyz_includes_storage_and_jobs(client: object) -> None:
    body = client.get("/readyz").json()  # type: ignore[attr-defined]
    assert body["checks"]["storage"]["ok"] is True
    assert body["checks"]["jobs"]["ok"] is True
