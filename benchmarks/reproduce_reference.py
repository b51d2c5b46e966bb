"""Rerun the suite of a reference results folder and check that the current code reproduces it.

    python benchmarks/reproduce_reference.py                       # results/quickstart -> runs/reproduce-quickstart
    python benchmarks/reproduce_reference.py results/quickstart --out /tmp/repro

The suite is the one the reference run recorded (``run.json``'s resolved ``suite``), so the check
follows whatever the reference folder holds. It passes (exit 0) when every leaderboard score of the
reference that has a 95% bootstrap interval is reproduced inside that interval and ``mafs-bench
compare`` finds no significant drop (:func:`mafs_bench.testing.assert_reproduces`); exit 1 names
the scores that are not. Trained weights come from ``$MAFS_BENCH_CACHE`` (about 2 minutes for the
quickstart on 2 CPU cores with the models cached or shipped in the zoo; 8+ minutes when they are trained first).
``tests/test_reproduce.py`` runs this unless ``MAFS_BENCH_REPRO=0``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def reproduce(reference: Path, out: Path, progress: bool = False) -> list[str]:
    """Run the reference's suite into ``out``; return the problems (empty: reproduced)."""
    from mafs_bench.runner import run_suite, suite_from_dict
    from mafs_bench.testing import outside_reference_intervals
    from mafs_bench.reporting.compare import compare_runs

    meta = json.loads((reference / "run.json").read_text())
    suite = suite_from_dict(meta["suite"], f"{reference / 'run.json'} (suite)")

    def quiet(name: str, total: int):  # progress factory: no bars
        return lambda done, total_, value: None

    run_suite(suite, out, quiet, log=lambda m: print(m, file=sys.stderr), suite_source=meta.get("suite_file", ""))
    problems = outside_reference_intervals(reference, out)
    comparison = compare_runs(reference, out)
    if comparison.exit_code != 0:
        problems.append("mafs-bench compare: " + comparison.to_text())
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", nargs="?", type=Path, default=Path("results/quickstart"))
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/reproduce-<name>)")
    args = parser.parse_args()
    out = args.out or Path("runs") / f"reproduce-{args.reference.name}"
    problems = reproduce(args.reference, out)
    if problems:
        print(f"NOT reproduced: {len(problems)} problem(s)")
        print("\n".join(problems))
        return 1
    print(f"reproduced: every interval of {args.reference}/leaderboard.csv holds {out}/leaderboard.csv, compare exits 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
