"""Progress bars for long work (training, evaluation), on stderr via rich."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Update = Callable[[int, int, float], None]


@contextmanager
def rich_progress(console: Console, enabled: bool = True) -> Iterator[Callable[[str, int], Update]]:
    """A progress factory: ``factory(description, total)`` returns ``update(done, total, loss)``."""
    if not enabled:
        yield lambda description, total: (lambda done, total_, loss: None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:

        def factory(description: str, total: int) -> Update:
            task = progress.add_task(description, total=total, note="")

            def update(done: int, total_: int, loss: float) -> None:
                note = "" if math.isnan(loss) else f"loss {loss:.3f}"
                progress.update(task, completed=done, note=note)

            return update

        yield factory
