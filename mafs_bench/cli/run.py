"""``mafs-bench run SUITE.yaml``: evaluate a suite and write results and report."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, err_console, friendly_errors, known_errors
from .progress import rich_progress


def run(
    suite: Path = typer.Argument(..., help="Suite YAML file, e.g. suites/quickstart.yaml."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output directory (default: runs/<suite name>)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Evaluate every model on every (corruption, severity) cell of SUITE and write the leaderboard."""
    from ..runner import load_suite, run_suite

    with friendly_errors(*known_errors()):
        spec = load_suite(suite)
        out_dir = out or Path("runs") / spec.name
        with rich_progress(err_console, progress) as factory:
            result = run_suite(spec, out_dir, factory, log=lambda m: err_console.print(m, highlight=False, markup=False),
                               suite_source=str(suite))
    board = out_dir / "leaderboard.md"
    if board.is_file():
        console.print(board.read_text(), markup=False, highlight=False)
    console.print(f"Results in {out_dir}/ ({result.seconds:.0f} s): " + ", ".join(p.name for p in result.files),
                  highlight=False)
    console.print(f"HTML report with robustness aggregates: mafs-bench report {out_dir}", highlight=False)
