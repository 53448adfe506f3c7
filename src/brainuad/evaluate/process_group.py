"""Several processes evaluating together, on one machine: this process is rank 0, the others are
started for the evaluation and run the same jobs.

A job is a picklable callable ``job(device, shard, progress)``; every process runs every job in
the same order, each on its own device, and the :class:`~brainuad.evaluate.stream.Shard` makes
the volumes of each split shared out between them and every scored volume reach every process.
Rank 0 keeps the results (and shows progress); the others' are dropped. Collectives use NCCL
between GPUs and gloo between CPU processes.
"""

from __future__ import annotations

import datetime
import queue
import socket
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from brainuad.cores import usable_cores
from brainuad.errors import BrainUADError
from brainuad.evaluate.inference import Inference
from brainuad.evaluate.stream import Shard

__all__ = ["EvaluationGroup"]

_Result = TypeVar("_Result")

_TIMEOUT = datetime.timedelta(minutes=30)
"""How long a collective waits for a silent process before failing."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _backend(inference: Inference) -> str:
    return "nccl" if torch.device(inference.device).type == "cuda" else "gloo"


def _threads(inference: Inference) -> int:
    """Torch threads per CPU process: the cores shared out (GPU processes keep one thread each)."""
    if torch.device(inference.device).type == "cuda":
        return 1
    return max(1, usable_cores() // inference.devices)


def _serve(rank: int, inference: Inference, address: str, jobs: Any, errors: Any, ready: Any) -> None:
    """A started process: say it is ready, join the group, run each job from ``jobs`` until None, then leave."""
    try:
        torch.set_num_threads(_threads(inference))
        device = inference.device_of(rank)
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
        ready.put(rank)
        dist.init_process_group(_backend(inference), init_method=address, rank=rank, world_size=inference.devices,
                                timeout=_TIMEOUT)
        shard = Shard(rank, inference.devices)
        while (job := jobs.get()) is not None:
            job(device, shard, False)
        dist.barrier()  # rank 0 is done too
        dist.destroy_process_group()
    except BaseException as error:  # noqa: BLE001 -- told to rank 0, which raises it
        errors.put(f"process {rank}: {type(error).__name__}: {error}\n{traceback.format_exc()}")
        raise SystemExit(1) from None


class EvaluationGroup:
    """Runs jobs in ``inference.devices`` processes (a context manager; one: just calls them).

    Usage::

        with EvaluationGroup(inference) as group:
            result = group.run(job)
    """

    def __init__(self, inference: Inference) -> None:
        self.inference = inference
        self._processes: list[Any] = []
        self._jobs: list[Any] = []
        self._errors: Any = None
        self._threads = torch.get_num_threads()

    def __enter__(self) -> "EvaluationGroup":
        world = self.inference.devices
        if world == 1:
            return self
        context = mp.get_context("spawn")
        address = f"tcp://127.0.0.1:{_free_port()}"
        self._errors = context.Queue()
        ready = context.Queue()
        for rank in range(1, world):
            jobs = context.Queue()
            process = context.Process(target=_serve, args=(rank, self.inference, address, jobs, self._errors, ready),
                                      daemon=False)  # it may start DataLoader workers of its own
            process.start()
            self._jobs.append(jobs)
            self._processes.append(process)
        self._wait_until_ready(ready, world - 1)
        torch.set_num_threads(_threads(self.inference))
        device = self.inference.device_of(0)
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
        try:
            dist.init_process_group(_backend(self.inference), init_method=address, rank=0, world_size=world,
                                    timeout=_TIMEOUT)
        except BaseException:
            self._stop(wait=0)
            raise
        return self

    def _wait_until_ready(self, ready: Any, count: int) -> None:
        """Wait for ``count`` started processes to be ready to join; raise if one ends first
        (e.g. a script without an ``if __name__ == "__main__":`` guard, which spawning runs again)."""
        waiting = count
        while waiting:
            try:
                ready.get(timeout=1)
                waiting -= 1
            except queue.Empty:
                ended = [process for process in self._processes if not process.is_alive()]
                if ended:
                    message = self._first_error() or f"exit code {ended[0].exitcode}"
                    self._stop(wait=0)
                    raise BrainUADError(f"a process of the sharded evaluation ended before it started: {message} "
                                        "(a script that evaluates with several devices must guard its work with "
                                        "'if __name__ == \"__main__\":')") from None

    def run(self, job: Callable[[str, Shard | None, bool], _Result], progress: bool = True) -> _Result:
        """Run ``job`` in every process; rank 0's result (``progress``: rank 0 shows progress bars)."""
        for jobs in self._jobs:
            jobs.put(job)
        shard = Shard(0, self.inference.devices) if self.inference.devices > 1 else None  # never a group of others
        try:
            return job(self.inference.device_of(0), shard, progress)
        except Exception as error:
            message = self._first_error()
            if message is None:
                raise
            raise BrainUADError(f"a process of the sharded evaluation failed: {message}") from error

    def _first_error(self) -> str | None:
        if self._errors is None:
            return None
        try:
            return str(self._errors.get(timeout=5))
        except queue.Empty:
            return None

    def _stop(self, wait: float, barrier: bool = False) -> None:
        """Tell the started processes to finish (meeting them at a barrier when ``barrier``), give
        them ``wait`` seconds, then end them; this process gets its thread count back."""
        for jobs in self._jobs:
            jobs.put(None)
        if barrier:
            dist.barrier()
        for process in self._processes:
            process.join(timeout=wait)
            if process.is_alive():
                process.terminate()
                process.join()
        torch.set_num_threads(self._threads)

    def __exit__(self, *exc_info: object) -> None:
        if self.inference.devices == 1:
            return
        failed = exc_info[0] is not None
        self._stop(wait=5 if failed else 60, barrier=not failed)  # after a failure they may wait in a collective
        if dist.is_initialized():
            dist.destroy_process_group()
        if not failed and any(process.exitcode != 0 for process in self._processes):
            raise BrainUADError(f"a process of the sharded evaluation failed: {self._first_error()}")
