"""Visual question answering: answer classification from fused (image, question) features.

Each method's VQA instance (:meth:`FusionMethod.setup_answers`, trained by
:mod:`mafs_bench.models.vqa_training`) scores every answer of the training vocabulary
(:class:`AnswerSpace`); its prediction is the highest-scoring answer, and an answer outside the
vocabulary can never be predicted (it scores 0, as in ALBEF/BLIP's classifier heads).

Metric ``accuracy``: the VQAv2 definition (:func:`mafs_bench.metrics.vqa_accuracy_per_item`:
official answer normalisation, then the mean over the leave-one-annotator-out subsets of
min(#matches / 3, 1); exact match after normalisation with a single reference answer), the mean
over the cell's questions; ``accuracy_<type>`` the same over the questions of each type (types
as the data set gives them, non-alphanumerics as ``_``). Per-item scores (one per question,
``side="question"``) feed the bootstrap intervals of ``accuracy``.

Corruptions (:attr:`VQA.corrupts`): image corruptions alter the images; text corruptions the
questions; pair corruptions pair a question with another image's question (the references stay
those of the question's own image, so a swapped question is answered about the wrong scene).
A question whose answer logits hold a NaN or inf is wrong (it scores 0) and counted in
``nonfinite_scores``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import ClassVar

import numpy as np
import torch

from ..data.base import ImageTextData
from ..metrics.vqa import vqa_accuracy_per_item
from ..models.fusion import CUE_NAMES, FusionMethod, PairSignals, gather
from .base import TASKS, EncodedCell, ItemScores, QuestionSet, Task, TaskResult
from .retrieval import image_groups


def type_metric(question_type: str) -> str:
    """The metric name of a question type's accuracy: ``accuracy_<type>`` (non-alphanumerics as ``_``)."""
    return "accuracy_" + re.sub(r"[^0-9A-Za-z]+", "_", question_type).strip("_")


@torch.no_grad()
def answer_outputs(method: FusionMethod, cell: EncodedCell, chunk: int = 4096) -> tuple[torch.Tensor, ...]:
    """Answer logits (Q, A) of every question of ``cell``, with the fusion weights (Q, 2) and
    cues (Q, len(CUE_NAMES)) when the method reports them (else None)."""
    qs = cell.questions
    space = method.answer_space
    img_prep, txt_prep = cell.prepared(method, "images"), cell.prepared(method, "questions")
    owner = torch.as_tensor(np.asarray(qs.question_image), dtype=torch.long)
    device = cell.images.emb.device
    qtype = space.type_index(qs.types).to(device)
    n = len(owner)
    logits = torch.empty((n, len(space.answers)), device=device)
    alphas = cues = None
    for images, pos in image_groups(owner, chunk):
        images, pos = images.to(device), pos.to(device)
        valid = pos >= 0
        tt = pos.clamp_min(0)
        ii = images[:, None].expand_as(tt)
        itc = (cell.images.emb[ii] * qs.texts.emb[tt]).sum(-1)
        out = method.answer_forward(gather(img_prep, images), gather(txt_prep, tt), PairSignals(itc, qtype=qtype[tt]))
        logits[pos[valid]] = out.logits[valid].float()
        if out.alpha is not None:
            alphas = torch.empty((n, 2), device=device) if alphas is None else alphas
            alphas[pos[valid]] = out.alpha[valid].float()
        if out.cues is not None:
            cues = torch.empty((n, out.cues.shape[-1]), device=device) if cues is None else cues
            cues[pos[valid]] = out.cues[valid].float()
    return logits, alphas, cues


def predictions(logits: torch.Tensor, answers: tuple[str, ...]) -> tuple[list[str], int]:
    """The top answer of each row, "" (never correct) for a row with a non-finite logit; and
    the number of such rows."""
    finite = torch.isfinite(logits).all(-1).cpu().numpy()
    best = torch.nan_to_num(logits, nan=-torch.inf).argmax(-1).cpu().numpy()
    return [answers[b] if ok else "" for b, ok in zip(best.tolist(), finite.tolist())], int((~finite).sum())


