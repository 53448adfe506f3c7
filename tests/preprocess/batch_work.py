"""A job function for the batch tests, in a module worker processes can import (``preprocess.batch_work``
with tests/ on the path): the test modules themselves are not importable in a child process."""

import os
from pathlib import Path

from brainuad.errors import InputError


def work(job: tuple[str, str]) -> None:
    """Write ``done.txt`` in the job's folder, or fail the way ``job[1]`` says."""
    folder, behaviour = job
    if behaviour == "input-error":
        raise InputError(Path(folder) / "scan.nii.gz", "cannot be read (truncated)")
    if behaviour == "bug":
        raise KeyError("surprise")
    if behaviour == "crash":
        os._exit(7)
    Path(folder, "done.txt").write_text("ok")
