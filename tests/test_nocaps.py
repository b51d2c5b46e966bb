"""nocaps: its annotation format on a tiny fixture, its three domains, its errors, and captioning
on it end to end (decoders trained on a borrowed training split, as nocaps trains on COCO)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from mafs_bench.cli.main import app
from mafs_bench.data import DataMissingError, create_dataset
from mafs_bench.data.nocaps import NOCAPS_DOMAINS

#: (id, file_name, domain, captions): two captioned images per domain, one image without captions
IMAGES = [
    (11, "in_a.jpg", "in-domain", ["A red bus on the street.", "a bus"]),
    (12, "in_b.jpg", "in-domain", ["two cats on a sofa"]),
    (21, "near/a.png", "near-domain", ["a jellyfish in blue water", "jellyfish", "a sea creature"]),
    (22, "near/b.png", "near-domain", ["a lynx in the snow"]),
    (23, "near/c.png", "near-domain", []),
    (31, "out_a.png", "out-domain", ["an accordion on a table"]),
    (32, "out_b.png", "out-domain", ["a red accordion", "an instrument"]),
]


def write_nocaps(root: Path, images: list = IMAGES, extra: dict | None = None) -> Path:
    """The annotation file and the images of a tiny nocaps-format data set under ``root``."""
    rng = np.random.default_rng(0)
    annotations, ann_id = [], 1000
    for image_id, name, _, captions in images:
        path = root / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + image_id % 7, 24, 3), dtype=np.uint8)).save(path)
        for caption in captions:
            annotations.append({"image_id": image_id, "id": ann_id, "caption": caption})
            ann_id += 1
    doc = {"info": {}, "licenses": [],
           "images": [{"id": i, "file_name": n, "domain": d, "open_images_id": f"x{i}", "height": 20, "width": 24}
                      for i, n, d, _ in images],
           "annotations": annotations, **(extra or {})}
    (root / "nocaps_val_4500_captions.json").write_text(json.dumps(doc))
    return root


def test_three_domains_with_captions_ids_and_lazy_images(tmp_path: Path) -> None:
    data = create_dataset("nocaps", root=str(write_nocaps(tmp_path)))
    assert data.domains == NOCAPS_DOMAINS == ("in-domain", "near-domain", "out-domain")
    near = data.load("near-domain")
    assert near.domain == "near-domain" and list(near.image_ids) == [21, 22]  # 23 has no caption
    assert near.captions == ["a jellyfish in blue water", "jellyfish", "a sea creature", "a lynx in the snow"]
    assert list(near.caption_image) == [0, 0, 0, 1] and list(near.caption_ids) == [1003, 1004, 1005, 1006]
    assert near.images[1].shape == (20 + 22 % 7, 24, 3) and near.images[1].dtype == np.uint8
    assert data.load("in-domain").captions[0] == "A red bus on the street."
    assert data.describe()["images"] == {"in-domain": 2, "near-domain": 2, "out-domain": 2}
    assert data.train_split() is None and data.training_data() is None and data.vocabulary() is None
    short = create_dataset("nocaps", root=str(tmp_path), max_captions=1, limit=1)
    assert short.load("near-domain").captions == ["a jellyfish in blue water"]
    with pytest.raises(ValueError, match="no domain"):
        data.load("plain")


def test_the_training_split_is_borrowed_from_another_dataset(tmp_path: Path) -> None:
    data = create_dataset("nocaps", root=str(write_nocaps(tmp_path)),
                          train={"name": "embedded_world", "options": {"size": 5, "train_size": 12}})
    split = data.train_split()
    assert len(split.images) == 12 and split.captions and data.vocabulary()
    assert data.recipe()["train"]["train_size"] == 12
    with pytest.raises(ValueError, match="Unknown dataset"):
        create_dataset("nocaps", root=str(tmp_path), train={"name": "cocoo"})
    with pytest.raises(ValueError, match="train must be"):
        create_dataset("nocaps", root=str(tmp_path), train="coco")


@pytest.mark.parametrize("image, annotation, match", [
    ({"file_name": "../escape.png"}, None, "inside the image folder"),
    ({"file_name": "/abs/path.png"}, None, "inside the image folder"),
    ({"domain": "far-domain"}, None, "must be one of"),
    ({"id": "11"}, None, "field 'id' must be a int"),
    (None, {"image_id": 99, "caption": "x"}, "not an image of the file"),
    (None, {"image_id": 11, "caption": 5}, "field 'caption' must be a str"),
])
def test_a_malformed_annotation_file_names_file_field_and_value(tmp_path: Path, image: dict | None,
                                                                annotation: dict | None, match: str) -> None:
    write_nocaps(tmp_path)
    path = tmp_path / "nocaps_val_4500_captions.json"
    doc = json.loads(path.read_text())
    if image:
        doc["images"][0].update(image)
    if annotation:
        doc["annotations"].append(annotation)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataMissingError, match=match) as err:
        create_dataset("nocaps", root=str(tmp_path))
    assert str(path) in str(err.value)


def test_missing_root_file_images_and_test_split_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAFS_BENCH_NOCAPS_ROOT", raising=False)
    with pytest.raises(DataMissingError, match="MAFS_BENCH_NOCAPS_ROOT"):
        create_dataset("nocaps")
    with pytest.raises(DataMissingError, match="annotation file not found"):
        create_dataset("nocaps", root=str(tmp_path))
    write_nocaps(tmp_path)
    monkeypatch.setenv("MAFS_BENCH_NOCAPS_ROOT", str(tmp_path))
    data = create_dataset("nocaps")
    (tmp_path / "images" / "out_b.png").unlink()
    with pytest.raises(DataMissingError, match="missing"):
        data.load("out-domain")
    doc = json.loads((tmp_path / "nocaps_val_4500_captions.json").read_text())
    del doc["annotations"]  # the test split's image info has no captions
    (tmp_path / "nocaps_val_4500_captions.json").write_text(json.dumps(doc))
    with pytest.raises(DataMissingError, match="'annotations'"):
        create_dataset("nocaps")
    with pytest.raises(ValueError, match="limit"):
        create_dataset("nocaps", root=str(tmp_path), limit=0)


@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java (pycocoevalcap)")
def test_captioning_on_nocaps_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A suite on the fixture: the embedded backend and the caption decoders train on a borrowed
    (tiny) world split; captioning runs on in-domain with an image and a text corruption and on
    the two other domains. Text cells are skipped, and run.json says why."""
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))
    root = write_nocaps(tmp_path / "nocaps")
    suite = {
        "name": "nocaps-tiny", "seed": 0, "seeds": [0],
        "dataset": {"name": "nocaps", "domain": "in-domain", "shifted_domains": ["near-domain", "out-domain"],
                    "options": {"root": str(root), "train": {"name": "embedded_world",
                                                             "options": {"size": 5, "train_size": 120}}}},
        "backend": {"name": "embedded", "options": {"encoder_train": {"steps": 3, "batch_size": 16}}},
        "models": ["clip", "mafs", "prior"],
        "tasks": [{"name": "captioning", "beam": 2, "pool": 60, "bank": 10, "train": {"steps": 3, "batch_size": 8},
                   "decoder": {"width": 32, "heads": 2}}],
        "corruptions": ["gaussian_noise", "keyboard"], "severities": [3],
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    cells = set(map(tuple, metrics[["domain", "corruption"]].drop_duplicates().to_numpy()))
    assert cells == {("in-domain", "none"), ("in-domain", "gaussian_noise"), ("near-domain", "none"),
                     ("out-domain", "none")}  # no keyboard cell: captioning reads no text
    assert set(metrics.model) == {"clip", "mafs", "prior"} and set(metrics.task) == {"captioning"}
    assert set(metrics.metric) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}
    run = json.loads((out / "run.json").read_text())
    assert "references stay clean" in run["skipped_cells"]["captioning"]["text"]
    assert run["primary_metric"]["captioning"] == "CIDEr"
    assert run["items"]["captioning"] == {"CIDEr": ["CIDEr"], "ROUGE_L": ["ROUGE_L"]}
    assert sorted(run["training"]["captioning"]["trained"]) == ["clip/0", "mafs/0"]
    prior = run["training"]["captioning"]["prior_caption"]
    assert isinstance(prior, str) and prior
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board.model) == {"clip", "mafs", "prior"} and (board.metric == "CIDEr").all()
    assert board[["domain:near-domain", "domain:out-domain"]].notna().all().all()
