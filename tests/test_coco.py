"""Karpathy split files: which images each suite split selects (train = train + restval)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mafs_bench.data import DataMissingError, create_dataset
from mafs_bench.data.coco import UnknownSplitError, load_karpathy_split

#: images per split of the tiny COCO file, interleaved in the file as in the real one
COCO_SPLITS = {"train": 4, "restval": 3, "val": 2, "test": 2}
FLICKR_SPLITS = {"train": 3, "val": 1, "test": 2}


def _karpathy(root: Path, file_name: str, counts: dict[str, int], folders: bool) -> None:
    """A Karpathy-format split file with tiny PNGs; captions say "<split> <image> <caption>"."""
    order = [s for i in range(max(counts.values())) for s in counts if i < counts[s]]
    seen = dict.fromkeys(counts, 0)
    images = []
    for n, split in enumerate(order):
        folder = ("train2014" if split == "train" else "val2014") if folders else ""
        (root / folder).mkdir(parents=True, exist_ok=True)
        name = f"im{n}.png"
        Image.fromarray(np.full((6, 8, 3), 10 * n, dtype=np.uint8)).save(root / folder / name)
        rec = {"split": split, "filename": name, "imgid": n,
               "sentences": [{"raw": f" {split} {seen[split]} {j} "} for j in range(6)]}
        if folders:
            rec["filepath"] = folder
        images.append(rec)
        seen[split] += 1
    (root / file_name).write_text(json.dumps({"images": images, "dataset": file_name}))


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    _karpathy(tmp_path, "dataset_coco.json", COCO_SPLITS, folders=True)
    return tmp_path


@pytest.fixture
def flickr(tmp_path: Path) -> Path:
    _karpathy(tmp_path, "dataset_flickr30k.json", FLICKR_SPLITS, folders=False)
    return tmp_path


@pytest.mark.parametrize("split, images, file_splits", [
    ("train", 7, {"train": 4, "restval": 3}),  # the convention: train + restval
    ("train_only", 4, {"train": 4}),
    ("restval", 3, {"restval": 3}),
    ("val", 2, {"val": 2}),
    ("test", 2, {"test": 2}),
])
def test_coco_split_counts(coco: Path, split: str, images: int, file_splits: dict[str, int]) -> None:
    dataset = create_dataset("coco_karpathy", root=str(coco), split=split)
    data = dataset.load("coco")
    assert len(data.images) == images and len(data.captions) == 5 * images
    assert data.name == f"coco-{split}"
    assert {c.split()[0] for c in data.captions} == set(file_splits)
    assert dataset.describe() == {"root": str(coco), "split": split, "max_captions": 5, "limit": None,
                                  "train_split": "train", "image_size": None, "file_splits": file_splits, "images": images,
                                  "captions": 5 * images}
    assert data.images[0].shape == (6, 8, 3) and data.images[0].dtype == np.uint8


def test_coco_train_keeps_file_order_and_caption_owners(coco: Path) -> None:
    paths, captions, owner = load_karpathy_split(coco / "dataset_coco.json", coco, "train", max_captions=2)
    assert [c.split()[0] for c in captions[::2]] == ["train", "restval"] * 3 + ["train"]  # interleaved as in the file
    assert owner.dtype == np.int64 and owner.tolist() == [i for i in range(7) for _ in range(2)]
    assert captions[0] == "train 0 0" and paths[0] == coco / "train2014" / "im0.png"
    assert paths[1].parent.name == "val2014"  # restval images live in val2014


def test_coco_limit_counts_in_file_order(coco: Path) -> None:
    dataset = create_dataset("coco_karpathy", root=str(coco), split="train", limit=3, max_captions=None)
    assert dataset.describe()["file_splits"] == {"train": 2, "restval": 1}
    assert len(dataset.load("coco").captions) == 18


@pytest.mark.parametrize("split, images", [("train", 3), ("train_only", 3), ("val", 1), ("test", 2)])
def test_flickr30k_without_restval(flickr: Path, split: str, images: int) -> None:
    dataset = create_dataset("flickr30k_karpathy", root=str(flickr), split=split)
    assert len(dataset.load("flickr30k").images) == images
    assert dataset.describe()["file_splits"] == {split.removesuffix("_only"): images}


@pytest.mark.parametrize("split", ["tset", "restval", "training"])
def test_unknown_split_names_file_field_value_and_the_files_splits(flickr: Path, split: str) -> None:
    with pytest.raises(UnknownSplitError) as err:
        create_dataset("flickr30k_karpathy", root=str(flickr), split=split)
    msg = str(err.value)
    assert str(flickr / "dataset_flickr30k.json") in msg
    assert f"dataset.options.split = {split!r}" in msg
    assert "['test', 'train', 'val']" in msg and "'train' = train + restval" in msg
    assert isinstance(err.value, DataMissingError)  # so preflight reports it with the other problems


def test_not_a_split_file_and_missing_filename(tmp_path: Path) -> None:
    (tmp_path / "dataset_coco.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DataMissingError, match="not a Karpathy split file"):
        create_dataset("coco_karpathy", root=str(tmp_path))
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [{"split": "test", "sentences": [{"raw": "a"}]}]}))
    with pytest.raises(DataMissingError, match="has no 'filename'"):
        create_dataset("coco_karpathy", root=str(tmp_path))


def test_flickr30k_help_names_its_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAFS_BENCH_FLICKR30K_ROOT", raising=False)
    with pytest.raises(DataMissingError) as err:
        create_dataset("flickr30k_karpathy", root=str(tmp_path))
    assert "dataset_flickr30k.json" in str(err.value) and "dataset_coco.json" not in str(err.value)
