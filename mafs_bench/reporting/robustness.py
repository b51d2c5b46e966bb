"""Robustness aggregates per corruption, per corruption family and overall, from a run's results.

For one task and its primary metric (any higher-is-better score: recall, accuracy, CIDEr), every
model gets, per corruption ``c`` evaluated at levels ``l = 1..L`` (severities; for a shifted domain,
its style strengths) with scores ``A(l)`` and clean in-domain score ``A(0)``:

* **relative robustness** ``RR_c = mean_l A(l) / A(0)`` (corrupted over clean; 1 = no loss).
* **MultiModal Impact** ``MMI_c = mean_l (A(0) - A(l)) / A(0) = 1 - RR_c``, the relative drop of
  MMRobustness (Qiu et al. 2022, arXiv 2212.08044, s3.3), averaged over levels.
* **CE** (corruption error, Hendrycks and Dietterich 2019, ImageNet-C, s4):
  ``CE_c = sum_l E(l) / sum_l E_ref(l)`` with error ``E = 1 - A`` and ``ref`` the suite's reference
  model (``report.reference_model``; ImageNet-C used AlexNet). Defined only for scores in [0, 1]:
  NaN for unbounded metrics (:data:`UNBOUNDED_METRICS`, e.g. CIDEr) or values outside [0, 1], and
  where the reference's error sum is 0. **mCE** is the mean of ``CE_c`` over the corruptions of a
  family (or over all corruptions); below 1 = more robust than the reference.
* **relative CE** (ImageNet-C, s4): ``rCE_c = sum_l (E(l) - E(0)) / sum_l (E_ref(l) - E_ref(0))
  = sum_l (A(0) - A(l)) / sum_l (A_ref(0) - A_ref(l))``: the model's degradation relative to the
  reference's. Unlike CE it needs no bound on the score, so it is defined for CIDEr too; NaN when
  the reference does not degrade (denominator <= 0). **relative mCE**: its mean as for mCE.
* **AUC**, the normalised area under the severity curve: the trapezoid rule over the points
  ``(0, A(0)), (l_1, A(l_1)), ..., (l_L, A(l_L))`` divided by the span ``l_L`` (5 for severities
  1..5, 1 for strengths), i.e. the curve's mean height in the metric's units (= ``A(0)`` for a model
  that never degrades). Missing severities are interpolated linearly by the trapezoids. MultiBench
  (Liang et al. 2021, ``eval_scripts/robustness.py``) calls this area *relative robustness*; we
  keep that name for the ratio above, as MMRobustness and the leaderboard do.
* **effective robustness** against the suite's declared baseline model ``b``
  (``report.baseline_model``): ``ER_c = mean_l [(A(l) - A(0)) - (A_b(l) - A_b(0))]``, the model's
  score above the baseline's curve shifted to the model's clean score. This is MultiBench's
  definition (Liang et al. 2021, s4: "performance above the late-fusion baseline's curve shifted to
  the same clean score"), computed against a model of the same run rather than MultiBench's
  hard-coded curves, and without its min-max normalisation across methods. Taori et al. (2020,
  "Measuring Robustness to Natural Distribution Shifts in Image Classification") fit the baseline
  trend over many models (in logit space); with one declared baseline the trend is a single curve,
  and a vertical shift (slope 1 in score space) is the fit that one point determines. Positive =
  the model loses less than the baseline; 0 for the baseline itself.

Families (:mod:`.families`) and the overall row average the per-corruption values of their
corruptions (so mCE is the ImageNet-C mean); the overall row (``all``) covers every corruption but
not the shifted domains, which form the family ``domain``.

Scores per cell are the mean over training seeds (the leaderboard's per-seed means averaged),
so ``RR`` here is ``mean corrupted / mean clean`` and may differ in the third decimal from the
leaderboard's ``relative_robustness`` (the mean of per-seed ratios). A NaN or inf cell makes every
aggregate over it NaN (never skipped). With an items file every aggregate gets a 95% bootstrap
interval (``<measure>_ci_low`` / ``_ci_high``) from the same resamples of items and seeds as the
leaderboard (:mod:`.bootstrap`): each replicate recomputes the cell means and then the aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from mafs_bench.reporting.bootstrap import (
    BOOTSTRAP_SEED,
    RESAMPLES,
    cell_replicates,
    draw_counts,
    interval,
    item_universe,
    metric_parts,
    seed_draws,
    stream,
)
from mafs_bench.reporting.families import DOMAIN_FAMILY, corruption_families, family_sort_key
from mafs_bench.reporting.schema import (
    SchemaError,
    in_domain,
    is_clean,
    split_domain,
    strict_mean,
    validate_metrics,
)

MEASURES: Final[tuple[str, ...]] = ("relative_robustness", "mmi", "ce", "relative_ce", "auc", "effective_robustness")
"""Aggregate columns, in order (at family and overall level ``ce`` is mCE, ``relative_ce`` relative mCE)."""

UNBOUNDED_METRICS: Final[frozenset[str]] = frozenset({"cider", "cider_d", "CIDEr", "CIDEr-D"})
"""Metrics not bounded by 1, for which ``1 - score`` is no error rate: CE is NaN for them."""

ALL: Final[str] = "all"
"""Name of the overall row (every corruption, shifted domains excluded)."""

KEY_COLUMNS: Final[tuple[str, ...]] = ("task", "metric", "model", "level", "name", "family", "modality", "corruptions")
"""Columns before the measures: ``level`` is ``corruption``, ``family`` or ``all``; ``name`` the
corruption (or shifted domain), family, or ``all``; ``corruptions`` how many corruptions it averages."""

CellKey = tuple[str, str, str, int]
"""(domain, corruption, modality, severity) of one cell."""


@dataclass(frozen=True)
class Curve:
    """One corruption's (or shifted domain's) severity curve over every model.

    Attributes:
        name: corruption, or the shifted domain's name.
        modality: the corruption's modality, or ``"domain"``.
        family: report family (:mod:`.families`).
        levels: (L,) float64 severities (or strengths), ascending, all > 0.
        cells: the L cells, in ``levels`` order.
    """

    name: str
    modality: str
    family: str
    levels: np.ndarray
    cells: tuple[CellKey, ...]


def robustness_table(
    metrics: pd.DataFrame,
    task: str,
    metric: str,
    reference: str | None = None,
    baseline: str | None = None,
    domain: str | None = None,
    items: pd.DataFrame | None = None,
    meta: Mapping | None = None,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Every robustness aggregate of every model of one task (see the module docstring).

    Args:
        metrics: rows in the ``metrics.csv`` layout (validated here).
        task, metric: what to aggregate (the task's primary metric).
        reference: model the CE / relative CE are relative to (None or absent: NaN).
        baseline: model effective robustness is measured against (None or absent: NaN).
        domain: the in-domain test set (default: the task's domain with corrupted rows).
        items, meta: the run's items frame and ``run.json`` for intervals (None: no intervals).
        resamples, seed: bootstrap replicates and seed (the leaderboard's by default).

    Returns:
        One row per model and corruption, then per model and family, then per model ``all``:
        :data:`KEY_COLUMNS`, :data:`MEASURES` (float64), then ``<measure>_ci_low`` /
        ``<measure>_ci_high`` (NaN without items). Models sorted; corruptions and families in
        :func:`~.families.family_sort_key` order.

    Raises:
        SchemaError: the task has no rows for ``metric``.
    """
    metrics = validate_metrics(metrics)
    rows = metrics[(metrics["task"] == task) & (metrics["metric"] == metric)]
    if rows.empty:
        raise SchemaError(f"task {task!r} has no rows for metric {metric!r}")
    home = in_domain(metrics, task, domain)
    models = sorted(rows["model"].unique())
    curves = severity_curves(rows, home, meta)
    bounded = metric not in UNBOUNDED_METRICS and bool(
        rows["value"][np.isfinite(rows["value"])].between(0.0, 1.0).all())
    point = _point_cells(rows, models)
    values = aggregate(point, models, home, curves, reference, baseline, bounded)
    table = _frame(values, curves, task, metric, models)
    reps = _replicate_cells(items, meta, task, metric, models, resamples, seed)
    for measure in MEASURES:
        table[measure + "_ci_low"] = np.nan
        table[measure + "_ci_high"] = np.nan
    if reps is not None:
        rep_values = aggregate(reps, models, home, curves, reference, baseline, bounded)
        for (level, name), by_measure in rep_values.items():
            at = (table["level"] == level) & (table["name"] == name)
            where = table.loc[at, "model"].map({m: i for i, m in enumerate(models)}).to_numpy()
            for measure, array in by_measure.items():
                low, high = interval(array)
                table.loc[at, measure + "_ci_low"] = low[where]
                table.loc[at, measure + "_ci_high"] = high[where]
    return table


