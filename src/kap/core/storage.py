"""File storage behind one small interface: a local folder, or any S3-protocol service.

Keys are built by callers from ids only (never from user file names) and are
checked here again: plain segments of `[A-Za-z0-9._-]`, no `..`, no leading `/`.
Data moves as streams in fixed-size pieces, so a large file is never held in memory.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, cast

from kap.core.errors import NotFound, ValidationFailed
from kap.core.owner import owner_tag
from kap.core.settings import Settings

CHUNK = 1024 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_key(key: str) -> str:
    """Refuse any key that is not a plain relative path of safe segments."""
    parts = key.split("/")
    if not key or len(key) > 400 or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
        raise ValidationFailed("invalid storage key", code="invalid_storage_key")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key optionally ending in '/'."""
    if prefix:
        check_key(prefix.rstrip("/"))
    return prefix


class Storage(Protocol):
    """One bucket of files addressed by key."""

    backend: str
    bucket: str

    def put(self, key: str, stream: IO[bytes]) -> int:
        """Store the stream's bytes under `key`; return the size written."""

    def open(self, key: str) -> IO[bytes]:
        """A readable stream of the stored bytes (NotFound when absent); close it after use."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with `prefix`, in key order."""

    def delete(self, key: str) -> None:
        """Remove a key (no error if it is absent)."""

    def modified(self, key: str) -> datetime | None:
        """When the key was last written (None when absent)."""

    def exists(self, key: str) -> bool:
        """Whether `key` is stored."""

    def size(self, key: str) -> int:
        """The stored size in bytes (NotFound when absent)."""

    def probe(self) -> dict[str, Any]:
        """Readiness: the bucket is writable."""


class LocalStorage:
    """A bucket as a folder: `<data_dir>/storage/<bucket>/<key>`."""

    backend = "local"

    def __init__(self, root: Path, bucket: str) -> None:
        self.bucket = bucket
        self.root = (root / bucket).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents:
            raise ValidationFailed("invalid storage key", code="invalid_storage_key")
        return path

    def put(self, key: str, stream: IO[bytes]) -> int:
        """Write to a temporary file beside the target, then rename it into place."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".upload-{owner_tag()}-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while piece := stream.read(CHUNK):
                    out.write(piece)
                    size += len(piece)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound("stored file not found", code="file_missing") from None

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        # Walk only the folder the prefix names (one project's, not every project's files).
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not base.is_dir():
            return iter(())
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(".upload-"))
        return iter(sorted(k for k in keys if k.startswith(prefix)))

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        while folder != self.root and folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def modified(self, key: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(self._path(key).stat().st_mtime, tz=UTC)
        except FileNotFoundError:
            return None

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound("stored file not found", code="file_missing") from None

    def probe(self) -> dict[str, Any]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            usage = shutil.disk_usage(self.root)
            check = self.root / ".readyz"
            check.write_bytes(b"ok")
            check.unlink()
        except OSError as exc:
            return {"ok": False, "backend": self.backend, "bucket": self.bucket, "error": str(exc)}
        return {"ok": True, "backend": self.backend, "bucket": self.bucket, "free_mb": usage.free // 2**20}


class S3Storage:
    """A bucket on any S3-protocol service, through boto3 (multipart for large files)."""

    backend = "s3"

    def __init__(self, settings: Settings, bucket: str, client: Any | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = client or boto3.client(
            "s3", endpoint_url=settings.kap_s3_endpoint_url, region_name=settings.kap_s3_region,
            aws_access_key_id=settings.kap_s3_access_key_id,
            aws_secret_access_key=settings.kap_s3_secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                          s3={"addressing_style": "path"}))
        self._checked = False

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def ensure_bucket(self) -> None:
        """Create the bucket when the service does not have it yet."""
        if self._checked:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not self._missing(exc) and "NoSuchBucket" not in str(exc):
                raise
            self.client.create_bucket(Bucket=self.bucket)
        self._checked = True

    def put(self, key: str, stream: IO[bytes]) -> int:
        from boto3.s3.transfer import TransferConfig

        self.ensure_bucket()
        counter = _CountingReader(stream)
        self.client.upload_fileobj(cast(IO[bytes], counter), self.bucket, check_key(key),
                                   Config=TransferConfig(multipart_chunksize=8 * CHUNK, max_concurrency=4))
        return counter.count

    def open(self, key: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=check_key(key))["Body"]
        except ClientError as exc:
            if self._missing(exc) or "NoSuchBucket" in str(exc):
                raise NotFound("stored file not found", code="file_missing") from None
            raise
        return io.BufferedReader(_S3Body(body), CHUNK)

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        self.ensure_bucket()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def delete(self, key: str) -> None:
        self.ensure_bucket()
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        self.ensure_bucket()
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=check_key(key)))
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def modified(self, key: str) -> datetime | None:
        head = self._head(key)
        return None if head is None else head["LastModified"]

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise NotFound("stored file not found", code="file_missing")
        return int(head["ContentLength"])

    def probe(self) -> dict[str, Any]:
        try:
            self.ensure_bucket()
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            return {"ok": False, "backend": self.backend, "bucket": self.bucket, "error": exc.__class__.__name__}
        return {"ok": True, "backend": self.backend, "bucket": self.bucket}


class _CountingReader:
    """Wraps a stream and counts the bytes read through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data


class _S3Body(io.RawIOBase):
    """A raw readable file over a botocore StreamingBody."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class Storages:
    """The buckets one process uses."""

    def __init__(self, artifacts: Storage, backups: Storage) -> None:
        self.artifacts = artifacts
        self.backups = backups

    def probe(self) -> dict[str, Any]:
        """Readiness of every bucket."""
        checks = {"artifacts": self.artifacts.probe(), "backups": self.backups.probe()}
        return {"ok": all(c["ok"] for c in checks.values()), "backend": self.artifacts.backend, **checks}


def build_storage(settings: Settings) -> Storages:
    """Local folders by default; S3 when KAP_S3_ENDPOINT_URL is set."""
    if settings.kap_s3_endpoint_url:
        return Storages(S3Storage(settings, settings.kap_s3_bucket_artifacts),
                        S3Storage(settings, settings.kap_s3_bucket_backups))
    root = settings.kap_data_dir.resolve() / "storage"
    return Storages(LocalStorage(root, settings.kap_s3_bucket_artifacts),
                    LocalStorage(root, settings.kap_s3_bucket_backups))


def copy_stream(source: IO[bytes], target: IO[bytes]) -> int:
    """Copy in fixed-size pieces; return the byte count."""
    total = 0
    while piece := source.read(CHUNK):
        target.write(piece)
        total += len(piece)
    return total
