"""Robustness aggregates (mafs_bench.reporting.robustness) against values computed by hand.

Three models: ``ref`` (the reference of CE), ``base`` (the baseline of effective robustness) and
``m``; gaussian_noise at severities 1, 3, 5, keyboard at 1, 3 (a gap the trapezoids bridge) and the
shifted domain ``outline`` at strengths 0.5 and 1. Dyadic scores, so most sums are exact.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mafs_bench.reporting.families import (
    DOMAIN_FAMILY,
    FAMILY_ORDER,
    REPORT_FAMILY,
    corruption_families,
    report_family,
)
from mafs_bench.reporting.robustness import KEY_COLUMNS, MEASURES, robustness_table
from mafs_bench.reporting.schema import DEFAULT_CORRUPTED, METRICS_COLUMNS, domain_label, split_domain
from synthetic_runs import make_items, metrics_from_items, write_run

# model -> clean, noise severities 1/3/5, keyboard severities 1/3, outline strengths 0.5/1
SCORES = {
    "ref": (0.75, (0.5, 0.5, 0.25), (0.5, 0.25), (0.5, 0.25)),
    "m": (1.0, (0.75, 0.5, 0.5), (1.0, 0.5), (0.75, 0.5)),
    "base": (0.5, (0.5, 0.25, 0.25), (0.25, 0.25), (0.25, 0.25)),
}


def make_metrics(metric: str = "r_mean", seeds_of_m: int = 2) -> pd.DataFrame:
    rows = []

    def add(model: str, seed: int, domain: str, corruption: str, modality: str, severity: int, value: float) -> None:
        rows.append(dict(zip(METRICS_COLUMNS, (model, seed, "retrieval", "world", domain, corruption, modality,
                                               DEFAULT_CORRUPTED[modality], severity, metric, value), strict=True)))

    for model, (clean, noise, keyboard, outline) in SCORES.items():
        for seed in range(seeds_of_m if model == "m" else 1):
            add(model, seed, "plain", "none", "none", 0, clean)
            for severity, value in zip((1, 3, 5), noise, strict=True):
                # m's two seeds straddle its mean at noise severity 1: the aggregates use the seed mean
                spread = (-0.0625 if seed == 0 else 0.0625) if (model == "m" and severity == 1 and seeds_of_m > 1) else 0.0
                add(model, seed, "plain", "gaussian_noise", "image", severity, value + spread)
            for severity, value in zip((1, 3), keyboard, strict=True):
                add(model, seed, "plain", "keyboard", "text", severity, value)
            for strength, value in zip((0.5, 1.0), outline, strict=True):
                add(model, seed, domain_label("outline", strength), "none", "none", 0, value)
    return pd.DataFrame(rows, columns=list(METRICS_COLUMNS))


def value(table: pd.DataFrame, model: str, name: str, measure: str) -> float:
    row = table[(table["model"] == model) & (table["name"] == name)]
    assert len(row) == 1, (model, name)
    return float(row[measure].iloc[0])


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return robustness_table(make_metrics(), "retrieval", "r_mean", reference="ref", baseline="base")


# (name, measure, value for model m) worked out by hand in the comments
EXPECTED_M = [
    # noise: A(0) = 1, A = .75, .5, .5 at severities 1, 3, 5
    ("gaussian_noise", "relative_robustness", 1.75 / 3),
    ("gaussian_noise", "mmi", 1 - 1.75 / 3),
    ("gaussian_noise", "ce", (0.25 + 0.5 + 0.5) / (0.5 + 0.5 + 0.75)),  # errors over the reference's errors
    ("gaussian_noise", "relative_ce", (0.25 + 0.5 + 0.5) / (0.25 + 0.25 + 0.5)),  # drops over the reference's drops
    ("gaussian_noise", "auc", ((1 + 0.75) / 2 * 1 + (0.75 + 0.5) / 2 * 2 + (0.5 + 0.5) / 2 * 2) / 5),
    ("gaussian_noise", "effective_robustness", (-0.25 - 0.5 - 0.5) / 3 - (0 - 0.25 - 0.25) / 3),
    # keyboard: severities 1 and 3 only; the trapezoid spans 0..3
    ("keyboard", "relative_robustness", 0.75),
    ("keyboard", "ce", (0.0 + 0.5) / (0.5 + 0.75)),
    ("keyboard", "relative_ce", (0.0 + 0.5) / (0.25 + 0.5)),
    ("keyboard", "auc", ((1 + 1) / 2 * 1 + (1 + 0.5) / 2 * 2) / 3),
    ("keyboard", "effective_robustness", (0 - 0.5) / 2 - (-0.25 - 0.25) / 2),
    # the shifted domain over strengths 0.5 and 1 (strength 0 is the clean in-domain cell)
    ("outline", "relative_robustness", 0.625),
    ("outline", "ce", (0.25 + 0.5) / (0.5 + 0.75)),
    ("outline", "relative_ce", (0.25 + 0.5) / (0.25 + 0.5)),
    ("outline", "auc", (1 + 0.75) / 2 * 0.5 + (0.75 + 0.5) / 2 * 0.5),
    ("outline", "effective_robustness", (-0.25 - 0.5) / 2 - (-0.25 - 0.25) / 2),
    # families average their corruptions; "all" every corruption but not the domains
    ("noise", "ce", 1.25 / 1.75),
    ("text character", "auc", 2.5 / 3),
    (DOMAIN_FAMILY, "relative_robustness", 0.625),
    ("all", "relative_robustness", (1.75 / 3 + 0.75) / 2),
    ("all", "ce", (1.25 / 1.75 + 0.4) / 2),  # mCE
    ("all", "relative_ce", (1.25 + 0.5 / 0.75) / 2),  # relative mCE
    ("all", "auc", (0.625 + 2.5 / 3) / 2),
    ("all", "effective_robustness", (-0.25 + 0.0) / 2),
]


@pytest.mark.parametrize("name, measure, expected", EXPECTED_M)
def test_measures_match_hand_computed_values(table: pd.DataFrame, name: str, measure: str, expected: float) -> None:
    assert value(table, "m", name, measure) == pytest.approx(expected, abs=1e-12)


def test_reference_and_baseline_are_their_own_units(table: pd.DataFrame) -> None:
    for name in ("gaussian_noise", "keyboard", "outline", "all"):
        assert value(table, "ref", name, "ce") == pytest.approx(1.0)
        assert value(table, "ref", name, "relative_ce") == pytest.approx(1.0)
        assert value(table, "base", name, "effective_robustness") == 0.0


def test_layout_levels_families_and_no_intervals_without_items(table: pd.DataFrame) -> None:
    assert list(table.columns[: len(KEY_COLUMNS)]) == list(KEY_COLUMNS)
    assert list(table.columns[len(KEY_COLUMNS): len(KEY_COLUMNS) + len(MEASURES)]) == list(MEASURES)
    of_m = table[table["model"] == "m"]
    assert of_m["level"].tolist() == ["corruption"] * 3 + ["family"] * 3 + ["all"]
    assert of_m["name"].tolist() == ["gaussian_noise", "keyboard", "outline", "noise", "text character", "domain", "all"]
    assert of_m["family"].tolist()[:3] == ["noise", "text character", "domain"]
    assert of_m.loc[of_m["level"] == "all", "corruptions"].item() == 2  # the domain is not a corruption
    assert table.filter(like="_ci_").isna().all().all()


def test_ce_needs_a_bounded_score_relative_ce_does_not() -> None:
    cider = robustness_table(make_metrics("cider"), "retrieval", "cider", reference="ref", baseline="base")
    assert math.isnan(value(cider, "m", "gaussian_noise", "ce"))
    assert value(cider, "m", "gaussian_noise", "relative_ce") == pytest.approx(1.25)
    over_one = make_metrics()
    over_one.loc[0, "value"] = 1.5  # a score above 1 is no accuracy: 1 - score is no error rate
    assert math.isnan(value(robustness_table(over_one, "retrieval", "r_mean", "ref", "base"), "m", "all", "ce"))


def test_without_reference_or_baseline_those_measures_are_blank() -> None:
    table = robustness_table(make_metrics(), "retrieval", "r_mean", reference=None, baseline="absent")
    assert table[["ce", "relative_ce", "effective_robustness"]].isna().all().all()
    assert table["relative_robustness"].notna().all() and table["auc"].notna().all()


def test_a_reference_that_does_not_degrade_leaves_relative_ce_undefined() -> None:
    metrics = make_metrics()
    flat = (metrics["model"] == "ref") & (metrics["corruption"] == "keyboard")
    metrics.loc[flat, "value"] = 0.75  # equal to its clean score
    table = robustness_table(metrics, "retrieval", "r_mean", "ref", "base")
    assert math.isnan(value(table, "m", "keyboard", "relative_ce"))
    assert math.isnan(value(table, "m", "all", "relative_ce"))  # a family mean over an undefined value
    assert value(table, "m", "gaussian_noise", "relative_ce") == pytest.approx(1.25)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_nonfinite_cell_is_not_skipped(bad: float) -> None:
    metrics = make_metrics()
    metrics.loc[(metrics["model"] == "m") & (metrics["corruption"] == "keyboard") & (metrics["severity"] == 3), "value"] = bad
    table = robustness_table(metrics, "retrieval", "r_mean", "ref", "base")
    for name in ("keyboard", "text character", "all"):
        for measure in MEASURES:
            assert math.isnan(value(table, "m", name, measure)), (name, measure)
    assert value(table, "m", "gaussian_noise", "relative_robustness") == pytest.approx(1.75 / 3)


def test_zero_clean_score_gives_no_ratio() -> None:
    metrics = make_metrics()
    metrics.loc[(metrics["model"] == "base") & (metrics["corruption"] == "none") & (metrics["domain"] == "plain"), "value"] = 0.0
    table = robustness_table(metrics, "retrieval", "r_mean", "ref", "base")
    assert math.isnan(value(table, "base", "gaussian_noise", "relative_robustness"))
    assert math.isnan(value(table, "base", "gaussian_noise", "mmi"))


def test_families_from_run_json_then_registry_then_unknown() -> None:
    pairs = [("gaussian_noise", "image"), ("occlusion", "image"), ("missing_image", "image"), ("keyboard", "text"),
             ("word_delete", "text"), ("caption_shuffle", "pair"), ("my_noise", "image")]
    meta = {"corruptions": {"my_noise": {"modality": "image", "family": "noise"}}}
    assert corruption_families(pairs, meta) == {
        ("gaussian_noise", "image"): "noise", ("occlusion", "image"): "occlusion/missing",
        ("missing_image", "image"): "occlusion/missing", ("keyboard", "text"): "text character",
        ("word_delete", "text"): "text word", ("caption_shuffle", "pair"): "misalignment",
        ("my_noise", "image"): "noise"}
    assert corruption_families([("nobody_knows", "text")]) == {("nobody_knows", "text"): "text other"}
    assert report_family("image", "stylize") == "image stylize"


def test_every_registered_corruption_has_a_listed_family() -> None:
    """A new corruption family in the engine must be placed in the report's family table."""
    import corruptions

    for name in corruptions.names():
        spec = corruptions.get(name)
        family = REPORT_FAMILY.get((spec.modality, spec.family))
        assert family in FAMILY_ORDER, (name, spec.modality, spec.family)


