"""The backup ZIP: written as a stream into storage, read as hostile input.

Writing never holds the archive in memory or on local disk: `zipfile` writes into a
bounded pipe that a second thread hands to `Storage.put` (a local file renamed into
place, or an S3 multipart upload). A failed write aborts the upload, so an earlier
backup under the same key stays intact.

Reading trusts nothing in the file: entry names must match the format exactly (and
are never used as paths), links, folders and encrypted entries are refused, sizes
and compression ratios are bounded before anything is read, and every entry's bytes
are counted and hashed while they stream, against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import shutil
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kap.core.errors import ValidationFailed
from kap.core.owner import owner_tag
from kap.core.storage import CHUNK, Storage

FORMAT = "kap-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENTRY_NAME = re.compile(r"^(manifest\.json|data/[a-z][a-z0-9_]{0,62}\.jsonl"
                        r"|artifacts/[0-9a-f]{32}/[A-Za-z0-9][A-Za-z0-9._-]{0,149})$")
_SAMPLE = 256 * 1024
_COMPRESSED_KINDS = {"docx", "xlsx", "pptx", "zip", "png", "jpg", "jpeg", "gif", "webp", "gz", "mp4", "mp3"}


class BackupInvalid(ValidationFailed):
    """The file is not a backup this server can trust."""

    code = "invalid_backup"


def check_owner(manifest: dict[str, Any], org_id: object, project_id: object) -> None:
    """Refuse a backup whose manifest names another org or project than the key it is stored under."""
    if manifest.get("org_id") != str(org_id) or manifest.get("project_id") != str(project_id):
        raise BackupInvalid("the backup belongs to another project", code="backup_wrong_project")


@dataclass(frozen=True)
class Limits:
    """Bounds on what a backup may declare and expand to."""

    max_entries: int = 200_000
    max_total: int = 256 * 2**30
    max_ratio: int = 500  # deflate tops out near 1032:1 (zeros); repetitive real text stays near 300
    ratio_floor: int = 2**20
    max_manifest: int = 64 * 2**20


def safe_name(name: str) -> str:
    """A file name made only of safe characters, for an entry under artifacts/<id>/."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:150]
    return cleaned if cleaned and cleaned[0].isalnum() else f"file{'_' + cleaned if cleaned else ''}"[:150]


# -- writing -------------------------------------------------------------------------------------------


class _Pipe:
    """A bounded queue of byte pieces: zipfile writes at one end, Storage.put reads at the other."""

    def __init__(self, depth: int = 8) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
        self._parts: list[bytes] = []
        self._buffered = 0
        self._pending = b""
        self._done = False
        self.reader_error: BaseException | None = None

    def _send(self, item: bytes | BaseException | None) -> None:
        while True:
            if self.reader_error is not None:
                raise OSError("the storage upload stopped") from self.reader_error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))  # no copy for bytes; zipfile hands over bytes
        self._buffered += len(data)
        if self._buffered >= CHUNK:
            self._flush_parts()
        return len(data)

    def _flush_parts(self) -> None:
        joined = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts, self._buffered = [], 0
        self._send(joined)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def finish(self) -> None:
        if self._parts:
            self._flush_parts()
        self._send(None)

    def abort(self, exc: BaseException) -> None:
        try:
            self._queue.put(exc, timeout=5)
        except queue.Full:
            pass

    def read(self, size: int = -1) -> bytes:
        parts, have = ([self._pending] if self._pending else []), len(self._pending)
        while not self._done and (size < 0 or have < size):
            item = self._queue.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                raise OSError("the backup was not completed") from item
            else:
                parts.append(item)
                have += len(item)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if 0 <= size < len(data):
            data, self._pending = data[:size], data[size:]
        else:
            self._pending = b""
        return data


@dataclass
class EntryRecord:
    sha256: str
    size: int
    kind: str


