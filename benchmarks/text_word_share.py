"""Changed-word share of every text corruption per severity (the MMRobustness "0.05 * level" check).

For each registered text corruption and severity 1..5, corrupts a fixed set of COCO-like and
synthetic-world captions (none of them used by the tests) under several seeds and prints the
mean share of changed words, ``corruptions.text.common.changed_word_share`` (difflib alignment
of the word lists; inserted words count relative to the original length). The target is about
``0.05 * severity``; the acceptance band at severity 5 is [0.15, 0.45] (missing_text drops whole
captions with probability 0.05 * severity, so its mean share follows the same rule; qmf_text_mask
follows QMF's protocol, see corruptions/qmf.py).

Usage::

    python benchmarks/text_word_share.py [--seeds 20] [--long]

``--long`` adds a 2000-word caption column at severity 5, showing that nothing caps the share
(missing_text drops a caption whole and qmf_text_mask leaves half of the captions untouched, so
on one caption theirs is 0 or about 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import corruptions  # noqa: E402
import corruptions.presets  # noqa: E402,F401  (registers the QMF protocol's corruptions)
from corruptions.text.common import changed_word_share  # noqa: E402

CAPTIONS = (
    "A man in a wetsuit rides a large wave on a white surfboard.",
    "Three giraffes standing next to each other in a grassy field.",
    "A plate with a sandwich, some fries and a pickle on a wooden table.",
    "Two young girls are flying a colorful kite on the beach.",
    "A city bus driving down a busy street next to tall buildings.",
    "An old brown teddy bear sitting on a bed with a pillow.",
    "A person holding an umbrella while walking through the rain at night.",
    "A cat sleeping on top of a laptop keyboard.",
    "a large green triangle in the lower right and a small yellow star at the top",
    "two purple crosses on the left of one orange diamond",
    "Kitchen counter with a microwave oven, a toaster and several bottles of wine.",
    "A baseball player swings his bat at a pitch during a game.",
)


def share_table(names: list[str], seeds: int) -> dict[str, list[float]]:
    """Mean changed-word share per corruption and severity over CAPTIONS x seeds."""
    table = {}
    for name in names:
        row = []
        for severity in corruptions.SEVERITIES:
            values = [
                changed_word_share(c, corruptions.apply(name, c, severity, seed=seed, sample_id=k))
                for seed in range(seeds)
                for k, c in enumerate(CAPTIONS)
            ]
            row.append(sum(values) / len(values))
        table[name] = row
    return table


def long_share(name: str, n_words: int = 2000) -> float:
    """Share at severity 5 on one ``n_words``-word caption built from CAPTIONS."""
    words = " ".join(CAPTIONS).split()
    # Words drawn at random, not the captions repeated: on periodic text difflib's greedy
    # alignment matches across periods and reports a share unrelated to the edits.
    order = np.random.default_rng(0).integers(len(words), size=n_words)
    text = " ".join(words[int(i)] for i in order)
    return changed_word_share(text, corruptions.apply(name, text, 5, seed=0, sample_id=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per caption (default 20)")
    parser.add_argument("--long", action="store_true", help="add the 2000-word caption at severity 5")
    args = parser.parse_args(argv)

    names = corruptions.names("text")
    start = time.perf_counter()
    table = share_table(names, args.seeds)
    header = f"{'corruption':<20}" + "".join(f"{'s' + str(s):>7}" for s in corruptions.SEVERITIES)
    header += f"{'2000w s5':>10}" if args.long else ""
    print(f"changed-word share, mean over {len(CAPTIONS)} captions x {args.seeds} seeds (target 0.05 * severity)")
    print(header)
    print("-" * len(header))
    print(f"{'target':<20}" + "".join(f"{0.05 * s:>7.2f}" for s in corruptions.SEVERITIES))
    for name, row in table.items():
        line = f"{name:<20}" + "".join(f"{v:>7.3f}" for v in row)
        if args.long:
            line += f"{long_share(name):>10.3f}"
        print(line)
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
