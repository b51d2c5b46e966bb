"""Leaderboard tables built from ``metrics.csv``: one ranked row per (task, model).

The leaderboard answers "which model holds up best under corruption": models are ranked
within their task by the mean corrupted score of the task's primary metric, next to the
clean score, the ratio of the two, per-modality means and clean scores on shifted
domains. All metrics are treated as higher-is-better (recall, accuracy, CIDEr).

A NaN or inf value (an undefined score, e.g. from a model's non-finite output) is never
skipped: every mean over a cell holding one is NaN, a model whose corrupted mean is NaN ranks
last, and ``nonfinite_cells`` counts such cells per model (see
:func:`mafs_bench.reporting.schema.strict_mean`). A ratio with a clean score of 0 is NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from mafs_bench.reporting.bootstrap import (
    ALPHA,
    BOOTSTRAP_SEED,
    RESAMPLES,
    bootstrap_task,
    interval,
    metric_parts,
    paired_from_replicates,
)
from mafs_bench.reporting.schema import (
    MODALITIES,
    SchemaError,
    corruption_cells,
    in_domain,
    is_clean,
    nonfinite_count,
    strict_mean,
    task_order,
    validate_metrics,
)

BASE_COLUMNS: Final[tuple[str, ...]] = (
    "rank",
    "task",
    "model",
    "metric",
    "seeds",
    "clean",
    "corrupted",
    "relative_robustness",
    *MODALITIES,
    "nonfinite_cells",
)
"""Leaderboard columns before the ``domain:<name>`` ones."""

SEEN_MARK: Final[str] = "†"
"""Mark of a corruption the fusion heads trained on (cells "seen in training")."""

SD_SUFFIX: Final[str] = "_sd"
"""Suffix of the column holding a score's standard deviation across training seeds."""

CI_LOW: Final[str] = "_ci_low"
CI_HIGH: Final[str] = "_ci_high"
"""Suffixes of a score's 95% bootstrap interval bounds (:mod:`.bootstrap`)."""

P_VS_RANK1: Final[str] = "p_vs_rank1"
"""Column: paired-bootstrap p-value of the corrupted-score difference to the task's rank-1 model."""

NOT_SIGNIFICANT_MARK: Final[str] = "≈"
"""Mark of a model whose corrupted score does not differ significantly from the rank-1 model's."""

DOMAIN_PREFIX: Final[str] = "domain:"
LEADERBOARD_CSV: Final[str] = "leaderboard.csv"
LEADERBOARD_MD: Final[str] = "leaderboard.md"

LEGEND: Final[str] = (
    "**Legend:** rank = position within the task by mean corrupted score (1 = best, higher is better); "
    "clean = score on the clean in-domain test set; corrupted = mean over all (corruption, severity) cells; "
    "relative_robustness = corrupted / clean (blank when clean is 0); image / text / pair = corrupted mean "
    "over the corruptions of that modality; domain:<name> = clean score on a shifted domain; "
    "nonfinite_cells (shown when not all 0) = the model's cells of this metric whose score is NaN or inf; "
    "a mean over such a cell is blank, not the mean of the other cells, and a blank corrupted score ranks last; "
    "blank = not evaluated, or undefined as just said. "
    "Every score is the mean over the training seeds (`seeds`) of the per-seed score, shown as mean ± "
    "standard deviation across seeds (the CSV has it in `<column>_sd`), then its 95% bootstrap interval "
    "`[low, high]` (1000 resamples of the evaluation items and of the training seeds, percentile method; "
    "the CSV has `<column>_ci_low` / `<column>_ci_high`; blank when the run has no items file). "
    f"{NOT_SIGNIFICANT_MARK} after a rank: the model's corrupted score does not differ significantly from the "
    "rank-1 model's (paired bootstrap, two-sided, alpha 0.05; the CSV has the p-value in `p_vs_rank1`)."
)


