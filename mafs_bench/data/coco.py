"""Real image-text data: COCO (and Flickr30k) in Andrej Karpathy's split file format.

The split file (``dataset_coco.json`` / ``dataset_flickr30k.json``) lists every image with its
``split`` field, ``filepath``/``filename`` and ``sentences`` (``raw`` captions). COCO's file has
the splits train (82,783 images), restval (30,504), val (5,000) and test (5,000); Flickr30k's
has train (29,000), val (1,000) and test (1,000) and no restval. The COCO 5k test split is the
standard retrieval benchmark (ALBEF, BLIP).

A suite's ``split`` names one of the file's splits, or one of :data:`SPLIT_SETS`: ``train`` is
train + restval, the 113,287-image training set of work that fine-tunes on Karpathy's COCO
splits (ALBEF, Li et al. 2021, Table 1: COCO 113K images / 567K captions; BLIP's
``coco_karpathy_train.json``; the neuraltalk2 / ImageCaptioning.pytorch preprocessing, which
relabels restval as train), and ``train_only`` is the file's train split alone.

Nothing is downloaded: point the suite's ``dataset.root`` (or ``MAFS_BENCH_COCO_ROOT``) at a
folder holding the split file and the images; a missing piece stops the run at once with a
message naming the path and how to provide it.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .base import DATASETS, DataMissingError, Dataset, ImageTextData

#: Suite split names that select several (or differently named) splits of the file, in file
#: order. Any other name selects the file's split of that name ("val", "test", "restval").
SPLIT_SETS: dict[str, tuple[str, ...]] = {
    "train": ("train", "restval"),  # the convention of Karpathy-split fine-tuning (module docstring)
    "train_only": ("train",),  # the file's own train split, without restval
}

COCO_HELP = (
    "Provide COCO in Karpathy's format: a folder with the split file dataset_coco.json "
    "(from Karpathy's 'caption_datasets' archive) and the COCO 2014 images under the "
    "split file's filepath folders (val2014/, train2014/). Set the suite's dataset.options.root to it, "
    "or export {env}=/path/to/coco."
)
FLICKR30K_HELP = (
    "Provide Flickr30k in Karpathy's format: a folder with the split file dataset_flickr30k.json "
    "(from Karpathy's 'caption_datasets' archive) and the Flickr30k images next to it (the file gives "
    "bare filenames). Set the suite's dataset.options.root to it, or export {env}=/path/to/flickr30k."
)


class UnknownSplitError(DataMissingError, ValueError):
    """The suite asks for a split the split file does not have (the message lists those it has)."""


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased) and crop the centre ``size`` x
    ``size`` square: the evaluation geometry of CLIP and BLIP, applied once before corruption."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


class LazyImages(Sequence):
    """Images read from disk on access, as uint8 HxWx3 RGB arrays (``size``: resized and centre
    cropped to ``size`` x ``size``, :func:`resize_center_crop`)."""

    def __init__(self, paths: Sequence[Path], size: int | None = None) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        with Image.open(self.paths[index]) as im:
            rgb = im.convert("RGB")
            # np.array: a writable copy (np.asarray of a PIL image is read-only)
            return np.array(rgb if self.size is None else resize_center_crop(rgb, self.size))

    def to_array(self, workers: int | None = None) -> np.ndarray:
        """Every image (all ``size`` x ``size``) as one (N, size, size, 3) uint8 array, decoded by
        ``workers`` threads (default: the CPU count; PIL decodes and resizes without the GIL)."""
        if self.size is None:
            raise ValueError("LazyImages.to_array needs a fixed size (images of different sizes do not stack)")
        out = np.empty((len(self), self.size, self.size, 3), dtype=np.uint8)

        def fill(i: int) -> None:
            out[i] = self[i]

        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            list(pool.map(fill, range(len(self))))
        return out


@dataclass
class KarpathySelection:
    """One suite split of a Karpathy split file, before any image is opened.

    Attributes:
        paths: N image paths, in file order.
        captions: M captions (stripped), each image's first ``max_captions``.
        caption_image: (M,) int64 index into ``paths`` of each caption's image.
        file_splits: the file's split names selected, with the images taken from each.
    """

    paths: list[Path]
    captions: list[str]
    caption_image: np.ndarray
    file_splits: dict[str, int]


def read_karpathy_records(split_file: Path) -> list[dict[str, Any]]:
    """The ``images`` records of a Karpathy split file.

    Raises:
        DataMissingError: the file is not JSON with a top-level ``images`` list.
    """
    try:
        records = json.loads(split_file.read_text())["images"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataMissingError(f"{split_file}: not a Karpathy split file (expected a top-level 'images' list): {err}") from err
    if not isinstance(records, list):
        raise DataMissingError(f"{split_file}: not a Karpathy split file (its 'images' is a {type(records).__name__}, not a list)")
    return records


def resolve_split(split: str, present: Sequence[str], split_file: Path) -> tuple[str, ...]:
    """The file's split names that the suite's ``split`` selects (those the file has).

    Args:
        split: the suite's ``dataset.options.split``.
        present: the values of the records' ``split`` field.
        split_file: for the error message.

    Raises:
        UnknownSplitError: nothing in ``present`` is selected; names the file, the field, the
            value and lists the split names the file has.
    """
    wanted = SPLIT_SETS.get(split, (split,))
    chosen = tuple(s for s in wanted if s in present)
    if not chosen:
        have = sorted(set(present))
        sets = ", ".join(f"{name!r} = {' + '.join(parts)}" for name, parts in SPLIT_SETS.items())
        raise UnknownSplitError(
            f"{split_file}: suite field dataset.options.split = {split!r} selects no images: the file's records "
            f"have 'split' values {have}. Use one of them, or {sets}."
        )
    return chosen


def select_karpathy_split(records: Sequence[dict[str, Any]], split_file: Path, image_root: Path, split: str,
                          max_captions: int | None, limit: int | None = None) -> KarpathySelection:
    """Images and captions of the suite split ``split`` (see :data:`SPLIT_SETS`), in file order.

    Images without captions are left out; ``limit`` keeps the first images in file order.

    Raises:
        UnknownSplitError: ``split`` selects none of the file's splits.
        DataMissingError: the selection holds no image with a caption, or a record lacks ``filename``.
    """
    chosen = set(resolve_split(split, [str(r.get("split")) for r in records], split_file))
    paths: list[Path] = []
    captions: list[str] = []
    owner: list[int] = []
    taken: Counter[str] = Counter()
    for rec in records:
        if rec.get("split") not in chosen:
            continue
        if "filename" not in rec:
            raise DataMissingError(f"{split_file}: a {rec.get('split')!r} record has no 'filename': {str(rec)[:200]}")
        sentences = [s["raw"].strip() for s in rec.get("sentences", [])]
        if max_captions is not None:
            sentences = sentences[:max_captions]
        if not sentences:
            continue
        for s in sentences:
            captions.append(s)
            owner.append(len(paths))
        paths.append(image_root / rec.get("filepath", "") / rec["filename"])
        taken[rec["split"]] += 1
        if limit is not None and len(paths) >= limit:
            break
    if not paths:
        raise DataMissingError(f"{split_file}: no images with captions in split {split!r} ({' + '.join(sorted(chosen))})")
    return KarpathySelection(paths, captions, np.asarray(owner, dtype=np.int64), dict(taken))


def load_karpathy_split(split_file: Path, image_root: Path, split: str, max_captions: int | None,
                        limit: int | None = None) -> tuple[list[Path], list[str], np.ndarray]:
    """Image paths, captions and (M,) int64 caption->image index of one split of a Karpathy file.

    ``split`` is as in :func:`select_karpathy_split` (``train`` = train + restval).

    Raises:
        UnknownSplitError, DataMissingError: as :func:`select_karpathy_split`; also when images
            are missing on disk.
    """
    selection = select_karpathy_split(read_karpathy_records(split_file), split_file, image_root, split, max_captions, limit)
    check_images_exist(selection.paths, split, image_root)
    return selection.paths, selection.captions, selection.caption_image


def check_images_exist(paths: Sequence[Path], split: str, image_root: Path) -> None:
    """Raise :class:`DataMissingError` naming the first of ``paths`` that is not a file."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataMissingError(
            f"{len(missing)} of {len(paths)} {split} images are missing, e.g. {missing[0]}. "
            f"The split file's filepath/filename entries are read relative to {image_root}."
        )


