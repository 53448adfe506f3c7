"""Robust batch processing: many independent jobs (subjects) in parallel processes.

* Each job runs in a process of its own, at most ``workers`` at a time, so a crash, a hang killed
  by the user or an out-of-memory kill of one subject never takes the others down: the job is
  reported as failed with its reason (the exception's message, or how its process died) and the
  batch goes on.
* A job whose outputs already exist (``is_done``) is skipped, so re-running a batch resumes it.
* Results are logged one line per job as they arrive (with the traceback of a failure) and
  summarised at the end (:class:`BatchSummary`); a progress bar shows the jobs done.

Processes come from a fork server where the platform has one (clean, thread-free copies of a
small parent, so libraries that start threads, like torch and SimpleITK, are safe in them), else
they are spawned. Each gets ``usable_cores() // workers`` threads for BLAS, OpenMP, torch and SimpleITK.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Callable, Generic, Sequence, TextIO, TypeVar

from brainuad.checks import check_int
from brainuad.cores import usable_cores
from brainuad.errors import BrainUADError

Job = TypeVar("Job")
_PRELOAD = ["numpy", "scipy.ndimage", "SimpleITK", "nibabel", "brainuad.preprocess.pipeline"]


@dataclass(frozen=True)
class JobResult:
    """The outcome of one job: ``done``, ``skipped`` or ``failed`` (with ``reason``), and its seconds."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""


@dataclass
class BatchSummary:
    """Every job's result, in the order they finished."""

    results: list[JobResult] = field(default_factory=list)

    def names(self, status: str) -> list[str]:
        """Names of the jobs with ``status`` (done, skipped, failed)."""
        return [result.name for result in self.results if result.status == status]

    @property
    def failed(self) -> list[JobResult]:
        return [result for result in self.results if result.status == "failed"]


@dataclass(frozen=True)
class NamedJob(Generic[Job]):
    """A job with the name it is reported under."""

    name: str
    job: Job


def run_jobs(jobs: Sequence[NamedJob[Job]], work: Callable[[Job], None], *, workers: int = 1,
             is_done: Callable[[Job], bool] | None = None, log: Path | None = None,
             progress: bool = True, description: str = "subjects") -> BatchSummary:
    """Run ``work(job)`` for every job in its own process, ``workers`` at a time.

    Args:
        jobs: the jobs; names must be unique.
        work: a module-level function (it is called in another process) that does one job and
            raises on failure.
        workers: processes at a time (>= 1).
        is_done: job -> True when its outputs already exist (it is then skipped); None: never.
        log: a text file the results are appended to (with tracebacks of failures), or None.
        progress: show a progress bar on stderr.
        description: what the jobs are, for the progress bar.

    Returns:
        The :class:`BatchSummary`.
    """
    from tqdm import tqdm

    check_int("run_jobs: workers", workers)
    names = [named.name for named in jobs]
    if len(set(names)) != len(names):
        raise ValueError("run_jobs: job names must be unique")
    summary = BatchSummary()
    pending = []
    for named in jobs:
        if is_done is not None and is_done(named.job):
            summary.results.append(JobResult(named.name, "skipped"))
        else:
            pending.append(named)
    threads = max(1, usable_cores() // workers)
    context = _context()
    running: dict[int, tuple[NamedJob, BaseProcess, Connection, float]] = {}
    with _Log(log) as journal, tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=description,
                                     unit="subject", disable=not progress) as bar:
        for result in summary.results:
            journal.write(result, "")
        try:
            while pending or running:
                while pending and len(running) < workers:
                    named = pending.pop(0)
                    receiver, sender = context.Pipe(duplex=False)
                    process = context.Process(target=_child, args=(work, named.job, sender, threads),
                                              name=f"brainuad-{named.name}", daemon=True)
                    process.start()
                    sender.close()
                    running[process.sentinel] = (named, process, receiver, time.perf_counter())
                for sentinel in wait(list(running)):
                    # wait() returns some of the sentinels it was given, but typeshed types it as any waitable
                    named, process, receiver, started = running.pop(sentinel)  # type: ignore[arg-type]
                    result, details = _collect(named.name, process, receiver, time.perf_counter() - started)
                    summary.results.append(result)
                    journal.write(result, details)
                    bar.update()
                    bar.set_postfix(failed=len(summary.failed), refresh=False)
        finally:
            for _, process, _, _ in running.values():
                process.terminate()
                process.join()
    return summary


def _context():
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)  # imported once in the server, not in every child
    return context


def _child(work: Callable, job, sender, threads: int) -> None:
    """Run one job in a child process and send (status, reason, details) back."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    try:
        import SimpleITK as sitk
        from threadpoolctl import threadpool_limits

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        with threadpool_limits(limits=threads):
            work(job)
        message = ("done", "", "")
    except BrainUADError as error:
        message = ("failed", str(error), traceback.format_exc())
    except Exception as error:  # any other failure of one subject must not stop the batch
        where = traceback.extract_tb(error.__traceback__)[-1]
        message = ("failed", f"{type(error).__name__}: {error} (at {Path(where.filename).name}:{where.lineno})",
                   traceback.format_exc())
    sender.send(message)
    sender.close()


def _collect(name: str, process, receiver, seconds: float) -> tuple[JobResult, str]:
    """The result of a finished child process."""
    try:
        message = receiver.recv() if receiver.poll() else None
    except EOFError:  # the child died before it could answer
        message = None
    process.join()
    receiver.close()
    if message is None:
        code = process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        hint = " (signal 9: often out of memory)" if code == -9 else ""
        return JobResult(name, "failed", seconds, f"its worker process died ({how}){hint}"), ""
    status, reason, details = message
    return JobResult(name, status, seconds, reason), details


class _Log:
    """Appends one line per result (and failure tracebacks) to a file, if one is given."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.stream: TextIO | None = None

    def __enter__(self) -> "_Log":
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(self.path, "a", encoding="utf-8")
            self.stream.write(f"# batch started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return self

    def write(self, result: JobResult, details: str) -> None:
        if self.stream is None:
            return
        line = f"{result.status} {result.name}"
        if result.status != "skipped":
            line += f" ({result.seconds:.1f} s)"
        if result.reason:
            line += f": {result.reason}"
        self.stream.write(line + "\n")
        if details:
            self.stream.write("".join(f"    {row}\n" for row in details.rstrip().splitlines()))
        self.stream.flush()

    def __exit__(self, *exc) -> None:
        if self.stream is not None:
            self.stream.close()
