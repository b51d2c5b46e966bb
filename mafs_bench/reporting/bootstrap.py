"""Bootstrap intervals and paired bootstrap tests over evaluation items (and training seeds).

Source: REFERENCES.md s6; the percentile interval and the bootstrap test of Efron and
Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13 and 16; the paired bootstrap
over a shared test set of Koehn, "Statistical Significance Tests for Machine Translation
Evaluation" (EMNLP 2004). Implemented here from those definitions.

The procedure (every leaderboard interval and every ``compare`` test):

1. **Items.** For each (task, query kind) (retrieval: ``i2t`` images, ``t2i`` captions) the
   universe is the sorted set of item ids in the items file. Replicate ``r = 1..R`` draws
   ``n`` item positions uniformly with replacement (``n`` = universe size) and keeps how often
   each id was drawn, ``c_r``; replicate 0 is the full sample (``c_0 = 1``). The same ``c_r``
   serve every model, seed and cell (and both runs of a comparison), which pairs them.
2. **Cells.** A per-item metric of a cell on replicate ``r`` is the weighted mean
   ``sum_i c_r[i] x[i] / sum_i c_r[i]`` over the cell's items; a composite metric (retrieval's
   ``r_mean``) is the mean of its parts, each over its own query kind (``run.json``'s ``items``).
   This is one matrix product per query kind: counts (R+1, n) @ item scores (n, series).
3. **Scores.** Per (model, seed), a leaderboard score is the mean over its cells (clean: the
   clean in-domain cell; corrupted: every corrupted cell; ``image``/``text``/``pair``: that
   modality's; ``domain:<d>``: the clean cell of domain d; ``relative_robustness``: corrupted /
   clean), exactly as :mod:`.leaderboard` computes it from ``metrics.csv``.
4. **Seeds.** With S training seeds, replicate ``r >= 1`` also draws S seed positions with
   replacement (shared by all models, so seed position s pairs models); its score is the mean
   of the per-seed scores over the drawn seeds (a seed without values for a model is skipped).
   Replicate 0 uses every seed once: it reproduces the leaderboard's mean over seeds.
5. **Interval.** The 95% percentile interval: the 2.5% and 97.5% quantiles (numpy's linear
   interpolation) of replicates 1..R.
6. **Paired test.** For two scores on the same replicates, ``d_r = b_r - a_r``; the two-sided
   p-value is ``min(1, 2 (1 + min(#{d_r <= 0}, #{d_r >= 0})) / (R + 1))`` (the +1 keeps p above
   0 with finitely many replicates), significant when ``p < alpha``; identical inputs give
   ``d = 0`` and ``p = 1``.

All randomness comes from ``numpy.random.default_rng`` seeded by :data:`BOOTSTRAP_SEED` and
the CRC32 of the (task, query kind) name, so results are deterministic and do not depend on
which other tasks or models are present.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from mafs_bench.reporting.schema import ITEMS_KEY, SchemaError

RESAMPLES: Final[int] = 1000
"""Bootstrap replicates (REFERENCES.md s6)."""

BOOTSTRAP_SEED: Final[int] = 20240612
"""Seed of every bootstrap draw (with the task and query kind mixed in)."""

CONFIDENCE: Final[float] = 0.95
"""Coverage of the percentile intervals."""

ALPHA: Final[float] = 0.05
"""Significance level of the paired tests."""

CELL_KEY: Final[tuple[str, ...]] = ("domain", "corruption", "modality", "severity")
"""Columns naming a cell."""

SERIES_KEY: Final[tuple[str, ...]] = ("model", "seed", *CELL_KEY)
"""Columns naming one series of a task's items: a (model, seed, cell)."""


@dataclass(frozen=True)
class PairedResult:
    """A paired bootstrap comparison ``b - a``.

    Attributes:
        difference: ``b - a`` on the full sample.
        ci_low / ci_high: the percentile interval of the difference.
        p_value: two-sided bootstrap p-value (see the module docstring).
        significant: ``p_value < alpha``.
    """

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


def stream(seed: int, *names: str) -> np.random.Generator:
    """The generator for a named draw: ``default_rng([seed, crc32(name), ...])``."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` items is drawn in each replicate, replicate 0 the full sample.

    Returns:
        (resamples + 1, n) float32 counts; row 0 is all ones, each other row sums to ``n``.
    """
    idx = rng.integers(0, n, size=(resamples, n))
    counts = np.bincount((idx + n * np.arange(resamples)[:, None]).ravel(), minlength=resamples * n)
    return np.vstack([np.ones((1, n)), counts.reshape(resamples, n)]).astype(np.float32)


