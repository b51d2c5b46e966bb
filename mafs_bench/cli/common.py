"""Shared CLI plumbing: the consoles and the one place that turns known errors into messages."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

console = Console()
err_console = Console(stderr=True)


@contextmanager
def friendly_errors(*error_types: type[BaseException]) -> Iterator[None]:
    """Print ``error_types`` as a clear message and exit 2 (no traceback)."""
    try:
        yield
    except error_types as err:
        message = str(err) or type(err).__name__  # the message names file, field and value
        err_console.print("[bold red]error:[/] ", end="", highlight=False)
        err_console.print(message, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's input, not our bugs."""
    from corruptions import UnknownNameError

    from ..data import DataMissingError
    from ..models.backends import WeightsMissingError
    from ..reporting import SchemaError
    from ..runner import PreflightError, SuiteError

    return (SuiteError, PreflightError, DataMissingError, WeightsMissingError, SchemaError, UnknownNameError,
            FileNotFoundError)


Echo = Callable[[str], None]
