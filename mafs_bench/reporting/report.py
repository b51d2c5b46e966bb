"""One call that turns a run's output directory into its report files.

Reads only ``metrics.csv`` (and ``fusion_weights.csv``, ``items.csv.gz`` and ``run.json`` when
present) from the directory, so a report can be rebuilt at any time from the files alone.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import pandas as pd

from mafs_bench.reporting.leaderboard import build_leaderboard, write_leaderboard
from mafs_bench.reporting.plots import plot_domain_shift, plot_fusion_weights, plot_robustness_curves
from mafs_bench.reporting.schema import (
    SchemaError,
    in_domain,
    is_clean,
    ITEMS_FILE,
    read_items,
    read_metrics,
    read_weights,
    task_order,
)

METRICS_FILE: Final[str] = "metrics.csv"
WEIGHTS_FILE: Final[str] = "fusion_weights.csv"
RUN_FILE: Final[str] = "run.json"

DEFAULT_PRIMARY: Final[Mapping[str, str]] = {
    "retrieval": "r_mean",
    "vqa": "accuracy",
    "captioning": "cider",
}
"""Ranking metric per task when the caller names none."""


def write_report(
    out_dir: str | Path,
    primary: Mapping[str, str] = DEFAULT_PRIMARY,
    domain: str | None = None,
) -> list[Path]:
    """Write the leaderboard and figures for the results in ``out_dir``.

    Files written into ``out_dir``:

    * ``leaderboard.csv`` and ``leaderboard.md`` (all tasks);
    * ``robustness_curves.png`` for each task with corrupted rows;
    * ``fusion_weights.png`` when ``fusion_weights.csv`` has corrupted rows;
    * ``domain_shift.png`` for each task with shifted-domain rows: curves of the clean score
      across domains (in the suite's ``shifted_domains`` order) and against style strength.

    When a figure applies to more than one task it is written per task as
    ``<name>_<task>.png``, and ``<name>.png`` is also kept as a copy of the first task's
    (task order: ``primary``'s). Existing files of other names are left alone.

    Args:
        out_dir: A runner output directory holding ``metrics.csv``.
        primary: Task -> ranking metric; must cover every task in ``metrics.csv``.
        domain: The in-domain test set, if it cannot be inferred (see
            :func:`mafs_bench.reporting.schema.in_domain`).

    Returns:
        Every path written, in the order above.
    """
    out = Path(out_dir)
    metrics = read_metrics(out / METRICS_FILE)
    weights_path = out / WEIGHTS_FILE
    weights = read_weights(weights_path) if weights_path.is_file() else None
    tasks = task_order(metrics, primary)
    weight_models = [] if weights is None else list(weights["model"])
    palette = sorted(dict.fromkeys([*metrics["model"], *weight_models]))  # one colour per model

    items_path = out / ITEMS_FILE
    items = read_items(items_path) if items_path.is_file() else None  # older runs: no intervals
    meta = read_run_meta(out)
    board = build_leaderboard(metrics, primary, domain, items=items, meta=meta)
    written = write_leaderboard(board, out, metrics, domain, corruptions_seen_in_training(out))

    def metric_rows(task: str) -> pd.DataFrame:
        return metrics[(metrics["task"] == task) & (metrics["metric"] == primary[task])]

    curve_tasks = [t for t in tasks if (~is_clean(metric_rows(t))).any()]
    written += _per_task(
        out,
        "robustness_curves",
        curve_tasks,
        lambda task, path: plot_robustness_curves(metrics, task, primary[task], path, domain, palette),
    )
    if weights is not None:
        corrupted_weights = weights[~is_clean(weights)]
        weight_tasks = _ordered(corrupted_weights["task"], tasks)
        written += _per_task(
            out,
            "fusion_weights",
            weight_tasks,
            lambda task, path: plot_fusion_weights(weights, path, task, domain, palette),
        )
    shift_tasks = [t for t in tasks if _has_shift(metrics, metric_rows(t), t, domain)]
    order = list(((meta.get("suite") or {}).get("dataset") or {}).get("shifted_domains") or [])
    written += _per_task(
        out,
        "domain_shift",
        shift_tasks,
        lambda task, path: plot_domain_shift(metrics, task, primary[task], path, domain, palette, order),
    )
    return written


def read_run_meta(out: Path) -> dict:
    """The run's ``run.json`` as a dict (empty when absent).

    Raises:
        SchemaError: the file is not valid JSON.
    """
    path = Path(out) / RUN_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON: {err}") from err


def corruptions_seen_in_training(out: Path) -> list[str]:
    """``training.corruptions_seen`` of the run's ``run.json`` (empty when absent)."""
    meta = read_run_meta(out)
    return list((meta.get("training") or {}).get("corruptions_seen") or [])


def _per_task(
    out: Path, stem: str, tasks: Sequence[str], draw: Callable[[str, Path], Path]
) -> list[Path]:
    """Draw one figure per task; with several tasks, suffix names and copy the first."""
    if len(tasks) == 1:
        return [draw(tasks[0], out / f"{stem}.png")]
    written = [draw(task, out / f"{stem}_{_slug(task)}.png") for task in tasks]
    if written:
        first = out / f"{stem}.png"
        shutil.copyfile(written[0], first)
        written.append(first)
    return written


def _has_shift(metrics: pd.DataFrame, rows: pd.DataFrame, task: str, domain: str | None) -> bool:
    """Whether the task has clean rows outside its in-domain test set."""
    home = in_domain(metrics, task, domain)
    return bool((is_clean(rows) & (rows["domain"] != home)).any())


def _ordered(values: pd.Series, preferred: Sequence[str]) -> list[str]:
    """Distinct values: those in ``preferred`` in its order, then the rest sorted."""
    present = sorted(dict.fromkeys(str(v) for v in values))
    return [v for v in preferred if v in present] + [v for v in present if v not in preferred]


def _slug(name: str) -> str:
    """A file-name-safe form of a task name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
