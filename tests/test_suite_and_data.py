"""Suite validation (errors name file, field, value), real-data loaders on tiny files, preflight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mafs_bench.data import DATASETS, DataMissingError, create_dataset
from mafs_bench.models.backends import create_backend
from mafs_bench.runner import PreflightError, SuiteError, load_suite, plan_cells, suite_from_dict
from mafs_bench.runner.run import preflight

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "name": "t",
    "dataset": {"name": "embedded_world"},
    "models": ["clip"],
    "tasks": [{"name": "retrieval", "k": 4, "ks": [1, 3]}],
    "corruptions": ["gaussian_noise"],
    "severities": [1, 2],
}


def test_bundled_suites_validate() -> None:
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        suite = load_suite(path)
        assert suite.models and suite.tasks


def test_task_options_and_cells() -> None:
    suite = suite_from_dict({**BASE, "dataset": {"name": "embedded_world", "shifted_domains": ["outline"]}})
    assert suite.tasks[0].options == {"k": 4, "ks": [1, 3]}
    cells = plan_cells(suite, "plain")
    assert [(c.domain, c.corruption, c.severity) for c in cells] == [
        ("plain", "none", 0), ("plain", "gaussian_noise", 1), ("plain", "gaussian_noise", 2), ("outline", "none", 0)]


@pytest.mark.parametrize("patch, field, value", [
    ({"corruptions": ["gausian_noise"]}, "corruptions", "gaussian_noise"),
    ({"severities": [0, 6]}, "severities", "[0, 6]"),
    ({"models": ["mafs", "nope"]}, "models", "nope"),
    ({"tasks": [{"name": "retreival"}]}, "tasks.0.name", "retrieval"),
    ({"dataset": {"name": "cocoo"}}, "dataset.name", "cocoo"),
    ({"seed": -1}, "seed", "-1"),
    ({"extra_field": 1}, "extra_field", "1"),
    ({"device": "tpu"}, "device", "tpu"),
])
def test_bad_fields_are_named_with_their_value(tmp_path: Path, patch: dict, field: str, value: str) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**BASE, **patch}))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    msg = str(err.value)
    assert str(path) in msg and f"field {field}" in msg and value in msg


def test_missing_required_field_and_yaml_errors(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("name: x\ndataset: {name: embedded_world}\ntasks: [retrieval]\n")
    with pytest.raises(SuiteError, match="field models: Field required"):
        load_suite(p)
    p.write_text("name: [unclosed\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(p)
    with pytest.raises(SuiteError, match="not found"):
        load_suite(tmp_path / "missing.yaml")


def test_include_merges_and_local_keys_win(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "seed": 3, "dataset": {"name": "embedded_world", "options": {"size": 10}}}))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"include": "base.yaml", "name": "child", "dataset": {"options": {"seed": 4}}}))
    suite = load_suite(tmp_path / "s.yaml")
    assert suite.name == "child" and suite.seed == 3
    assert suite.dataset.options == {"size": 10, "seed": 4}


def _tiny_coco(root: Path, n: int = 3) -> None:
    (root / "val2014").mkdir(parents=True)
    images = []
    for i in range(n):
        Image.fromarray(np.full((40, 50, 3), 40 * i, dtype=np.uint8)).save(root / "val2014" / f"im{i}.jpg")
        images.append({"split": "test", "filepath": "val2014", "filename": f"im{i}.jpg",
                       "sentences": [{"raw": f"caption {i} {j} "} for j in range(6)]})
    images.append({"split": "train", "filepath": "val2014", "filename": "im0.jpg", "sentences": [{"raw": "x"}]})
    (root / "dataset_coco.json").write_text(json.dumps({"images": images}))


def test_coco_karpathy_loader_on_tiny_files(tmp_path: Path) -> None:
    _tiny_coco(tmp_path)
    data = create_dataset("coco_karpathy", root=str(tmp_path)).load("coco")
    assert len(data.images) == 3 and len(data.captions) == 15  # max_captions 5
    assert data.caption_image.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert data.captions[0] == "caption 0 0"
    assert data.images[1].shape == (40, 50, 3) and data.images[1].dtype == np.uint8


def test_coco_missing_pieces_say_what_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAFS_BENCH_COCO_ROOT", raising=False)
    with pytest.raises(DataMissingError, match="MAFS_BENCH_COCO_ROOT"):
        create_dataset("coco_karpathy")
    with pytest.raises(DataMissingError, match="dataset_coco.json"):
        create_dataset("coco_karpathy", root=str(tmp_path))
    _tiny_coco(tmp_path)
    (tmp_path / "val2014" / "im1.jpg").unlink()
    with pytest.raises(DataMissingError, match="1 of 3 test images are missing"):
        create_dataset("coco_karpathy", root=str(tmp_path)).load("coco")


def test_open_clip_backend_reports_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    backend = create_backend("open_clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    problems = backend.preflight(["clip", "mafs"])
    assert any("not available offline" in p and "checkpoint" in p for p in problems)
    assert any("'mafs'" in p for p in problems)
    problems = create_backend("open_clip", model="ViT-B-32", checkpoint=str(tmp_path / "w.bin")).preflight(["clip"])
    assert problems == [f"backend.options.checkpoint: file not found: {tmp_path / 'w.bin'}"]


def test_open_clip_backend_encodes_with_a_local_checkpoint(tmp_path: Path) -> None:
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("RN50")  # random init; only the file format matters here
    ckpt = tmp_path / "rn50.pt"
    torch.save(model.state_dict(), ckpt)
    backend = create_backend("open_clip", model="RN50", pretrained=None, checkpoint=str(ckpt))
    assert backend.preflight(["clip"]) == []
    bundle = backend.build(None, ["clip"], torch.device("cpu"), lambda d, t: (lambda *a: None), [0])
    imgs = [np.zeros((30, 40, 3), np.uint8), np.full((50, 20, 3), 200, np.uint8)]
    f = bundle.encoder.encode_images(imgs)
    t = bundle.encoder.encode_texts(["a photo", "a dog"])
    assert f.emb.shape == (2, 1024) and t.emb.shape == (2, 1024)


def test_coco_suite_stops_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MAFS_BENCH_COCO_ROOT", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    suite = load_suite(ROOT / "suites" / "coco_corrupt.yaml")
    with pytest.raises(PreflightError) as err:
        preflight(suite)
    msg = str(err.value)
    assert "MAFS_BENCH_COCO_ROOT" in msg and "not available offline" in msg


def test_every_dataset_is_registered() -> None:
    assert {"embedded_world", "coco_karpathy", "flickr30k_karpathy"} <= set(DATASETS.names())


@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "brightness"])
def test_runner_torch_corruption_path_matches_numpy(name: str) -> None:
    import torch

    from mafs_bench.runner.run import Cell, corrupt_images

    data = create_dataset("embedded_world", size=6).load("plain")
    cell = Cell("plain", name, 3)
    numpy_out = corrupt_images(data, cell, seed=1, backend="numpy")
    torch_out = corrupt_images(data, cell, seed=1, device=torch.device("cpu"), backend="torch")
    assert torch_out.dtype == np.uint8 and torch_out.shape == numpy_out.shape
    np.testing.assert_array_equal(torch_out, numpy_out)


def test_recall_at_k_not_below_k_is_a_suite_error() -> None:
    """A task option that cannot run stops at validation, naming the field and the values."""
    with pytest.raises(SuiteError, match=r"field tasks: tasks\[0\] \(retrieval\).*R@10 needs k > 10"):
        suite_from_dict({**BASE, "tasks": [{"name": "retrieval", "k": 10}]}, "s.yaml")


@pytest.mark.parametrize("seeds, message", [([], "at least one"), ([0, -1], "non-negative"), ([1, 1], "twice")])
def test_bad_training_seeds_are_named(seeds: list[int], message: str) -> None:
    with pytest.raises(SuiteError, match=f"field seeds.*{message}"):
        suite_from_dict({**BASE, "seeds": seeds}, "s.yaml")


def test_training_seeds_default_to_the_seed() -> None:
    assert suite_from_dict({**BASE, "seed": 7}, "s.yaml").training_seeds == [7]
    assert suite_from_dict({**BASE, "seeds": [2, 0]}, "s.yaml").training_seeds == [2, 0]


@pytest.mark.parametrize("change, message", [
    ({"backend": {"name": "embedded", "options": {"fusion_train": {"steps": 0}}}}, "fusion_train.steps must be an integer >= 1, got 0"),
    ({"backend": {"name": "embedded", "options": {"encoder_train": {"steps": -1}}}}, "encoder_train.steps must be an integer >= 1, got -1"),
    ({"backend": {"name": "embedded", "options": {"fusion_train": {"augmentations": "image_feature_noise"}}}},
     "fusion_train.augmentations must be a list of names, got 'image_feature_noise'"),
    ({"backend": {"name": "embedded", "options": {"fusion_train": {"augmentations": ["text_feature_noise"] * 2}}}},
     "lists a name twice"),
    ({"backend": {"name": "embedded", "options": {"fusion_train": {"corruptions": ["caption_shuffle"]}}}},
     "'caption_shuffle' is a pair corruption"),
    ({"models": ["clip", "mafs"], "backend": {"name": "embedded", "options": {"methods": {"mafs": {"cues": ["foo"]}}}}},
     "backend.options.methods.mafs: fusion option cues"),
    ({"models": ["clip", "mafs"], "backend": {"name": "embedded", "options": {"methods": {"mafs": {"bank_size": 1}}}}},
     "backend.options.methods.mafs: fusion option bank_size"),
    ({"backend": {"name": "embedded", "options": {"methods": {"mafss": {}}}}}, "options for models the suite does not list"),
    ({"dataset": {"name": "embedded_world", "options": {"size": -5}}}, "dataset.options.size must be a positive integer, got -5"),
    ({"dataset": {"name": "embedded_world", "options": {"split": "tset"}}}, "dataset.options.split must be 'test' or 'val'"),
])
def test_bad_backend_and_dataset_options_stop_in_preflight(change: dict, message: str) -> None:
    """Found before any training, naming the option path and the value."""
    with pytest.raises(PreflightError) as info:
        preflight(suite_from_dict({**BASE, **change}, "s.yaml"))
    assert message in str(info.value)


def test_fractional_recall_k_is_refused() -> None:
    with pytest.raises(SuiteError, match="whole numbers"):
        suite_from_dict({**BASE, "tasks": [{"name": "retrieval", "k": 4, "ks": [1.5]}]}, "s.yaml")


def test_shifted_strengths_plan_one_cell_per_domain_and_strength() -> None:
    suite = suite_from_dict({**BASE, "dataset": {"name": "embedded_world", "shifted_domains": ["outline", "textured"],
                                                 "shifted_strengths": [1, 0.5, 0]}}, "s.yaml")
    assert suite.dataset.shifted_strengths == [0.5, 1.0]  # 0 is the clean in-domain cell, always evaluated
    shifted = [(c.domain, c.strength, c.label) for c in plan_cells(suite, "plain") if c.domain != "plain"]
    assert shifted == [("outline", 0.5, "outline@0.5"), ("outline", 1.0, "outline"),
                       ("textured", 0.5, "textured@0.5"), ("textured", 1.0, "textured")]
    default = suite_from_dict({**BASE, "dataset": {"name": "embedded_world", "shifted_domains": ["outline"]}})
    assert default.dataset.shifted_strengths == [1.0]
    assert [c.label for c in plan_cells(default, "plain")][-1] == "outline"  # old runs' cell names unchanged


@pytest.mark.parametrize("strengths, message", [
    ([0.5, 1.5], "shifted_strengths must lie in [0, 1]"),
    ([0], "at least one strength above 0"),
])
def test_bad_shifted_strengths_are_named(strengths: list, message: str) -> None:
    with pytest.raises(SuiteError) as info:
        suite_from_dict({**BASE, "dataset": {"name": "embedded_world", "shifted_strengths": strengths}}, "s.yaml")
    assert "s.yaml: field dataset.shifted_strengths" in str(info.value) and message in str(info.value)


def test_report_models_must_be_suite_models() -> None:
    suite = suite_from_dict({**BASE, "models": ["clip", "mafs"], "report": {"reference_model": "clip",
                                                                            "baseline_model": "mafs"}})
    assert (suite.report.reference_model, suite.report.baseline_model) == ("clip", "mafs")
    assert suite_from_dict(BASE).report.reference_model is None
    with pytest.raises(SuiteError, match="s.yaml: field report: baseline_model 'albef' is not one of the suite's models"):
        suite_from_dict({**BASE, "report": {"baseline_model": "albef"}}, "s.yaml")
    with pytest.raises(SuiteError, match="report.referense_model"):
        suite_from_dict({**BASE, "report": {"referense_model": "clip"}}, "s.yaml")


def test_strengths_need_a_dataset_with_a_continuous_shift(tmp_path: Path) -> None:
    from mafs_bench.data import create_dataset
    from mafs_bench.data.base import Dataset

    with pytest.raises(ValueError, match="no continuous shift strength"):
        Dataset().load_shifted("x", 0.5, "y")
    world = create_dataset("embedded_world", size=6, train_size=10)
    half = world.load_shifted("outline", 0.5, "plain")
    assert half.images.shape == (6, 64, 64, 3) and half.captions == world.load("plain").captions
    assert world.load_shifted("outline", 1.0, "plain").images.tobytes() == world.load("outline").images.tobytes()
    with pytest.raises(ValueError, match="no domain 'outlines'"):
        world.load_shifted("outlines", 0.5, "plain")
