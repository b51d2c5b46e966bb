"""Tests for mafs_bench.reporting: tables checked against hand-computed values.

The synthetic results use dyadic fractions (0.5, 0.375, ...) so every mean is exact
and the tie between ``beta`` and ``gamma`` is a true tie, not a rounding accident.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from mafs_bench.reporting import plots
from mafs_bench.reporting.schema import DEFAULT_CORRUPTED
from mafs_bench.reporting import (
    BASE_COLUMNS,
    METRICS_COLUMNS,
    WEIGHTS_COLUMNS,
    SchemaError,
    build_leaderboard,
    per_corruption_table,
    read_metrics,
    read_weights,
    validate_metrics,
    write_leaderboard,
    write_report,
)

PRIMARY = {"retrieval": "r_mean", "vqa": "accuracy"}

# model -> (clean, blur severities 1..3 [image], typo severities 1..3 [text])
RETRIEVAL = {
    "alpha": (0.75, [0.625, 0.5, 0.375], [0.75, 0.625, 0.5]),
    "beta": (0.5, [0.5, 0.5, 0.5], [0.5, 0.375, 0.25]),
    "gamma": (1.0, [0.75, 0.5, 0.25], [0.5, 0.375, 0.25]),
}
TEXTURED = {"alpha": 0.5, "beta": 0.25}  # gamma was not run on the shifted domain


def _row(model: str, task: str, domain: str, *cell: object) -> dict[str, object]:
    """One metrics row; ``cell`` is (corruption, modality, severity, metric, value)."""
    dataset = "shapes" if task == "retrieval" else "shapes_vqa"
    corruption, modality, *rest = cell
    corrupted = {**DEFAULT_CORRUPTED, "text": "captions" if task == "retrieval" else "questions"}[modality]
    return dict(zip(METRICS_COLUMNS, (model, 0, task, dataset, domain, corruption, modality, corrupted, *rest), strict=True))


def make_metrics(with_vqa: bool = False) -> pd.DataFrame:
    """3 models x 2 corruptions x severities 1..3, plus a shifted domain and a distractor metric."""
    rows = []
    for model, (clean, blur, typo) in RETRIEVAL.items():
        for metric, scale in (("r_mean", 1.0), ("i2t_r1", 0.0)):  # i2t_r1 must never leak in
            rows.append(_row(model, "retrieval", "plain", "none", "none", 0, metric, clean * scale))
            for severity, (b, t) in enumerate(zip(blur, typo, strict=True), start=1):
                rows.append(_row(model, "retrieval", "plain", "blur", "image", severity, metric, b * scale))
                rows.append(_row(model, "retrieval", "plain", "typo", "text", severity, metric, t * scale))
        if model in TEXTURED:
            rows.append(_row(model, "retrieval", "textured", "none", "none", 0, "r_mean", TEXTURED[model]))
    if with_vqa:
        for model, clean in (("alpha", 0.5), ("beta", 0.75)):
            rows.append(_row(model, "vqa", "plain", "none", "none", 0, "accuracy", clean))
            for severity in (1, 2, 3):
                rows.append(_row(model, "vqa", "plain", "blur", "image", severity, "accuracy", clean - 0.125 * severity))
    return pd.DataFrame(rows, columns=list(METRICS_COLUMNS))


def make_weights() -> pd.DataFrame:
    """MA-AFS weights for one model: alpha_v falls as the image is blurred harder."""
    rows = []
    for sample in range(4):
        cues = (0.4, 0.3, 0.9, 0.8, 0.7)  # h_v, h_t, agreement, a_v, a_t
        rows.append(("alpha", 0, "retrieval", "plain", "none", "none", 0, f"s{sample}", 0.5, 0.5, *cues))
        for severity in (1, 2, 3):
            alpha_v = 0.5 - 0.125 * severity
            rows.append(("alpha", 0, "retrieval", "plain", "blur", "image", severity, f"s{sample}", alpha_v, 1 - alpha_v, *cues))
            rows.append(("alpha", 0, "retrieval", "plain", "typo", "text", severity, f"s{sample}", 1 - alpha_v, alpha_v, *cues))
    return pd.DataFrame(rows, columns=list(WEIGHTS_COLUMNS))


@pytest.fixture(scope="module")
def board() -> pd.DataFrame:
    return build_leaderboard(make_metrics(), PRIMARY)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One full write_report run (figures are the slow part, so it is shared)."""
    out = tmp_path_factory.mktemp("run")
    make_metrics(with_vqa=True).to_csv(out / "metrics.csv", index=False)
    make_weights().to_csv(out / "fusion_weights.csv", index=False)
    return out, write_report(out, PRIMARY)