def vqa_metrics(preds: list[str], qs: QuestionSet, per_type: bool) -> tuple[dict[str, float], np.ndarray]:
    """``accuracy`` (and ``accuracy_<type>``) of ``preds``, and the per-question accuracies."""
    acc = vqa_accuracy_per_item(preds, qs.answers)
    metrics = {"accuracy": float(acc.mean())}
    if per_type:
        types = np.asarray(qs.types, dtype=object)
        for t in sorted(set(qs.types)):
            metrics[type_metric(t)] = float(acc[types == t].mean())
    return metrics, acc


@TASKS.register("vqa")
class VQA(Task):
    """Visual question answering accuracy (VQAv2 definition), overall and per question type.

    Args:
        per_type: also report ``accuracy_<type>`` per question type.
        chunk: (image, question) pairs scored per forward pass.
        max_questions: evaluate at most this many questions, evenly spaced over the data set's
            question list (:meth:`select`; the same questions in every cell, with their own ids,
            so cells and runs stay paired); None: all.

    Raises:
        ValueError: ``chunk < 1`` or ``max_questions < 1``.
    """

    name: ClassVar[str] = "vqa"
    primary_metric: ClassVar[str] = "accuracy"
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy", "nonfinite_scores")
    needs: ClassVar[str] = "qa"
    corrupts: ClassVar[dict[str, str]] = {"none": "none", "image": "images", "text": "questions", "pair": "question_pairs"}

    def __init__(self, per_type: bool = True, chunk: int = 4096, max_questions: int | None = None) -> None:
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"vqa chunk must be a positive integer, got {chunk!r}")
        if max_questions is not None and (not isinstance(max_questions, int) or max_questions < 1):
            raise ValueError(f"vqa max_questions must be a positive integer or null, got {max_questions!r}")
        self.per_type = bool(per_type)
        self.chunk = chunk
        self.max_questions = max_questions

    def select(self, data: ImageTextData) -> ImageTextData:
        """``data`` with at most ``max_questions`` questions, evenly spaced over its list (the
        images and captions stay whole)."""
        n = len(data.questions)
        if self.max_questions is None or n <= self.max_questions:
            return data
        rows = np.unique(np.linspace(0, n - 1, self.max_questions).round().astype(np.int64))
        return replace(data, questions=[data.questions[i] for i in rows], answers=[data.answers[i] for i in rows],
                       question_image=data.question_image[rows], question_types=[data.question_types[i] for i in rows],
                       question_ids=data.question_ids[rows])

    @property
    def item_metrics(self) -> dict[str, list[str]]:
        """``accuracy`` is the mean of the per-question accuracies (column ``accuracy``); the
        per-type accuracies depend on the data set's types and get no interval."""
        return {"accuracy": ["accuracy"]}

    def evaluate(self, cell: EncodedCell, method: FusionMethod) -> TaskResult:
        if cell.questions is None:
            raise ValueError("task vqa needs questions: the cell has none (does the data set have question-answer pairs?)")
        if method.answer_space is None:
            raise ValueError(f"{type(method).__name__} has no answer head: the backend did not set it up for VQA")
        key = ("vqa", method.weights_id)
        hit = cell.memo.get(key) if method.weights_id else None
        if hit is None:
            hit = answer_outputs(method, cell, self.chunk)
            if method.weights_id:
                cell.memo[key] = hit
        logits, alpha, cues = hit
        preds, nonfinite = predictions(logits, method.answer_space.answers)
        metrics, acc = vqa_metrics(preds, cell.questions, self.per_type)
        metrics["nonfinite_scores"] = float(nonfinite)
        weights = None
        if alpha is not None:
            a = alpha.cpu().numpy()
            weights = {"sample_id": np.arange(len(a)), "alpha_v": a[:, 0], "alpha_t": a[:, 1]}
            if cues is not None:
                c = cues.cpu().numpy()
                weights.update({name: c[:, i] for i, name in enumerate(CUE_NAMES)})
        return TaskResult(metrics, weights, extra={"items": [ItemScores("vqa", "question", {"accuracy": acc})],
                                                   "nonfinite_scores": nonfinite})