def severity_curves(rows: pd.DataFrame, home: str, meta: Mapping | None = None) -> list[Curve]:
    """The curves of one (task, metric)'s rows: each corruption of the in-domain test set, then
    each shifted domain over its style strengths (clean rows of ``<name>`` / ``<name>@<s>``).

    Returns:
        Curves sorted by family (:func:`~.families.family_sort_key`), then modality and name.
    """
    of_home = rows[(rows["domain"] == home) & ~is_clean(rows)]
    pairs = sorted({(str(c), str(m)) for c, m in of_home[["corruption", "modality"]].itertuples(index=False)})
    families = corruption_families(pairs, meta)
    curves = []
    for corruption, modality in pairs:
        cells = of_home[(of_home["corruption"] == corruption) & (of_home["modality"] == modality)]
        severities = sorted(int(s) for s in cells["severity"].unique())
        curves.append(Curve(corruption, modality, families[(corruption, modality)], np.asarray(severities, dtype=np.float64),
                            tuple((home, corruption, modality, s) for s in severities)))
    shifted: dict[str, list[tuple[float, str]]] = {}
    for label in sorted(rows.loc[is_clean(rows) & (rows["domain"] != home), "domain"].unique()):
        name, strength = split_domain(label)
        if strength > 0:
            shifted.setdefault(name, []).append((strength, label))
    for name, points in shifted.items():
        points.sort()
        curves.append(Curve(name, "domain", DOMAIN_FAMILY, np.asarray([s for s, _ in points]),
                            tuple((label, "none", "none", 0) for _, label in points)))
    return sorted(curves, key=lambda c: (family_sort_key(c.family), c.modality, c.name))


