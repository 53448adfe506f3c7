"""Argument checks shared across brainuad.

Pure functions: each returns the value it checked, so ``self.n = check_int("n", n)`` works, or raises
:class:`ValueError` with a message naming the argument, what it must be and the value got, e.g.
``width must be a positive integer, got 0``. ``name`` is the argument as the message shows it, and may
carry a prefix naming where it belongs (``"N4Correction: levels"``).

Integers must be a Python :class:`int`; bools are refused, and so are numpy integers unless
``allow_numpy=True``. Numbers and fractions must be a Python :class:`int` or :class:`float` (numpy's
float64 is a float; float32 is not), bools refused. Only the standard library is imported here.
"""

from __future__ import annotations

import math
import sys

__all__ = ["check_fraction", "check_int", "check_number", "check_optional_int"]


def _is_int(value: object, allow_numpy: bool) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    numpy = sys.modules.get("numpy")  # a numpy integer means numpy is imported already
    return allow_numpy and numpy is not None and isinstance(value, numpy.integer)


def _int_rule(minimum: int, maximum: int | None) -> str:
    if maximum is not None:
        return f"an integer in {minimum}..{maximum}"
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def check_int(name: str, value: int, minimum: int = 1, maximum: int | None = None, *,
              allow_numpy: bool = False) -> int:
    """``value``, checked to be an integer in ``minimum..maximum`` (both inclusive).

    Args:
        name: the argument, as the message names it.
        value: the integer; bools and floats (even 2.0) are refused.
        minimum: the smallest allowed value (default 1: a positive integer).
        maximum: the largest allowed value; None for no upper bound.
        allow_numpy: accept numpy integers too (returned as an :class:`int`).

    Raises:
        ValueError: ``"{name} must be a positive integer, got {value!r}"``, ``"... an integer >=
            {minimum}, ..."`` or ``"... an integer in {minimum}..{maximum}, ..."``.
    """
    if not _is_int(value, allow_numpy) or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {_int_rule(minimum, maximum)}, got {value!r}")
    return value if isinstance(value, int) else int(value)


def check_optional_int(name: str, value: int | None, minimum: int = 1, maximum: int | None = None, *,
                       allow_numpy: bool = False) -> int | None:
    """``value``, checked to be None or an integer as :func:`check_int` takes it.

    Raises:
        ValueError: ``"{name} must be a positive integer or None, got {value!r}"`` (or another
            :func:`check_int` rule followed by ``or None``).
    """
    if value is None:
        return None
    if not _is_int(value, allow_numpy) or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {_int_rule(minimum, maximum)} or None, got {value!r}")
    return value if isinstance(value, int) else int(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_fraction(name: str, value: float, *, open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a float, checked to be a number in [0, 1].

    Args:
        name: the argument, as the message names it.
        value: a fraction or probability, a Python int or float (bools refused); NaN is refused.
        open_low: exclude 0: (0, 1].
        open_high: exclude 1: [0, 1).

    Raises:
        ValueError: ``"{name} must be in [0, 1], got {value!r}"``, with ``(`` / ``)`` for an open end.
    """
    if not _is_number(value) or not ((0 < value) if open_low else (0 <= value)) \
            or not ((value < 1) if open_high else (value <= 1)):
        interval = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_number(name: str, value: float, minimum: float | None = None, *, open_low: bool = False) -> float:
    """``value`` as a float, checked to be a finite number >= ``minimum`` (> it with ``open_low``).

    Args:
        name: the argument, as the message names it.
        value: a Python int or float (bools refused); NaN and infinities are refused.
        minimum: the lower bound, in ``value``'s units; None for none.
        open_low: exclude ``minimum`` itself.

    Raises:
        ValueError: ``"{name} must be a finite number >= {minimum}, got {value!r}"`` (``>`` with
            ``open_low``; ``"... a finite number, ..."`` without a minimum).
    """
    if not _is_number(value) or not math.isfinite(value) or (
            minimum is not None and not (value > minimum if open_low else value >= minimum)):
        bound = "" if minimum is None else f" {'>' if open_low else '>='} {minimum}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)
