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


CELLS_WITH_STRENGTHS = [*CELLS, ("outline@0.5", "none", "none", 0)]
""":data:`CELLS` plus the shifted domain at style strength 0.5 (a domain-shift curve)."""


def write_report_run(out: Path, items: pd.DataFrame, models: Sequence[str], extra_tasks: bool = True,
                     gallery: bool = True) -> Path:
    """A run directory with everything a report reads: metrics, items, run.json (suite with models,
    ``report`` block and shifted domains), fusion_cues.csv for ``mafs``, a gallery; with
    ``extra_tasks`` also ``vqa`` (accuracy) and ``captioning`` (cider, above 1) rows without items,
    as the task-generic report must handle."""
    meta = {"suite": {"name": "synthetic", "models": list(models), "report": {"reference_model": "clip",
                                                                              "baseline_model": "fixed_sum"},
                      "dataset": {"name": "world", "domain": "plain", "shifted_domains": ["outline"]},
                      "corruptions": ["gaussian_noise", "keyboard", "caption_shuffle"], "severities": [1, 3, 5]},
            "git_commit": "0123abc", "versions": {"mafs_bench": "0.1.0", "torch": "x"}, "device": "cpu",
            "models": {"encoder_key": "e1", **{f"{m}_params": 1000 for m in models}},
            "corruptions": {"gaussian_noise": {"modality": "image", "family": "noise"},
                            "keyboard": {"modality": "text", "family": "character"},
                            "caption_shuffle": {"modality": "pair", "family": "misalignment"}}}
    write_run(out, items, meta)
    if extra_tasks:
        metrics = pd.read_csv(out / "metrics.csv")
        r_mean = metrics[metrics["metric"] == "r_mean"]
        vqa = r_mean.assign(task="vqa", metric="accuracy")
        captioning = r_mean.assign(task="captioning", metric="cider", value=r_mean["value"] * 2.5)
        pd.concat([metrics, vqa, captioning]).to_csv(out / "metrics.csv", index=False, float_format="%.6g")
        run = json.loads((out / "run.json").read_text())
        run["primary_metric"] = {"retrieval": "r_mean", "vqa": "accuracy", "captioning": "cider"}
        (out / "run.json").write_text(json.dumps(run))
    if "mafs" in models:
        key = ["model", "seed", "task", "domain", "corruption", "modality", "severity"]
        cells = items.loc[items["model"] == "mafs", key].drop_duplicates()
        alpha_v = 0.5 - 0.02 * cells["severity"].to_numpy() * (cells["modality"] == "image").to_numpy()
        cues = cells.assign(samples=100, alpha_v=alpha_v, alpha_t=1 - alpha_v, h_v=0.4, h_t=0.3, agreement=0.9,
                            a_v=0.8, a_t=0.7)
        cues.to_csv(out / "fusion_cues.csv", index=False)
    if gallery:
        from mafs_bench.data import ImageTextData
        from mafs_bench.runner.gallery import write_gallery

        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
        captions = ["a red circle in the middle", "a blue square top left", "two green stars"]
        home = ImageTextData("world", "plain", images, captions, np.arange(3))
        shifted = {"outline@0.5": ImageTextData("world", "outline", images // 2, captions, np.arange(3)),
                   "outline": ImageTextData("world", "outline", images // 4, captions, np.arange(3))}
        write_gallery(out, home, shifted, ["gaussian_noise", "keyboard", "caption_shuffle"], [1, 3, 5], 0)
    return out