def aggregate(cells: Mapping[CellKey, np.ndarray], models: Sequence[str], home: str, curves: Sequence[Curve],
              reference: str | None, baseline: str | None, bounded: bool = True) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """The measures of every curve, family and the overall row, on arrays of replicates.

    Args:
        cells: (domain, corruption, modality, severity) -> (R, M) scores (R replicates, M models;
            NaN where a model lacks the cell). The clean cell is ``(home, "none", "none", 0)``.
        models: the M model names (column order of every array).
        curves: from :func:`severity_curves`.
        reference, baseline: model names (absent or None: CE / effective robustness are NaN).
        bounded: the metric lies in [0, 1] (else CE is NaN).

    Returns:
        ``{(level, name): {measure: (R, M) array}}`` for level ``corruption`` (each curve),
        ``family`` and ``all``.
    """
    clean = cells.get((home, "none", "none", 0))
    if clean is None:
        raise SchemaError(f"no clean cell in domain {home!r}: robustness aggregates need the clean score")
    ref = models.index(reference) if reference in models else None
    base = models.index(baseline) if baseline in models else None
    nan = np.full_like(clean, np.nan)
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for curve in curves:
        values = np.stack([cells.get(c, nan) for c in curve.cells], axis=-1)  # (R, M, L)
        out[("corruption", curve.name)] = _measures(clean, values, curve.levels, ref, base, bounded)
    families: dict[str, list[str]] = {}
    for curve in curves:
        families.setdefault(curve.family, []).append(curve.name)
    for family, names in families.items():
        out[("family", family)] = _mean_of([out[("corruption", n)] for n in names])
    corrupted = [c.name for c in curves if c.family != DOMAIN_FAMILY]
    if corrupted:
        out[("all", ALL)] = _mean_of([out[("corruption", n)] for n in corrupted])
    return out


