"""A tiny suite end to end through the CLI, and the CLI's error paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mafs_bench.cli.main import app
from mafs_bench.reporting import METRICS_COLUMNS, WEIGHTS_COLUMNS
from mafs_bench.reporting.schema import ITEMS_FILE, ITEMS_KEY, read_items

TINY = {
    "name": "tiny",
    "seed": 0,
    "seeds": [0, 1],
    "dataset": {"name": "embedded_world", "shifted_domains": ["outline"], "shifted_strengths": [0.5, 1.0],
                "options": {"size": 40, "train_size": 300}},
    "backend": {"name": "embedded", "options": {
        "encoder_train": {"steps": 6, "batch_size": 32},
        "fusion_train": {"steps": 4, "batch_size": 16},
        "fusion_pool": 120,
    }},
    "models": ["clip", "fixed_sum", "mafs", "albef", "blip"],
    "tasks": [{"name": "retrieval", "k": 4, "ks": [1, 3]}],
    "corruptions": ["gaussian_noise", "keyboard", "caption_shuffle"],
    "severities": [1, 5],
}


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tiny_suite_end_to_end(tmp_path: Path, cache_dir: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(suite), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"Results in {out}" in result.output
    listed = " ".join(result.output.split("Results in", 1)[1].split("HTML report", 1)[0].split())
    for name in ("metrics.csv", "items.csv.gz", "fusion_weights.csv", "fusion_cues.csv", "run.json", "gallery.png",
                 "leaderboard.md"):  # every file a user looks for is named, and exists
        assert name in listed and (out / name).is_file(), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == list(METRICS_COLUMNS)
    cells = metrics[["domain", "corruption", "severity"]].drop_duplicates()
    assert len(cells) == 1 + 3 * 2 + 2
    assert set(metrics.loc[metrics.corruption == "none", "domain"]) == {"plain", "outline@0.5", "outline"}
    for model in TINY["models"]:
        rows = metrics[metrics.model == model]
        assert (rows.corruption == "none").any() and (rows.corruption != "none").any()
        assert set(rows.metric) == {"i2t_r1", "i2t_r3", "t2i_r1", "t2i_r3", "r_mean", "nonfinite_scores"}
        assert (rows[rows.metric == "nonfinite_scores"].value == 0).all()
        assert sorted(rows.seed.unique()) == [0, 1]
    clean = metrics[(metrics.corruption == "none")]
    assert (clean.severity == 0).all() and (clean.modality == "none").all()
    assert set(metrics[metrics.corruption == "keyboard"].modality) == {"text"}
    weights = pd.read_csv(out / "fusion_weights.csv")
    assert list(weights.columns) == list(WEIGHTS_COLUMNS)
    assert set(weights.model) == {"mafs"}  # fixed_sum's constant weights are not written
    assert ((weights.alpha_v + weights.alpha_t - 1).abs() < 2e-4).all()
    assert weights[["h_v", "h_t", "agreement", "a_v", "a_t"]].notna().all().all()
    cues = pd.read_csv(out / "fusion_cues.csv")  # per-cell means of the weights and cues
    assert len(cues) == len(cells) * 2  # every cell, both seeds
    one = cues[(cues.seed == 1) & (cues.corruption == "gaussian_noise") & (cues.severity == 5)].iloc[0]
    same = weights[(weights.seed == 1) & (weights.corruption == "gaussian_noise") & (weights.severity == 5)]
    assert one.alpha_v == pytest.approx(same.alpha_v.mean(), abs=1e-4) and one.samples == len(same)
    run = __import__("json").loads((out / "run.json").read_text())
    assert run["seeds"] == [0, 1] and run["training"]["seeds"] == [0, 1]
    assert run["training"]["augmentations"] and not set(run["training"]["augmentations"]) & set(TINY["corruptions"])
    assert run["training"]["corruptions_seen"] == []
    assert run["corruptions"]["keyboard"] == {"modality": "text", "family": "character"}
    gallery = json.loads((out / "gallery.json").read_text())
    assert [r["label"] for r in gallery["image_rows"]] == ["gaussian_noise", "outline"]
    assert [t["corruption"] for t in gallery["text"]] == ["keyboard", "caption_shuffle"]
    assert set(gallery["text"][0]["severities"]) == {"1", "5"} and (out / "gallery.png").stat().st_size > 5_000
    for name in ("leaderboard.md", "leaderboard.csv", "robustness_curves.png", "run.json"):
        assert (out / name).stat().st_size > 0
    check_items_reproduce_metrics(out, metrics)
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board.model) == sorted(TINY["models"])
    assert (board.seeds == 2).all()
    for column in ("clean", "corrupted", "relative_robustness", "image", "text", "pair", "domain:outline"):
        assert board[f"{column}_ci_low"].notna().all() and board[f"{column}_ci_high"].notna().all()
        assert (board[f"{column}_ci_low"] <= board[f"{column}_ci_high"]).all()
    assert "[" in (out / "leaderboard.md").read_text()  # intervals shown
    assert (board.loc[board.model == "clip", "corrupted_sd"] == 0).all()  # the encoder is shared by the seeds

    # second run: models come from the cache and results are identical
    trained = sorted(p.name for p in cache_dir.rglob("*.safetensors"))
    assert len(trained) == 1 + 3 * 2  # encoder + (mafs, fixed_sum, albef/blip shared) per training seed
    out2 = tmp_path / "out2"
    result = runner.invoke(app, ["run", str(suite), "--out", str(out2), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in cache_dir.rglob("*.safetensors")) == trained
    assert (out / "metrics.csv").read_bytes() == (out2 / "metrics.csv").read_bytes()
    assert (out / "fusion_weights.csv").read_bytes() == (out2 / "fusion_weights.csv").read_bytes()
    assert read_items(out / ITEMS_FILE).equals(read_items(out2 / ITEMS_FILE))
    assert (out / "leaderboard.csv").read_bytes() == (out2 / "leaderboard.csv").read_bytes()  # deterministic intervals

    # the gate: two runs of the same code do not differ
    result = runner.invoke(app, ["compare", str(out), str(out2)])
    assert result.exit_code == 0, result.output

    # one report of both runs: models disambiguated by run, MA-AFS's weights from fusion_cues.csv
    report = tmp_path / "report"
    result = runner.invoke(app, ["report", str(out), str(out2), "--out", str(report), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    merged = pd.read_csv(report / "leaderboard.csv")
    assert sorted(merged.model) == sorted(f"{m} [{r}]" for m in TINY["models"] for r in ("out", "out2"))
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6  # curves, families, heatmap, domain shift, weights, gallery
    assert (report / "figures" / "fusion_weights_retrieval.png").is_file()


def check_items_reproduce_metrics(out: Path, metrics: pd.DataFrame) -> None:
    """items.csv.gz has the documented schema, and every recall (and r_mean) of metrics.csv is the
    mean of its per-item hits, for every model, seed and cell."""
    items = read_items(out / ITEMS_FILE)
    assert list(items.columns) == [*ITEMS_KEY, "i2t_r1", "i2t_r3", "t2i_r1", "t2i_r3"]
    run = json.loads((out / "run.json").read_text())
    assert run["items"]["retrieval"]["r_mean"] == ["i2t_r1", "i2t_r3", "t2i_r1", "t2i_r3"]
    n_images = TINY["dataset"]["options"]["size"]
    i2t, t2i = items[items["query"] == "i2t"], items[items["query"] == "t2i"]
    assert i2t[["t2i_r1", "t2i_r3"]].isna().all().all() and t2i[["i2t_r1", "i2t_r3"]].isna().all().all()
    values = items[["i2t_r1", "i2t_r3", "t2i_r1", "t2i_r3"]].to_numpy().ravel()
    assert set(values[~pd.isna(values)].tolist()) <= {0.0, 1.0}
    key = ["model", "seed", "task", "dataset", "domain", "corruption", "modality", "corrupted", "severity"]
    assert (i2t.groupby(key).size() == n_images).all()
    n_captions = t2i.groupby(key).size()
    assert n_captions.nunique() == 1 and n_captions.iloc[0] >= n_images
    recalls = pd.concat([i2t.groupby(key)[["i2t_r1", "i2t_r3"]].mean(), t2i.groupby(key)[["t2i_r1", "t2i_r3"]].mean()], axis=1)
    recalls["r_mean"] = recalls.mean(axis=1)
    from_items = recalls.stack().rename("from_items").reset_index().rename(columns={"level_9": "metric"})
    joined = metrics.merge(from_items, on=[*key, "metric"], how="inner")
    assert len(joined) == len(metrics[metrics.metric != "nonfinite_scores"])  # every recall, every cell
    assert (joined["value"] - joined["from_items"]).abs().max() < 5e-7  # metrics.csv keeps 6 significant digits


def test_bad_suite_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(yaml.safe_dump({**TINY, "corruptions": ["gausian_noise"]}))
    result = CliRunner().invoke(app, ["run", str(suite), "--no-progress"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "field corruptions" in result.output and "gaussian_noise" in result.output


def test_corruptions_list_and_preview(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["corruptions", "list", "--modality", "pair"])
    assert result.exit_code == 0 and "caption_shuffle" in result.output
    result = runner.invoke(app, ["corruptions", "list", "--modality", "image"])
    assert result.exit_code == 0 and "glass_blur" in result.output
    # Departures from the reference's tables are marked and the reference's values given.
    assert "* snow: departs from the reference's table" in result.output and "s2 (0.2, 0.3, 2, 0.5, 12, 4, 0.7)" in result.output
    assert "* gaussian_noise" not in result.output
    import numpy as np
    from PIL import Image

    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "g.png"
    result = runner.invoke(app, ["corruptions", "preview", "--image", str(img), "-o", str(out), "--size", "48"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    out_t = tmp_path / "t.png"
    result = runner.invoke(app, ["corruptions", "preview", "--text", "a small red circle in the middle", "-o", str(out_t)])
    assert result.exit_code == 0, result.output
    assert out_t.stat().st_size > 10_000
    result = runner.invoke(app, ["corruptions", "preview", "-o", str(out_t)])
    assert result.exit_code != 0


def test_training_on_an_evaluated_corruption_is_marked(tmp_path: Path, cache_dir: Path) -> None:
    """Allowed, recorded in run.json, and every cell of that corruption marked in the leaderboard."""
    spec = {**TINY, "seeds": [0], "models": ["clip", "mafs"], "shifted_domains": [],
            "corruptions": ["gaussian_noise", "keyboard"], "severities": [5]}
    spec["backend"] = {"name": "embedded", "options": {**TINY["backend"]["options"],
                                                       "fusion_train": {"steps": 2, "batch_size": 16,
                                                                        "corruptions": ["gaussian_noise"]}}}
    spec["dataset"] = {**TINY["dataset"], "shifted_domains": []}
    del spec["shifted_domains"]
    suite = tmp_path / "seen.yaml"
    suite.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    run = __import__("json").loads((out / "run.json").read_text())
    assert run["training"]["corruptions_seen"] == ["gaussian_noise"]
    text = (out / "leaderboard.md").read_text()
    assert "gaussian_noise (image) †" in text and "keyboard (text) †" not in text
    assert "seen in training" in text
