"""The ordered worker pool of the evaluation: results in call order, errors with their own type."""

import os

import pytest
from helpers import slow_power

from brainuad.evaluate.worker_pool import OrderedPool


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