def test_leaderboard_columns_and_order(board: pd.DataFrame) -> None:
    scores = [c for c in (*BASE_COLUMNS, "domain:textured") if c not in ("rank", "task", "model", "metric", "seeds", "nonfinite_cells")]
    intervals = [f"{c}{end}" for c in scores for end in ("_ci_low", "_ci_high")]
    assert list(board.columns) == [*BASE_COLUMNS, "domain:textured", *(f"{c}_sd" for c in scores), *intervals, "p_vs_rank1"]
    assert board[intervals].isna().all().all()  # no items file: blank intervals, not an error
    assert board["model"].tolist() == ["alpha", "beta", "gamma"]
    # beta and gamma tie on corrupted (0.4375): same rank, listed by name.
    assert board["rank"].tolist() == [1, 2, 2]
    assert set(board["task"]) == {"retrieval"} and set(board["metric"]) == {"r_mean"}


@pytest.mark.parametrize(
    ("model", "clean", "corrupted", "image", "text", "textured"),
    [
        ("alpha", 0.75, 0.5625, 0.5, 0.625, 0.5),
        ("beta", 0.5, 0.4375, 0.5, 0.375, 0.25),
        ("gamma", 1.0, 0.4375, 0.5, 0.375, math.nan),
    ],
)
def test_leaderboard_values(
    board: pd.DataFrame, model: str, clean: float, corrupted: float, image: float, text: float, textured: float
) -> None:
    row = board.set_index("model").loc[model]
    assert row["clean"] == pytest.approx(clean)
    assert row["corrupted"] == pytest.approx(corrupted)
    assert row["relative_robustness"] == pytest.approx(corrupted / clean)
    assert row["image"] == pytest.approx(image)
    assert row["text"] == pytest.approx(text)
    assert math.isnan(row["pair"])  # no pair corruption was run
    assert row["domain:textured"] == pytest.approx(textured, nan_ok=True)


def test_explicit_domain_and_ambiguous_domain() -> None:
    metrics = make_metrics()
    assert build_leaderboard(metrics, PRIMARY, domain="plain").equals(build_leaderboard(metrics, PRIMARY))
    plain = metrics[metrics["domain"] == "plain"]
    both = pd.concat([plain, plain.assign(domain="outline")], ignore_index=True)
    with pytest.raises(SchemaError, match="pass domain="):
        build_leaderboard(both, PRIMARY)


def test_task_without_primary_metric_is_an_error() -> None:
    with pytest.raises(SchemaError, match="no primary metric for task"):
        build_leaderboard(make_metrics(with_vqa=True), {"retrieval": "r_mean"})
    with pytest.raises(SchemaError, match="available"):
        build_leaderboard(make_metrics(), {"retrieval": "cider"})


