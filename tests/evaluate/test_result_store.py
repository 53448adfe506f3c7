"""Stored results: read back only for the same key, type and format; a damaged file is an error
that names it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from brainuad.errors import InputError
from brainuad.evaluate.result_store import load_result, save_result
from brainuad.evaluate.statistics import mean_std


@dataclass(frozen=True)
class _Part:
    label: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class _Result:
    name: str
    count: int
    score: float
    missing: float | None
    flag: bool
    parts: tuple[_Part, ...]
    array: np.ndarray


@dataclass(frozen=True)
class _Other:
    name: str


def _result() -> _Result:
    return _Result("run", 3, 0.25, None, True, (_Part("a", (1.0, 2.5)), _Part("b", ())),
                   np.arange(6, dtype=np.float32).reshape(2, 3))


def test_round_trip_keeps_every_field(tmp_path):
    path = save_result(tmp_path / "r.json", _result(), {"config": {"lr": 1e-3}, "data": "abc"})
    loaded = load_result(path, _Result, {"data": "abc", "config": {"lr": 1e-3}})
    assert loaded is not None
    assert (loaded.name, loaded.count, loaded.score, loaded.missing, loaded.flag) == ("run", 3, 0.25, None, True)
    assert loaded.parts == (_Part("a", (1.0, 2.5)), _Part("b", ()))
    np.testing.assert_array_equal(loaded.array, _result().array)
    assert loaded.array.dtype == np.float32


def test_another_key_or_type_reads_nothing(tmp_path):
    path = save_result(tmp_path / "r.json", _result(), {"data": "abc"})
    assert load_result(path, _Result, {"data": "abd"}) is None
    assert load_result(path, _Other, {"data": "abc"}) is None
    assert load_result(tmp_path / "absent.json", _Result, {"data": "abc"}) is None


def test_a_damaged_file_is_named(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="r.json"):
        load_result(path, _Result, {})


def test_only_dataclasses_are_stored(tmp_path):
    with pytest.raises(ValueError, match="dataclass"):
        save_result(tmp_path / "r.json", {"a": 1}, {})


def test_mean_std_values_survive(tmp_path):
    @dataclass(frozen=True)
    class WithStats:
        value: type(mean_std([1.0]))  # type: ignore[valid-type]

    stats = mean_std([1.0, 2.0, float("nan")])
    path = save_result(tmp_path / "s.json", WithStats(stats), {})
    loaded = load_result(path, WithStats, {})
    assert loaded is not None and loaded.value.n == 2 and loaded.value.n_excluded == 1
    assert loaded.value.mean == pytest.approx(1.5)


def test_a_type_that_gained_a_field_is_evaluated_again(tmp_path):
    @dataclass(frozen=True)
    class Before:
        name: str

    path = save_result(tmp_path / "r.json", Before("x"), {})

    @dataclass(frozen=True)
    class Before:  # noqa: F811  (the same type name, one field more: a newer version)
        name: str
        count: int

    assert load_result(path, Before, {}) is None
