"""Small helpers shared by tests (importable because pytest puts tests/ on the path)."""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def replace_file(path: Path, data: bytes) -> None:
    """Give ``path`` new contents without touching the inode it may share with the session cohort."""
    path.unlink()
    path.write_bytes(data)


def shared_folder(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A read-only folder built once per test session, also when pytest-xdist runs several workers:
    the first worker to get here builds it under the session's common temporary folder (holding a
    file lock), the others wait and reuse it. ``build(folder)`` fills the (existing, empty) folder."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' folders lie in one folder per session
    folder, done = base / name, base / f"{name}.done"
    with FileLock(str(base / f"{name}.lock")):
        if not done.is_file():
            if folder.exists():
                shutil.rmtree(folder)  # an earlier worker failed half way
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 300.0) -> None:
    """Start ``command``; SIGKILL it as soon as ``ready()`` is true (it must not have finished)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    try:
        while not ready():
            assert process.poll() is None, "the command finished before it could be killed"
            assert time.monotonic() - started < timeout, "the command never reached the kill point"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL


def exit_abruptly(code: int) -> None:
    """End this process at once with ``code``, skipping all clean-up (a worker that dies)."""
    os._exit(code)


def sleep_and_report(pid_file: str, seconds: float) -> None:
    """Write this process's pid to ``pid_file``, then sleep (a worker busy when its parent dies)."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)


def slow_power(base: int, exponent: int) -> tuple[int, int]:
    """``base ** exponent`` and the process that computed it; the first calls are the slowest, a
    negative base an error (for pools of spawned workers, which import it from here)."""
    import os
    import time

    time.sleep(0.05 * max(0, 4 - base))
    if base < 0:
        raise ValueError(f"negative base {base}")
    return base**exponent, os.getpid()
