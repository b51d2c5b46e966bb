"""The regression gate: compare a candidate run with a baseline run, item by item.

Both runs must have evaluated the same tasks on the same dataset items and cells (two runs of
one suite). For every model in both runs, task and score (clean, mean corrupted, the mean of
each corruption modality present: image / text / pair, and each shifted domain), the
difference ``candidate - baseline`` of the task's metric gets a paired-bootstrap 95% interval
and p-value (:mod:`.bootstrap`): each replicate resamples the same item ids in both runs and, when
both runs have the same training seeds, the same seed positions (seeds paired); with different
seed lists each run's seeds are resampled independently (said in the notes).

A *watched* score (default: clean and corrupted of every model) is a **regression** when it
drops by more than ``max_drop`` (absolute, in the metric's units; default 0.01, one point of
recall) and the drop is significant (``p < alpha``, default 0.05). Exit codes of
:attr:`Comparison.exit_code`: 0 no regression, 1 a regression, 2 unusable input.

Reads only results files: ``metrics.csv``, ``items.csv.gz`` and ``run.json`` of each run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from mafs_bench.reporting.bootstrap import (
    ALPHA,
    BOOTSTRAP_SEED,
    CELL_KEY,
    RESAMPLES,
    cell_replicates,
    draw_counts,
    item_universe,
    metric_parts,
    paired_from_replicates,
    score_replicates,
    seed_draws,
    stream,
)
from mafs_bench.reporting.schema import ITEMS_FILE, MODALITIES, SchemaError, in_domain, read_items, read_metrics

MAX_DROP: Final[float] = 0.01
"""Default tolerance: a watched score may fall by up to 0.01 (one point of recall) unflagged."""

WATCH: Final[tuple[str, ...]] = ("clean", "corrupted")
"""Scores watched by default."""

EXIT_OK: Final[int] = 0
EXIT_REGRESSION: Final[int] = 1
EXIT_UNUSABLE: Final[int] = 2


class CompareInputError(ValueError):
    """The two runs cannot be compared (missing files, different datasets, cells or tasks)."""


@dataclass(frozen=True)
class CompareRow:
    """One compared score of one model and task."""

    task: str
    model: str
    metric: str
    score: str
    watched: bool
    baseline: float
    candidate: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    regression: bool


@dataclass
class Comparison:
    """Result of :func:`compare_runs`."""

    baseline: str
    candidate: str
    rows: list[CompareRow]
    max_drop: float
    alpha: float
    notes: list[str] = field(default_factory=list)
    #: reasons the comparison is incomplete (exit 2), e.g. a model missing from the candidate
    problems: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[CompareRow]:
        """Watched scores that dropped by more than ``max_drop``, significantly."""
        return [r for r in self.rows if r.regression]

    @property
    def exit_code(self) -> int:
        """2 when :attr:`problems`, else 1 when :attr:`regressions`, else 0."""
        if self.problems:
            return EXIT_UNUSABLE
        return EXIT_REGRESSION if self.regressions else EXIT_OK

    def summary(self) -> list[str]:
        """One line per regression (naming model, task, score), or a line saying there is none."""
        if not self.regressions:
            return [f"no regression: no watched score dropped by more than {self.max_drop:g} significantly (alpha {self.alpha:g})"]
        return [f"REGRESSION: {r.model} / {r.task} / {r.score} {r.metric}: {r.baseline:.4f} -> {r.candidate:.4f} "
                f"({r.difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], p={r.p_value:.3g})" for r in self.regressions]

    def tables(self) -> list:  # rich.table.Table per task (rich imported lazily)
        """The comparison as one compact rich table per task."""
        from rich import box
        from rich.table import Table

        out = []
        for task in dict.fromkeys(r.task for r in self.rows):
            rows = [r for r in self.rows if r.task == task]
            table = Table(title=f"{task}: {rows[0].metric}, candidate - baseline, paired bootstrap 95% interval",
                          box=box.SIMPLE_HEAD, pad_edge=False)
            for name in ("model", "score", "base", "cand", "diff", "95% interval", "p", "verdict"):
                table.add_column(name, justify="left" if name in ("model", "score", "verdict") else "right", no_wrap=True)
            for r in rows:
                verdict = "REGRESSION" if r.regression else ("signif." if r.significant else "")
                table.add_row(r.model, r.score + (" *" if r.watched else ""), _num(r.baseline), _num(r.candidate),
                              _num(r.difference, signed=True), f"[{_num(r.ci_low, True)}, {_num(r.ci_high, True)}]",
                              "" if np.isnan(r.p_value) else f"{r.p_value:.3f}", verdict,
                              style="bold red" if r.regression else None)
            out.append(table)
        return out

    def legend(self) -> str:
        """What the marks mean."""
        return (f"* watched; REGRESSION = watched score dropped by more than {self.max_drop:g} with p < {self.alpha:g}; "
                "signif. = p < alpha (two-sided)")

    def to_text(self, width: int = 140) -> str:
        """The table, notes, problems and summary as plain text."""
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, width=width, color_system=None, highlight=False)
        for table in self.tables():
            console.print(table)
        for line in (self.legend(), *(f"note: {n}" for n in self.notes), *(f"problem: {p}" for p in self.problems), *self.summary()):
            console.print(line, markup=False)
        return buffer.getvalue()

    def to_json(self) -> dict:
        """A JSON-ready dict: settings, notes, problems, exit code and every row."""
        return {"baseline": self.baseline, "candidate": self.candidate, "max_drop": self.max_drop, "alpha": self.alpha,
                "exit_code": self.exit_code, "notes": self.notes, "problems": self.problems,
                "regressions": [asdict(r) for r in self.regressions],
                "rows": [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in asdict(r).items()}
                         for r in self.rows]}


@dataclass
class RunFiles:
    """A run directory's results files."""

    path: Path
    metrics: pd.DataFrame
    items: pd.DataFrame
    meta: dict


