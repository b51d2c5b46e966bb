"""Does MA-AFS adapt? Spearman(severity, weight of the corrupted modality) per corruption.

Reads a run's ``fusion_weights.csv`` (per-sample ``alpha_v, alpha_t`` and cues of every
ground-truth pair) and, for every model that reports weights, every training seed and every
image or text corruption, pools the clean in-domain rows (severity 0) with that corruption's
rows and computes Spearman's rank correlation between severity and the weight of the corrupted
modality (``alpha_v`` for an image corruption, ``alpha_t`` for a text one). A scheduler that
trusts a degraded modality less gives a negative value; the issue "An honest fusion comparison"
sets the target < -0.3 for every corruption. Also prints the mean cues per severity, so one sees
which cue moves alpha.

    python benchmarks/mafs_adaptivity.py runs/quickstart [--model mafs] [--cues]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from mafs_bench.reporting.schema import in_domain, is_clean, read_weights

WEIGHT_OF = {"image": "alpha_v", "text": "alpha_t"}


def adaptivity(weights: pd.DataFrame, domain: str | None = None) -> pd.DataFrame:
    """One row per (model, task, seed, corruption): Spearman(severity, corrupted modality's weight).

    Args:
        weights: a validated ``fusion_weights.csv`` frame.
        domain: the in-domain test set (default: inferred per task).

    Returns:
        Columns ``model, task, seed, corruption, modality, spearman, weight_clean, weight_top``
        (mean weight of the corrupted modality on clean rows and at the highest severity).
    """
    out = []
    for (model, task, seed), rows in weights.groupby(["model", "task", "seed"]):
        home = rows[rows["domain"] == in_domain(weights, task, domain)]
        clean = home[is_clean(home)]
        for (corruption, modality), cells in home[~is_clean(home)].groupby(["corruption", "modality"]):
            if modality not in WEIGHT_OF:
                continue
            col = WEIGHT_OF[modality]
            both = pd.concat([clean, cells])
            rho = spearmanr(both["severity"], both[col]).statistic
            top = cells[cells["severity"] == cells["severity"].max()]
            out.append({"model": model, "task": task, "seed": seed, "corruption": corruption, "modality": modality,
                        "spearman": float(rho), "weight_clean": float(clean[col].mean()),
                        "weight_top": float(top[col].mean())})
    return pd.DataFrame(out)


def cue_means(weights: pd.DataFrame) -> pd.DataFrame:
    """Mean alpha and cues per (model, corruption, severity), seeds pooled."""
    cols = ["alpha_v", "alpha_t", "h_v", "h_t", "agreement", "a_v", "a_t"]
    return weights.groupby(["model", "task", "corruption", "severity"])[cols].mean().reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--model", default=None, help="only this model")
    parser.add_argument("--cues", action="store_true", help="also print mean cues per severity")
    args = parser.parse_args(argv)
    weights = read_weights(args.run_dir / "fusion_weights.csv")
    if args.model:
        weights = weights[weights["model"] == args.model]
    table = adaptivity(weights)
    if table.empty:
        print("no model with per-sample fusion weights in", args.run_dir)
        return 1
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    summary = table.groupby(["model", "task", "corruption"])["spearman"].agg(["mean", "min", "max"]).reset_index()
    print("\nacross seeds:")
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    worst = summary["mean"].max()
    print(f"\nlargest (least negative) mean Spearman: {worst:.3f}; target < -0.3: {'met' if worst < -0.3 else 'NOT met'}")
    if args.cues:
        print("\nmean cues per severity (seeds pooled):")
        print(cue_means(weights).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
