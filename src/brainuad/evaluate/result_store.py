"""A run's whole evaluation result on disk, so an interrupted evaluation of many runs resumes.

``summary.json`` leaves out what only the report needs (arrays, per-volume rows); this file keeps
every field of a result (a :class:`~brainuad.evaluate.results.RunResult`, or any frozen dataclass
of numbers, strings, tuples, named tuples and arrays), so that a result read back builds the same
tables, figures and CSV files as the one just computed. It is JSON
(arrays as base64 with their dtype and shape): nothing is unpickled.

Each stored result carries a *key*, a JSON object saying what was evaluated and how (the run's
config and weights, the data, the protocol's settings) and the *schema* of its type (every field's
name and type, nested): :func:`load_result` returns the result only when both equal the ones asked
for, so a changed setting, a retrained model or a result type that gained a field (a newer
brainuad) is evaluated again instead of read back.
"""

from __future__ import annotations

import base64
import json
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import numpy as np

from brainuad.atomic import write_text
from brainuad.errors import InputError

__all__ = ["FORMAT_VERSION", "load_result", "save_result"]

FORMAT_VERSION = 1
_ARRAY = "__ndarray__"
_Result = TypeVar("_Result")


def _encode(value: Any) -> Any:
    """A JSON value holding every field of dataclasses and named tuples, arrays included."""
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {_ARRAY: base64.b64encode(array.tobytes()).decode("ascii"), "dtype": array.dtype.str,
                "shape": list(array.shape)}
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _encode(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        return {name: _encode(item) for name, item in zip(value._fields, value)}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__}")


def _decode(hint: Any, value: Any) -> Any:
    """The value of type ``hint`` that :func:`_encode` turned into ``value``."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, value)
            except (TypeError, ValueError, KeyError) as error:
                errors.append(str(error))
        raise ValueError(f"no type of {hint} fits the stored value ({'; '.join(errors)})")
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{value!r} is not one of {typing.get_args(hint)}")
        return value
    if origin is tuple:
        arguments = typing.get_args(hint)
        if not isinstance(value, list):
            raise TypeError(f"expected a list for {hint}, got {type(value).__name__}")
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_decode(arguments[0], item) for item in value)
        return tuple(_decode(argument, item) for argument, item in zip(arguments, value, strict=True))
    if hint is np.ndarray:
        if not isinstance(value, dict) or _ARRAY not in value:
            raise TypeError("expected a stored array")
        return np.frombuffer(base64.b64decode(value[_ARRAY]), dtype=np.dtype(value["dtype"])).reshape(
            value["shape"]).copy()
    if isinstance(hint, type) and (is_dataclass(hint) or hasattr(hint, "_fields")):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {hint.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(hint)
        names = [item.name for item in fields(hint)] if is_dataclass(hint) else list(hint._fields)
        return hint(**{name: _decode(hints[name], value[name]) for name in names})
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if type(value) is not hint:
            raise TypeError(f"expected {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"cannot read a stored {hint}")


def _schema(hint: Any, seen: frozenset[Any] = frozenset()) -> str:
    """A description of a stored type: its fields' names and types, nested dataclasses expanded."""
    if isinstance(hint, type) and (is_dataclass(hint) or hasattr(hint, "_fields")) and hint not in seen:
        hints = typing.get_type_hints(hint)
        names = [item.name for item in fields(hint)] if is_dataclass(hint) else list(hint._fields)
        inner = ", ".join(f"{name}: {_schema(hints[name], seen | {hint})}" for name in names)
        return f"{hint.__name__}({inner})"
    arguments = typing.get_args(hint)
    if arguments:
        origin = typing.get_origin(hint)
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_schema(a, seen) for a in arguments)}]"
    return getattr(hint, "__name__", str(hint))


def save_result(path: str | Path, result: Any, key: dict[str, Any]) -> Path:
    """Write a dataclass ``result`` with its ``key`` (JSON values only) to ``path``, atomically."""
    if not is_dataclass(result) or isinstance(result, type):
        raise ValueError(f"result must be a dataclass instance, got {type(result).__name__}")
    payload = {"format_version": FORMAT_VERSION, "type": type(result).__name__, "schema": _schema(type(result)),
               "key": key, "result": _encode(result)}
    return write_text(path, json.dumps(payload) + "\n")


def load_result(path: str | Path, kind: type[_Result], key: dict[str, Any]) -> _Result | None:
    """The ``kind`` result stored at ``path`` for ``key``; None when there is none, or it was stored
    for another key, type, schema or format version (it is then computed again and overwritten).

    Raises:
        InputError: the file is not a stored result (not JSON, or its fields do not fit).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"is not a stored evaluation result ({error})", "delete it to evaluate again") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION \
            or payload.get("type") != kind.__name__ or payload.get("schema") != _schema(kind):
        return None
    if json.dumps(payload.get("key"), sort_keys=True) != json.dumps(key, sort_keys=True):
        return None
    try:
        return _decode(kind, payload["result"])
    except (TypeError, ValueError, KeyError) as error:
        raise InputError(path, f"holds a result that does not fit this version of brainuad ({error})",
                         "delete it to evaluate again") from None