def load_run(path: str | Path) -> RunFiles:
    """Read ``metrics.csv``, ``items.csv.gz`` and ``run.json`` of a run directory.

    Raises:
        CompareInputError: a file is missing or breaks its schema (the message names it).
    """
    path = Path(path)
    if not path.is_dir():
        raise CompareInputError(f"{path}: not a run directory")
    missing = [name for name in ("metrics.csv", ITEMS_FILE, "run.json") if not (path / name).is_file()]
    if missing:
        hint = " (runs before per-item scores have no items file: rerun the suite)" if ITEMS_FILE in missing else ""
        raise CompareInputError(f"{path}: missing {', '.join(missing)}{hint}")
    try:
        meta = json.loads((path / "run.json").read_text())
        return RunFiles(path, read_metrics(path / "metrics.csv"), read_items(path / ITEMS_FILE), meta)
    except (SchemaError, json.JSONDecodeError) as err:
        raise CompareInputError(f"{path}: {err}") from err


def compare_runs(
    baseline: str | Path,
    candidate: str | Path,
    metric: str | None = None,
    max_drop: float = MAX_DROP,
    alpha: float = ALPHA,
    watch: Sequence[str] = WATCH,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    allow_missing_models: bool = False,
) -> Comparison:
    """Compare two run directories score by score (see the module docstring).

    Args:
        baseline, candidate: run directories (``metrics.csv``, ``items.csv.gz``, ``run.json``).
        metric: the metric of every task; default each task's ``primary_metric`` (``run.json``).
        max_drop: tolerated absolute drop of a watched score.
        alpha: significance level of the paired tests (and 1 - coverage of the intervals).
        watch: score names watched for regressions (``clean``, ``corrupted``, ``image``,
            ``text``, ``pair``, ``domain:<name>``).
        resamples, seed: bootstrap replicates and seed.
        allow_missing_models: a model of the baseline absent from the candidate is a note, not
            a problem (exit 2 otherwise: the gate cannot vouch for a model it did not see).

    Returns:
        A :class:`Comparison`; its ``exit_code`` is the gate's verdict.

    Raises:
        CompareInputError: unusable input: missing files, different tasks, datasets, cells or
            items, an unknown metric, or no model in both runs.

    Example:
        >>> result = compare_runs("results/quickstart", "runs/quickstart")
        >>> print(result.to_text()); raise SystemExit(result.exit_code)
    """
    base, cand = load_run(baseline), load_run(candidate)
    notes: list[str] = []
    problems: list[str] = []
    tasks_b, tasks_c = sorted(base.metrics["task"].unique()), sorted(cand.metrics["task"].unique())
    if tasks_b != tasks_c:
        raise CompareInputError(f"different tasks: baseline {tasks_b}, candidate {tasks_c}")
    models_b, models_c = set(base.items["model"]), set(cand.items["model"])
    common = sorted(models_b & models_c)
    if not common:
        raise CompareInputError(f"no model in both runs: baseline {sorted(models_b)}, candidate {sorted(models_c)}")
    if models_c - models_b:
        notes.append(f"only in the candidate (not compared): {', '.join(sorted(models_c - models_b))}")
    if models_b - models_c:
        lost = f"only in the baseline (not compared): {', '.join(sorted(models_b - models_c))}"
        (notes if allow_missing_models else problems).append(lost)
    rows: list[CompareRow] = []
    for task in tasks_b:
        name = metric or (base.meta.get("primary_metric") or {}).get(task)
        if not name:
            raise CompareInputError(f"task {task!r}: no --metric given and baseline run.json has no primary_metric")
        cand_primary = (cand.meta.get("primary_metric") or {}).get(task)
        if metric is None and cand_primary and cand_primary != name:
            notes.append(f"task {task}: primary metrics differ ({name} vs {cand_primary}); using the baseline's {name}")
        rows += _compare_task(base, cand, task, name, common, max_drop, alpha, watch, resamples, seed, notes)
    return Comparison(str(base.path), str(cand.path), rows, max_drop, alpha, notes, problems)


