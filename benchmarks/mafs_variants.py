"""MA-AFS design ablations: train variants on the quickstart's encoder, measure r_mean and adaptivity.

Every variant trains on the same fusion pool, reference banks, recipe and seed as the suite's
heads, then is evaluated (retrieval, k=16) on the clean test set and on gaussian_noise,
motion_blur, occlusion, keyboard and word_delete at severities 1, 3, 5. Printed per variant:
training seconds, clean and mean corrupted r_mean, and per corruption the Spearman correlation
between severity (0 = clean) and the per-sample weight of the corrupted modality (with its mean
at severity 5 in brackets), as ``benchmarks/mafs_adaptivity.py`` computes it from a run.

    python benchmarks/mafs_variants.py                       # the variants of mafs.py's docstring
    python benchmarks/mafs_variants.py --more                # and further design variants
    python benchmarks/mafs_variants.py --variants '[["mine", "mafs", {"kl_weight": 0.1}, {}]]'

A variant is ``[label, method, method options, fusion_train overrides]``. Trains the encoder
first if the cache has none (the quickstart's, about 4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from mafs_bench.models.fusion import create_fusion
from mafs_bench.models.fusion_training import FusionTrainConfig, build_fusion_data, train_fusion
from mafs_bench.runner import load_suite
from mafs_bench.runner.run import Cell, corrupt_captions, corrupt_images, preflight
from mafs_bench.tasks import EncodedCell, create_task

SUITE = Path(__file__).resolve().parent.parent / "suites" / "quickstart.yaml"
CORRUPTED_WEIGHT = {"gaussian_noise": "alpha_v", "motion_blur": "alpha_v", "occlusion": "alpha_v",
                    "keyboard": "alpha_t", "word_delete": "alpha_t"}
SEVERITIES = (1, 3, 5)
ALL_CUES = ["h_v", "h_t", "agreement", "a_v", "a_t"]
DEFAULT_VARIANTS = [
    ["fixed_sum", "fixed_sum", {}, {}],
    ["mafs (default)", "mafs", {}, {}],
    ["ITM only, item cues", "mafs", {"reliability_weight": 0.0, "detach_alpha": False}, {}],
    ["ITM only, + pair agreement", "mafs", {"reliability_weight": 0.0, "detach_alpha": False, "cues": ALL_CUES}, {}],
]
#: further variants of the design, for ``--variants``: the specification's cues with the target,
#: the target without detaching, the pair agreement as an extra cue, the target on matched pairs
#: only, the DMS consistency term
MORE_VARIANTS = [
    ["spec cues, ITM + target", "mafs", {"detach_alpha": False, "cues": ["h_v", "h_t", "agreement"]}, {}],
    ["ITM + target, not detached", "mafs", {"detach_alpha": False}, {}],
    ["detached, + pair agreement", "mafs", {"cues": ALL_CUES}, {}],
    ["target on matched pairs", "mafs", {"reliability_pairs": "matched"}, {}],
    ["+ consistency 0.1", "mafs", {"consistency_weight": 0.1}, {}],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=None, help="JSON list of [label, method, options, train overrides]")
    parser.add_argument("--more", action="store_true", help="also run MORE_VARIANTS")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    args = parser.parse_args()
    variants = json.loads(args.variants) if args.variants else DEFAULT_VARIANTS + (MORE_VARIANTS if args.more else [])

    suite = load_suite(SUITE)
    dataset, groups = preflight(suite)
    encoder = groups[0].backend.build(dataset, ["clip"], torch.device("cpu"), lambda d, t: (lambda *a: None), [args.seed]).encoder
    images, captions, _ = dataset.training_data()
    pool, ref = backend.split_pool(len(images))
    data = build_fusion_data(encoder, images[pool], captions[pool], images[ref], [c[0] for c in captions[ref]],
                             backend.fusion_train)
    test = dataset.load(suite.dataset.domain)
    clean_i, clean_t = encoder.encode_images(test.images), encoder.encode_texts(test.captions)
    cells = {("none", 0): (clean_i, clean_t)}
    for corruption in CORRUPTED_WEIGHT:
        for severity in SEVERITIES:
            cell = Cell(suite.dataset.domain, corruption, severity)
            if cell.modality == "image":
                cells[(corruption, severity)] = (encoder.encode_images(corrupt_images(test, cell, suite.seed)), clean_t)
            else:
                cells[(corruption, severity)] = (clean_i, encoder.encode_texts(corrupt_captions(test, cell, suite.seed)))
    task = create_task("retrieval", k=16)
    scale = float(encoder.logit_scale.detach())
    for label, name, options, overrides in variants:
        torch.manual_seed(args.seed)
        method = create_fusion(name, 128, 128, **options)
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        cfg = FusionTrainConfig(**{**backend.fusion_train.as_dict(), "augmentations": backend.fusion_train.augmentations,
                                   "corruptions": backend.fusion_train.corruptions, **fields, "seed": args.seed})
        start = time.time()
        train_fusion(method, data, cfg)
        seconds = time.time() - start
        results = {key: task.evaluate(EncodedCell(i, t, test.caption_image, scale), method) for key, (i, t) in cells.items()}
        corrupted = np.mean([r.metrics["r_mean"] for key, r in results.items() if key[0] != "none"])
        line = f"{label:30s} train {seconds:5.1f}s  clean {results[('none', 0)].metrics['r_mean']:.3f}  corrupted {corrupted:.3f}"
        if results[("none", 0)].weights is not None:
            for corruption, column in CORRUPTED_WEIGHT.items():
                severity, weight = [], []
                for s in (0, *SEVERITIES):
                    w = results[("none", 0) if s == 0 else (corruption, s)].weights[column]
                    severity += [s] * len(w)
                    weight += list(w)
                rho = spearmanr(severity, weight).statistic
                top = float(np.mean(results[(corruption, SEVERITIES[-1])].weights[column]))
                line += f"  {corruption} {rho:+.2f} ({top:.2f})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
