"""Atomic file writes: every file brainuad writes goes through here.

A file is written under a temporary name in its own folder and renamed onto its final name only
once it is complete, so a reader (or a run resumed after a crash) sees the old file or the new
one, never half of one. A write that fails, or is interrupted, removes its temporary file.

The temporary file is created with mode ``0o666`` less the process umask, the permissions any
ordinary ``open(path, "w")`` gives (``tempfile.mkstemp`` would make it ``0o600``, unreadable to
the group a lab shares its results with); writers that take a file name (nibabel, safetensors,
matplotlib, numpy) write to it, and its mode is set back to that before the rename, since some of
them (safetensors) replace the file with a ``0o600`` one of their own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_bytes", "write_text"]

TEMPORARY_PREFIX = ".tmp-"
"""Temporary files start with this (a crash can leave one only if the process is killed)."""


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed onto ``path`` when the block succeeds.

    Args:
        path: the final file; its folder is created if needed.
        suffix: the temporary file's suffix (default the final name's suffixes, e.g. ``.nii.gz``,
            which writers that choose a format by extension need).

    Yields:
        the temporary path, an empty file with the umask's permissions.

    Raises:
        whatever the block raises (the temporary file is removed first).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    while True:
        temporary = path.parent / f"{TEMPORARY_PREFIX}{path.name}-{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    mode = temporary.stat().st_mode & 0o7777  # 0o666 less the umask, as the kernel applied it
    try:
        yield temporary
        os.chmod(temporary, mode)  # writers that replace the file (safetensors) make it 0o600
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically, newlines as given; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
    return path