class KarpathyDataset(Dataset):
    """Base for datasets in Karpathy's split-file format.

    The split file is read on construction (so an unknown split stops the run in preflight).
    :meth:`training_data` gives the ``train_split`` (default ``train`` = train + restval) to
    backends that train fusion heads on it, in a fixed shuffled order (``train_order_seed``) so
    that a head-training pool of the first N images is a uniform sample of the split, not the
    file's first N.

    Args:
        root: folder with the split file and the images (default: the ``env_var`` variable).
        split: a split of the file ("val", "test", ...), ``train`` (= train + restval where the
            file has restval) or ``train_only`` (the file's train split alone); see :data:`SPLIT_SETS`.
        max_captions: captions kept per image (the first ones); None keeps all.
        limit: keep only the first ``limit`` images of the split, in file order.
        image_size: resize (shorter side) and centre-crop every image to this many pixels when it
            is read, before any corruption (:func:`resize_center_crop`); None keeps the files'
            sizes. Evaluation images then come as one array that the runner corrupts on the GPU.
        train_split: the split that heads train on (same names as ``split``); :meth:`training_data`
            refuses one that shares a file split with ``split`` (never train on what is evaluated).
        train_order_seed: seed of the training split's order.

    Raises:
        DataMissingError: no root, no split file, or not a split file.
        UnknownSplitError: ``split`` selects none of the file's splits.
    """

    env_var = ""
    split_file_name = ""
    dataset_name = ""
    help_text = COCO_HELP

    def __init__(self, root: str | None = None, split: str = "test", max_captions: int | None = 5,
                 limit: int | None = None, train_split: str = "train", train_order_seed: int = 0,
                 image_size: int | None = None) -> None:
        if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8):
            raise ValueError(f"dataset.options.image_size must be an integer >= 8 (pixels) or null, got {image_size!r}")
        self.image_size = image_size
        root = root or os.environ.get(self.env_var)
        if not root:
            raise DataMissingError(
                f"dataset {self.dataset_name}: no data folder given (suite field dataset.options.root is empty and "
                f"{self.env_var} is not set). " + self.help_text.format(env=self.env_var)
            )
        self.root = Path(root).expanduser()
        self.split_file = self.root / self.split_file_name
        if not self.split_file.is_file():
            raise DataMissingError(
                f"dataset {self.dataset_name}: split file not found: {self.split_file}. " + self.help_text.format(env=self.env_var)
            )
        self.split, self.max_captions, self.limit = split, max_captions, limit
        self.train_split, self.train_order_seed = train_split, int(train_order_seed)
        self.domains = (self.dataset_name,)
        self.selection = select_karpathy_split(read_karpathy_records(self.split_file), self.split_file, self.root,
                                               split, max_captions, limit)

    def training_data(self) -> tuple[LazyImages, list[list[str]], None]:
        """The ``train_split`` images (read lazily) and their caption lists, shuffled by
        ``train_order_seed``; no vocabulary (real captions are open-vocabulary).

        Raises:
            ValueError: ``train_split`` shares images with the evaluated ``split``.
            UnknownSplitError: the file has no such split; DataMissingError: images missing.
        """
        shared = set(self.selection.file_splits) & set(SPLIT_SETS.get(self.train_split, (self.train_split,)))
        if shared:
            raise ValueError(f"dataset.options.split = {self.split!r} and train_split = {self.train_split!r} share the "
                             f"file's {sorted(shared)} images: fusion heads would train on what is evaluated")
        sel = select_karpathy_split(read_karpathy_records(self.split_file), self.split_file, self.root,
                                    self.train_split, self.max_captions)
        order = np.random.default_rng([self.train_order_seed, 0x4B415250]).permutation(len(sel.paths))
        paths = [sel.paths[i] for i in order]
        check_images_exist(paths, self.train_split, self.root)
        by_image: list[list[str]] = [[] for _ in sel.paths]
        for caption, owner in zip(sel.captions, sel.caption_image.tolist()):
            by_image[owner].append(caption)
        return LazyImages(paths, self.image_size), [by_image[i] for i in order], None

    def recipe(self) -> dict[str, Any]:
        """What determines :meth:`training_data`: the split file's SHA-256 digest, the split,
        caption count and order seed (the image files are identified by the split file's names,
        not hashed: 113k JPEGs would take minutes)."""
        from ..models.cache import file_digest

        return {"dataset": self.dataset_name, "split_file": file_digest(self.split_file), "train_split": self.train_split,
                "max_captions": self.max_captions, "train_order_seed": self.train_order_seed, "image_size": self.image_size}

    def load(self, domain: str) -> ImageTextData:
        """The evaluation split: lazily read images of their own sizes, or, with ``image_size``,
        one (N, S, S, 3) uint8 array (decoded in parallel), which the runner can corrupt on the
        GPU (``corruptions.torch_ops``)."""
        sel = self.selection
        check_images_exist(sel.paths, self.split, self.root)
        images = LazyImages(sel.paths, self.image_size)
        return ImageTextData(f"{self.dataset_name}-{self.split}", domain,
                             images.to_array() if self.image_size else images, sel.captions, sel.caption_image)

    def describe(self) -> dict[str, Any]:
        """Root, options, and what was selected: ``file_splits`` (images per split of the file),
        ``images`` and ``captions``."""
        return {"root": str(self.root), "split": self.split, "max_captions": self.max_captions, "limit": self.limit,
                "train_split": self.train_split, "image_size": self.image_size,
                "file_splits": dict(self.selection.file_splits), "images": len(self.selection.paths),
                "captions": len(self.selection.captions)}


@DATASETS.register("coco_karpathy")
class CocoKarpathy(KarpathyDataset):
    """COCO 2014 with Karpathy's splits (test: 5000 images, 5 captions each; train: 113,287 images)."""

    env_var = "MAFS_BENCH_COCO_ROOT"
    split_file_name = "dataset_coco.json"
    dataset_name = "coco"


@DATASETS.register("flickr30k_karpathy")
class Flickr30kKarpathy(KarpathyDataset):
    """Flickr30k with Karpathy's splits (test: 1000 images, 5 captions each; train: 29,000 images)."""

    env_var = "MAFS_BENCH_FLICKR30K_ROOT"
    split_file_name = "dataset_flickr30k.json"
    dataset_name = "flickr30k"
    help_text = FLICKR30K_HELP
