"""The dataset contract: a registered loader gives image-text data for one domain and split.

Every dataset the runner evaluates is an :class:`ImageTextData`: a sequence of uint8 RGB images
(an array, or a lazy sequence reading files), and for the tasks it supports

* **captions** (retrieval, captioning): a flat list of captions and, for each, the index of its
  image (``caption_image``);
* **question-answer pairs** (VQA): a flat list of questions, for each its image
  (``question_image``), its reference answers (``answers``: a list per question; 10 for VQAv2,
  1 for synthetic data) and its question type (``question_types``; ``"all"`` when the data has
  none).

A dataset may have either or both; a task names what it needs (:meth:`ImageTextData.check_for`).
Stable ``image_ids`` / ``caption_ids`` / ``question_ids`` seed the per-sample corruptions, so a
sample's corruption does not depend on batch order or on which subset was evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..registry import Registry


class DataMissingError(RuntimeError):
    """A dataset's files are not where the suite says; the message says what and how to fix it."""


#: question type of a question whose data set gives none
DEFAULT_QUESTION_TYPE = "all"


def _ids(values: np.ndarray, n: int, what: str, name: str) -> np.ndarray:
    """``values`` as int64 ids, ``arange(n)`` when empty; ValueError naming ``what`` otherwise."""
    if len(values) == 0:
        return np.arange(n, dtype=np.int64)
    out = np.asarray(values, dtype=np.int64)
    if out.shape != (n,):
        raise ValueError(f"{name}: {what} must have {n} entries, got shape {out.shape}")
    return out


def _owners(values: Any, n_items: int, n_images: int, what: str, name: str) -> np.ndarray:
    """``values`` as (n_items,) int64 indices into ``n_images`` images, else ValueError."""
    out = np.asarray(values, dtype=np.int64).reshape(-1)
    if out.shape != (n_items,):
        raise ValueError(f"{name}: {n_items} {what.split('_')[0]}s but {len(out)} {what} entries")
    bad = (out < 0) | (out >= n_images)
    if bad.any():
        raise ValueError(f"{name}: {what} must index the {n_images} images, got {out[bad][:5].tolist()}")
    return out


@dataclass
class ImageTextData:
    """Images with their captions and/or question-answer pairs, of one domain and split.

    Attributes:
        name: dataset name for reports.
        domain: rendering/style domain ("plain", "textured", ... for the embedded world; the
            dataset's own name or a ``domain`` field for real data).
        images: N uint8 HxWx3 RGB images (an (N,H,W,3) array, or a lazy sequence).
        captions: M captions (may be empty: a VQA-only data set).
        caption_image: (M,) index of the image each caption describes.
        image_ids / caption_ids: stable ids used to seed corruptions (default ``arange``).
        questions: Q questions (may be empty: a caption-only data set).
        answers: Q lists of reference answers (each non-empty), as given by the data set
            (normalisation is the metric's job, :func:`mafs_bench.metrics.normalize_vqa_answer`).
        question_image: (Q,) index of the image each question is about.
        question_types: Q question types (e.g. "colour", "count"; VQAv2's ``question_type``);
            every question gets :data:`DEFAULT_QUESTION_TYPE` when the list is empty.
        question_ids: stable ids of the questions (seed question corruptions).

    Raises:
        ValueError: lengths that do not match, an owner index outside the images, a question
            without reference answers; the message names the field and the value.
    """

    name: str
    domain: str
    images: Sequence[np.ndarray] | np.ndarray
    captions: list[str]
    caption_image: np.ndarray
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    caption_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    questions: list[str] = field(default_factory=list)
    answers: list[list[str]] = field(default_factory=list)
    question_image: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    question_types: list[str] = field(default_factory=list)
    question_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = len(self.images)
        self.image_ids = _ids(self.image_ids, n, "image_ids", self.name)
        self.caption_ids = _ids(self.caption_ids, len(self.captions), "caption_ids", self.name)
        self.caption_image = _owners(self.caption_image, len(self.captions), n, "caption_image", self.name)
        q = len(self.questions)
        self.question_ids = _ids(self.question_ids, q, "question_ids", self.name)
        self.question_image = _owners(self.question_image, q, n, "question_image", self.name)
        if len(self.answers) != q:
            raise ValueError(f"{self.name}: {q} questions but {len(self.answers)} answer lists")
        self.answers = [[str(a) for a in refs] for refs in self.answers]
        empty = [i for i, refs in enumerate(self.answers) if not refs]
        if empty:
            raise ValueError(f"{self.name}: questions without reference answers (positions {empty[:5]})")
        if not self.question_types:
            self.question_types = [DEFAULT_QUESTION_TYPE] * q
        elif len(self.question_types) != q:
            raise ValueError(f"{self.name}: {q} questions but {len(self.question_types)} question_types")

    @property
    def has_captions(self) -> bool:
        """Whether there are captions (retrieval, captioning)."""
        return len(self.captions) > 0

    @property
    def has_qa(self) -> bool:
        """Whether there are question-answer pairs (VQA)."""
        return len(self.questions) > 0

    def check_for(self, needs: str) -> None:
        """Raise ValueError unless the data has what a task ``needs`` ("captions" or "qa")."""
        have = {"captions": self.has_captions, "qa": self.has_qa}
        if needs not in have:
            raise ValueError(f"unknown data requirement {needs!r}; expected one of {sorted(have)}")
        if len(self.images) == 0:
            raise ValueError(f"{self.name} ({self.domain}): no images")
        if not have[needs]:
            what = "captions" if needs == "captions" else "question-answer pairs"
            raise ValueError(f"{self.name} ({self.domain}): no {what}")


