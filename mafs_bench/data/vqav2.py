"""VQAv2 (Goyal et al., CVPR 2017): questions and annotations JSON over COCO 2014 images.

Files, as the VQA site distributes them (https://visualqa.org/download.html), in one folder
(option ``root``, or ``MAFS_BENCH_VQAV2_ROOT``):

* ``v2_OpenEnded_mscoco_<split>2014_questions.json``: ``{"questions": [{"image_id",
  "question", "question_id"}, ...]}``;
* ``v2_mscoco_<split>2014_annotations.json``: ``{"annotations": [{"question_id", "image_id",
  "question_type", "answer_type", "multiple_choice_answer", "answers": [{"answer", ...} x 10]},
  ...]}``;
* the COCO images ``<split>2014/COCO_<split>2014_<image_id:012d>.jpg`` (option ``images`` for
  another folder).

``split`` is ``val`` (the usual evaluation split: test-dev/test answers are not public) or
``train``; the ``embedded`` backend trains on ``train_split`` (default ``train``). Each question
keeps its 10 reference answers (the metric's leave-one-annotator-out accuracy) and its
``question_type`` (VQAv2's 65 question-prefix types, reported as ``accuracy_<type>``). VQAv2 has
no captions: it serves the ``vqa`` task only. ``limit`` keeps the questions of the first
``limit`` images (in question-file order), so a CPU can evaluate a subset.

Nothing is downloaded; a missing file stops the run at once naming the path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import DATASETS, DataMissingError, Dataset, ImageTextData
from .coco import LazyImages
from .folder import words

VQAV2_HELP = ("Provide VQAv2 in one folder: v2_OpenEnded_mscoco_<split>2014_questions.json, "
              "v2_mscoco_<split>2014_annotations.json (https://visualqa.org/download.html) and the COCO 2014 "
              "images in <split>2014/. Set the suite's dataset.options.root to it, or export MAFS_BENCH_VQAV2_ROOT.")


@dataclass
class VQAv2Split:
    """One split's questions, before any image is opened."""

    image_paths: list[Path]
    questions: list[str]
    answers: list[list[str]]
    question_image: np.ndarray
    question_types: list[str]
    question_ids: np.ndarray