@pytest.mark.parametrize("label, parsed", [
    ("outline", ("outline", 1.0)), ("outline@0.5", ("outline", 0.5)), ("low_light@0.25", ("low_light", 0.25)),
    ("near-domain", ("near-domain", 1.0)), ("user@host", ("user@host", 1.0)), ("a@2", ("a@2", 1.0)),
])
def test_domain_labels_round_trip(label: str, parsed: tuple[str, float]) -> None:
    assert split_domain(label) == parsed
    if "@" not in label or parsed[1] != 1.0:
        assert domain_label(*parsed) == label


def test_intervals_from_items_contain_the_estimate_and_match_metrics(tmp_path) -> None:
    items = make_items(models=("clip", "mafs", "fixed_sum"), seeds=(0, 1), n_images=60)
    write_run(tmp_path, items)
    from mafs_bench.reporting.merge import read_run

    run = read_run(tmp_path)
    table = robustness_table(run.metrics, "retrieval", "r_mean", "clip", "fixed_sum", items=run.items, meta=run.meta,
                             resamples=200)
    plain = robustness_table(metrics_from_items(items), "retrieval", "r_mean", "clip", "fixed_sum")
    np.testing.assert_allclose(table[list(MEASURES)].to_numpy(), plain[list(MEASURES)].to_numpy(), atol=1e-5,
                               equal_nan=True)
    for measure in MEASURES:
        low, high, point = table[measure + "_ci_low"], table[measure + "_ci_high"], table[measure]
        defined = point.notna() & ~((table["model"] == "clip") & measure.endswith("ce"))
        defined &= ~((table["model"] == "fixed_sum") & (measure == "effective_robustness"))
        assert (low[defined] <= point[defined] + 1e-9).all() and (point[defined] <= high[defined] + 1e-9).all(), measure
        assert (high[defined] > low[defined]).all(), measure
    # the reference's CE is 1 on every resample; the baseline's effective robustness 0
    clip = table[table["model"] == "clip"]
    assert (clip["ce_ci_low"] == 1.0).all() and (clip["ce_ci_high"] == 1.0).all()