def test_uneven_coverage_warns() -> None:
    metrics = make_metrics()
    partial = metrics[~((metrics["model"] == "gamma") & (metrics["corruption"] == "typo"))]
    with pytest.warns(UserWarning, match="different numbers of corrupted cells"):
        build_leaderboard(partial, PRIMARY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_leaderboard(metrics, PRIMARY)


def test_per_corruption_table() -> None:
    table = per_corruption_table(make_metrics(), "retrieval", "r_mean")
    assert table.index.tolist() == ["alpha", "beta", "gamma"]
    assert table.columns.tolist() == ["blur", "typo"]  # image before text
    assert table.loc["alpha"].tolist() == pytest.approx([0.5, 0.625])
    assert table.loc["gamma"].tolist() == pytest.approx([0.5, 0.375])


def test_markdown_has_legend_rows_and_per_corruption_table(board: pd.DataFrame, tmp_path: Path) -> None:
    write_leaderboard(board, tmp_path, metrics=make_metrics())
    text = (tmp_path / "leaderboard.md").read_text()
    assert "## retrieval" in text
    assert "**Legend:**" in text
    assert "| rank | model | seeds | clean | corrupted | relative_robustness | image | text | domain:textured |" in text
    assert "| 1 | alpha | 1 | 0.750 | 0.562 | 0.750 | 0.500 | 0.625 | 0.500 |" in text
    assert "| 2 | gamma | 1 | 1.000 | 0.438 | 0.438 | 0.500 | 0.375 |  |" in text  # missing domain: blank
    assert "| model | blur (image) | typo (text) |" in text
    assert "| beta | 0.500 | 0.375 |" in text


def test_csv_round_trip(board: pd.DataFrame, tmp_path: Path) -> None:
    csv_path, _ = write_leaderboard(board, tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), board)


def test_outputs_are_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    metrics = make_metrics(with_vqa=True)
    shuffled = metrics.sample(frac=1.0, random_state=0)  # row order must not matter
    write_leaderboard(build_leaderboard(metrics, PRIMARY), first, metrics=metrics)
    write_leaderboard(build_leaderboard(shuffled, PRIMARY), second, metrics=shuffled)
    for name in ("leaderboard.csv", "leaderboard.md"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_read_metrics_types(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    make_metrics().to_csv(path, index=False)
    metrics = read_metrics(path)
    assert tuple(metrics.columns) == METRICS_COLUMNS
    assert metrics["severity"].dtype == "int64"
    assert metrics["value"].dtype == "float64"
    assert (metrics.loc[metrics["severity"] == 0, "corruption"] == "none").all()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda df: df.drop(columns=["value"]), r"missing: \['value'\]"),
        (lambda df: df.drop(columns=["modality", "dataset"]), r"missing: \['dataset', 'modality'\]"),
        (lambda df: df.assign(epoch=0), r"extra: \['epoch'\]"),
        (lambda df: df.assign(severity="high"), "'severity' must hold integers"),
        (lambda df: df.assign(value="n/a"), "'value' must hold numbers"),
        (lambda df: df.assign(modality="audio"), "unknown modality"),
        (lambda df: pd.concat([df, df.head(1)]), "repeat the key"),
    ],
)
def test_schema_errors_name_file_and_problem(tmp_path: Path, change, expected: str) -> None:
    path = tmp_path / "metrics.csv"
    change(make_metrics()).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=expected) as info:
        read_metrics(path)
    assert str(path) in str(info.value)


def test_missing_weights_column(tmp_path: Path) -> None:
    path = tmp_path / "fusion_weights.csv"
    make_weights().drop(columns=["alpha_t"]).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"missing: \['alpha_t'\]") as info:
        read_weights(path)
    assert str(path) in str(info.value)


def test_write_report_files(report_dir: tuple[Path, list[Path]]) -> None:
    out, written = report_dir
    assert [p.name for p in written] == [
        "leaderboard.csv",
        "leaderboard.md",
        "robustness_curves_retrieval.png",
        "robustness_curves_vqa.png",
        "robustness_curves.png",
        "fusion_weights.png",
        "domain_shift.png",
    ]
    assert all(p.parent == out and p.is_file() for p in written)
    # With several tasks the unsuffixed name is the first task's figure.
    assert (out / "robustness_curves.png").read_bytes() == (out / "robustness_curves_retrieval.png").read_bytes()
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["task"].tolist() == ["retrieval"] * 3 + ["vqa"] * 2


