"""Helpers for users' own test suites: gate a fusion method or a commit in pytest.

Example (``tests/test_no_regression.py`` of a project that benchmarks its method)::

    from mafs_bench.testing import assert_no_regression

    def test_my_method_does_not_regress():
        assert_no_regression("results/quickstart", "runs/quickstart", max_drop=0.01)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mafs_bench.reporting.compare import Comparison, compare_runs


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
