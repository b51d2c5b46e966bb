"""The ``prior`` baseline row: what a model scores that never looks at the image.

Captioning: every image gets the most frequent caption of the decoders' training pool
(:func:`mafs_bench.models.caption_training.most_frequent_caption`; on a tie the first to occur);
the captioning task recognises the method by ``predicts_prior`` and calls none of its hooks.

VQA: the most frequent training answer of the question's type (the training split's question
types; a type unseen in training gets the most frequent training answer overall). So every VQA
leaderboard shows where chance is: a fusion method at or below this row has learned nothing
from the image. No parameters; :meth:`PriorBaseline.fit_reference` counts the training answers.

Question types are metadata of the data set's clean questions (the world's templates, VQAv2's
``question_type``), so the prior reads neither the image nor the question text: its score is
the same in every cell (a typo in a question, or a question paired with another image, does not
move it). It marks where chance is, not a competitor's robustness.
"""

from __future__ import annotations

import torch

from ..encoder import ImageFeatures, TextFeatures
from .base import FUSIONS, AnswerOutput, AnswerSpace, FusionMethod, PairSignals, Prepared, ReferencePool


@FUSIONS.register("prior")
class PriorBaseline(FusionMethod):
    """Most frequent training answer per question type (VQA); most frequent training caption (captioning)."""

    has_fusion = False
    predicts_prior = True
    network = "prior"
    tasks = frozenset({"vqa", "captioning"})

    def __init__(self, image_width: int, text_width: int, **options: object) -> None:
        super().__init__(image_width, text_width, **options)
        self.register_buffer("type_answer", torch.zeros(0, dtype=torch.long))  # (T + 1,): last = overall

    def setup_answers(self, space: AnswerSpace, embed_dim: int) -> None:
        self.answer_space = space
        self.type_answer = torch.zeros(len(space.types) + 1, dtype=torch.long)

    def fit_reference(self, pool: ReferencePool) -> None:
        """Count the training answers (``pool.answers``) per type (``pool.question_types``)."""
        if pool.answers is None or pool.question_types is None or self.answer_space is None:
            raise ValueError("the prior baseline needs the training answers and question types (VQA)")
        n_types, n_answers = len(self.answer_space.types), len(self.answer_space.answers)
        counts = torch.zeros(n_types + 1, n_answers)
        known = pool.answers >= 0
        counts.index_put_((pool.question_types[known], pool.answers[known]), torch.ones(int(known.sum())), accumulate=True)
        counts[n_types] = counts[:n_types].sum(0)
        # argmax takes the first maximum: ties go to the answer listed first (the more frequent overall)
        self.type_answer = counts.argmax(-1)
        empty = counts.sum(-1) == 0
        self.type_answer[empty] = self.type_answer[n_types]

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        return {"n": torch.zeros(len(feats), device=feats.emb.device)}

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        return {"n": torch.zeros(len(feats), device=feats.emb.device)}

    def answer_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> AnswerOutput:
        if signals.qtype is None:
            raise ValueError("the prior baseline needs each question's type (PairSignals.qtype)")
        qtype = torch.where(signals.qtype < 0, len(self.type_answer) - 1, signals.qtype)
        answer = self.type_answer.to(qtype.device)[qtype]  # (G, C)
        logits = torch.zeros(*answer.shape, len(self.answer_space.answers), device=answer.device)
        return AnswerOutput(logits.scatter_(-1, answer[..., None], 1.0))
