"""The consoles and the error handling every ``brainuad`` command shares."""

from __future__ import annotations

import contextlib
from typing import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from brainuad.errors import BrainUADError

__all__ = ["console", "err_console", "user_errors"]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors a user can act on into a one-line message instead of a traceback.

    brainuad's input and config errors and the library's ``ValueError`` for a bad value: the
    message and exit code 2. A file that cannot be read or written (``OSError``: permissions, a full
    disk, a vanished folder): which file and why, exit code 1. Nothing is left half-written (every
    write is atomic, :mod:`brainuad.atomic`).
    """
    try:
        yield
    except (BrainUADError, ValueError) as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        err_console.print(f"[bold red]error:[/] {escape(where + (error.strerror or str(error)))}", highlight=False)
        raise typer.Exit(1) from None

