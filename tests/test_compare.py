"""The regression gate: `mafs-bench compare` on synthetic run directories, and the pytest helper."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthetic_runs import flip_hits, make_items, write_run

from mafs_bench.cli.main import app
from mafs_bench.reporting.compare import CompareInputError, compare_runs
from mafs_bench.testing import assert_no_regression

MODELS = ("clip", "fixed_sum", "mafs")


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    return make_items(models=MODELS, n_images=80)


@pytest.fixture(scope="module")
def baseline(items: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("baseline"), items)


def compare(*args: str) -> object:
    return CliRunner().invoke(app, ["compare", *args])


def test_identical_runs_pass(baseline: Path, items: pd.DataFrame, tmp_path: Path) -> None:
    candidate = write_run(tmp_path / "cand", items)
    result = compare(str(baseline), str(candidate), "--json", str(tmp_path / "c.json"))
    assert result.exit_code == 0, result.output
    assert "no regression" in result.output
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["exit_code"] == 0 and not report["regressions"]
    assert {r["score"] for r in report["rows"]} == {"clean", "corrupted", "image", "text", "pair", "domain:outline"}
    assert all(r["difference"] == 0 and r["p_value"] == 1 and not r["significant"] for r in report["rows"])
    assert {r["model"] for r in report["rows"]} == set(MODELS)


def test_a_broken_model_fails_the_gate_and_is_named(baseline: Path, items: pd.DataFrame, tmp_path: Path) -> None:
    candidate = write_run(tmp_path / "cand", flip_hits(items, "mafs"))
    result = compare(str(baseline), str(candidate))
    assert result.exit_code == 1, result.output
    assert "REGRESSION: mafs / retrieval / clean r_mean" in result.output
    assert "REGRESSION: mafs / retrieval / corrupted r_mean" in result.output
    assert "REGRESSION: clip" not in result.output and "REGRESSION: fixed_sum" not in result.output
    with pytest.raises(AssertionError, match="REGRESSION: mafs"):
        assert_no_regression(baseline, candidate)
    assert_no_regression(baseline, candidate, watch=["pair"], max_drop=1.0)  # nothing watched drops by > 1


def test_a_drop_within_the_tolerance_or_not_significant_passes(baseline: Path, items: pd.DataFrame, tmp_path: Path) -> None:
    def lose(n: int) -> Path:  # n images of mafs's clean cell lose their hits (every seed)
        where = lambda f: (f["corruption"] == "none") & (f["domain"] == "plain") & (f["query"] == "i2t") & (f["item"] < n)  # noqa: E731
        return write_run(tmp_path / str(n), flip_hits(items, "mafs", where))

    result = compare_runs(baseline, lose(1))
    row = next(r for r in result.rows if r.model == "mafs" and r.score == "clean")
    assert -0.01 < row.difference < 0 and not row.regression and result.exit_code == 0  # within the tolerance
    result = compare_runs(baseline, lose(3))
    row = next(r for r in result.rows if r.model == "mafs" and r.score == "clean")
    assert row.difference < -0.01 and not row.significant and result.exit_code == 0  # beyond it, but noise-sized
    result = compare_runs(baseline, lose(3), alpha=0.5)
    assert [(r.model, r.score) for r in result.regressions] == [("mafs", "clean")] and result.exit_code == 1


def test_improvement_is_not_a_regression(baseline: Path, items: pd.DataFrame, tmp_path: Path) -> None:
    worse = write_run(tmp_path / "worse", flip_hits(items, "clip"))
    result = compare_runs(worse, baseline)  # the candidate is the better one
    assert result.exit_code == 0
    assert all(r.difference > 0 and r.significant for r in result.rows if r.model == "clip")


@pytest.mark.parametrize("case", ["missing_items", "missing_dir", "different_cells", "different_items", "lost_model", "no_common"])
def test_unusable_input_exits_2_with_a_reason(case: str, baseline: Path, items: pd.DataFrame, tmp_path: Path) -> None:
    reasons = {
        "missing_items": "missing items.csv.gz",
        "missing_dir": "not a run directory",
        "different_cells": "different cells",
        "different_items": "different items",
        "lost_model": "only in the baseline (not compared): mafs",
        "no_common": "no model in both runs",
    }
    if case == "missing_items":
        candidate = write_run(tmp_path / "c", items, with_items=False)
    elif case == "missing_dir":
        candidate = tmp_path / "nothing"
    elif case == "different_cells":
        candidate = write_run(tmp_path / "c", items[items["severity"] != 5])
    elif case == "different_items":
        candidate = write_run(tmp_path / "c", make_items(models=MODELS, n_images=60))
    elif case == "lost_model":
        candidate = write_run(tmp_path / "c", items[items["model"] != "mafs"])
    else:
        candidate = write_run(tmp_path / "c", items[items["model"] == "mafs"].assign(model="other"))
    result = compare(str(baseline), str(candidate))
    assert result.exit_code == 2, result.output
    assert reasons[case] in result.stderr
    assert "Traceback" not in result.output


def test_models_only_in_one_run_are_listed(baseline: Path, items: pd.DataFrame, tmp_path: Path) -> None:
    extra = items[items["model"] == "mafs"].assign(model="my_method")
    candidate = write_run(tmp_path / "c", pd.concat([items[items["model"] != "clip"], extra], ignore_index=True))
    result = compare(str(baseline), str(candidate), "--allow-missing-models")
    assert result.exit_code == 0, result.output
    assert "only in the candidate (not compared): my_method" in result.output
    assert "only in the baseline (not compared): clip" in result.output


def test_different_seeds_are_compared_unpaired_and_said(baseline: Path, items: pd.DataFrame, tmp_path: Path) -> None:
    candidate = write_run(tmp_path / "c", items[items["seed"] != 2])
    result = compare_runs(baseline, candidate)
    assert any("seeds resampled independently" in n for n in result.notes)
    assert result.exit_code == 0  # the same hits on seeds 0 and 1: no significant drop


def test_unknown_metric_is_unusable(baseline: Path) -> None:
    with pytest.raises(CompareInputError, match="no per-item scores"):
        compare_runs(baseline, baseline, metric="cider")
