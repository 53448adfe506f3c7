"""Errors that name the file (or value) at fault, what is wrong with it and what to do.

Every problem with user input raises a subclass of :class:`BrainUADError`; the CLI prints its
message and exits non-zero instead of showing a traceback from deep inside a library.
"""

from __future__ import annotations

from pathlib import Path


class BrainUADError(Exception):
    """Base class of every error brainuad raises for bad input or a failed step."""


class InputError(BrainUADError):
    """A file given to brainuad cannot be used.

    Args:
        path: the file (or folder) at fault.
        problem: what is wrong with it, in a few words.
        hint: what the user can do about it (optional).
    """

    def __init__(self, path: str | Path, problem: str, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        message = f"{self.path}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class ConfigError(BrainUADError):
    """A configuration file or override is invalid (unknown key, wrong type or value)."""
