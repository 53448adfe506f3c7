"""Cores and torch threads: the affinity's core count, and a block run with a set thread count."""

from __future__ import annotations

import os

import pytest
import torch

from brainuad.cores import torch_threads, usable_cores


def test_usable_cores_is_the_affinity() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_torch_threads_sets_the_count_in_the_block_and_restores_it() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(before + 1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("count", [0, -1, 1.0, True, None])
def test_torch_threads_refuses_a_count_that_is_not_a_positive_integer(count: object) -> None:
    with pytest.raises(ValueError, match="count must be a positive integer"):
        with torch_threads(count):  # type: ignore[arg-type]
            pass