def _read_json(path: Path, key: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataMissingError(f"VQAv2: file not found: {path}. {VQAV2_HELP}")
    try:
        items = json.loads(path.read_text())[key]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataMissingError(f"{path}: not a VQAv2 file (expected a top-level {key!r} list): {err}") from None
    if not isinstance(items, list):
        raise DataMissingError(f"{path}: field {key} must be a list, got {type(items).__name__}")
    return items


def read_vqav2_split(root: Path, split: str, images: Path | None, limit: int | None) -> VQAv2Split:
    """Questions of ``split`` joined with their annotations, grouped by image (first-seen order).

    Raises:
        DataMissingError: a file is missing or malformed, a question has no annotation, or a
            record lacks a field (the message names file, field and question id).
    """
    q_file = root / f"v2_OpenEnded_mscoco_{split}2014_questions.json"
    a_file = root / f"v2_mscoco_{split}2014_annotations.json"
    questions = _read_json(q_file, "questions")
    notes: dict[int, dict[str, Any]] = {}
    for note in _read_json(a_file, "annotations"):
        if not isinstance(note, dict) or "question_id" not in note:
            raise DataMissingError(f"{a_file}: an annotation without question_id: {str(note)[:200]}")
        notes[note["question_id"]] = note
    image_dir = images or root / f"{split}2014"
    order: dict[int, int] = {}
    texts, refs, owner, types, ids = [], [], [], [], []
    for q in questions:
        for key in ("image_id", "question", "question_id"):
            if not isinstance(q, dict) or key not in q:
                raise DataMissingError(f"{q_file}: a question record lacks field {key}: {str(q)[:200]}")
        note = notes.get(q["question_id"])
        if note is None:
            raise DataMissingError(f"{a_file}: no annotation for question_id {q['question_id']} of {q_file}")
        answers = [a.get("answer") for a in note.get("answers", []) if isinstance(a, dict)]
        if not answers or not all(isinstance(a, str) for a in answers):
            raise DataMissingError(f"{a_file}: question_id {q['question_id']}: field answers must hold "
                                   f"{{answer: string}} records, got {str(note.get('answers'))[:200]}")
        image_id = int(q["image_id"])
        if image_id not in order:
            if limit is not None and len(order) >= limit:
                continue
            order[image_id] = len(order)
        texts.append(str(q["question"]))
        refs.append(answers)
        owner.append(order[image_id])
        types.append(str(note.get("question_type") or "all"))
        ids.append(int(q["question_id"]))
    if not texts:
        raise DataMissingError(f"{q_file}: no questions")
    paths = [image_dir / f"COCO_{split}2014_{image_id:012d}.jpg" for image_id in order]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataMissingError(f"VQAv2: {len(missing)} of {len(paths)} {split} images are missing, e.g. {missing[0]}. "
                               f"{VQAV2_HELP}")
    return VQAv2Split(paths, texts, refs, np.asarray(owner, np.int64), types, np.asarray(ids, np.int64))


@DATASETS.register("vqav2")
class VQAv2(Dataset):
    """VQAv2 questions and annotations over COCO images (module docstring).

    Args:
        root: the folder with the JSON files (default ``MAFS_BENCH_VQAV2_ROOT``).
        split: the evaluation split (``val``).
        train_split: the split the ``embedded`` backend trains on (``train``); None: none.
        images: the evaluation split's image folder (default ``root/<split>2014``).
        train_images: the training split's image folder (default ``root/<train_split>2014``).
        limit / train_limit: keep the questions of the first so many images of each split.
    """

    domains = ("coco",)

    def __init__(self, root: str | None = None, split: str = "val", train_split: str | None = "train",
                 images: str | None = None, train_images: str | None = None, limit: int | None = None,
                 train_limit: int | None = None) -> None:
        root = root or os.environ.get("MAFS_BENCH_VQAV2_ROOT")
        if not root:
            raise DataMissingError(f"dataset vqav2: no data folder given (dataset.options.root is empty and "
                                   f"MAFS_BENCH_VQAV2_ROOT is not set). {VQAV2_HELP}")
        for name, value in (("limit", limit), ("train_limit", train_limit)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"dataset.options.{name} must be a positive integer, got {value!r}")
        self.root = Path(root).expanduser()
        self.split, self.train_split_name = split, train_split
        self.images = Path(images).expanduser() if images else None
        self.train_images = Path(train_images).expanduser() if train_images else None
        self.limit, self.train_limit = limit, train_limit
        self.eval = read_vqav2_split(self.root, split, self.images, limit)
        self._train: VQAv2Split | None = None

    def _split_data(self, data: VQAv2Split, name: str) -> ImageTextData:
        return ImageTextData(name, "coco", LazyImages(data.image_paths), [], np.zeros(0, np.int64),
                             questions=data.questions, answers=data.answers, question_image=data.question_image,
                             question_types=data.question_types, question_ids=data.question_ids)

    def load(self, domain: str) -> ImageTextData:
        if domain != "coco":
            raise ValueError(f"vqav2 has one domain, 'coco', got {domain!r}")
        return self._split_data(self.eval, f"vqav2-{self.split}")

    def _training(self) -> VQAv2Split | None:
        if self.train_split_name is None:
            return None
        if self._train is None:
            self._train = read_vqav2_split(self.root, self.train_split_name, self.train_images, self.train_limit)
        return self._train

    def train_split(self) -> ImageTextData | None:
        train = self._training()
        return None if train is None else self._split_data(train, f"vqav2-{self.train_split_name}")

    def vocabulary(self) -> list[str] | None:
        """Every word of the training questions and answers (None without a training split)."""
        train = self._training()
        if train is None:
            return None
        return words([*train.questions, *(a for refs in train.answers for a in refs)])

    def recipe(self) -> dict[str, Any]:
        """The training files' sizes and modification times, the limit and this loader's source hash."""
        digest = hashlib.sha256(Path(__file__).read_bytes())
        split = self.train_split_name or ""
        for name in (f"v2_OpenEnded_mscoco_{split}2014_questions.json", f"v2_mscoco_{split}2014_annotations.json"):
            path = self.root / name
            if path.is_file():
                stat = path.stat()
                digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        return {"vqav2": digest.hexdigest()[:16], "train_split": split, "train_limit": self.train_limit}

    def describe(self) -> dict[str, Any]:
        return {"root": str(self.root), "split": self.split, "train_split": self.train_split_name, "limit": self.limit,
                "images": len(self.eval.image_paths), "questions": len(self.eval.questions)}