def seed_draws(n_seeds: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Seed positions of each replicate: (resamples + 1, n_seeds) int, row 0 = every seed once."""
    drawn = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    return np.vstack([np.arange(n_seeds)[None, :], drawn])


def interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of ``replicates`` (replicate 0, the full sample, excluded).

    NaN where the full-sample value is NaN; replicates that are NaN (e.g. a ratio whose
    denominator is 0 on that resample) are left out.
    """
    reps = np.asarray(replicates, dtype=np.float64)
    tail = (1 - confidence) / 2
    body = reps[1:]
    ok = np.isfinite(body).any(0) & np.isfinite(reps[0])
    low = np.full(reps.shape[1:], np.nan)
    high = np.full(reps.shape[1:], np.nan)
    if ok.any():
        q = np.nanquantile(body[:, ok], [tail, 1 - tail], axis=0)
        low[ok], high[ok] = q[0], q[1]
    return low, high


def paired_from_replicates(a: np.ndarray, b: np.ndarray, alpha: float = ALPHA,
                           confidence: float | None = None) -> PairedResult:
    """Paired test of ``b - a`` from replicates drawn with the same resamples.

    Args:
        a, b: (R + 1,) replicate values, row 0 the full sample.
        alpha: significance level; the interval's coverage is ``1 - alpha`` unless ``confidence``.

    Returns:
        A :class:`PairedResult`; all NaN (not significant) when either full-sample value is NaN.
    """
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if not np.isfinite(d[0]):
        return PairedResult(float("nan"), float("nan"), float("nan"), float("nan"), False)
    body = d[1:][np.isfinite(d[1:])]
    if not len(body):
        return PairedResult(float(d[0]), float("nan"), float("nan"), float("nan"), False)
    low, high = interval(d[:, None], 1 - alpha if confidence is None else confidence)
    tail = min(int((body <= 0).sum()), int((body >= 0).sum()))
    p = min(1.0, 2 * (1 + tail) / (len(body) + 1))
    return PairedResult(float(d[0]), float(low[0]), float(high[0]), p, p < alpha)


def paired_bootstrap(a_items: Sequence[float] | np.ndarray, b_items: Sequence[float] | np.ndarray,
                     resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED, alpha: float = ALPHA) -> PairedResult:
    """Paired bootstrap test of ``mean(b) - mean(a)`` over the same evaluation items.

    ``a_items[i]`` and ``b_items[i]`` are two systems' scores on item ``i`` (e.g. retrieval hits);
    each replicate resamples item positions with replacement and applies them to both (Koehn
    2004; Efron and Tibshirani 1993, ch. 16). See the module docstring for the interval and the
    p-value.

    Args:
        a_items, b_items: (n,) per-item scores of the same n items, in the same order.
        resamples: bootstrap replicates.
        seed: seed of the item draws (deterministic results).
        alpha: significance level (and ``1 - alpha`` interval coverage).

    Returns:
        :class:`PairedResult` of ``b - a``.

    Raises:
        ValueError: the arrays differ in length or are empty.

    Example:
        >>> r = paired_bootstrap([1, 0, 1, 1], [1, 1, 1, 1])
        >>> r.difference
        0.25
    """
    a = np.asarray(a_items, dtype=np.float64)
    b = np.asarray(b_items, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_bootstrap needs two non-empty 1-D arrays of the same items, got {a.shape} and {b.shape}")
    counts = resample_counts(len(a), resamples, stream(seed, "paired")).astype(np.float64)
    reps = counts @ np.stack([a, b], axis=1) / len(a)
    return paired_from_replicates(reps[:, 0], reps[:, 1], alpha)


def metric_parts(meta: Mapping | None, task: str, metric: str, items: pd.DataFrame | None) -> list[str] | None:
    """The per-item columns ``metric`` is the mean of: ``run.json``'s ``items[task][metric]``,
    else ``[metric]`` when the items file has such a column; None when it cannot be decomposed."""
    recorded = ((meta or {}).get("items") or {}).get(task, {}).get(metric)
    if recorded:
        return list(recorded)
    if items is not None and metric in items.columns:
        return [metric]
    return None


@dataclass
class CellReplicates:
    """Replicates of one metric for every (model, seed, cell) series of one task.

    Attributes:
        series: one row per series, columns :data:`SERIES_KEY`.
        values: (R + 1, n_series) float64; row 0 is the full-sample value.
    """

    series: pd.DataFrame
    values: np.ndarray


def item_universe(items: pd.DataFrame, parts: Sequence[str]) -> dict[str, np.ndarray]:
    """Query kind -> sorted distinct item ids of the rows where any of ``parts`` is set."""
    out: dict[str, np.ndarray] = {}
    for part in parts:
        rows = items[items[part].notna()]
        for query in rows["query"].unique():
            ids = np.unique(rows.loc[rows["query"] == query, "item"].to_numpy())
            out[query] = np.union1d(out.get(query, ids), ids)
    return out


def draw_counts(task: str, universe: Mapping[str, np.ndarray], resamples: int = RESAMPLES,
                seed: int = BOOTSTRAP_SEED) -> dict[str, np.ndarray]:
    """Item resample counts per query kind of ``task`` (:func:`resample_counts`)."""
    return {q: resample_counts(len(ids), resamples, stream(seed, task, q)) for q, ids in universe.items()}


def cell_replicates(items: pd.DataFrame, parts: Sequence[str], universe: Mapping[str, np.ndarray],
                    counts: Mapping[str, np.ndarray]) -> CellReplicates:
    """Replicates of the metric that is the mean of ``parts`` for every series of ``items``.

    Args:
        items: the items of one task (validated items frame).
        parts: per-item columns averaged into the metric (:func:`metric_parts`).
        universe: query kind -> item ids the counts index (:func:`item_universe`).
        counts: query kind -> (R + 1, n) counts (:func:`draw_counts`).

    Returns:
        :class:`CellReplicates`; a series missing a part is NaN.
    """
    rows = items[items[list(parts)].notna().any(axis=1)]
    codes, series = _factorize(rows, SERIES_KEY)
    n_rep = next(iter(counts.values())).shape[0] if counts else 1
    total = np.zeros((n_rep, len(series)))
    for query in rows["query"].unique():
        of_q = rows["query"].to_numpy() == query
        q_parts = [p for p in parts if rows.loc[of_q, p].notna().any()]
        pos = np.searchsorted(universe[query], rows.loc[of_q, "item"].to_numpy())
        if (pos >= len(universe[query])).any() or (universe[query][np.minimum(pos, len(universe[query]) - 1)]
                                                  != rows.loc[of_q, "item"].to_numpy()).any():
            raise SchemaError(f"items of query {query!r} outside the bootstrap universe (different datasets?)")
        col = codes[of_q]
        shape = (len(universe[query]), len(series))
        present = [np.zeros(shape, dtype=np.float32) for _ in q_parts]
        values = [np.zeros(shape, dtype=np.float32) for _ in q_parts]
        for k, part in enumerate(q_parts):
            x = rows.loc[of_q, part].to_numpy(dtype=np.float64)
            ok = np.isfinite(x)
            present[k][pos[ok], col[ok]] = 1.0
            values[k][pos[ok], col[ok]] = x[ok]
        c = counts[query]
        if all(np.array_equal(present[0], p) for p in present[1:]):
            # same items for every part: average the parts per item first, one product
            den = c.sum(1, keepdims=True) if present[0].all() else c @ present[0]
            num = c @ (sum(values) / len(q_parts))
            with np.errstate(invalid="ignore", divide="ignore"):
                total += num.astype(np.float64) / den * len(q_parts)
        else:
            for v, p in zip(values, present, strict=True):
                with np.errstate(invalid="ignore", divide="ignore"):
                    total += (c @ v).astype(np.float64) / (c @ p)
    n_parts_seen = np.zeros(len(series))
    for part in parts:
        seen = rows[part].notna().to_numpy()
        n_parts_seen += np.bincount(codes[seen], minlength=len(series)) > 0
    total[:, n_parts_seen < len(parts)] = np.nan
    return CellReplicates(series, total / len(parts))


def _factorize(frame: pd.DataFrame, key: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer code per row of the distinct ``key`` tuples, and those tuples (in first-seen order)."""
    codes = frame.groupby(list(key), sort=False, observed=True).ngroup().to_numpy()
    first = np.unique(codes, return_index=True)[1]
    table = frame.iloc[first][list(key)].reset_index(drop=True)
    return codes, table


def score_groups(series: pd.DataFrame, domain: str, modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """Score column -> boolean mask over the cells of ``series`` (see :mod:`.leaderboard`)."""
    clean = series["corruption"].to_numpy() == "none"
    home = series["domain"].to_numpy() == domain
    groups = {"clean": home & clean, "corrupted": home & ~clean}
    for modality in modalities:
        groups[modality] = home & ~clean & (series["modality"].to_numpy() == modality)
    for name in sorted(series.loc[clean & ~home, "domain"].unique()):
        groups[f"domain:{name}"] = clean & (series["domain"].to_numpy() == name)
    return groups


def score_replicates(reps: CellReplicates, domain: str, modalities: Sequence[str], models: Sequence[str],
                     seeds: Sequence[int], draws: np.ndarray) -> dict[str, np.ndarray]:
    """Score column -> (R + 1, n_models) replicates: per seed the strict mean over the score's
    cells (NaN if any is NaN or there are none), then the mean over the replicate's drawn seeds
    (``draws``: :func:`seed_draws` over ``seeds``; a seed a model lacks is skipped).
    ``relative_robustness`` = corrupted / clean per seed."""
    s = reps.series
    model_pos = pd.Index(models).get_indexer(s["model"])
    seed_pos = pd.Index(seeds).get_indexer(s["seed"])
    n_rep = reps.values.shape[0]
    out: dict[str, np.ndarray] = {}
    per_seed: dict[str, np.ndarray] = {}
    has: dict[str, np.ndarray] = {}  # (models, seeds): the model has cells of the score under that seed
    for name, mask in score_groups(s, domain, modalities).items():
        acc = np.zeros((n_rep, len(models), len(seeds)))
        cnt = np.zeros((len(models), len(seeds)))
        keep = mask & (model_pos >= 0) & (seed_pos >= 0)
        for j in np.flatnonzero(keep):
            acc[:, model_pos[j], seed_pos[j]] += reps.values[:, j]  # NaN propagates: strict mean
            cnt[model_pos[j], seed_pos[j]] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed[name] = np.where(cnt > 0, acc / np.maximum(cnt, 1), np.nan)
        has[name] = cnt > 0
    if "clean" in per_seed and "corrupted" in per_seed:
        clean = per_seed["clean"]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed["relative_robustness"] = per_seed["corrupted"] / np.where(clean != 0, clean, np.nan)
        has["relative_robustness"] = has["clean"] & has["corrupted"]
    rows = np.arange(n_rep)[:, None, None]
    cols = np.arange(len(models))[None, :, None]
    for name, values in per_seed.items():
        picked = values[rows, cols, draws[:, None, :]]  # (R+1, models, S)
        weight = has[name][cols, draws[:, None, :]]
        n = weight.sum(2)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(n > 0, np.where(weight, picked, 0.0).sum(2) / np.maximum(n, 1), np.nan)
        # a NaN score under any seed on the full sample: no score (strict, as the leaderboard)
        broken = (has[name] & ~np.isfinite(values[0])).any(1)
        out[name][:, broken] = np.nan
    return out


def bootstrap_task(items: pd.DataFrame, parts: Sequence[str], domain: str, modalities: Sequence[str],
                   task: str, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[list[str], dict[str, np.ndarray]]:
    """Models and score replicates (:func:`score_replicates`) of one task of one run."""
    universe = item_universe(items, parts)
    counts = draw_counts(task, universe, resamples, seed)
    reps = cell_replicates(items, parts, universe, counts)
    models = sorted(reps.series["model"].unique())
    seeds = sorted(int(x) for x in reps.series["seed"].unique())
    draws = seed_draws(len(seeds), resamples, stream(seed, task, "seeds"))
    return models, score_replicates(reps, domain, modalities, models, seeds, draws)


__all__ = [
    "ALPHA",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "ITEMS_KEY",
    "RESAMPLES",
    "CellReplicates",
    "PairedResult",
    "bootstrap_task",
    "cell_replicates",
    "draw_counts",
    "interval",
    "item_universe",
    "metric_parts",
    "paired_bootstrap",
    "paired_from_replicates",
    "resample_counts",
    "score_replicates",
    "seed_draws",
]
