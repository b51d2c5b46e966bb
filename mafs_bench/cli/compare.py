"""``mafs-bench compare BASELINE CANDIDATE``: the regression gate over two run directories."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from .common import console, err_console

#: the comparison table needs about this many columns to show every number in full
TABLE_WIDTH = 110


def compare(
    baseline: Path = typer.Argument(..., help="Baseline run directory (metrics.csv, items.csv.gz, run.json)."),
    candidate: Path = typer.Argument(..., help="Candidate run directory, from the same suite."),
    metric: str | None = typer.Option(None, "--metric", "-m", help="Metric to compare (default: each task's primary metric)."),
    max_drop: float = typer.Option(0.01, "--max-drop", help="Tolerated absolute drop of a watched score (metric units)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the paired bootstrap tests."),
    watch: list[str] = typer.Option(["clean", "corrupted"], "--watch",
                                    help="Scores that gate: clean, corrupted, image, text, pair, domain:<name> (repeatable)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap replicates."),
    allow_missing: bool = typer.Option(False, "--allow-missing-models",
                                       help="A baseline model absent from the candidate is a note, not exit 2."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the comparison as JSON here."),
) -> None:
    """Compare CANDIDATE with BASELINE per model, task and score with paired bootstrap intervals.

    Exit 0: no watched score dropped by more than --max-drop significantly; 1: one did (named);
    2: unusable input (missing files, different tasks, datasets, cells or items, a baseline model
    missing from the candidate), with the reason on stderr.
    """
    from ..reporting.compare import EXIT_UNUSABLE, CompareInputError, compare_runs

    try:
        result = compare_runs(baseline, candidate, metric=metric, max_drop=max_drop, alpha=alpha, watch=watch,
                              resamples=resamples, allow_missing_models=allow_missing)
    except CompareInputError as err:
        err_console.print(f"error: cannot compare: {err}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    wide = Console(width=max(console.width, TABLE_WIDTH))  # a CI log is not a terminal: do not cut the table
    for table in result.tables():
        wide.print(table)
    console.print(result.legend(), markup=False, highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    for line in result.summary():
        console.print(line, markup=False, highlight=False)
    for problem in result.problems:
        err_console.print(f"error: {problem}", markup=False, highlight=False, soft_wrap=True)
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=2))
    raise typer.Exit(result.exit_code)
