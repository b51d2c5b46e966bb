"""Helpers for users' own test suites: gate a fusion method or a commit in pytest, and check
that a run reproduces reference results within their intervals.

Example (``tests/test_no_regression.py`` of a project that benchmarks its method)::

    from mafs_bench.testing import assert_no_regression

    def test_my_method_does_not_regress():
        assert_no_regression("results/quickstart", "runs/quickstart", max_drop=0.01)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from mafs_bench.reporting.compare import Comparison, compare_runs
from mafs_bench.reporting.leaderboard import CI_HIGH, CI_LOW, LEADERBOARD_CSV


def assert_no_regression(baseline_dir: str | Path, candidate_dir: str | Path, **kwargs: Any) -> Comparison:
    """Fail when a watched score of the candidate run dropped significantly (``mafs-bench compare``).

    Args:
        baseline_dir, candidate_dir: run directories (``metrics.csv``, ``items.csv.gz``, ``run.json``).
        **kwargs: passed to :func:`mafs_bench.reporting.compare.compare_runs` (``metric``,
            ``max_drop``, ``alpha``, ``watch``, ``resamples``, ``allow_missing_models``).

    Returns:
        The :class:`~mafs_bench.reporting.compare.Comparison` when nothing regressed.

    Raises:
        AssertionError: a regression, or an incomplete comparison (a baseline model missing
            from the candidate); the message is the comparison table with the offending rows.
        CompareInputError: the runs cannot be compared at all (missing files, different cells).
    """
    result = compare_runs(baseline_dir, candidate_dir, **kwargs)
    if result.exit_code != 0:
        raise AssertionError("mafs-bench compare found a regression or an incomplete comparison:\n" + result.to_text())
    return result


def outside_reference_intervals(reference_dir: str | Path, candidate_dir: str | Path,
                                tolerance: float = 1e-9) -> list[str]:
    """Leaderboard scores of the candidate run that fall outside the reference run's 95% intervals.

    Every (task, model, score) of the reference's ``leaderboard.csv`` with an interval
    (``<score>_ci_low`` / ``<score>_ci_high``) must be in the candidate's ``leaderboard.csv`` with a
    value in ``[low - tolerance, high + tolerance]``.

    Returns:
        One line per problem (a missing row or score, or a value outside), empty when it reproduces.
    """
    ref = pd.read_csv(Path(reference_dir) / LEADERBOARD_CSV)
    new = pd.read_csv(Path(candidate_dir) / LEADERBOARD_CSV)
    found = {(str(t), str(m)): row for t, m, row in zip(new["task"], new["model"], new.to_dict("records"), strict=True)}
    scores = [c.removesuffix(CI_LOW) for c in ref.columns if c.endswith(CI_LOW)]
    problems = []
    for row in ref.to_dict("records"):
        key = (str(row["task"]), str(row["model"]))
        if key not in found:
            problems.append(f"{key[0]} / {key[1]}: not in the candidate's leaderboard")
            continue
        for score in scores:
            low, high = row[score + CI_LOW], row[score + CI_HIGH]
            if not (isinstance(low, float) and math.isfinite(low) and math.isfinite(high)):
                continue
            value = found[key].get(score, math.nan)
            if not (isinstance(value, float) and low - tolerance <= value <= high + tolerance):
                problems.append(f"{key[0]} / {key[1]} / {score}: {value} outside the reference's [{low}, {high}]")
    return problems


def assert_reproduces(reference_dir: str | Path, candidate_dir: str | Path, **kwargs: Any) -> Comparison:
    """Fail unless the candidate run reproduces the reference run: every reference leaderboard score
    with an interval is matched by a candidate score inside it
    (:func:`outside_reference_intervals`), and ``mafs-bench compare`` finds no significant drop
    (:func:`assert_no_regression`, ``kwargs`` passed on).

    Raises:
        AssertionError: naming every score outside its interval, or the regression.
    """
    problems = outside_reference_intervals(reference_dir, candidate_dir)
    if problems:
        raise AssertionError(f"{candidate_dir} does not reproduce {reference_dir} within its intervals:\n"
                             + "\n".join(problems))
    return assert_no_regression(reference_dir, candidate_dir, **kwargs)
