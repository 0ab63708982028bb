"""Which process owns a leftover: the tag work folders, partial files and claims carry."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path

_TAG = re.compile(r"(?P<host>[0-9a-f]{8})x(?P<pid>\d+)")


def _host_hash() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def owner_tag() -> str:
    """This process, as leftovers name it: `<host hash>x<pid>`."""
    return f"{_host_hash()}x{os.getpid()}"


def owner_state(name: str | None) -> str:
    """'alive', 'dead' or 'unknown' for the owner a name or claim carries."""
    found = _TAG.search(name or "")
    if found is None or found["host"] != _host_hash():
        return "unknown"
    pid = int(found["pid"])
    if pid == os.getpid():
        return "alive"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "dead"
    return "dead" if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X") else "alive"