def build_leaderboard(
    metrics: pd.DataFrame,
    primary: Mapping[str, str],
    domain: str | None = None,
    items: pd.DataFrame | None = None,
    meta: Mapping | None = None,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Rank the models of every task by their mean corrupted score.

    Args:
        metrics: Rows in the ``metrics.csv`` layout (validated here).
        primary: Task -> metric used for that task's row, e.g. ``{"retrieval": "r_mean"}``.
            Every task in ``metrics`` needs an entry; extra entries are ignored. Task
            order in the output follows this mapping.
        domain: The in-domain test set; default per task: the domain with corrupted rows.

    Returns:
        One row per (task, model) with :data:`BASE_COLUMNS` and then ``domain:<name>``
        (sorted by name) for every shifted domain of any task. Rows are sorted by task,
        then rank, then model name; tied scores share a rank. Means are float64 and NaN
        where not evaluated or where a cell is NaN/inf; ``nonfinite_cells`` is int64
        (the model's NaN/inf values of the metric, all domains); ``rank`` is int64, with
        NaN corrupted means sharing the last rank.
        Then ``<score>_sd`` for every score column: the standard deviation across training
        seeds (NaN with one seed); then ``<score>_ci_low``, ``<score>_ci_high`` for every score
        column: its 95% percentile bootstrap interval over ``resamples`` resamples of the items
        and seeds (:mod:`.bootstrap`; NaN without ``items`` or when the metric has no per-item
        form); then :data:`P_VS_RANK1`.

    Args (intervals):
        items: the run's items file (:func:`~mafs_bench.reporting.schema.read_items`), or None.
        meta: the run's ``run.json`` (its ``items`` says how metrics decompose), or None.
        resamples, seed: bootstrap replicates and seed.

    Example:
        >>> board = build_leaderboard(metrics, {"retrieval": "r_mean"})
        >>> board.loc[board["rank"] == 1, "model"].tolist()
    """
    metrics = validate_metrics(metrics)
    tables = []
    for task in task_order(metrics, primary):
        home = in_domain(metrics, task, domain)
        table = _task_table(metrics, task, primary[task], home)
        tables.append(_with_intervals(table, items, meta, task, primary[task], home, resamples, seed))
    board = pd.concat(tables, ignore_index=True)
    shifted = sorted(c for c in board.columns if c.startswith(DOMAIN_PREFIX) and not c.endswith((SD_SUFFIX, CI_LOW, CI_HIGH)))
    scores = score_columns(shifted)
    return board.reindex(columns=[*BASE_COLUMNS, *shifted, *(c + SD_SUFFIX for c in scores),
                                  *(c + end for c in scores for end in (CI_LOW, CI_HIGH)), P_VS_RANK1])


def score_columns(shifted: Sequence[str] = ()) -> list[str]:
    """The score columns of a leaderboard with the given ``domain:<name>`` columns, in order."""
    return [c for c in (*BASE_COLUMNS, *shifted) if c not in ("rank", "task", "model", "metric", "seeds", "nonfinite_cells")]


def _with_intervals(table: pd.DataFrame, items: pd.DataFrame | None, meta: Mapping | None, task: str,
                    metric: str, domain: str, resamples: int, seed: int) -> pd.DataFrame:
    """``table`` plus ``<score>_ci_low/_ci_high`` and :data:`P_VS_RANK1` from the items (NaN without)."""
    shifted = [c for c in table.columns if c.startswith(DOMAIN_PREFIX) and not c.endswith(SD_SUFFIX)]
    scores = score_columns(shifted)
    table = table.copy()
    for column in scores:
        table[column + CI_LOW] = np.nan
        table[column + CI_HIGH] = np.nan
    table[P_VS_RANK1] = np.nan
    of_task = None if items is None else items[items["task"] == task]
    parts = None if of_task is None or of_task.empty else metric_parts(meta, task, metric, of_task)
    if parts is None or any(p not in of_task.columns for p in parts):
        return table
    models, reps = bootstrap_task(of_task, parts, domain, MODALITIES, task, resamples, seed)
    where = pd.Index(models).get_indexer(table["model"])
    found = where >= 0
    for column in scores:
        if column not in reps:
            continue
        low, high = interval(reps[column])
        table.loc[found, column + CI_LOW] = low[where[found]]
        table.loc[found, column + CI_HIGH] = high[where[found]]
    top = str(table["model"].iloc[0])  # sorted by rank, then name
    if top in models and "corrupted" in reps:
        ref = reps["corrupted"][:, models.index(top)]
        table[P_VS_RANK1] = [
            np.nan if model == top or model not in models
            else paired_from_replicates(ref, reps["corrupted"][:, models.index(model)]).p_value
            for model in table["model"]
        ]
    return table


def per_corruption_table(
    metrics: pd.DataFrame, task: str, metric: str, domain: str | None = None
) -> pd.DataFrame:
    """Model x corruption table of ``metric``, averaged over severities.

    Args:
        metrics: Rows in the ``metrics.csv`` layout.
        task: Task to tabulate.
        metric: Metric to tabulate.
        domain: The in-domain test set (default: the domain with corrupted rows).

    Returns:
        Index ``model`` (sorted), one column per corruption ordered by modality then
        name. A corruption name used for several modalities gets ``name[modality]``.
        A corruption where a severity's value is NaN or inf is NaN for that model.
    """
    return _per_corruption(validate_metrics(metrics), task, metric, domain)[0]


def _per_corruption(
    metrics: pd.DataFrame, task: str, metric: str, domain: str | None
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """:func:`per_corruption_table` plus the (corruption, modality) of each column."""
    rows = _task_rows(metrics, task, metric)
    rows = rows[(rows["domain"] == in_domain(metrics, task, domain)) & ~is_clean(rows)]
    cells = corruption_cells(rows)
    means = strict_mean(rows, ["model", "corruption", "modality"])
    table = pd.DataFrame(index=pd.Index(sorted(rows["model"].unique()), name="model"))
    for cell, label in zip(cells, _cell_labels(cells), strict=True):
        table[label] = [float(means.get((model, *cell), math.nan)) for model in table.index]
    table.columns.name = "corruption"
    return table, cells


def write_leaderboard(
    board: pd.DataFrame,
    out_dir: str | Path,
    metrics: pd.DataFrame | None = None,
    domain: str | None = None,
    seen_in_training: Sequence[str] = (),
) -> list[Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` into ``out_dir``.

    Args:
        board: Output of :func:`build_leaderboard`.
        out_dir: Directory to write into (created if missing).
        metrics: When given, each task's Markdown section also gets its
            :func:`per_corruption_table` and names the in-domain domain.
        domain: Passed to :func:`per_corruption_table`.
        seen_in_training: corruptions the fusion heads trained on (``run.json``'s
            ``training.corruptions_seen``); their columns are marked "seen in training".

    Returns:
        The two paths, CSV first.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / LEADERBOARD_CSV, out / LEADERBOARD_MD
    board.to_csv(csv_path, index=False, lineterminator="\n")
    md_path.write_text(leaderboard_markdown(board, metrics, domain, seen_in_training), encoding="utf-8", newline="\n")
    return [csv_path, md_path]


def leaderboard_markdown(
    board: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    domain: str | None = None,
    seen_in_training: Sequence[str] = (),
) -> str:
    """Render the leaderboard as Markdown: a legend, then one section per task.

    Columns with no value for a task (e.g. ``pair`` when no pair corruption ran) are
    left out of that task's table, and so is ``nonfinite_cells`` when it is 0 for every
    model; numbers get 3 decimals; missing values are blank. A task with NaN/inf cells
    gets a line naming the models.
    Corruptions in ``seen_in_training`` get the mark :data:`SEEN_MARK` and a warning line.
    """
    metrics = None if metrics is None else validate_metrics(metrics)
    lines = ["# mafs-bench leaderboard", "", LEGEND, ""]
    if seen_in_training:
        lines += [f"**{SEEN_MARK} seen in training:** the fusion heads trained on {', '.join(sorted(seen_in_training))}; "
                  "scores under these corruptions measure memory of the corruption, not robustness (ImageNet-C's rule).", ""]
    for task in _unique_in_order(board["task"]):
        rows = board[board["task"] == task]
        metric = str(rows["metric"].iloc[0])
        broken = rows[rows["nonfinite_cells"] > 0] if "nonfinite_cells" in rows else rows.iloc[:0]
        columns = [
            c for c in board.columns
            if c not in ("task", "metric", P_VS_RANK1) and not c.endswith((SD_SUFFIX, CI_LOW, CI_HIGH))
            and rows[c].notna().any()
            and (c != "nonfinite_cells" or len(broken))
        ]
        lines += [f"## {task}", ""]
        where = "" if metrics is None else f" on domain `{in_domain(metrics, task, domain)}`"
        lines += [f"Ranked by mean corrupted `{metric}`{where}.", ""]
        if len(broken):
            named = ", ".join(f"`{m}` ({n})" for m, n in zip(broken["model"], broken["nonfinite_cells"], strict=True))
            lines += [f"**NaN/inf scores** (cells): {named}; every mean over them is blank.", ""]
        lines += _markdown_table(_with_rank_marks(_with_spread(rows, columns), rows))
        if metrics is not None:
            table, cells = _per_corruption(metrics, task, metric, domain)
            if cells:
                table.columns = [f"{corruption} ({modality}){' ' + SEEN_MARK if corruption in seen_in_training else ''}"
                                 for corruption, modality in cells]
                lines += ["", f"### {task}: `{metric}` per corruption (mean over severities)", ""]
                lines += _markdown_table(table.reset_index())
        lines.append("")
    return "\n".join(lines)


def _task_table(metrics: pd.DataFrame, task: str, metric: str, domain: str) -> pd.DataFrame:
    """Leaderboard rows of one task, ranked: each score is the mean over training seeds of the
    per-seed score, with its sample standard deviation across seeds in ``<column>_sd``."""
    rows = _task_rows(metrics, task, metric)
    home = rows[rows["domain"] == domain]
    datasets = sorted(home["dataset"].unique())
    if len(datasets) > 1:
        raise SchemaError(
            f"task {task!r} has several datasets {datasets} in domain {domain!r}; "
            "a single score per model would mix them"
        )
    models = pd.Index(sorted(rows["model"].unique()), name="model")
    _warn_uneven_coverage(home[~is_clean(home)], models, task)
    per_seed = pd.concat(
        [_seed_scores(of_seed, domain).assign(seed=seed) for seed, of_seed in rows.groupby("seed")]
    )
    scores = [c for c in per_seed.columns if c not in ("model", "seed")]
    grouped = per_seed.groupby("model")
    complete = grouped[scores].count() == grouped[scores].size().to_numpy()[:, None]
    table = grouped[scores].mean().where(complete).reindex(models)  # a NaN seed makes the mean NaN
    spread = grouped[scores].std(ddof=1).reindex(models)
    table["seeds"] = grouped["seed"].nunique().reindex(models).astype("int64")
    table["nonfinite_cells"] = nonfinite_count(rows, "model").reindex(models, fill_value=0)
    for column in scores:
        table[column + SD_SUFFIX] = spread[column]
    table = table.reset_index()
    table.insert(0, "task", task)
    table.insert(2, "metric", metric)
    ranks = table["corrupted"].rank(method="min", ascending=False, na_option="bottom")
    table.insert(0, "rank", ranks.astype("int64"))
    return table.sort_values(["rank", "model"], kind="stable", ignore_index=True)


def _seed_scores(rows: pd.DataFrame, domain: str) -> pd.DataFrame:
    """Score columns per model from the rows of one training seed."""
    home = rows[rows["domain"] == domain]
    corrupted = home[~is_clean(home)]
    table = pd.DataFrame(index=pd.Index(sorted(rows["model"].unique()), name="model"))
    table["clean"] = strict_mean(home[is_clean(home)], "model")
    table["corrupted"] = strict_mean(corrupted, "model")
    nonzero_clean = table["clean"].where(table["clean"] != 0)
    table["relative_robustness"] = table["corrupted"] / nonzero_clean
    for modality in MODALITIES:
        of_modality = corrupted[corrupted["modality"] == modality]
        table[modality] = strict_mean(of_modality, "model")
    shifted = rows[is_clean(rows) & (rows["domain"] != domain)]
    for name in sorted(shifted["domain"].unique()):
        table[DOMAIN_PREFIX + name] = strict_mean(shifted[shifted["domain"] == name], "model")
    return table.reset_index()


def _task_rows(metrics: pd.DataFrame, task: str, metric: str) -> pd.DataFrame:
    """Rows of one (task, metric); an unknown metric is an error, not an empty table."""
    of_task = metrics[metrics["task"] == task]
    rows = of_task[of_task["metric"] == metric]
    if rows.empty:
        available = sorted(of_task["metric"].unique())
        raise SchemaError(f"task {task!r} has no rows for metric {metric!r}; available: {available}")
    return rows


def _warn_uneven_coverage(corrupted: pd.DataFrame, models: pd.Index, task: str) -> None:
    """Warn when models were scored on different cells: their means are not comparable."""
    cells = corrupted.groupby("model").size().reindex(models, fill_value=0)
    if cells.nunique() > 1:
        counts = {str(model): int(n) for model, n in cells.items()}
        warnings.warn(
            f"task {task!r}: models cover different numbers of corrupted cells {counts}; "
            "their corrupted means are not directly comparable",
            stacklevel=4,
        )


def _with_spread(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``rows``, each score with its ``_sd`` and interval companions shown as
    "mean ± sd [low, high]" text (each part only where known)."""
    out = rows.loc[:, columns].copy()
    blank = pd.Series(np.nan, index=rows.index)
    for column in columns:
        sd = rows.get(column + SD_SUFFIX, blank)
        low, high = rows.get(column + CI_LOW, blank), rows.get(column + CI_HIGH, blank)
        if not (sd.notna().any() or low.notna().any()):
            continue
        out[column] = [
            "" if pd.isna(m) else f"{m:.3f}" + ("" if pd.isna(d) else f" ± {d:.3f}")
            + ("" if pd.isna(lo) or pd.isna(hi) else f" [{lo:.3f}, {hi:.3f}]")
            for m, d, lo, hi in zip(rows[column], sd, low, high, strict=True)
        ]
    return out


def _with_rank_marks(shown: pd.DataFrame, rows: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Mark ranks whose corrupted score is not significantly different from rank 1's."""
    p = rows.get(P_VS_RANK1)
    if "rank" not in shown or p is None or not p.notna().any():
        return shown
    shown = shown.copy()
    shown["rank"] = [f"{r} {NOT_SIGNIFICANT_MARK}" if pd.notna(q) and q >= alpha else str(r)
                     for r, q in zip(rows["rank"], p, strict=True)]
    return shown


def _cell_labels(cells: Sequence[tuple[str, str]]) -> list[str]:
    """Column label per (corruption, modality); qualify names shared across modalities."""
    names = [corruption for corruption, _ in cells]
    return [c if names.count(c) == 1 else f"{c}[{m}]" for c, m in cells]


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    """A pipe table: text left-aligned, numbers (and "mean ± sd" texts) right-aligned, 3 decimals."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) or frame[c].astype(str).str.contains(" ± ").any()
               for c in frame.columns]
    header = "| " + " | ".join(_escape(str(c)) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if is_num else "---" for is_num in numeric) + "|"
    body = [
        "| " + " | ".join(_cell(value) for value in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return [header, rule, *body]


def _cell(value: object) -> str:
    """Format one Markdown cell; floats get 3 decimals, missing is blank."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    if value is None or value is pd.NA:
        return ""
    return _escape(str(value))


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _unique_in_order(values: pd.Series) -> list[str]:
    """Distinct values in first-seen order (the board is already sorted by task)."""
    return [str(v) for v in dict.fromkeys(values)]
