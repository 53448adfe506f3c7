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


def stream_a_shard_where_rank_1_fails(rank: int, world: int, init_file: str, outcomes) -> None:
    """One rank of a gloo group streaming volumes s0..s3 (two per batch and rank); rank 1's scorer
    raises on s3. Puts ``(rank, error type, message)`` in ``outcomes`` (for spawned processes)."""
    import numpy as np
    import torch.distributed as dist

    from brainuad.data.grid import GridVolume
    from brainuad.data.layout import Subject
    from brainuad.evaluate.scoring import ScoredVolume, VolumeScorer
    from brainuad.evaluate.stream import Shard, scored_volumes

    class Scorer(VolumeScorer):
        volumes_per_batch = 2

        def _score_many(self, volumes):
            if rank == 1 and any(volume.name == "s3" for volume in volumes):
                raise FloatingPointError("residual of s3 is not finite")
            return [ScoredVolume(volume.image.copy(), None) for volume in volumes]

    def load(subject):
        return GridVolume(np.full((2, 2, 2), 1.0, np.float32), np.ones((2, 2, 2), bool), None, subject.name, None)

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    subjects = [Subject(f"s{i}", Path(f"s{i}.nii.gz"), Path(f"s{i}_mask.nii.gz"), None, 0) for i in range(4)]
    try:
        list(scored_volumes(Scorer(), subjects, load, workers=0, shard=Shard(rank, world)))
        outcomes.put((rank, None, ""))
    except Exception as error:  # noqa: BLE001 -- reported to the test
        outcomes.put((rank, type(error).__name__, str(error)))
    finally:
        dist.destroy_process_group()


def small_conditioned_unet(context_dim: int = 16):
    """A small UNet with a context of ``context_dim``, its zero-initialised layers drawn (seed 0) so
    that the context changes its output (a trained network's does)."""
    import torch

    from brainuad.nn.unet import UNet

    torch.manual_seed(0)
    unet = UNet(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_head_channels=8, groups=4,
                context_dim=context_dim)
    with torch.no_grad():
        for parameter in unet.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.1)
    return unet
