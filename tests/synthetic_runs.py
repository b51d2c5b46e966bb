"""Synthetic run directories (metrics.csv, items.csv.gz, run.json) for the bootstrap and compare tests.

Hits are drawn per (model, seed, cell, query) with a probability that falls with severity;
``metrics.csv`` is computed from the items exactly as the runner does (each recall = mean of its
hits; ``r_mean`` = mean of the recalls), so the two files agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mafs_bench.reporting.schema import DEFAULT_CORRUPTED, ITEMS_FILE, ITEMS_KEY, METRICS_COLUMNS

KS = (1, 5, 10)
I2T = [f"i2t_r{k}" for k in KS]
T2I = [f"t2i_r{k}" for k in KS]
CELLS = [("plain", "none", "none", 0), *((("plain", c, m, s) for c, m in
         (("gaussian_noise", "image"), ("keyboard", "text"), ("caption_shuffle", "pair")) for s in (1, 3, 5))),
         ("outline", "none", "none", 0)]
SKILL = {"clip": 0.55, "fixed_sum": 0.65, "mafs": 0.7, "albef": 0.68, "blip": 0.69}


def make_items(models: Sequence[str] = tuple(SKILL), seeds: Sequence[int] = (0, 1, 2), n_images: int = 200,
               captions_per_image: int = 5, cells: Sequence[tuple] = CELLS, seed: int = 0) -> pd.DataFrame:
    """An items frame: per (model, seed, cell) one i2t row per image and one t2i row per caption."""
    rng = np.random.default_rng(seed)
    n_caps = n_images * captions_per_image
    frames = []
    for model in models:
        for s in seeds:
            for domain, corruption, modality, severity in cells:
                p = SKILL.get(model, 0.6) * (1 - 0.08 * severity) * (0.8 if domain != "plain" else 1.0)
                for query, n, cols in (("i2t", n_images, I2T), ("t2i", n_caps, T2I)):
                    # nested hits: a hit at K=1 is a hit at every larger K
                    u = rng.random(n)
                    frame = pd.DataFrame({"query": query, "item": np.arange(n, dtype=np.int64)})
                    for k, col in zip(KS, cols, strict=True):
                        frame[col] = (u < min(1.0, p * (1 + 0.1 * k))).astype(np.float64)
                    for other in (T2I if query == "i2t" else I2T):
                        frame[other] = np.nan
                    key = dict(zip(ITEMS_KEY[:-2], (model, s, "retrieval", "world", domain, corruption, modality,
                                                    DEFAULT_CORRUPTED[modality], severity),
                                   strict=True))
                    frames.append(frame.assign(**key))
    items = pd.concat(frames, ignore_index=True)
    return items[[*ITEMS_KEY, *I2T, *T2I]]


def metrics_from_items(items: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv rows computed from the items (recalls, r_mean, nonfinite_scores = 0)."""
    key = list(ITEMS_KEY[:-2])
    recalls = items.groupby(key, sort=False)[[*I2T, *T2I]].mean().reset_index()
    recalls["r_mean"] = recalls[[*I2T, *T2I]].mean(axis=1)
    recalls["nonfinite_scores"] = 0.0
    long = recalls.melt(id_vars=key, var_name="metric", value_name="value")
    return long[list(METRICS_COLUMNS)]


def write_run(out: Path, items: pd.DataFrame, meta: Mapping | None = None, with_items: bool = True) -> Path:
    """Write a run directory from an items frame; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    metrics_from_items(items).to_csv(out / "metrics.csv", index=False, float_format="%.6g")
    if with_items:
        items.to_csv(out / ITEMS_FILE, index=False, float_format="%.6g")
    run = {"seeds": sorted(int(s) for s in items["seed"].unique()), "primary_metric": {"retrieval": "r_mean"},
           "items": {"retrieval": {**{c: [c] for c in (*I2T, *T2I)}, "r_mean": [*I2T, *T2I]}},
           "dataset": {"name": "world"}, **(meta or {})}
    (out / "run.json").write_text(json.dumps(run))
    return out


def flip_hits(items: pd.DataFrame, model: str, where: Callable[[pd.DataFrame], pd.Series] | None = None) -> pd.DataFrame:
    """A copy of ``items`` in which every hit of ``model`` (optionally only rows ``where``) is a miss."""
    out = items.copy()
    rows = out["model"] == model
    if where is not None:
        rows &= where(out)
    cols = [*I2T, *T2I]
    out.loc[rows, cols] = out.loc[rows, cols].where(out.loc[rows, cols].isna(), 0.0)
    return out
