"""Acceptance of the real-data path, on things the test makes: a suite on a COCO-style Karpathy
folder that no other test sees, with a ``local-dir:`` open_clip model (random weights) as the
default backend and a ``save_pretrained`` BLIP-ITM folder as one model's own ``hf`` backend,
trains the heads (``mafs-bench train``) and evaluates clip, fixed_sum, mafs, albef, blip and the
HF BLIP side by side (``mafs-bench run``) on the same corrupted cells."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

import realdata
from mafs_bench.cli.main import app

SMALL_HEAD = {"width": 16, "heads": 2}
FUSED = ("fixed_sum", "mafs", "albef", "blip")


def _suite(coco: Path, open_clip_dir: Path, blip_dir: Path) -> dict:
    return {
        "name": "real_tiny",
        "seed": 0,
        "seeds": [0],
        "dataset": {"name": "coco_karpathy",
                    "options": {"root": str(coco), "split": "test", "max_captions": 5, "image_size": 40}},
        "backend": {"name": "open_clip", "options": {
            "model": f"local-dir:{open_clip_dir}",
            "fusion_train": {"steps": 16, "batch_size": 16, "warmup": 2},
            "fusion_pool": 40, "reference_size": 8,
            "methods": {name: SMALL_HEAD for name in FUSED}}},
        "models": ["clip", *FUSED,
                   {"name": "blip_hf", "method": "itm_head",
                    "backend": {"name": "hf", "options": {"model": str(blip_dir)}}}],
        "tasks": [{"name": "retrieval", "k": 8, "ks": [1, 5]}],
        "corruptions": ["gaussian_noise", "keyboard", "caption_shuffle"],
        "severities": [3],
    }


def test_real_suite_trains_heads_and_evaluates_every_model_side_by_side(real_models: dict[str, Path], tmp_path: Path,
                                                                       monkeypatch) -> None:
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))
    coco = realdata.karpathy_folder(tmp_path / "coco", {"train": 40, "restval": 12, "val": 3, "test": 10}, seed=7)
    suite = tmp_path / "real_tiny.yaml"
    suite.write_text(yaml.safe_dump(_suite(coco, real_models["open_clip"], real_models["blip_itm"])))
    runner = CliRunner()

    trained = runner.invoke(app, ["train", str(suite), "--no-progress"])
    assert trained.exit_code == 0, trained.output
    assert len(list((tmp_path / "cache" / "weights" / "head").glob("*.safetensors"))) == 3  # fixed_sum, mafs, albef=blip

    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(suite), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    models = ["clip", *FUSED, "blip_hf"]
    assert sorted(metrics.model.unique()) == sorted(models)
    cells = metrics[["corruption", "severity"]].drop_duplicates()
    assert len(cells) == 4  # clean + one image, one text and one pair corruption
    r_mean = metrics[metrics.metric == "r_mean"]
    for model in models:
        rows = r_mean[r_mean.model == model]
        assert len(rows) == len(cells), model
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in rows.value), model
    assert (metrics[metrics.metric == "nonfinite_scores"].value == 0).all()
    # the same corrupted cells for both backends: the ITC-only rows of each encoder differ, the
    # HF BLIP's re-ranking differs from its own ITC ranking nowhere it must not (finite, bounded)
    run = json.loads((out / "run.json").read_text())
    backends = {b["name"]: b for b in run["backends"]}
    assert set(backends) == {"open_clip", "hf"} and backends["hf"]["models"] == ["blip_hf"]
    assert backends["open_clip"]["training"]["encoder"] == "pretrained, frozen"
    assert backends["hf"]["info"]["architecture"] == "BlipForImageTextRetrieval"
    assert not backends["open_clip"]["info"].get("resumed")  # `train` cached them; `run` trained nothing
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board.model) == sorted(models)
