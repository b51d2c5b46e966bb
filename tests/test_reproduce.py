"""The reference results in results/ against the current code.

Rerunning the quickstart takes about 2 minutes (weights from the cache or the shipped model zoo; 8+
minutes when they are trained first). So:

* always: every reference folder is self-consistent under the current reporting code: its
  leaderboard rebuilt from its own ``metrics.csv``, ``items.csv.gz`` and ``run.json`` equals its
  ``leaderboard.csv`` (scores, spreads, intervals, p-values; a few seconds). This catches reference
  files that were edited, truncated or left stale by a change of the reporting code;
* unless ``MAFS_BENCH_REPRO=0``: the full reproduction, ``benchmarks/reproduce_reference.py``: the
  reference's own recorded suite is run again with the current code and every reference score with
  an interval must be reproduced inside it, and ``mafs-bench compare`` must find no significant drop.

Both read whatever the reference folders contain (tasks, models, cells), so regenerated reference
results need no change here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mafs_bench.reporting.leaderboard import build_leaderboard
from mafs_bench.reporting.merge import read_run
from mafs_bench.testing import outside_reference_intervals

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = sorted(p.parent for p in (ROOT / "results").glob("*/metrics.csv"))


def test_there_are_reference_results() -> None:
    assert REFERENCES, "results/ holds no reference run (results/<suite>/metrics.csv)"


@pytest.mark.parametrize("reference", REFERENCES, ids=[p.name for p in REFERENCES])
def test_reference_leaderboard_is_rebuilt_from_its_own_files(reference: Path) -> None:
    run = read_run(reference)
    primary = {task: metric for task, metric in run.primary().items() if task in set(run.metrics["task"])}
    board = build_leaderboard(run.metrics, primary, run.in_domain(), items=run.items, meta=run.meta)
    stored = pd.read_csv(reference / "leaderboard.csv")
    assert list(board.columns) == list(stored.columns)
    assert board[["task", "model"]].astype(str).equals(stored[["task", "model"]].astype(str))
    numbers = [c for c in stored.columns if c not in ("task", "model", "metric")]
    np.testing.assert_allclose(board[numbers].to_numpy(dtype=float), stored[numbers].to_numpy(dtype=float),
                               rtol=1e-9, atol=1e-12, equal_nan=True)
    assert outside_reference_intervals(reference, reference) == []


def test_outside_reference_intervals_names_the_scores(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    new = tmp_path / "new"
    ref.mkdir()
    new.mkdir()
    pd.DataFrame({"task": ["retrieval"] * 2, "model": ["a", "b"], "clean": [0.5, 0.6], "clean_ci_low": [0.4, 0.5],
                  "clean_ci_high": [0.6, 0.7]}).to_csv(ref / "leaderboard.csv", index=False)
    pd.DataFrame({"task": ["retrieval"], "model": ["a"], "clean": [0.65]}).to_csv(new / "leaderboard.csv", index=False)
    assert outside_reference_intervals(ref, new) == [
        "retrieval / a / clean: 0.65 outside the reference's [0.4, 0.6]",
        "retrieval / b: not in the candidate's leaderboard"]


@pytest.mark.skipif(os.environ.get("MAFS_BENCH_REPRO") == "0",
                    reason="MAFS_BENCH_REPRO=0: the full reproduction of results/ (about 2 minutes with the "
                           "shipped model zoo) is skipped; benchmarks/reproduce_reference.py runs it alone")
@pytest.mark.parametrize("reference", REFERENCES, ids=[p.name for p in REFERENCES])
def test_current_code_reproduces_reference_within_intervals(reference: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("reproduce_reference", ROOT / "benchmarks" / "reproduce_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems = module.reproduce(reference, tmp_path / "run")
    assert problems == [], "\n".join(problems)
