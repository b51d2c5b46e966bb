"""Training the VQA heads on frozen encoder features (the same recipe for every method).

VQA is answer classification over the training split's frequent answers (as ALBEF/BLIP's VQA
heads are trained on VQAv2's frequent answers; an answer outside the vocabulary scores 0). Each
fusion method gets a fresh instance set up for VQA (:meth:`FusionMethod.setup_answers`), trained
with the recipe of :mod:`mafs_bench.models.fusion_training`, unchanged: the same steps, batch
size, learning rate, seeds, and the same feature-level training degradations of the image and
of the question (never an evaluation corruption, their own seed namespace), so MA-AFS's
scheduler learns from the same degradation strengths as in retrieval. The loss is the soft
cross-entropy against each question's VQA scores (:func:`soft_targets`) plus the method's own
terms (:meth:`FusionMethod.task_loss`).

Data: the questions of the fusion pool's images (the first ``fusion_pool`` training images);
the reference banks come from the held-out training images after them (never trained on):
MA-AFS's image bank, and its text bank = the answer prototypes (the answers' text embeddings).
A batch is ``batch_size / 4`` pool images with 4 of their questions each (drawn with
replacement), so each image's tokens are prepared once for its questions, as at evaluation:
about 4x cheaper per step than one image per question, at the same number of questions.

Measured with the quickstart's ITC-only encoder before commit 6a536ac (``python
benchmarks/vqa_steps.py --steps 300,600``, seed 0, clean test split, CPU seconds on one thread):
the ``prior`` scored 0.377; with 300 steps ``fixed_sum`` 0.589 (4.7 s), ``concat_mlp`` 0.635
(3.4 s), ``albef`` 0.526 (4.6 s); with 600 steps 0.653 / 0.661 / 0.557; ``fixed_sum`` reached
0.675 after 1500 steps. Colour (about 0.55) and position (about 0.23) questions stayed low at
every length: that encoder's tokens bound shape and position only weakly
(``benchmarks/encoder_binding.py``). The quickstart now trains its encoder with token alignment
and these heads for 1500 steps (``fixed_sum`` 0.755 on its 800 questions, README "VQA");
position questions stay near chance.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from ..data.base import ImageTextData, subset
from ..metrics.vqa import normalize_vqa_answer
from .augment import AUGMENTATIONS, FeatureStats
from .encoder import DualEncoder, ImageFeatures, TextFeatures
from .fusion import AnswerSpace, FusionMethod, PairSignals, ReferencePool, gather
from .fusion_training import FusionTrainConfig, _degraded_batch, deterministic_algorithms
from .training import Progress, lr_at

#: VQAv2's agreement threshold: an answer given by 3 annotators is fully correct
AGREEMENT = 3


def answer_scores(references: list[str]) -> dict[str, float]:
    """VQA accuracy of every distinct normalised reference answer as a prediction (the VQAv2
    definition: mean over the leave-one-annotator-out subsets of min(#matches / 3, 1); exact
    match with one reference; :mod:`mafs_bench.metrics.vqa`)."""
    norm = [normalize_vqa_answer(a) for a in references]
    n = len(norm)
    if n == 1:
        return {norm[0]: 1.0}
    t = AGREEMENT if n >= 4 else n - 1
    counts = Counter(norm)
    return {a: (m * min((m - 1) / t, 1.0) + (n - m) * min(m / t, 1.0)) / n for a, m in counts.items()}


def build_answer_space(answers: list[list[str]], types: list[str], max_answers: int) -> AnswerSpace:
    """The answer vocabulary of training questions: normalised answers ranked by how many
    questions they are the best answer of (ties: alphabetical), the first ``max_answers``; and
    the sorted question types.

    Raises:
        ValueError: fewer than 2 distinct answers (nothing to classify).
    """
    best = Counter()
    for refs in answers:
        scores = answer_scores(refs)
        top = max(scores.values())
        best.update(a for a, s in scores.items() if s == top)
    ranked = sorted(best, key=lambda a: (-best[a], a))[:max_answers]
    if len(ranked) < 2:
        raise ValueError(f"VQA training needs at least 2 distinct answers in the training questions, got {ranked}")
    return AnswerSpace(tuple(ranked), tuple(sorted(set(types))))


def soft_targets(answers: list[list[str]], space: AnswerSpace) -> tuple[torch.Tensor, torch.Tensor]:
    """Per question, the VQA scores of the vocabulary answers as a sparse target.

    Returns:
        ``(index, weight)``, each (Q, R): answer indices (-1 = padding) and their scores
        normalised to sum 1 per question (all zero when no reference is in the vocabulary).
    """
    where = {a: i for i, a in enumerate(space.answers)}
    rows = []
    for refs in answers:
        scores = {where[a]: s for a, s in answer_scores(refs).items() if a in where and s > 0}
        rows.append(sorted(scores.items()))
    width = max(1, max((len(r) for r in rows), default=1))
    index = torch.full((len(rows), width), -1, dtype=torch.long)
    weight = torch.zeros((len(rows), width))
    for q, row in enumerate(rows):
        if row:
            total = sum(s for _, s in row)
            index[q, : len(row)] = torch.tensor([i for i, _ in row])
            weight[q, : len(row)] = torch.tensor([s / total for _, s in row])
    return index, weight


def dense_targets(index: torch.Tensor, weight: torch.Tensor, n_answers: int) -> torch.Tensor:
    """(B, R) sparse targets -> (B, A) target probabilities."""
    out = torch.zeros(len(index), n_answers)
    valid = index >= 0
    out[torch.nonzero(valid)[:, 0], index[valid]] = weight[valid]
    return out


@dataclass
class VQATrainData:
    """Frozen features of the VQA training pool."""

    images: ImageFeatures  # (N, ...) pool images
    questions: TextFeatures  # (Q, ...) their questions
    question_image: torch.Tensor  # (Q,) int64 row in ``images``
    target_index: torch.Tensor  # (Q, R) int64, -1 padded
    target_weight: torch.Tensor  # (Q, R) float32
    qtype: torch.Tensor  # (Q,) int64 index into space.types
    trainable: torch.Tensor  # (Q,) int64 rows with a target in the vocabulary (the ones drawn)
    image_stats: FeatureStats
    text_stats: FeatureStats
    reference: ReferencePool
    space: AnswerSpace


def pool_questions(train: ImageTextData, pool: slice) -> np.ndarray:
    """Positions of the questions about the pool's images (in order)."""
    owner = train.question_image
    return np.flatnonzero((owner >= pool.start) & (owner < pool.stop))


@torch.no_grad()
def build_vqa_data(model: DualEncoder, train: ImageTextData, pool: slice, ref: slice, space: AnswerSpace) -> VQATrainData:
    """Encode the pool's images and questions, the held-out bank images and the answer prototypes."""
    rows = pool_questions(train, pool)
    if len(rows) == 0:
        raise ValueError(f"{train.name}: no training questions about the fusion pool's images")
    questions = [train.questions[i] for i in rows]
    answers = [train.answers[i] for i in rows]
    images = model.encode_images(subset(train.images, pool))
    texts = model.encode_texts(questions)
    owner = torch.as_tensor(train.question_image[rows] - pool.start, dtype=torch.long)
    index, weight = soft_targets(answers, space)
    qtype = space.type_index([train.question_types[i] for i in rows]).clamp_min(0)
    best = torch.where(weight.sum(1) > 0, index[torch.arange(len(index)), weight.argmax(1)], -1)
    reference = ReferencePool(model.encode_images(subset(train.images, ref)).emb, model.encode_texts(list(space.answers)).emb,
                              images.emb, texts.emb, owner, float(model.logit_scale.detach()), answers=best, question_types=qtype)
    return VQATrainData(images, texts, owner, index, weight, qtype, torch.nonzero(best >= 0).flatten(),
                        FeatureStats.of(images.emb, images.tokens), FeatureStats.of(texts.emb, texts.tokens, texts.mask),
                        reference, space)


#: questions per image in a training batch (``batch_size`` questions = batch_size / 4 images)
QUESTIONS_PER_IMAGE = 4


def _questions_by_image(data: VQATrainData) -> list[torch.Tensor]:
    """The trainable questions of each pool image (positions in ``data.questions``)."""
    owner = data.question_image[data.trainable]
    order = torch.argsort(owner, stable=True)
    counts = torch.bincount(owner, minlength=len(data.images))
    return list(torch.split(data.trainable[order], counts.tolist()))


def vqa_generator(seed: int) -> torch.Generator:
    """The generator of the VQA heads' training draws (batches, degradations): a SHA-256
    namespace of its own, apart from every corruption draw and from the ITM heads' draws."""
    digest = hashlib.sha256(f"mafs-bench/vqa-train/{int(seed)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def train_vqa(method: FusionMethod, data: VQATrainData, cfg: FusionTrainConfig,
              progress: Progress | None = None) -> list[float]:
    """Fit ``method``'s references (banks, the prior's counts), then train it on the pool's
    questions. Returns the loss per step (empty for a method without parameters).

    Every method draws the same batches and degradations from ``cfg.seed``; bit-reproducible
    for a given seed, data and thread count.
    """
    method.fit_reference(data.reference)
    if not any(p.requires_grad for p in method.parameters()):
        method.eval()
        return []
    with deterministic_algorithms():
        return _train_steps(method, data, cfg, progress)


def _train_steps(method: FusionMethod, data: VQATrainData, cfg: FusionTrainConfig, progress: Progress | None) -> list[float]:
    gen = vqa_generator(cfg.seed)
    opt = torch.optim.AdamW(method.param_groups(cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
    image_augs = [a for a in cfg.augmentations if AUGMENTATIONS.get(a).modality == "image"]
    text_augs = [a for a in cfg.augmentations if AUGMENTATIONS.get(a).modality == "text"]
    n_answers = len(data.space.answers)
    by_image = _questions_by_image(data)
    images_with = torch.nonzero(torch.tensor([len(q) > 0 for q in by_image])).flatten()
    per_image = min(QUESTIONS_PER_IMAGE, cfg.batch_size)
    n_images = max(1, cfg.batch_size // per_image)
    method.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr) * group.get("lr_scale", 1.0)
        # G images, each with C of its questions (drawn with replacement): an image's tokens are
        # prepared once for its C questions, as at evaluation
        i_idx = images_with[torch.randperm(len(images_with), generator=gen)[:n_images]]
        pick = torch.randint(1 << 30, (len(i_idx), per_image), generator=gen)
        q_idx = torch.stack([by_image[i][pick[g] % len(by_image[i])] for g, i in enumerate(i_idx.tolist())])  # (G, C)
        imgs, s_img = _degraded_batch([data.images], i_idx, image_augs, cfg.augment_prob, data.image_stats, None, gen)
        flat = q_idx.flatten()
        txts, s_txt = _degraded_batch([data.questions], flat, text_augs, cfg.augment_prob, data.text_stats, None, gen)
        g, c = q_idx.shape
        rows = torch.arange(g * c).view(g, c)
        itc = (imgs.emb[:, None] * txts.emb[rows]).sum(-1)
        strength = torch.stack([s_img[:, None].expand(g, c), s_txt[rows]], dim=-1)
        signals = PairSignals(itc, strength, items=q_idx, qtype=data.qtype[q_idx])
        out = method.answer_forward(method.prepare_images(imgs), gather(method.prepare_texts(txts), rows), signals)
        target = dense_targets(data.target_index[flat], data.target_weight[flat], n_answers)
        loss = method.task_loss(out.logits.reshape(g * c, -1), target, out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1, cfg.steps, losses[-1])
    method.eval()
    return losses