def test_report_pngs_are_valid_images(report_dir: tuple[Path, list[Path]]) -> None:
    _, written = report_dir
    for path in (p for p in written if p.suffix == ".png"):
        assert path.stat().st_size > 10_000, path
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width >= 400 and image.height >= 300, (path, image.size)


def test_write_report_without_weights_or_shift(tmp_path: Path) -> None:
    metrics = make_metrics()
    metrics[metrics["domain"] == "plain"].to_csv(tmp_path / "metrics.csv", index=False)
    written = write_report(tmp_path, PRIMARY)
    assert [p.name for p in written] == ["leaderboard.csv", "leaderboard.md", "robustness_curves.png"]


def test_in_memory_nan_value_is_valid_and_nan_name_is_not() -> None:
    # pandas 3 keeps NaN through astype(str), so the "nan" spelling check alone missed both.
    metrics = make_metrics()
    metrics.loc[0, "value"] = math.nan
    assert math.isnan(validate_metrics(metrics)["value"].iloc[0])
    metrics.loc[1, "model"] = math.nan
    with pytest.raises(SchemaError, match="empty values in column 'model'"):
        validate_metrics(metrics)


def _steady_and_broken(broken_cell: float, steady_clean: float = 0.5, broken_clean: float = 0.875) -> pd.DataFrame:
    """``steady`` scores 0.5 on every cell; ``broken`` 0.875 except blur at severity 2.

    Skipping the broken cell would make ``broken`` the best model (0.875 > 0.5).
    """
    rows = []
    for model, clean, blur2 in (("steady", steady_clean, 0.5), ("broken", broken_clean, broken_cell)):
        base = 0.5 if model == "steady" else 0.875
        rows.append(_row(model, "retrieval", "plain", "none", "none", 0, "r_mean", clean))
        for severity in (1, 2):
            rows.append(_row(model, "retrieval", "plain", "blur", "image", severity, "r_mean", blur2 if severity == 2 else base))
            rows.append(_row(model, "retrieval", "plain", "typo", "text", severity, "r_mean", base))
    return pd.DataFrame(rows, columns=list(METRICS_COLUMNS))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "+inf", "-inf"])
def test_nonfinite_cell_is_not_skipped_and_ranks_last(bad: float) -> None:
    board = build_leaderboard(_steady_and_broken(bad), {"retrieval": "r_mean"}).set_index("model")
    assert board.loc["steady", "rank"] == 1 and board.loc["broken", "rank"] == 2
    broken = board.loc["broken"]
    for column in ("corrupted", "relative_robustness", "image"):
        assert math.isnan(broken[column]), column
    assert broken["clean"] == 0.875 and broken["text"] == 0.875  # means without the cell stand
    assert broken["nonfinite_cells"] == 1 and board.loc["steady", "nonfinite_cells"] == 0
    assert board.loc["steady", "corrupted"] == 0.5


def test_relative_robustness_is_nan_when_clean_is_zero_or_nan() -> None:
    board = build_leaderboard(_steady_and_broken(0.875, steady_clean=0.0, broken_clean=math.nan), {"retrieval": "r_mean"})
    board = board.set_index("model")
    assert board.loc["steady", "corrupted"] == 0.5 and math.isnan(board.loc["steady", "relative_robustness"])
    assert math.isnan(board.loc["broken", "clean"]) and math.isnan(board.loc["broken", "relative_robustness"])
    assert board.loc["broken", "corrupted"] == 0.875 and board.loc["broken", "rank"] == 1
    assert board.loc["broken", "nonfinite_cells"] == 1


