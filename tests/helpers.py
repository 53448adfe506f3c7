"""Small helpers shared by tests (importable because pytest puts tests/ on the path)."""

from pathlib import Path


def replace_file(path: Path, data: bytes) -> None:
    """Give ``path`` new contents without touching the inode it may share with the session cohort."""
    path.unlink()
    path.write_bytes(data)
