"""One function over a stream of calls in CPU worker processes, the results back in call order.

The evaluation measures each scored test volume (connected components, lesion matching, ranking
scores: numpy and scipy on the CPU) in worker processes while the model scores the next volumes;
the engine then adds the results up in split order, so they equal those computed in one process.
Workers are spawned (a fork could copy a CUDA context) and, on Linux, end when the process that
started them ends, however it ends (killed, or a rank of a sharded evaluation stopped); with 0
workers every call runs here.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, Generic, TypeVar

from brainuad.checks import check_int
from brainuad.errors import BrainUADError

__all__ = ["OrderedPool"]

Tag = TypeVar("Tag")
Result = TypeVar("Result")
_PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent ends (Linux)


def _end_with_parent() -> None:
    """Worker initialiser: on Linux, have the kernel send this worker SIGTERM when its parent ends,
    so a parent that is killed (and never leaves its ``with`` block) leaves no idle worker behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class OrderedPool(Generic[Result]):
    """Calls ``function`` in ``workers`` spawned processes (0: in this one), at most
    ``2 * workers`` calls in flight, so memory holds a bounded number of arguments.

    Use as a context manager: leaving it, even by an error, stops the workers.

    Args:
        function: a module-level function (picklable), called with each call's arguments.
        workers: worker processes (0: call in this process).
    """

    def __init__(self, function: Callable[..., Result], workers: int) -> None:
        self.function = function
        self.workers = check_int("workers", workers, 0)
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> OrderedPool[Result]:
        if self.workers:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_end_with_parent)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def map(self, calls: Iterable[tuple[Tag, tuple[Any, ...]]]) -> Iterator[tuple[Tag, Result]]:
        """``(tag, function(*arguments))`` for each ``(tag, arguments)`` of ``calls``, in order; the
        tag stays in this process (what the caller needs beside the result). A call's error is
        raised here, with its own type.

        Raises:
            BrainUADError: a worker ended abruptly (killed, out of memory, or a script without an
                ``if __name__ == "__main__":`` guard, which each spawned worker runs again).
        """
        if self._executor is None:
            for tag, arguments in calls:
                yield tag, self.function(*arguments)
            return
        pending: deque[tuple[Tag, Future[Result]]] = deque()
        try:
            for tag, arguments in calls:
                pending.append((tag, self._executor.submit(self.function, *arguments)))
                if len(pending) >= 2 * self.workers:
                    done_tag, future = pending.popleft()
                    yield done_tag, future.result()
            while pending:
                done_tag, future = pending.popleft()
                yield done_tag, future.result()
        except BrokenProcessPool as error:
            raise BrainUADError(f"a worker process of --workers {self.workers} ended abruptly ({error}); it may "
                                "have run out of memory, been killed, or, in a script, re-run work that is not "
                                "guarded by 'if __name__ == \"__main__\":' (or use --workers 0)") from None