def test_nonfinite_cells_in_tables_and_markdown(tmp_path: Path) -> None:
    metrics = _steady_and_broken(math.nan)
    table = per_corruption_table(metrics, "retrieval", "r_mean")
    assert math.isnan(table.loc["broken", "blur"]) and table.loc["broken", "typo"] == 0.875
    board = build_leaderboard(metrics, {"retrieval": "r_mean"})
    _, md = write_leaderboard(board, tmp_path, metrics=metrics)
    text = md.read_text()
    assert "**NaN/inf scores** (cells): `broken` (1); every mean over them is blank." in text
    assert "| rank | model | seeds | clean | corrupted | relative_robustness | image | text | nonfinite_cells |" in text
    assert "| 2 | broken | 1 | 0.875 |  |  |  | 0.875 | 1 |" in text
    assert "| broken |  | 0.875 |" in text
    csv_path = tmp_path / "leaderboard.csv"
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), board)


@pytest.fixture()
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Figures drawn by the plot functions, kept instead of only saved."""
    drawn: list[Figure] = []
    save = plots._save

    def keep(fig: Figure, path: str | Path) -> Path:
        drawn.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def _legend_texts(legend) -> list[str]:
    return [text.get_text() for text in legend.get_texts()]


def test_figures_leave_nonfinite_points_out_and_flag_the_model(tmp_path: Path, figures: list[Figure]) -> None:
    metrics = make_metrics()
    is_r_mean = metrics["metric"] == "r_mean"
    metrics.loc[is_r_mean & (metrics["model"] == "gamma") & (metrics["corruption"] == "blur") & (metrics["severity"] == 2), "value"] = math.nan
    metrics.loc[is_r_mean & (metrics["model"] == "beta") & (metrics["domain"] == "textured"), "value"] = math.inf
    weights = make_weights()
    weights.loc[(weights["corruption"] == "blur") & (weights["severity"] == 1) & (weights["sample_id"] == "s0"), "alpha_v"] = math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.plot_robustness_curves(metrics, "retrieval", "r_mean", tmp_path / "curves.png")
        plots.plot_fusion_weights(weights, tmp_path / "weights.png")
        plots.plot_domain_shift(metrics, "retrieval", "r_mean", tmp_path / "shift.png")
    curves, fusion, shift = figures
    assert _legend_texts(curves.legends[0]) == ["alpha", "beta", "gamma (NaN/inf)"]
    gamma_blur = curves.axes[0].get_lines()[2].get_ydata()
    assert gamma_blur[[0, 1, 3]].tolist() == [1.0, 0.75, 0.25] and math.isnan(gamma_blur[2])
    assert _legend_texts(fusion.legends[0])[0] == "alpha (NaN/inf)"
    alpha_v_blur = fusion.axes[0].get_lines()[1].get_ydata()  # after the 0.5 guide line
    assert math.isnan(alpha_v_blur[1]) and alpha_v_blur[2] == 0.25
    assert _legend_texts(shift.legends[0]) == ["alpha", "beta (NaN/inf)", "gamma"]
    beta = shift.axes[0].get_lines()[1].get_ydata()  # across domains: plain, textured
    assert beta[0] == 0.5 and math.isnan(beta[1])


def _with_strengths(metrics: pd.DataFrame) -> pd.DataFrame:
    """``make_metrics`` plus textured at strength 0.5 and an ``outline`` domain at strengths 0.25 and 1."""
    extra = []
    for model, clean in (("alpha", 0.75), ("beta", 0.5)):
        extra.append(_row(model, "retrieval", "textured@0.5", "none", "none", 0, "r_mean", (clean + TEXTURED[model]) / 2))
        extra.append(_row(model, "retrieval", "outline@0.25", "none", "none", 0, "r_mean", clean - 0.125))
        extra.append(_row(model, "retrieval", "outline", "none", "none", 0, "r_mean", clean - 0.25))
    return pd.concat([metrics, pd.DataFrame(extra, columns=list(METRICS_COLUMNS))], ignore_index=True)


def test_domain_shift_curves_across_domains_then_against_strength(tmp_path: Path, figures: list[Figure]) -> None:
    metrics = _with_strengths(make_metrics())
    plots.plot_domain_shift(metrics, "retrieval", "r_mean", tmp_path / "shift.png", order=["textured", "outline"])
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["across domains", "plain -> textured", "plain -> outline"]
    across, textured, outline = axes
    assert [t.get_text() for t in across.get_xticklabels()] == ["plain\n(in-domain)", "textured", "outline"]
    alpha = across.get_lines()[0]
    assert alpha.get_xdata().tolist() == [0.0, 1.0, 2.0] and alpha.get_ydata().tolist() == [0.75, 0.5, 0.5]
    # strength axes: 0 is the in-domain clean cell, then each evaluated strength
    assert textured.get_lines()[0].get_xdata().tolist() == [0.0, 0.5, 1.0]
    assert textured.get_lines()[0].get_ydata().tolist() == [0.75, 0.625, 0.5]
    assert outline.get_lines()[1].get_xdata().tolist() == [0.0, 0.25, 1.0]
    assert outline.get_lines()[1].get_ydata().tolist() == [0.5, 0.375, 0.25]
    gamma = outline.get_lines()[2].get_ydata()  # gamma has no shifted rows: only its clean point
    assert gamma[0] == 1.0 and all(math.isnan(v) for v in gamma[1:])


def test_domain_shift_without_strengths_is_one_ordered_curve(tmp_path: Path, figures: list[Figure]) -> None:
    """Real data: an ordered list of domains (NoCaps in -> near -> out) reads as one curve, in the suite's order."""
    rows = [_row(m, "retrieval", d, "none", "none", 0, "r_mean", v) for m, values in
            (("alpha", (0.75, 0.5, 0.25, 0.125)),) for d, v in zip(("in", "near", "out", "far"), values, strict=True)]
    rows.append(_row("alpha", "retrieval", "in", "blur", "image", 1, "r_mean", 0.5))
    plots.plot_domain_shift(pd.DataFrame(rows), "retrieval", "r_mean", tmp_path / "s.png", order=["near", "out"])
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    assert len(axes) == 1
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["in\n(in-domain)", "near", "out", "far"]
    assert axes[0].get_lines()[0].get_ydata().tolist() == [0.75, 0.5, 0.25, 0.125]


