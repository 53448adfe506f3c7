"""One writer per output folder: a lock that two brainuad processes cannot both hold.

``train`` (its run directory), ``evaluate`` (its output folder and the run directories it writes
thresholds into), ``prepare`` (the data directory), ``predict`` (its output folder), ``synth``
and ``demo`` (their folders) hold :class:`FolderLock` while they write. A second process that
asks for the same folder is refused at once with a message naming the holder, instead of
interleaving its files with the first one's.

The lock is an advisory ``flock`` on ``FOLDER/.brainuad.lock`` (which records the holder). The
holder removes the file when it is done; the kernel releases the lock when the holder exits, even
when it is killed (``kill -9``), so a crashed run never leaves a stale lock: the file it leaves
behind is locked afresh by the next process.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from brainuad.errors import InputError

LOCK_FILE = ".brainuad.lock"


class FolderLock:
    """Exclusive use of an output folder while a brainuad step writes into it.

    Args:
        folder: the folder (created if needed).
        purpose: what the holder does there, in a few words (shown to a process that is refused).

    Raises (on entering):
        InputError: another process holds the folder's lock.
    """

    def __init__(self, folder: str | Path, purpose: str) -> None:
        self.folder = Path(folder)
        self.purpose = purpose
        self._fd: int | None = None

    def __enter__(self) -> "FolderLock":
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(self.folder, "exists and is not a folder", "choose another output folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(os.read(fd, 4096))
                os.close(fd)
                raise InputError(self.folder, f"another brainuad process is writing here ({holder})",
                                 "wait for it to finish, or choose another output folder") from None
            try:  # the holder before us may have removed the file between our open and our lock
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        record = {"pid": os.getpid(), "purpose": self.purpose, "command": " ".join(sys.argv),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            (self.folder / LOCK_FILE).unlink(missing_ok=True)  # removed while still held: see __enter__
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _describe(content: bytes) -> str:
    """The holder recorded in a lock file, in words."""
    try:
        record = json.loads(content.decode())
        return f"pid {record['pid']}, {record['purpose']}, since {record['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
