"""Writing synthetic subjects in this process or in a pool of worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import TypeVar

from brainuad.data.synth.template import reference_anatomy

__all__ = ["map_subjects"]

_Task = TypeVar("_Task")
_Result = TypeVar("_Result")


def map_subjects(write: Callable[[_Task], _Result], tasks: Sequence[_Task], workers: int, *, progress: bool,
                 description: str) -> list[_Result]:
    """``write`` applied to every task: in this process (``workers`` 1) or in a pool of ``workers``
    processes (forked where the platform allows, in completion order).

    The reference anatomy is built first, so forked workers inherit it instead of each building
    its own.
    """
    from tqdm import tqdm

    def bar() -> tqdm:
        return tqdm(total=len(tasks), desc=description, unit="subject", disable=not progress)

    reference_anatomy()
    results = []
    if workers == 1:
        with bar() as counter:
            for task in tasks:
                results.append(write(task))
                counter.update()
        return results
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(workers) as pool, bar() as counter:  # the pool forks before tqdm starts a thread
        for result in pool.imap_unordered(write, tasks):
            results.append(result)
            counter.update()
    return results
