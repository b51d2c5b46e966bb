"""The ``mafs-bench`` command: thin wrappers over library functions, one module per subcommand."""

from __future__ import annotations

import typer

from . import corruptions_cmd
from .compare import compare
from .report import report
from .run import run
from .train import train

app = typer.Typer(help="Robustness benchmarking for image-text fusion models.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.command("run")(run)
app.command("train")(train)
app.command("compare")(compare)
app.command("report")(report)
app.add_typer(corruptions_cmd.app, name="corruptions")

if __name__ == "__main__":
    app()
