"""Content hashes (SHA-256, hex) of files, folders' file lists and JSON values: what a stored
result or a manifest says it was made from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["file_digest", "json_digest", "listing_digest"]

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON value written with sorted keys (equal values, equal digests)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def listing_digest(root: str | Path, pattern: str = "**/*") -> tuple[str, int, int]:
    """SHA-256 of the relative names and sizes of the files under ``root`` matching ``pattern``
    (sorted; the contents are not read, so a large data set is hashed in seconds).

    Returns:
        (digest, number of files, total bytes).
    """
    root = Path(root)
    entries = sorted((path.relative_to(root).as_posix(), path.stat().st_size)
                     for path in root.glob(pattern) if path.is_file())
    return json_digest(entries), len(entries), sum(size for _, size in entries)