def test_leaderboard_means_over_seeds_with_their_spread(tmp_path: Path) -> None:
    """Each score is the mean of the per-seed scores; ``_sd`` is their sample standard deviation."""
    base = make_metrics()
    seeds = []
    for seed, shift in ((0, 0.0), (1, 0.1), (2, 0.2)):
        frame = base.copy()
        frame["seed"] = seed
        frame.loc[frame["model"] == "alpha", "value"] += shift
        seeds.append(frame)
    board = build_leaderboard(pd.concat(seeds, ignore_index=True), PRIMARY)
    alpha = board[(board["task"] == "retrieval") & (board["model"] == "alpha")].iloc[0]
    single = build_leaderboard(base, PRIMARY)
    single_alpha = single[(single["task"] == "retrieval") & (single["model"] == "alpha")].iloc[0]
    assert alpha["seeds"] == 3
    assert alpha["clean"] == pytest.approx(single_alpha["clean"] + 0.1)
    assert alpha["clean_sd"] == pytest.approx(0.1)
    beta = board[(board["task"] == "retrieval") & (board["model"] == "beta")].iloc[0]
    assert beta["clean_sd"] == pytest.approx(0.0)
    assert math.isnan(single_alpha["clean_sd"])  # one seed: no spread
    _, md = write_leaderboard(board, tmp_path)
    assert f"{alpha['clean']:.3f} ± 0.100" in md.read_text()


def test_corruptions_seen_in_training_are_marked(tmp_path: Path) -> None:
    metrics = make_metrics()
    board = build_leaderboard(metrics, PRIMARY)
    _, md = write_leaderboard(board, tmp_path, metrics=metrics, seen_in_training=["blur"])
    text = md.read_text()
    assert "blur (image) †" in text and "typo (text) †" not in text
    assert "seen in training" in text
    _, clean_md = write_leaderboard(board, tmp_path / "b", metrics=metrics)
    assert "†" not in clean_md.read_text()