def _compare_task(base: RunFiles, cand: RunFiles, task: str, metric: str, models: list[str], max_drop: float,
                  alpha: float, watch: Sequence[str], resamples: int, seed: int, notes: list[str]) -> list[CompareRow]:
    """The rows of one task (see :func:`compare_runs`)."""
    items_b, items_c = (run.items[(run.items["task"] == task) & run.items["model"].isin(models)] for run in (base, cand))
    parts = metric_parts(base.meta, task, metric, items_b)
    parts_c = metric_parts(cand.meta, task, metric, items_c)
    if parts is None or any(p not in items_b.columns for p in parts):
        raise CompareInputError(f"task {task!r}: metric {metric!r} has no per-item scores in {base.path}")
    if parts_c != parts or any(p not in items_c.columns for p in parts):
        raise CompareInputError(f"task {task!r}: metric {metric!r} decomposes differently: {parts} vs {parts_c}")
    for what, columns in (("datasets", ["dataset"]), ("cells", list(CELL_KEY))):
        cells_b = set(map(tuple, items_b[columns].drop_duplicates().to_numpy().tolist()))
        cells_c = set(map(tuple, items_c[columns].drop_duplicates().to_numpy().tolist()))
        if cells_b != cells_c:
            raise CompareInputError(f"task {task!r}: the runs have different {what}: only in the baseline "
                                    f"{sorted(cells_b - cells_c)[:5]}, only in the candidate {sorted(cells_c - cells_b)[:5]}")
    universe = item_universe(items_b, parts)
    universe_c = item_universe(items_c, parts)
    if universe.keys() != universe_c.keys() or any(not np.array_equal(universe[q], universe_c[q]) for q in universe):
        raise CompareInputError(f"task {task!r}: the runs evaluated different items (different dataset sizes or ids)")
    try:
        domain = in_domain(base.metrics, task)
    except SchemaError as err:
        raise CompareInputError(str(err)) from err
    counts = draw_counts(task, universe, resamples, seed)
    reps_b = cell_replicates(items_b, parts, universe, counts)
    reps_c = cell_replicates(items_c, parts, universe, counts)
    seeds_b = sorted(int(s) for s in items_b["seed"].unique())
    seeds_c = sorted(int(s) for s in items_c["seed"].unique())
    if seeds_b == seeds_c:
        draws_b = draws_c = seed_draws(len(seeds_b), resamples, stream(seed, task, "seeds"))
    else:
        notes.append(f"task {task}: training seeds differ ({seeds_b} vs {seeds_c}): seeds resampled independently per run, not paired")
        draws_b = seed_draws(len(seeds_b), resamples, stream(seed, task, "seeds", "baseline"))
        draws_c = seed_draws(len(seeds_c), resamples, stream(seed, task, "seeds", "candidate"))
    scores_b = score_replicates(reps_b, domain, MODALITIES, models, seeds_b, draws_b)
    scores_c = score_replicates(reps_c, domain, MODALITIES, models, seeds_c, draws_c)
    order = ["clean", "corrupted", *MODALITIES, *sorted(k for k in scores_b if k.startswith("domain:"))]
    rows = []
    for i, model in enumerate(models):
        for score in order:
            if score not in scores_b or score not in scores_c:
                continue
            b, c = scores_b[score][:, i], scores_c[score][:, i]
            if np.isnan(b[0]) and np.isnan(c[0]):
                continue  # not evaluated (e.g. no pair corruption)
            test = paired_from_replicates(b, c, alpha)
            watched = score in watch
            regression = bool(watched and test.significant and test.difference < -max_drop)
            rows.append(CompareRow(task, model, metric, score, watched, float(b[0]), float(c[0]), test.difference,
                                   test.ci_low, test.ci_high, test.p_value, test.significant, regression))
    return rows


def _num(value: float, signed: bool = False) -> str:
    """A number with 3 decimals (sign when asked), blank when NaN."""
    if value is None or np.isnan(value):
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3f}"