class Dataset:
    """Base class of registered datasets; ``options`` come from the suite's ``dataset`` block.

    A dataset gives evaluation data (:meth:`load`) and, when it has one, a training split
    (:meth:`train_split`) for backends that train their own models (``embedded``).
    """

    #: domains this dataset can render/load; the first is the in-domain one
    domains: tuple[str, ...] = ()

    #: whether :meth:`load_shifted` can render a shifted domain at a strength between 0 and 1
    continuous_shift: bool = False

    def load(self, domain: str) -> ImageTextData:
        """The evaluation data in ``domain``."""
        raise NotImplementedError

    def load_shifted(self, domain: str, strength: float, base: str) -> ImageTextData:
        """The evaluation data of ``domain`` at shift ``strength`` from ``base`` (the in-domain style).

        Strength 1 is ``domain`` itself, 0 is ``base``; a dataset that can interpolate between
        styles sets :attr:`continuous_shift` and overrides this.

        Raises:
            ValueError: ``strength`` is not 1 and the dataset cannot interpolate.
        """
        if strength == 1.0:
            return self.load(domain)
        raise ValueError(f"dataset {type(self).__name__} has no continuous shift strength; "
                         f"dataset.shifted_strengths must be [1.0], got strength {strength!r}")

    def train_split(self) -> ImageTextData | None:
        """The training split (in-domain; captions and/or questions), or None if there is none.

        Backends that train their own encoder and heads read it; a new dataset implements this
        (and :meth:`vocabulary`) and inherits :meth:`training_data`.
        """
        return None

    def training_data(self) -> tuple[Any, list[list[str]], list[str]] | None:
        """(images, caption lists per image, vocabulary) for the encoder's contrastive training,
        or None. Default: derived from :meth:`train_split`; an image without captions gets its
        question-answer pairs as texts ("question answer"), so a VQA-only data set still trains
        an encoder (and an image with neither is dropped)."""
        split = self.train_split()
        if split is None:
            return None
        texts: list[list[str]] = [[] for _ in range(len(split.images))]
        for caption, owner in zip(split.captions, split.caption_image.tolist()):
            texts[owner].append(caption)
        has_caption = np.zeros(len(split.images), dtype=bool)
        has_caption[split.caption_image] = True
        for question, refs, owner in zip(split.questions, split.answers, split.question_image.tolist()):
            if not has_caption[owner]:
                texts[owner].append(f"{question} {qa_answer(refs)}")
        keep = [i for i, t in enumerate(texts) if t]
        return subset(split.images, keep), [texts[i] for i in keep], self.vocabulary() or []

    def vocabulary(self) -> list[str] | None:
        """The closed vocabulary of a dataset with training data (for a word-level tokenizer), or None."""
        return None

    def recipe(self) -> dict[str, Any]:
        """What determines :meth:`train_split` (part of trained weights' cache keys)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Facts for the results record (sizes, paths, seeds)."""
        return {}


class Subset(Sequence):
    """Items ``indices`` of a sequence, read on access (a lazy image sequence stays lazy)."""

    def __init__(self, items: Sequence[Any], indices: Sequence[int]) -> None:
        self.items, self.indices = items, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            return Subset(self.items, self.indices[index])
        return self.items[self.indices[index]]


def subset(items: Sequence[Any] | np.ndarray, indices: Sequence[int] | slice) -> Sequence[Any] | np.ndarray:
    """Rows ``indices`` of an array (a copy), or a lazy :class:`Subset` of any other sequence."""
    if isinstance(items, np.ndarray):
        return items[indices]
    if isinstance(indices, slice):
        indices = range(*indices.indices(len(items)))
    return Subset(items, indices)


def qa_answer(references: Sequence[str]) -> str:
    """The most frequent of a question's reference answers (first in order on ties): the
    training target of a classifier and the text of a question-answer pair."""
    counts: dict[str, int] = {}
    for a in references:
        counts[a] = counts.get(a, 0) + 1
    return max(counts, key=lambda a: counts[a])


DATASETS: Registry[type[Dataset]] = Registry("dataset")
