"""``mafs-bench report RUN_DIR... [--out DIR]``: rebuild leaderboards and write ``report.html``."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, err_console, friendly_errors, known_errors


def report(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (metrics.csv, items.csv.gz, run.json...)."),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="Output folder (default: the run directory when there is one; "
                                         "required with several)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap replicates of every interval."),
) -> None:
    """Merge RUN_DIRs into one leaderboard and write a self-contained report.html, the tables, the
    figures and one JSON per leaderboard entry into the output folder."""
    from ..reporting.html import build_report

    if out is None:
        if len(run_dirs) > 1:
            err_console.print("error: several run directories need --out DIR (where the merged report goes)",
                              highlight=False, markup=False)
            raise typer.Exit(2)
        out = run_dirs[0]
    if resamples < 1:
        err_console.print(f"error: --resamples must be at least 1, got {resamples}", highlight=False, markup=False)
        raise typer.Exit(2)
    with friendly_errors(*known_errors()):
        result = build_report(run_dirs, out, resamples=resamples)
    console.print(f"Wrote {result.html} ({result.figures} figures; tasks: {', '.join(result.tasks)}), "
                  f"{out / 'leaderboard.md'}, {out / 'robustness.md'} and "
                  f"{sum(p.parent.name == 'entries' for p in result.files)} entries in {out / 'entries'}/",
                  highlight=False, markup=False, soft_wrap=True)
