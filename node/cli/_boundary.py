"""The command line's one error boundary.

Every expected failure ends as one red line on stderr, saying what went wrong and what
to do, and a non-zero exit; a traceback means a bug. The project's errors all derive
from `MedgossipError` and carry a message written for the user, so the boundary catches
that one class (plus the OS's file errors, Ctrl-C, and trio's groups of them) around
every command: `OneLineErrors` is the root group's class, so no command can forget it.
Commands call `fail` for their own argument checks, before any I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from gossip.errors import MedgossipError

__all__ = ["OneLineErrors", "err", "fail", "one_line_errors"]

err = Console(stderr=True, highlight=False)

INTERRUPTED = 130


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr and a non-zero exit."""
    line = " ".join(message.split())  # a quoted log or a multi-line message stays one line
    err.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)
    raise typer.Exit(code)


def _os_message(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename is not None else ""
    return (f"cannot use{where}: {exc.strerror or exc}; check that the path is right, "
            "of the right kind (file or folder) and writable")


def _expected(exc: BaseException) -> bool:
    return isinstance(exc, (MedgossipError, OSError, KeyboardInterrupt))


def _report(exc: BaseException) -> NoReturn:
    if isinstance(exc, KeyboardInterrupt):
        raise typer.Exit(INTERRUPTED) from None
    if isinstance(exc, OSError):
        fail(_os_message(exc))
    fail(str(exc))


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the project's errors (and OS file errors, Ctrl-C) into a `fail` line.

    trio wraps what a task raises in an exception group; a group made only of expected
    errors is reported by its first one (Ctrl-C wins), anything else propagates.
    """
    try:
        yield
    except MedgossipError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(_os_message(exc))
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if not leaves or not all(_expected(leaf) for leaf in leaves):
            raise
        interrupts = [leaf for leaf in leaves if isinstance(leaf, KeyboardInterrupt)]
        _report(interrupts[0] if interrupts else leaves[0])


class OneLineErrors(TyperGroup):
    """The root command group: runs whichever command was chosen inside the boundary."""

    def invoke(self, ctx: Any) -> Any:
        with one_line_errors():
            return super().invoke(ctx)
