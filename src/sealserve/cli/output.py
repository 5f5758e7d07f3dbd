"""What every command module shares: the two consoles and the one handler that turns failures into exit status 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from sealserve.errors import SealserveError

out = Console(soft_wrap=True)  # never fold a path or a digest across lines
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def run(action: Callable[[], T]) -> T:
    """Turn every expected failure into one line on stderr and exit status 1; never a traceback."""
    try:
        return action()
    except SealserveError as exc:
        err.print(f"[red]error[/red] ({type(exc).__name__}): {exc}", highlight=False, markup=True)
        raise typer.Exit(1) from None
