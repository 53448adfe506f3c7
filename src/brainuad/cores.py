"""The CPU cores this process may run on: its affinity (what SLURM, taskset or a container grant
it) where the system reports one, else the machine's count. Thread counts are shared out from it."""

from __future__ import annotations

import os

__all__ = ["usable_cores"]


def usable_cores() -> int:
    """The cores this process may use (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
