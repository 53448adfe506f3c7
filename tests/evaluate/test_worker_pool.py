"""The ordered worker pool of the evaluation: results in call order, errors with their own type."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import exit_abruptly, slow_power

from brainuad.errors import BrainUADError
from brainuad.evaluate.worker_pool import OrderedPool

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_results_come_back_in_call_order_with_their_tags(workers):
    calls = ((f"call {base}", (base, 2)) for base in range(9))
    with OrderedPool(slow_power, workers) as pool:
        results = list(pool.map(calls))
    assert [tag for tag, _ in results] == [f"call {base}" for base in range(9)]
    assert [value for _, (value, _) in results] == [base**2 for base in range(9)]
    processes = {pid for _, (_, pid) in results}
    assert processes == {os.getpid()} if workers == 0 else os.getpid() not in processes


def test_an_error_in_a_worker_is_raised_with_its_type_and_stops_the_pool():
    with pytest.raises(ValueError, match="negative base -1"):
        with OrderedPool(slow_power, 1) as pool:
            list(pool.map([("a", (2, 2)), ("b", (-1, 2)), ("c", (3, 2))]))
    with pytest.raises(ValueError, match="workers"):
        OrderedPool(slow_power, -1)


def test_a_worker_that_dies_is_reported_clearly():
    with pytest.raises(BrainUADError, match="ended abruptly.*--workers 0"):
        with OrderedPool(exit_abruptly, 1) as pool:
            list(pool.map([("a", (3,))]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_end_when_their_parent_is_killed(tmp_path):
    pid_file = tmp_path / "worker.pid"
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
              "from helpers import sleep_and_report\n"
              "from brainuad.evaluate.worker_pool import OrderedPool\n"
              "if __name__ == '__main__':\n"
              "    with OrderedPool(sleep_and_report, 1) as pool:\n"
              f"        list(pool.map([('a', ({str(pid_file)!r}, 600))]))\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.is_file(), "the worker never started"
        time.sleep(0.2)  # the pid is written before its file is closed
        worker = int(pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived its killed parent"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has ended
