"""CPU cores and torch threads: the cores this process may run on (its affinity: what SLURM, taskset
or a container grant it, else the machine's count), from which thread counts are shared out, and
a block run with a given number of torch intra-op threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from brainuad.checks import check_int

__all__ = ["torch_threads", "usable_cores"]


def usable_cores() -> int:
    """The cores this process may use (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` (>= 1) torch intra-op threads, then restore the previous count
    (also when the block raises).

    For work made of many small CPU operations: each multi-threaded operation ends at a barrier
    where all its threads wait for the slowest, and when other processes hold the cores a waiting
    thread is off the CPU for a scheduler time slice; one thread has no barrier to miss.
    """
    check_int("count", count)
    previous = torch.get_num_threads()
    if previous == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
