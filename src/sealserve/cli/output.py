"""What every command module shares: the two consoles and the handlers that turn failures into exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # typer carries its own click
from typer.core import TyperGroup

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


class OneLineErrors(TyperGroup):
    """Click's usage errors (a missing option, a bad value, an unknown command) read like every other failure:
    one line on stderr, naming the command's --help, and exit status 1."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:
            out.print(exc.format_message(), highlight=False, markup=False)
            sys.exit(0)
        except UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "sealserve"
            fail(f"error (usage): {one_line(exc.format_message())} See '{command} --help'.")
        except ClickException as exc:
            fail(f"error: {one_line(exc.format_message())}")
        except typer.Abort:
            fail("error: aborted")
        sys.exit(result if isinstance(result, int) else 0)


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if line.endswith((".", "?", "!")) else f"{line}."


def fail(line: str) -> NoReturn:
    err.print(line, highlight=False, markup=False)
    sys.exit(1)