def _measures(clean: np.ndarray, values: np.ndarray, levels: np.ndarray, ref: int | None, base: int | None,
              bounded: bool) -> dict[str, np.ndarray]:
    """The measures of one curve: ``clean`` (R, M), ``values`` (R, M, L) at ``levels`` (L,)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        nonzero = np.where(clean != 0, clean, np.nan)
        mean = values.mean(-1)
        rr = mean / nonzero
        drop = (clean[..., None] - values).sum(-1)  # sum_l (A(0) - A(l)) = sum_l (E(l) - E(0))
        nan = np.full_like(clean, np.nan)
        if ref is not None and bounded:
            err_ref = (1.0 - values[:, ref, :]).sum(-1)
            ce = (1.0 - values).sum(-1) / np.where(err_ref != 0, err_ref, np.nan)[:, None]
        else:
            ce = nan
        if ref is not None:
            drop_ref = drop[:, ref]
            rce = drop / np.where(drop_ref > 0, drop_ref, np.nan)[:, None]
        else:
            rce = nan
        xs = np.concatenate([[0.0], levels])
        ys = np.concatenate([clean[..., None], values], axis=-1)
        auc = ((ys[..., 1:] + ys[..., :-1]) / 2 * np.diff(xs)).sum(-1) / xs[-1]
        if base is not None:
            own = (values - clean[..., None]).mean(-1)
            er = own - own[:, base][:, None]
        else:
            er = nan
    return {"relative_robustness": rr, "mmi": 1.0 - rr, "ce": ce, "relative_ce": rce, "auc": auc,
            "effective_robustness": er}


def _mean_of(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per measure, the mean over ``parts`` (NaN where any part is NaN)."""
    return {m: np.mean(np.stack([p[m] for p in parts]), axis=0) for m in MEASURES}


def _frame(values: dict[tuple[str, str], dict[str, np.ndarray]], curves: Sequence[Curve], task: str, metric: str,
           models: Sequence[str]) -> pd.DataFrame:
    """The point estimates (replicate 0) as a long table."""
    by_family: dict[str, list[Curve]] = {}
    for curve in curves:
        by_family.setdefault(curve.family, []).append(curve)
    records = []
    order: list[tuple[str, str, str, str, int]] = [("corruption", c.name, c.family, c.modality, 1) for c in curves]
    order += [("family", f, f, ",".join(sorted({c.modality for c in cs})), len(cs)) for f, cs in by_family.items()]
    if ("all", ALL) in values:
        n = sum(c.family != DOMAIN_FAMILY for c in curves)
        order.append(("all", ALL, ALL, ",".join(sorted({c.modality for c in curves if c.family != DOMAIN_FAMILY})), n))
    for model_index, model in enumerate(models):
        for level, name, family, modality, n in order:
            measures = values[(level, name)]
            records.append({"task": task, "metric": metric, "model": model, "level": level, "name": name,
                            "family": family, "modality": modality, "corruptions": n,
                            **{m: float(measures[m][0, model_index]) for m in MEASURES}})
    frame = pd.DataFrame.from_records(records, columns=[*KEY_COLUMNS, *MEASURES])
    level_rank = {"corruption": 0, "family": 1, "all": 2}
    frame["_level"] = frame["level"].map(level_rank)
    frame = frame.sort_values(["_level", "model"], kind="stable").drop(columns="_level").reset_index(drop=True)
    return frame


def _point_cells(rows: pd.DataFrame, models: Sequence[str]) -> dict[CellKey, np.ndarray]:
    """(1, M) mean over seeds of every cell of ``rows`` (strict: a NaN seed makes the cell NaN)."""
    means = strict_mean(rows, ["domain", "corruption", "modality", "severity", "model"])
    out: dict[CellKey, np.ndarray] = {}
    index = {m: i for i, m in enumerate(models)}
    for (domain, corruption, modality, severity, model), value in means.items():
        key = (str(domain), str(corruption), str(modality), int(severity))
        out.setdefault(key, np.full((1, len(models)), np.nan))[0, index[model]] = value
    return out


