"""Unit tests of brainuad.checks, the shared argument checks."""

import math

import numpy as np
import pytest

from brainuad.checks import check_fraction, check_int, check_number, check_optional_int


class IntLike(int):
    pass


@pytest.mark.parametrize("value", [1, 2, 10**20, IntLike(3)])
def test_check_int_returns_the_value(value):
    assert check_int("n", value) is value


@pytest.mark.parametrize("value", [0, -1, True, False, 1.0, 2.5, "3", None, np.int64(3), np.int32(1)])
def test_check_int_refuses_non_positive_bools_floats_and_numpy(value):
    with pytest.raises(ValueError, match=r"^n must be a positive integer, got "):
        check_int("n", value)


def test_check_int_message_names_the_value():
    with pytest.raises(ValueError, match=r"^width must be a positive integer, got 0$"):
        check_int("width", 0)
    with pytest.raises(ValueError, match=r"^width must be a positive integer, got '2'$"):
        check_int("width", "2")


def test_check_int_bounds_are_inclusive():
    assert check_int("bins", 2, 2) == 2
    assert check_int("seed", 0, 0) == 0
    assert check_int("fold", 0, 0, 4) == 0
    assert check_int("fold", 4, 0, 4) == 4
    with pytest.raises(ValueError, match=r"^bins must be an integer >= 2, got 1$"):
        check_int("bins", 1, 2)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        check_int("seed", -1, 0)
    for value in (-1, 5, True):
        with pytest.raises(ValueError, match=r"^fold must be an integer in 0\.\.4, got "):
            check_int("fold", value, 0, 4)


def test_check_int_numpy_integers_only_when_allowed():
    value = check_int("workers", np.int64(3), allow_numpy=True)
    assert value == 3 and type(value) is int
    assert check_int("margin", np.uint8(0), 0, allow_numpy=True) == 0
    for value in (np.int64(0), np.bool_(True), np.float64(2.0), True):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            check_int("workers", value, allow_numpy=True)


def test_check_optional_int():
    assert check_optional_int("limit", None) is None
    assert check_optional_int("limit", 1) == 1
    assert check_optional_int("limit", np.int64(2), allow_numpy=True) == 2
    for value in (0, True, 1.0, np.int64(2)):
        with pytest.raises(ValueError, match=r"^limit must be a positive integer or None, got "):
            check_optional_int("limit", value)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0 or None, got -1$"):
        check_optional_int("seed", -1, 0)


def test_check_fraction_closed_interval_by_default():
    assert check_fraction("p", 0) == 0.0 and type(check_fraction("p", 0)) is float
    assert check_fraction("p", 1) == 1.0
    assert check_fraction("p", 0.5) == 0.5
    assert check_fraction("p", np.float64(0.25)) == 0.25  # a float subclass
    for value in (-0.01, 1.01, math.nan, math.inf, True, False, "0.5", None, np.float32(0.5)):
        with pytest.raises(ValueError, match=r"^p must be in \[0, 1\], got "):
            check_fraction("p", value)


@pytest.mark.parametrize("open_low, open_high, interval", [
    (True, True, r"\(0, 1\)"), (True, False, r"\(0, 1\]"), (False, True, r"\[0, 1\)")])
def test_check_fraction_open_ends(open_low, open_high, interval):
    assert check_fraction("rate", 0.5, open_low=open_low, open_high=open_high) == 0.5
    assert check_fraction("rate", 1e-9, open_low=open_low, open_high=open_high) == 1e-9
    for value, refused in ((0, open_low), (1, open_high), (0.0, open_low), (1.0, open_high)):
        if refused:
            with pytest.raises(ValueError, match=rf"^rate must be in {interval}, got {value!r}$"):
                check_fraction("rate", value, open_low=open_low, open_high=open_high)
        else:
            assert check_fraction("rate", value, open_low=open_low, open_high=open_high) == value


def test_check_number():
    assert check_number("threshold", 0, 0) == 0.0 and type(check_number("threshold", 0, 0)) is float
    assert check_number("threshold", 2.5, 0) == 2.5
    assert check_number("x", -3.0) == -3.0
    for value in (-0.1, math.nan, math.inf, True, "1", None):
        with pytest.raises(ValueError, match=r"^threshold must be a finite number >= 0, got "):
            check_number("threshold", value, 0)
    with pytest.raises(ValueError, match=r"^feature_size must be a finite number > 0, got 0$"):
        check_number("feature_size", 0, 0, open_low=True)
    assert check_number("feature_size", 1e-9, 0, open_low=True) == 1e-9
    with pytest.raises(ValueError, match=r"^x must be a finite number, got -inf$"):
        check_number("x", -math.inf)
