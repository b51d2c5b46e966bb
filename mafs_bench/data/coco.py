"""Real image-text data: COCO (and Flickr30k) in Andrej Karpathy's split file format.

The split file (``dataset_coco.json`` / ``dataset_flickr30k.json``) lists every image with its
``split`` ("train", "restval", "val", "test"), ``filepath``/``filename`` and ``sentences``
(``raw`` captions). The COCO 5k test split is the standard retrieval benchmark (ALBEF, BLIP).
Nothing is downloaded: point the suite's ``dataset.root`` (or ``MAFS_BENCH_COCO_ROOT``) at a
folder holding the split file and the images; a missing piece stops the run at once with a
message naming the path and how to provide it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .base import DATASETS, DataMissingError, Dataset, ImageTextData

COCO_HELP = (
    "Provide COCO in Karpathy's format: a folder with the split file dataset_coco.json "
    "(from Karpathy's 'caption_datasets' archive) and the COCO 2014 images under the "
    "split file's filepath folders (val2014/, train2014/). Set the suite's dataset.options.root to it, "
    "or export {env}=/path/to/coco."
)


class LazyImages(Sequence):
    """Images read from disk on access, as uint8 HxWx3 RGB arrays."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        with Image.open(self.paths[index]) as im:
            return np.asarray(im.convert("RGB"))


def load_karpathy_split(split_file: Path, image_root: Path, split: str, max_captions: int | None,
                        limit: int | None = None) -> tuple[list[Path], list[str], np.ndarray]:
    """Image paths, captions and caption->image index for one split of a Karpathy split file."""
    try:
        records = json.loads(split_file.read_text())["images"]
    except (json.JSONDecodeError, KeyError) as err:
        raise DataMissingError(f"{split_file}: not a Karpathy split file (expected a top-level 'images' list): {err}") from err
    paths: list[Path] = []
    captions: list[str] = []
    owner: list[int] = []
    for rec in records:
        if rec.get("split") != split:
            continue
        path = image_root / rec.get("filepath", "") / rec["filename"]
        sentences = [s["raw"].strip() for s in rec.get("sentences", [])]
        if max_captions is not None:
            sentences = sentences[:max_captions]
        if not sentences:
            continue
        for s in sentences:
            captions.append(s)
            owner.append(len(paths))
        paths.append(path)
        if limit is not None and len(paths) >= limit:
            break
    if not paths:
        raise DataMissingError(f"{split_file}: no images with split {split!r}")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataMissingError(
            f"{len(missing)} of {len(paths)} {split} images are missing, e.g. {missing[0]}. "
            f"The split file's filepath/filename entries are read relative to {image_root}."
        )
    return paths, captions, np.asarray(owner, dtype=np.int64)


class KarpathyDataset(Dataset):
    """Base for datasets in Karpathy's split-file format."""

    env_var = ""
    split_file_name = ""
    dataset_name = ""

    def __init__(self, root: str | None = None, split: str = "test", max_captions: int | None = 5,
                 limit: int | None = None) -> None:
        root = root or os.environ.get(self.env_var)
        if not root:
            raise DataMissingError(
                f"dataset {self.dataset_name}: no data folder given (suite field dataset.options.root is empty and "
                f"{self.env_var} is not set). " + COCO_HELP.format(env=self.env_var)
            )
        self.root = Path(root).expanduser()
        self.split_file = self.root / self.split_file_name
        if not self.split_file.is_file():
            raise DataMissingError(
                f"dataset {self.dataset_name}: split file not found: {self.split_file}. " + COCO_HELP.format(env=self.env_var)
            )
        self.split, self.max_captions, self.limit = split, max_captions, limit
        self.domains = (self.dataset_name,)

    def load(self, domain: str) -> ImageTextData:
        paths, captions, owner = load_karpathy_split(self.split_file, self.root, self.split, self.max_captions, self.limit)
        return ImageTextData(f"{self.dataset_name}-{self.split}", domain, LazyImages(paths), captions, owner)

    def describe(self) -> dict[str, Any]:
        return {"root": str(self.root), "split": self.split, "max_captions": self.max_captions, "limit": self.limit}


@DATASETS.register("coco_karpathy")
class CocoKarpathy(KarpathyDataset):
    """COCO 2014 with Karpathy's splits (test: 5000 images, 5 captions each)."""

    env_var = "MAFS_BENCH_COCO_ROOT"
    split_file_name = "dataset_coco.json"
    dataset_name = "coco"


@DATASETS.register("flickr30k_karpathy")
class Flickr30kKarpathy(KarpathyDataset):
    """Flickr30k with Karpathy's splits (test: 1000 images, 5 captions each)."""

    env_var = "MAFS_BENCH_FLICKR30K_ROOT"
    split_file_name = "dataset_flickr30k.json"
    dataset_name = "flickr30k"
