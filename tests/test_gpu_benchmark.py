"""benchmarks/gpu_retrieval.py runs anywhere: a smoke run on the CPU with a tiny model and N."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_retrieval_benchmark_runs_on_the_cpu(real_models: dict[str, Path], tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_retrieval", ROOT / "benchmarks" / "gpu_retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    report = module.main(["--n", "6", "--device", "cpu", "--image-size", "40", "--k", "4",
                          "--model", f"local-dir:{real_models['open_clip']}", "--json", str(out)])
    assert json.loads(out.read_text()) == report
    stages = report["stages"]
    assert {"preprocess", "corrupt_numpy", "corrupt_torch", "encode_images", "encode_texts", "rerank_mafs",
            "rerank_albef"} <= set(stages)
    assert stages["encode_images"]["images_per_s"] > 0 and stages["rerank_mafs"]["pairs_per_s"] > 0
    assert report["n_captions"] == 30 and report["precision"] == "fp32" and report["num_workers"] == 0
    assert report["bound_by"] in report["image_cell_seconds"]
    assert stages["encode_images"]["gpu_util_mean"] is None  # no GPU here: utilisation is not made up
