"""The task contract: a task evaluates one fusion method on one encoded cell of a dataset.

The runner encodes each (corruption, severity) cell once per encoder and hands every method the
same features, so nothing is encoded twice. Tasks are registered in :data:`TASKS`; a suite names
them with options (``{name: retrieval, k: 16}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ..models.encoder import ImageFeatures, TextFeatures
from ..models.fusion import FusionMethod
from ..registry import Registry

if TYPE_CHECKING:
    from ..data import Dataset, ImageTextData
    from ..models.backends import ModelBundle

#: (training seed, model name): how the runner names one evaluated method
MethodKey = tuple[int, str]


@dataclass
class QuestionSet:
    """The encoded questions of a cell (VQA), with what the metric needs to score answers."""

    texts: TextFeatures  # (Q, ...) the questions (corrupted in text and pair cells)
    question_image: np.ndarray  # (Q,) int64 index of each question's image
    answers: list[list[str]]  # Q lists of reference answers (never corrupted)
    types: list[str]  # Q question types
    #: whether ``texts`` are the run's recurring (clean) question features
    recur: bool = False

    def __post_init__(self) -> None:
        q = len(self.texts)
        owner = np.asarray(self.question_image)
        if owner.shape != (q,) or len(self.answers) != q or len(self.types) != q:
            raise ValueError(f"a question set needs one image, one answer list and one type per question: {q} questions, "
                             f"question_image {owner.shape}, {len(self.answers)} answer lists, {len(self.types)} types")


@dataclass
class EncodedCell:
    """One evaluation cell after encoding: images, captions and which image each caption
    describes, and for VQA the questions (:class:`QuestionSet`).

    A cell of a data set without captions (VQA only) has empty ``texts`` and ``caption_image``."""

    images: ImageFeatures
    texts: TextFeatures
    caption_image: np.ndarray  # (M,) index of the image caption j belongs to (ground truth)
    logit_scale: float  # the dual encoder's 1 / tau
    #: per-cell memo shared by the methods evaluated on it (e.g. pair outputs of shared weights)
    memo: dict[Any, Any] = field(default_factory=dict)
    #: run-level memo for work on features that recur across cells (the clean sides)
    shared: dict[Any, Any] = field(default_factory=dict)
    #: whether ``images`` / ``texts`` are the run's recurring (clean) features, worth keeping in ``shared``
    images_recur: bool = False
    texts_recur: bool = False
    questions: QuestionSet | None = None
    #: the cell's data set with its clean texts (the references of a generative task), if the runner gives it
    data: ImageTextData | None = None

    def __post_init__(self) -> None:
        """Reject a cell with nothing to evaluate (every metric would be a mean of nothing, NaN)
        and a ``caption_image`` that does not map each caption to one of the images.

        Raises:
            ValueError: no images, no captions (and no questions), or a bad ``caption_image`` or
                ``question_image``; the message says which.
        """
        if self.questions is None or len(self.texts) > 0:
            check_gallery(len(self.images), len(self.texts), np.asarray(self.caption_image), "an evaluation cell")
        if self.questions is not None:
            check_gallery(len(self.images), len(self.questions.texts), np.asarray(self.questions.question_image),
                          "the questions of an evaluation cell", items="questions")

    def prepared(self, method: FusionMethod, side: str) -> dict[str, torch.Tensor]:
        """``method.prepare_images`` / ``prepare_texts`` of this cell (``side`` "images",
        "texts" or "questions"), reused across cells for recurring features of methods with
        identified weights."""
        if side == "questions":
            if self.questions is None:
                raise ValueError("this cell has no questions")
            feats, recur = self.questions.texts, self.questions.recur
        else:
            feats = self.images if side == "images" else self.texts
            recur = self.images_recur if side == "images" else self.texts_recur
        prepare = method.prepare_images if side == "images" else method.prepare_texts
        if not (recur and method.weights_id):
            return prepare(feats)
        key = ("prepared", method.weights_id, side)
        hit = self.shared.get(key)
        if hit is None or hit[0] is not feats:
            hit = (feats, prepare(feats))
            self.shared[key] = hit
        return hit[1]


def check_gallery(n: int, m: int, caption_image: np.ndarray, what: str, items: str = "captions") -> None:
    """Raise ValueError unless there are images and ``items`` (captions, questions) and
    ``caption_image`` is ``m`` integer indices into the ``n`` images; ``what`` names the checked
    thing in the message."""
    owner = "caption_image" if items == "captions" else "question_image"
    one = items[:-1]
    if n == 0 or m == 0:
        empty = " and ".join(name for name, size in (("images", n), (items, m)) if size == 0)
        raise ValueError(f"{what} needs images and {items}: it has no {empty}")
    if caption_image.shape != (m,) or not np.issubdtype(caption_image.dtype, np.integer):
        raise ValueError(f"{owner} must be {m} integer image indices (one per {one}), "
                         f"got shape {caption_image.shape} dtype {caption_image.dtype}")
    bad = (caption_image < 0) | (caption_image >= n)
    if bad.any():
        raise ValueError(f"{owner} must index the {n} images, got {caption_image[bad][:5].tolist()}")


@dataclass(frozen=True)
class ItemScores:
    """Per-item scores of one kind of query of a task on one cell (the bootstrap's unit).

    Every metric named in ``scores`` is the mean of its array over the items, so resampling
    items and averaging again gives the metric on the resample (REFERENCES.md s6).

    Attributes:
        query: the kind of query, e.g. ``"i2t"`` (one per image) or ``"t2i"`` (one per caption).
        side: which ids the items carry: ``"image"`` (the dataset's ``image_ids``),
            ``"caption"`` (its ``caption_ids``) or ``"question"`` (its ``question_ids``); item
            ``i`` is position ``i`` of that side.
        scores: metric name -> (n_items,) float array, e.g. ``{"i2t_r1": hits (0/1)}``.
        positions: (n_items,) positions on that side of the items, when a task evaluates a
            subset (captioning: the first images with captions); None = every item, in order.
    """

    query: str
    side: str
    scores: dict[str, np.ndarray]
    positions: np.ndarray | None = None


@dataclass
class TaskResult:
    """Metrics of one method on one cell, plus optional per-sample fusion weights.

    ``extra["items"]``, when the task provides it, is a list of :class:`ItemScores`: the
    per-item scores behind every metric of :attr:`Task.item_metrics` (written to the runner's
    items file, the input of the bootstrap intervals).
    """

    metrics: dict[str, float]
    #: per-sample rows: {"sample_id": ..., "alpha_v": ..., "alpha_t": ...} arrays, or None
    weights: dict[str, np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Task:
    """Base class of registered tasks.

    The runner calls, in order: :meth:`fit` once (task-specific heads, e.g. caption decoders),
    :meth:`evaluate_methods` once per cell whose modality the task evaluates
    (:meth:`skip_reason` says why it skips the others), and :meth:`close` at the end.
    """

    name: ClassVar[str] = ""
    #: metric the leaderboard ranks on
    primary_metric: ClassVar[str] = ""
    #: every metric :meth:`evaluate` returns, in report order
    metric_names: ClassVar[tuple[str, ...]] = ()
    #: what the task reads from the data: "captions" (retrieval, captioning) or "qa" (VQA)
    needs: ClassVar[str] = "captions"
    #: what a corruption of each modality alters for this task (``metrics.csv`` column
    #: ``corrupted``); a modality missing here does not apply to the task, and its cells are
    #: skipped for it (e.g. captioning, whose input is the image alone, under text corruptions)
    corrupts: ClassVar[dict[str, str]] = {"none": "none", "image": "images", "text": "captions", "pair": "caption_pairs"}

    def select(self, data: Any) -> Any:
        """The part of an evaluation set (``ImageTextData``) this task evaluates; all of it by
        default (VQA's ``max_questions`` keeps a subset of the questions)."""
        return data

    def corrupted_input(self, modality: str) -> str | None:
        """What a cell of ``modality`` ("none", "image", "text", "pair") corrupts for this task
        ("none", "images", "captions", ...), or None when such cells do not apply to it."""
        return self.corrupts.get(modality)

    def skip_reason(self, modality: str) -> str | None:
        """Why cells of ``modality`` are not evaluated (``run.json["skipped_cells"]``), or None if they are."""
        if self.corrupted_input(modality) is not None:
            return None
        return f"{self.name} reads nothing that a {modality} corruption alters"

    def fit(self, bundle: ModelBundle, dataset: Dataset, methods: Mapping[MethodKey, FusionMethod],
            device: torch.device, progress: Callable[[str, int], Callable[[int, int, float], None]]) -> dict[str, Any]:
        """Train (or load) what the task needs beyond the bundle, for ``methods``; returns facts
        for ``run.json["training"][task]``. Nothing by default."""
        return {}

    def evaluate_methods(self, cell: EncodedCell, methods: Mapping[MethodKey, FusionMethod]) -> dict[MethodKey, TaskResult]:
        """Evaluate every method of ``methods`` on ``cell``; default: :meth:`evaluate` each.

        A task that shares work across methods (one tokenizer call for every caption of a cell)
        overrides this."""
        return {key: self.evaluate(cell, method) for key, method in methods.items()}

    def close(self) -> None:
        """Release what the task holds (processes, files) at the end of a run; nothing by default."""

    @property
    def item_metrics(self) -> dict[str, list[str]]:
        """How metrics decompose into per-item scores: metric -> the per-item score columns it
        is the mean of, each column first averaged over its own items (``ItemScores``).

        A metric listed as ``[itself]`` is a plain mean over items; a composite such as
        retrieval's ``r_mean`` lists its parts. Metrics not listed (counts, corpus-level scores)
        get no bootstrap interval. Recorded in ``run.json`` (``items``) for the reports.
        """
        return {}

    @property
    def item_columns(self) -> tuple[str, ...]:
        """Every per-item score column, in order (the items file's value columns)."""
        return tuple(dict.fromkeys(c for parts in self.item_metrics.values() for c in parts))

    def evaluate(self, cell: EncodedCell, method: FusionMethod) -> TaskResult:
        """Evaluate ``method`` on ``cell``."""
        raise NotImplementedError


TASKS: Registry[type[Task]] = Registry("task")


def to_device(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` on the device of ``like``."""
    return x.to(like.device)