class BackupWriter:
    """Write entries of one backup ZIP straight into storage; `close()` adds the manifest."""

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.entries: dict[str, EntryRecord] = {}
        self.size = 0
        self._pipe = _Pipe()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._upload, name="backup-upload", daemon=True)
        self._thread.start()
        self._zip = zipfile.ZipFile(self._pipe, "w", allowZip64=True)

    def _upload(self) -> None:
        try:
            self.size = self.storage.put(self.key, self._pipe)  # type: ignore[arg-type]
        except BaseException as exc:
            self._error = exc
            self._pipe.reader_error = exc

    @contextmanager
    def entry(self, name: str, kind: str, *, compress: bool = True, large: bool = False) -> Iterator[IO[bytes]]:
        """An entry opened for writing; its sha256 and size are recorded as it is written."""
        if not ENTRY_NAME.match(name) or name in self.entries:
            raise ValueError(f"bad entry name {name!r}")
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o100644 << 16
        with self._zip.open(info, "w", force_zip64=large) as raw:
            hashing = _HashingWriter(raw)
            yield hashing  # type: ignore[misc]
        self.entries[name] = EntryRecord(hashing.digest.hexdigest(), hashing.size, kind)

    def add_stream(self, name: str, kind: str, source: IO[bytes], *, compress: bool | None = None,
                   size_hint: int = 0) -> None:
        """Copy a stream into an entry; already-compressed data is stored as is."""
        head = source.read(_SAMPLE)
        if compress is None:
            compress = worth_compressing(head)
        with self.entry(name, kind, compress=compress, large=size_hint >= 2**31 - 2**24) as out:
            out.write(head)
            while piece := source.read(CHUNK):
                out.write(piece)

    def close(self, manifest: dict[str, Any]) -> int:
        """Write the manifest, finish the ZIP and wait for storage; return the stored size."""
        body = json.dumps({**manifest, "entries": {n: vars(e) for n, e in self.entries.items()}},
                          indent=1, sort_keys=True).encode()
        info = zipfile.ZipInfo(MANIFEST, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o100644 << 16
        self._zip.writestr(info, body)
        self._zip.close()
        self._pipe.finish()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.size

    def abort(self, exc: BaseException) -> None:
        """Stop the upload; nothing is stored under the key."""
        self._pipe.abort(exc)
        self._thread.join(timeout=60)


def worth_compressing(sample: bytes) -> bool:
    """Deflate only data that shrinks: already-compressed files are stored."""
    if len(sample) < 512:
        return True
    return len(zlib.compress(sample, 1)) < 0.9 * len(sample)


class _HashingWriter:
    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


# -- reading -------------------------------------------------------------------------------------------


class BackupReader:
    """A backup opened for reading, its structure and manifest checked before any entry is read."""

    def __init__(self, fileobj: IO[bytes], limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        try:
            self._zip = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise BackupInvalid(f"not a readable backup ZIP ({_short(exc)})") from None
        self.infos = self._check_entries()
        self.manifest = self._read_manifest()

    def _check_entries(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > self.limits.max_entries:
            raise BackupInvalid(f"the backup has {len(infos)} entries; at most {self.limits.max_entries} are read",
                                code="backup_too_many_entries")
        found: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            _check_entry(info, self.limits)
            if info.filename in found:
                raise BackupInvalid(f"entry {info.filename!r} appears twice")
            found[info.filename] = info
            total += info.file_size
            if total > self.limits.max_total:
                raise BackupInvalid("the backup expands beyond the allowed total size", code="backup_too_large")
        if MANIFEST not in found:
            raise BackupInvalid("the backup has no manifest.json")
        return found

    def _read_manifest(self) -> dict[str, Any]:
        info = self.infos[MANIFEST]
        if info.file_size > self.limits.max_manifest:
            raise BackupInvalid("manifest.json is too large", code="backup_too_large")
        data = b"".join(self._raw_chunks(info))
        try:
            manifest = json.loads(data)
        except ValueError:
            raise BackupInvalid("manifest.json is not valid JSON") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BackupInvalid("manifest.json does not describe a Kap backup")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BackupInvalid(f"backup format version {manifest.get('format_version')!r} is not supported "
                                f"(this server reads version {FORMAT_VERSION})", code="backup_unsupported")
        self._check_listing(manifest)
        return manifest

    def _check_listing(self, manifest: dict[str, Any]) -> None:
        entries = manifest.get("entries")
        if not isinstance(entries, dict):
            raise BackupInvalid("manifest.json lists no entries")
        names = set(self.infos) - {MANIFEST}
        if set(entries) != names:
            extra = sorted(names - set(entries))[:3] or sorted(set(entries) - names)[:3]
            raise BackupInvalid(f"the backup's entries do not match its manifest (e.g. {extra})",
                                code="backup_tampered")
        for name, record in entries.items():
            ok = (isinstance(record, dict) and isinstance(record.get("sha256"), str)
                  and isinstance(record.get("size"), int) and record["size"] == self.infos[name].file_size)
            if not ok:
                raise BackupInvalid(f"entry {name!r} does not match its manifest record", code="backup_tampered")

    def names(self, prefix: str = "") -> list[str]:
        """Entry names (manifest aside), in archive order."""
        return [n for n in self.infos if n != MANIFEST and n.startswith(prefix)]

    def record(self, name: str) -> dict[str, Any]:
        """The manifest record of an entry."""
        record: dict[str, Any] = self.manifest["entries"][name]
        return record

    def _raw_chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        read = 0
        try:
            with self._zip.open(info) as handle:
                while piece := handle.read(CHUNK):
                    read += len(piece)
                    if read > info.file_size:
                        raise BackupInvalid(f"entry {info.filename!r} is larger than declared", code="backup_tampered")
                    yield piece
        except BackupInvalid:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise BackupInvalid(f"entry {info.filename!r} cannot be read: {_short(exc)}",
                                code="backup_tampered") from None
        if read != info.file_size:
            raise BackupInvalid(f"entry {info.filename!r} is truncated", code="backup_tampered")

    def chunks(self, name: str) -> Iterator[bytes]:
        """An entry's bytes in pieces; its sha256 is checked against the manifest at the end."""
        info = self.infos.get(name)
        if info is None or name == MANIFEST:
            raise KeyError(name)
        digest = hashlib.sha256()
        for piece in self._raw_chunks(info):
            digest.update(piece)
            yield piece
        if digest.hexdigest() != self.record(name)["sha256"]:
            raise BackupInvalid(f"entry {name!r} does not match its sha256: the backup was altered",
                                code="backup_tampered")

    def lines(self, name: str) -> Iterator[bytes]:
        """An entry's lines (for data/*.jsonl), verified like `chunks`."""
        rest = b""
        for piece in self.chunks(name):
            rest += piece
            *complete, rest = rest.split(b"\n")
            yield from (line for line in complete if line)
        if rest:
            yield rest

    def verify(self) -> dict[str, Any]:
        """Read every entry through its checks; return counts for a report."""
        total = 0
        for name in self.names():
            for piece in self.chunks(name):
                total += len(piece)
        return {"entries": len(self.names()), "bytes": total}

    def close(self) -> None:
        self._zip.close()


def _check_entry(info: zipfile.ZipInfo, limits: Limits) -> None:
    name = info.filename
    if not ENTRY_NAME.match(name):
        raise BackupInvalid(f"entry name {name[:120]!r} is not allowed in a backup", code="backup_unsafe_entry")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode) or info.is_dir():
        raise BackupInvalid(f"entry {name!r} is a link or a folder", code="backup_unsafe_entry")
    if info.flag_bits & 0x1:
        raise BackupInvalid(f"entry {name!r} is encrypted", code="backup_unsafe_entry")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BackupInvalid(f"entry {name!r} uses an unsupported compression", code="backup_unsafe_entry")
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise BackupInvalid(f"entry {name!r} expands {info.file_size // max(info.compress_size, 1)} times: "
                            "refused as a ZIP bomb", code="backup_too_large")


def _short(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:200]


@contextmanager
def open_backup(storage: Storage, key: str, spool_dir: Path, limits: Limits | None = None) -> Iterator[BackupReader]:
    """Open a stored backup for reading (S3 objects are spooled to a private temp file first)."""
    limits = limits or Limits()
    source = storage.open(key)
    spool: Path | None = None
    try:
        handle: IO[bytes] = source
        if not _seekable(source):
            spool_dir.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f"backup-{owner_tag()}-", dir=spool_dir))
            spool = folder / "backup.zip"
            with spool.open("wb") as out:
                copied = 0
                while piece := source.read(CHUNK):
                    copied += len(piece)
                    if copied > limits.max_total:
                        raise BackupInvalid("the backup is larger than allowed", code="backup_too_large")
                    out.write(piece)
            source.close()
            handle = spool.open("rb")
        reader = BackupReader(handle, limits)
        try:
            yield reader
        finally:
            reader.close()
            handle.close()
    finally:
        source.close()
        if spool is not None:
            shutil.rmtree(spool.parent, ignore_errors=True)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False
