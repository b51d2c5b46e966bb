"""nocaps (Agrawal et al., ICCV 2019, "nocaps: novel object captioning at scale"): captioning under domain shift.

The nocaps validation set has 4500 Open Images images with 10 captions each, split by how far
their objects are from COCO's: 648 ``in-domain`` (only COCO classes), 2938 ``near-domain``
(COCO and novel classes) and 914 ``out-domain`` (only novel classes) images (nocaps.org,
"Download"). Its annotation file (``nocaps_val_4500_captions.json``) is in the COCO captions
format:

* ``images``: ``{"id": int, "file_name": str, "domain": "in-domain" | "near-domain" | "out-domain", ...}``
* ``annotations``: ``{"id": int, "image_id": int, "caption": str}``

Here the three domains are the dataset's domains (``in-domain`` first), so a suite evaluates
captioning on ``in-domain`` (with its corruptions) and on the other two as shifted domains::

    dataset:
      name: nocaps
      domain: in-domain
      shifted_domains: [near-domain, out-domain]
      options: {root: /data/nocaps, train: {name: coco_karpathy, options: {root: /data/coco, split: train}}}

nocaps has no training split: its protocol trains on COCO captions. Option ``train`` names a
registered dataset (and its options) whose training split trains the models (the ``embedded``
backend's encoder and heads, the caption decoders); without it, only pretrained models run.

Nothing is downloaded: point ``root`` (or ``MAFS_BENCH_NOCAPS_ROOT``) at a folder with the
annotation file and the images (by ``file_name``, under ``image_dir``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .base import DATASETS, DataMissingError, Dataset, ImageTextData
from .coco import LazyImages, check_images_exist

NOCAPS_DOMAINS: tuple[str, ...] = ("in-domain", "near-domain", "out-domain")
NOCAPS_HELP = (
    "Provide nocaps: a folder with the annotation file nocaps_val_4500_captions.json (nocaps.org, "
    "'Download') and its images (Open Images validation images, by file_name) in the folder's "
    "images/ subfolder. Set the suite's dataset.options.root to it, or export MAFS_BENCH_NOCAPS_ROOT=/path/to/nocaps."
)


def read_nocaps(path: Path) -> tuple[list[dict[str, Any]], dict[int, list[tuple[int, str]]]]:
    """The images and, per image id, its ``(annotation id, caption)`` pairs of a nocaps annotation file.

    Raises:
        DataMissingError: not JSON, a missing or malformed field (the message names the file, the
            field and the value), an unknown domain, a duplicate image id, a ``file_name`` that is
            absolute or leaves the image folder, or a caption of an image the file does not list.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataMissingError(f"{path}: not a readable nocaps annotation file ({type(err).__name__}: {err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataMissingError(f"{path}: a nocaps annotation file needs a list field 'images'")
    annotations = doc.get("annotations")
    if not isinstance(annotations, list):
        raise DataMissingError(f"{path}: field 'annotations' is missing or not a list (the nocaps test split has no "
                               f"public captions; use the validation file)")
    images: list[dict[str, Any]] = []
    seen: set[int] = set()
    for k, rec in enumerate(doc["images"]):
        where = f"{path}: images[{k}]"
        if not isinstance(rec, dict):
            raise DataMissingError(f"{where} is not an object: {str(rec)[:100]}")
        for name, kind in (("id", int), ("file_name", str), ("domain", str)):
            if not isinstance(rec.get(name), kind) or isinstance(rec.get(name), bool):
                raise DataMissingError(f"{where}: field '{name}' must be a {kind.__name__}, got {rec.get(name)!r}")
        if rec["domain"] not in NOCAPS_DOMAINS:
            raise DataMissingError(f"{where}: field 'domain' must be one of {list(NOCAPS_DOMAINS)}, got {rec['domain']!r}")
        name = PurePosixPath(rec["file_name"].replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or not name.parts:
            raise DataMissingError(f"{where}: field 'file_name' must be a path inside the image folder, got {rec['file_name']!r}")
        if rec["id"] in seen:
            raise DataMissingError(f"{where}: image id {rec['id']} is listed twice")
        seen.add(rec["id"])
        images.append(rec)
    captions: dict[int, list[tuple[int, str]]] = {}
    for k, ann in enumerate(annotations):
        where = f"{path}: annotations[{k}]"
        if not isinstance(ann, dict):
            raise DataMissingError(f"{where} is not an object: {str(ann)[:100]}")
        for name, kind in (("image_id", int), ("caption", str)):
            if not isinstance(ann.get(name), kind) or isinstance(ann.get(name), bool):
                raise DataMissingError(f"{where}: field '{name}' must be a {kind.__name__}, got {ann.get(name)!r}")
        if ann["image_id"] not in seen:
            raise DataMissingError(f"{where}: field 'image_id' {ann['image_id']} is not an image of the file")
        ann_id = ann.get("id", k)
        if not isinstance(ann_id, int) or isinstance(ann_id, bool):
            raise DataMissingError(f"{where}: field 'id' must be an int, got {ann_id!r}")
        captions.setdefault(ann["image_id"], []).append((ann_id, ann["caption"].strip()))
    return images, captions


@DATASETS.register("nocaps")
class NoCaps(Dataset):
    """nocaps in its three domains (module docstring).

    Args:
        root: folder with the annotation file and the images (default: ``MAFS_BENCH_NOCAPS_ROOT``).
        annotations: the annotation file, relative to ``root``.
        image_dir: the images' folder, relative to ``root`` (``file_name`` is read inside it).
        max_captions: captions kept per image (the first ones); None keeps all (10 in nocaps).
        limit: keep only the first ``limit`` captioned images of each domain, in file order.
        train: ``{name, options}`` of a registered dataset whose training split trains the
            models (nocaps has none); None: no training split.

    Raises:
        DataMissingError: no root, no annotation file, or a malformed one (see :func:`read_nocaps`).
        ValueError: a bad ``max_captions``, ``limit`` or ``train``.
    """

    domains = NOCAPS_DOMAINS

    def __init__(self, root: str | None = None, annotations: str = "nocaps_val_4500_captions.json",
                 image_dir: str = "images", max_captions: int | None = None, limit: int | None = None,
                 train: dict[str, Any] | None = None) -> None:
        root = root or os.environ.get("MAFS_BENCH_NOCAPS_ROOT")
        if not root:
            raise DataMissingError("dataset nocaps: no data folder given (suite field dataset.options.root is empty and "
                                   "MAFS_BENCH_NOCAPS_ROOT is not set). " + NOCAPS_HELP)
        for name, value in (("max_captions", max_captions), ("limit", limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"dataset.options.{name} must be a positive integer or null, got {value!r}")
        self.root = Path(root).expanduser()
        self.annotation_file = self.root / annotations
        if not self.annotation_file.is_file():
            raise DataMissingError(f"dataset nocaps: annotation file not found: {self.annotation_file}. " + NOCAPS_HELP)
        self.image_root = self.root / image_dir
        self.max_captions, self.limit = max_captions, limit
        images, captions = read_nocaps(self.annotation_file)
        self._by_domain: dict[str, list[tuple[dict[str, Any], list[tuple[int, str]]]]] = {d: [] for d in NOCAPS_DOMAINS}
        for rec in images:
            caps = captions.get(rec["id"], [])[:max_captions]
            chosen = self._by_domain[rec["domain"]]
            if caps and (limit is None or len(chosen) < limit):
                chosen.append((rec, caps))
        if not any(self._by_domain.values()):
            raise DataMissingError(f"{self.annotation_file}: no image has a caption")
        self.train = _train_dataset(train)

    def load(self, domain: str) -> ImageTextData:
        """The captioned images of one domain (lazy: files are read on access).

        Raises:
            ValueError: an unknown domain. DataMissingError: the domain has no captioned image,
                or image files are missing.
        """
        if domain not in NOCAPS_DOMAINS:
            raise ValueError(f"nocaps has no domain {domain!r}; known: {', '.join(NOCAPS_DOMAINS)}")
        items = self._by_domain[domain]
        if not items:
            raise DataMissingError(f"{self.annotation_file}: no captioned {domain} image")
        paths = [self.image_root / rec["file_name"] for rec, _ in items]
        check_images_exist(paths, domain, self.image_root)
        captions = [c for _, caps in items for _, c in caps]
        owner = np.repeat(np.arange(len(items), dtype=np.int64), [len(caps) for _, caps in items])
        return ImageTextData("nocaps", domain, LazyImages(paths), captions, owner,
                             image_ids=np.array([rec["id"] for rec, _ in items], dtype=np.int64),
                             caption_ids=np.array([i for _, caps in items for i, _ in caps], dtype=np.int64))

    def train_split(self) -> ImageTextData | None:
        """The ``train`` dataset's training split, or None."""
        return None if self.train is None else self.train.train_split()

    def training_data(self) -> tuple[Any, list[list[str]], list[str]] | None:
        """The ``train`` dataset's training data, or None."""
        return None if self.train is None else self.train.training_data()

    def vocabulary(self) -> list[str] | None:
        return None if self.train is None else self.train.vocabulary()

    def recipe(self) -> dict[str, Any]:
        return {} if self.train is None else {"train": self.train.recipe()}

    def describe(self) -> dict[str, Any]:
        """Root, annotation file, options and captioned images per domain."""
        return {"root": str(self.root), "annotations": str(self.annotation_file), "max_captions": self.max_captions,
                "limit": self.limit, "images": {d: len(v) for d, v in self._by_domain.items()},
                "train": None if self.train is None else type(self.train).__name__}


def _train_dataset(spec: dict[str, Any] | None) -> Dataset | None:
    """The registered dataset of a ``train`` option ``{name, options}``."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or "name" not in spec or set(spec) - {"name", "options"}:
        raise ValueError(f"dataset.options.train must be {{name: <dataset>, options: {{...}}}}, got {spec!r}")
    if spec["name"] not in DATASETS:
        raise ValueError(f"dataset.options.train: {DATASETS.unknown_message(spec['name'])}")
    return DATASETS.get(spec["name"])(**(spec.get("options") or {}))