def _replicate_cells(items: pd.DataFrame | None, meta: Mapping | None, task: str, metric: str, models: Sequence[str],
                     resamples: int, seed: int) -> dict[CellKey, np.ndarray] | None:
    """(R + 1, M) bootstrap replicates of every cell's mean over seeds, or None without items.

    Items and seeds are drawn exactly as for the leaderboard (:func:`.bootstrap.bootstrap_task`):
    the same streams, so the intervals come from the same resamples.
    """
    if items is None:
        return None
    of_task = items[items["task"] == task]
    parts = None if of_task.empty else metric_parts(meta, task, metric, of_task)
    if parts is None or any(p not in of_task.columns for p in parts):
        return None
    universe = item_universe(of_task, parts)
    reps = cell_replicates(of_task, parts, universe, draw_counts(task, universe, resamples, seed))
    series = reps.series
    seeds = sorted(int(s) for s in series["seed"].unique())
    draws = seed_draws(len(seeds), resamples, stream(seed, task, "seeds"))
    keys = list(zip(series["domain"], series["corruption"], series["modality"], series["severity"].astype(int),
                    strict=True))
    cell_index: dict[CellKey, int] = {}
    for key in keys:
        cell_index.setdefault((str(key[0]), str(key[1]), str(key[2]), int(key[3])), len(cell_index))
    n_rep = reps.values.shape[0]
    per_seed = np.full((n_rep, len(cell_index), len(models), len(seeds)), np.nan)
    present = np.zeros((len(cell_index), len(models), len(seeds)), dtype=bool)
    model_pos = pd.Index(models).get_indexer(series["model"])
    seed_pos = pd.Index(seeds).get_indexer(series["seed"])
    for j, key in enumerate(keys):
        if model_pos[j] < 0:
            continue
        c = cell_index[(str(key[0]), str(key[1]), str(key[2]), int(key[3]))]
        per_seed[:, c, model_pos[j], seed_pos[j]] = reps.values[:, j]
        present[c, model_pos[j], seed_pos[j]] = True
    cell_ax = np.arange(len(cell_index))[None, :, None, None]
    model_ax = np.arange(len(models))[None, None, :, None]
    seed_ax = draws[:, None, None, :]
    picked = per_seed[np.arange(n_rep)[:, None, None, None], cell_ax, model_ax, seed_ax]  # (R+1, cells, M, S)
    weight = present[cell_ax, model_ax, seed_ax]  # (R+1, cells, M, S)
    n = weight.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(weight, picked, 0.0).sum(-1) / np.maximum(n, 1), np.nan)
    return {key: mean[:, c, :] for key, c in cell_index.items()}


MARKDOWN_BY_FAMILY: Final[tuple[str, ...]] = ("relative_robustness", "ce", "effective_robustness")
"""Measures :func:`robustness_markdown` tabulates model x family."""


def robustness_markdown(table: pd.DataFrame, references: Mapping[str, tuple[str | None, str | None]] | None = None) -> str:
    """``robustness.md``: per task the overall row of every model (each measure with its interval),
    then model x family tables of :data:`MARKDOWN_BY_FAMILY`.

    Args:
        table: :func:`robustness_table` rows of one or several tasks.
        references: task -> (reference model, baseline model), named in each section.
    """
    from mafs_bench.reporting.leaderboard import _markdown_table

    lines = ["# mafs-bench robustness aggregates", "",
             "Definitions: `mafs_bench/reporting/robustness.py` (and report.html). `all` = every corruption "
             "(shifted domains excluded); `ce` = mCE, `relative_ce` = relative mCE (ImageNet-C), `mmi` = MultiModal "
             "Impact (MMRobustness), `auc` = normalised area under the severity curve, `effective_robustness` = "
             "against the baseline model (MultiBench). Each value with its 95% bootstrap interval when the run has items.",
             ""]
    for task, rows in table.groupby("task", sort=False):
        reference, baseline = (references or {}).get(str(task), (None, None))
        lines += [f"## {task}", "", f"Metric `{rows['metric'].iloc[0]}`; reference model `{reference}`, "
                  f"baseline model `{baseline}`.", ""]
        overall = rows[rows["level"] == "all"]
        if not overall.empty:
            shown = pd.DataFrame({"model": overall["model"].to_numpy()})
            for measure in MEASURES:
                shown[measure] = [_with_interval(v, lo, hi) for v, lo, hi in
                                  zip(overall[measure], overall[measure + "_ci_low"], overall[measure + "_ci_high"],
                                      strict=True)]
            lines += ["### all corruptions", "", *_markdown_table(shown), ""]
        families = rows[rows["level"] == "family"]
        for measure in MARKDOWN_BY_FAMILY:
            pivot = families.pivot_table(index="model", columns="name", values=measure, dropna=False, sort=False)
            pivot = pivot.reindex(columns=list(dict.fromkeys(families["name"])))
            lines += [f"### {measure} by family", "", *_markdown_table(pivot.reset_index()), ""]
    return "\n".join(lines)


def _with_interval(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return ""
    return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if np.isfinite(low) and np.isfinite(high) else "")


__all__ = ["ALL", "KEY_COLUMNS", "MEASURES", "UNBOUNDED_METRICS", "Curve", "aggregate", "robustness_markdown",
           "robustness_table", "severity_curves"]
