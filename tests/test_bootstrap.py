"""Bootstrap intervals and paired tests: hand cases, determinism, and the leaderboard's interval columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic_runs import CELLS, flip_hits, make_items, metrics_from_items, write_run

from mafs_bench.reporting import build_leaderboard, write_report
from mafs_bench.reporting.bootstrap import (
    bootstrap_task,
    interval,
    paired_bootstrap,
    paired_from_replicates,
    resample_counts,
    stream,
)
from mafs_bench.reporting.schema import MODALITIES, read_items

PRIMARY = {"retrieval": "r_mean"}


def board_of(items: pd.DataFrame, tmp_path: Path, **kw: object) -> pd.DataFrame:
    out = write_run(tmp_path, items)
    meta = json.loads((out / "run.json").read_text())
    return build_leaderboard(metrics_from_items(items), PRIMARY, items=read_items(out / "items.csv.gz"), meta=meta, **kw)


def test_resample_counts_row0_is_the_sample_and_rows_sum_to_n() -> None:
    counts = resample_counts(7, 50, stream(0, "x"))
    assert counts.shape == (51, 7)
    assert (counts[0] == 1).all() and (counts.sum(1) == 7).all()
    assert np.array_equal(counts, resample_counts(7, 50, stream(0, "x")))  # deterministic
    assert not np.array_equal(counts, resample_counts(7, 50, stream(0, "y")))


def test_paired_bootstrap_identical_systems_differ_by_nothing() -> None:
    a = np.random.default_rng(1).integers(0, 2, 300)
    r = paired_bootstrap(a, a)
    assert r.difference == 0 and r.ci_low == 0 and r.ci_high == 0
    assert r.p_value == 1 and not r.significant


def test_paired_bootstrap_finds_a_clear_difference_and_is_deterministic() -> None:
    rng = np.random.default_rng(2)
    a = (rng.random(500) < 0.5).astype(float)
    b = np.where(rng.random(500) < 0.3, 1.0, a)  # b hits everything a hits, and more
    r = paired_bootstrap(a, b)
    assert r.difference == pytest.approx(b.mean() - a.mean())
    assert r.ci_low > 0 and r.significant and r.p_value < 0.01
    assert paired_bootstrap(a, b) == r
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(a, b[:10])


def test_paired_p_value_is_two_sided() -> None:
    reps = np.linspace(-1, 1, 1001)
    r = paired_from_replicates(np.zeros(1001), np.concatenate([[0.0], reps[1:]]))
    assert 0.9 < r.p_value <= 1 and not r.significant


def test_interval_contains_the_estimate_and_narrows_with_more_items(tmp_path: Path) -> None:
    widths = {}
    for n in (40, 640):
        board = board_of(make_items(seeds=(0,), n_images=n), tmp_path / str(n))
        for column in ("clean", "corrupted", "relative_robustness", *MODALITIES, "domain:outline"):
            assert (board[f"{column}_ci_low"] <= board[column]).all() and (board[column] <= board[f"{column}_ci_high"]).all()
        widths[n] = (board["corrupted_ci_high"] - board["corrupted_ci_low"]).mean()
    assert widths[640] < widths[40] / 2.5  # ~ 1/sqrt(n): 4x narrower for 16x the items


def test_intervals_are_deterministic_and_match_the_leaderboard(tmp_path: Path) -> None:
    items = make_items(n_images=60)
    a, b = board_of(items, tmp_path / "a"), board_of(items, tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)
    # replicate 0 of the bootstrap is the leaderboard's own score (mean over seeds of per-seed means)
    models, reps = bootstrap_task(items, [c for c in items.columns if "_r" in c], "plain", MODALITIES, "retrieval")
    for i, model in enumerate(models):
        row = a.set_index("model").loc[model]
        for column in ("clean", "corrupted", "relative_robustness", "image", "domain:outline"):
            assert reps[column][0, i] == pytest.approx(row[column], abs=1e-6)
    other_seed = board_of(items, tmp_path / "c", seed=7)
    assert not np.allclose(other_seed["corrupted_ci_low"], a["corrupted_ci_low"])


def test_seeds_are_resampled_too(tmp_path: Path) -> None:
    """A model whose seeds disagree gets a wider interval than one whose seeds agree."""
    one = make_items(models=("mafs",), seeds=(0,), n_images=100)
    same = pd.concat([one, one.assign(seed=1), one.assign(seed=2)], ignore_index=True)
    spread = pd.concat([one, flip_hits(one, "mafs").assign(seed=1), one.assign(seed=2)], ignore_index=True)
    w_same = board_of(same, tmp_path / "same").eval("corrupted_ci_high - corrupted_ci_low").iloc[0]
    w_spread = board_of(spread, tmp_path / "spread").eval("corrupted_ci_high - corrupted_ci_low").iloc[0]
    assert w_spread > 5 * w_same


def test_not_significant_differences_to_rank_1_are_marked(tmp_path: Path) -> None:
    items = make_items(models=("mafs", "clip"), n_images=80)
    twin = items[items["model"] == "mafs"].assign(model="mafs_twin")  # the same hits: no difference
    board = board_of(pd.concat([items, twin], ignore_index=True), tmp_path)
    p = board.set_index("model")["p_vs_rank1"]
    assert math.isnan(p[board["model"].iloc[0]])
    assert p["clip"] < 0.05 and p.drop(["clip", board["model"].iloc[0]]).iloc[0] == 1.0
    out = write_run(tmp_path / "run", pd.concat([items, twin], ignore_index=True))
    write_report(out, PRIMARY)
    text = (out / "leaderboard.md").read_text()
    assert "1 ≈" in text or "2 ≈" in text  # the twin ties rank 1 (mark on the non-top twin)
    assert "| 3 |" in text.replace("3 ≈", "x")  # clip is significantly worse: no mark
    assert "±" in text and "[" in text
    csv = pd.read_csv(out / "leaderboard.csv")
    for column in ("clean", "corrupted", "relative_robustness", "image", "text", "pair", "domain:outline"):
        assert {f"{column}_ci_low", f"{column}_ci_high"} <= set(csv.columns)
        assert csv[f"{column}_ci_low"].notna().all()


def test_report_without_items_file_has_blank_intervals(tmp_path: Path) -> None:
    out = write_run(tmp_path, make_items(models=("mafs", "clip"), n_images=20), with_items=False)
    write_report(out, PRIMARY)
    csv = pd.read_csv(out / "leaderboard.csv")
    assert csv["corrupted_ci_low"].isna().all() and csv["p_vs_rank1"].isna().all()
    assert "≈" not in (out / "leaderboard.md").read_text().split("## retrieval")[1]


def test_cells_of_the_synthetic_runs_cover_every_score() -> None:
    assert {m for _, _, m, _ in CELLS} == {"none", *MODALITIES}
