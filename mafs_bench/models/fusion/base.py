"""The fusion-method contract: score image-text pairs from frozen dual-encoder features.

A fusion method is an ``nn.Module`` registered in :data:`FUSIONS`. Retrieval (and later VQA and
captioning) never branch on a method's name; they call the four hooks below:

* :meth:`FusionMethod.prepare_images` / :meth:`prepare_texts`: per-item work done once per
  image or caption (projections of tokens), so re-ranking k candidates costs only the pairwise
  part;
* :meth:`pair_forward`: ITM logits for a *grouped* batch, ``G`` images each with ``C`` captions
  (image tensors lead with ``G``, caption tensors with ``(G, C)``), plus per-pair fusion weights
  ``alpha = (alpha_v, alpha_t)`` and the cues they came from when the method has them (the
  diagnostic reports show them).
  Grouping lets a method attend from many captions to one image's tokens without copying
  those tokens per pair; a plain list of pairs is the case ``C = 1``;
* :meth:`score`: how the method turns (ITM logit, ITC similarity) into its ranking score.

VQA uses the same preparation and grouping with (image, question) pairs: :meth:`setup_answers`
gives an instance an answer head over the training answers (:class:`AnswerSpace`), and
:meth:`answer_forward` returns answer logits (and fusion weights) per pair. Training calls
:meth:`task_loss` for both tasks. A method lists the tasks it supports in :attr:`FusionMethod.tasks`.

Methods without a fusion network (``clip``) set ``has_fusion = False``; retrieval then ranks
by ITC alone and never calls the pair hooks.

Before training, :meth:`FusionMethod.fit_reference` hands a method the clean features of its
training pool (:class:`ReferencePool`); MA-AFS keeps fixed reference banks and cue statistics
from it as buffers, so that its cues are computed the same way in training and at test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import Registry
from ..encoder import ImageFeatures, TextFeatures

if TYPE_CHECKING:
    from .caption_blocks import CaptionConditioner

Prepared = dict[str, torch.Tensor]


@dataclass
class PairSignals:
    """What the task knows about each pair besides the features: the ITC similarity; in
    training also how strongly each side was degraded (never known at test)."""

    itc: torch.Tensor  # (G, C) cos(v, t) of the L2-normalised embeddings, float32
    #: (G, C, 2) training-time degradation strength of (image, caption) in [0, 1]; None at test
    strength: torch.Tensor | None = None
    #: (G, C) bool, training only: whether the pair is a true (image, caption) match
    matched: torch.Tensor | None = None
    #: (G, C) int64, training only: the pair's row in the training pool (per-sample histories, QMF)
    items: torch.Tensor | None = None
    #: (G, C) int64, VQA: each question's type as an index into :attr:`AnswerSpace.types` (-1:
    #: a type unseen in training); the ``prior`` baseline answers by it
    qtype: torch.Tensor | None = None


@dataclass
class ReferencePool:
    """Clean training-split features given to :meth:`FusionMethod.fit_reference` before training.

    Attributes:
        bank_images: (K, D) L2-normalised embeddings of training images that the head never
            trains on (a held-out slice of the training split), float32: MA-AFS's image bank.
        bank_texts: (K, D) one caption of each of those images: MA-AFS's text bank.
        images: (N, D) embeddings of the head's training images (for cue statistics).
        texts: (M, D) embeddings of their captions.
        caption_image: (M,) int64, the image each caption describes.
        logit_scale: the dual encoder's 1 / tau.
        answers: VQA only: (M,) int64, each training question's target answer as an index into
            :attr:`AnswerSpace.answers` (-1: not among them); ``texts`` are then the questions,
            ``caption_image`` their images and ``bank_texts`` the answer prototypes.
        question_types: VQA only: (M,) int64 type of each question in :attr:`AnswerSpace.types`.
    """

    bank_images: torch.Tensor
    bank_texts: torch.Tensor
    images: torch.Tensor
    texts: torch.Tensor
    caption_image: torch.Tensor
    logit_scale: float
    answers: torch.Tensor | None = None
    question_types: torch.Tensor | None = None


#: names of the per-pair cues a method may report, in column order: normalised entropies of the
#: image and the caption against the reference banks, the pair's agreement cos(v, t), and each
#: side's bank agreement (its largest cosine with the other modality's bank)
CUE_NAMES: tuple[str, ...] = ("h_v", "h_t", "agreement", "a_v", "a_t")


@dataclass
class PairOutput:
    """What a fusion method says about a batch of pairs."""

    itm_logits: torch.Tensor  # (G, C, 2): [no-match, match]
    alpha: torch.Tensor | None = None  # (G, C, 2): (alpha_v, alpha_t), summing to 1
    cues: torch.Tensor | None = None  # (G, C, len(CUE_NAMES)): raw cues behind alpha
    #: training-only tensors a regulariser needs (e.g. MA-AFS's consistency term)
    aux: dict[str, torch.Tensor] | None = None

    @property
    def match_logit(self) -> torch.Tensor:
        """The ITM match logit (ALBEF's retrieval score)."""
        return self.itm_logits[..., 1]

    @property
    def logits(self) -> torch.Tensor:
        """The task logits (ITM: (G, C, 2)), the name :meth:`FusionMethod.task_loss` reads."""
        return self.itm_logits


@dataclass
class AnswerOutput:
    """What a fusion method says about a batch of (image, question) pairs (VQA)."""

    logits: torch.Tensor  # (G, C, A) over the answer vocabulary (AnswerSpace.answers)
    alpha: torch.Tensor | None = None  # (G, C, 2): (alpha_v, alpha_t), summing to 1
    cues: torch.Tensor | None = None  # (G, C, len(CUE_NAMES)): raw cues behind alpha
    aux: dict[str, torch.Tensor] | None = None


@dataclass(frozen=True)
class AnswerSpace:
    """The answers a VQA head classifies over, and the question types it knows.

    Attributes:
        answers: the training split's normalised answers, most frequent first (ties: sorted),
            at most the recipe's ``max_answers`` (VQAv2 practice: the frequent answers).
        types: the training split's question types, sorted.
    """

    answers: tuple[str, ...]
    types: tuple[str, ...]

    def type_index(self, types: Sequence[str]) -> torch.Tensor:
        """(Q,) int64 index of each type in :attr:`types`, -1 for a type unseen in training."""
        where = {t: i for i, t in enumerate(self.types)}
        return torch.tensor([where.get(t, -1) for t in types], dtype=torch.long)


class FusionMethod(nn.Module):
    """Base class of every registered fusion method.

    Args:
        image_width: width of the image tokens.
        text_width: width of the text tokens.
        options: method options from the suite / model config (documented per method).
    """

    has_fusion: ClassVar[bool] = True
    #: the method predicts without reading its input: the training split's most frequent target
    #: (the ``prior`` row of the generative tasks); tasks then never call its network hooks
    predicts_prior: ClassVar[bool] = False
    #: names of the tasks (registered in ``mafs_bench.tasks.TASKS``) this method can be evaluated
    #: on. A suite checks its models against it when it is loaded (``runner/suite.py``): a model
    #: named in a task's own ``models`` list must support the task (else the suite is rejected);
    #: a model of the suite-wide ``models`` list that does not support a task is skipped for
    #: that task, with a note in the log and in ``run.json`` (``skipped``).
    tasks: ClassVar[frozenset[str]] = frozenset({"retrieval"})
    #: name of the network design; methods that share it (and its options) share trained weights.
    network: ClassVar[str] = ""
    #: True for a method that runs a backend model's own pretrained head (``itm_head``): only a
    #: backend that provides such a head builds it, and nothing is trained for it.
    pretrained_head: ClassVar[bool] = False
    #: identity of the loaded weights (set by the backend); methods with the same id compute the
    #: same pair outputs, so a task may compute them once and apply each method's own score.
    weights_id: str | None = None

    def __init__(self, image_width: int, text_width: int, **options: Any) -> None:
        super().__init__()
        self.image_width = image_width
        self.text_width = text_width
        self.options = dict(options)

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        """Per-image tensors (first dimension = image) that :meth:`pair_forward` gathers."""
        raise NotImplementedError

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        """Per-caption tensors (first dimension = caption) that :meth:`pair_forward` gathers."""
        raise NotImplementedError

    def pair_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> PairOutput:
        """ITM logits (and fusion weights) for pairs ``(img[g], txt[g, c])``."""
        raise NotImplementedError

    def score(self, out: PairOutput, itc: torch.Tensor) -> torch.Tensor:
        """Ranking score of re-ranked pairs; default: the ITM match logit alone (ALBEF)."""
        return out.match_logit

    def regulariser(self, out: PairOutput | AnswerOutput) -> torch.Tensor:
        """Extra training loss term (MA-AFS: KL to uniform); zero by default."""
        return out.logits.new_zeros(())

    def task_loss(self, logits: torch.Tensor, target: torch.Tensor, out: PairOutput | AnswerOutput) -> torch.Tensor:
        """The training loss of a batch: cross-entropy of ``logits`` (B, K) (``out.logits``
        flattened to one row per pair) against ``target``, integer labels (B,) or target
        probabilities (B, K) (VQA's soft scores), plus :meth:`regulariser`. Methods with
        per-modality heads (QMF, PDF) add their terms here."""
        return soft_cross_entropy(logits, target) + self.regulariser(out)

    # --- VQA -----------------------------------------------------------------------------------

    #: set by the backend on a method set up for VQA (:meth:`setup_answers`)
    answer_space: AnswerSpace | None = None

    def setup_answers(self, space: AnswerSpace, embed_dim: int) -> None:
        """Make this instance a VQA model over ``space.answers`` (called before training or
        loading its weights): methods that support VQA replace their output layer by one with
        ``len(space.answers)`` outputs. ``embed_dim``: the encoder's contrastive embedding
        width (for heads on the embeddings). An instance set up for VQA is not used for retrieval."""
        raise NotImplementedError(f"{type(self).__name__} does not support VQA")

    def answer_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> AnswerOutput:
        """Answer logits for grouped (image, question) pairs ``(img[g], txt[g, c])``; the
        questions are prepared by :meth:`prepare_texts` like captions."""
        raise NotImplementedError(f"{type(self).__name__} does not support VQA")

    def fit_reference(self, pool: ReferencePool) -> None:
        """Called once before training with the pool's clean features; nothing by default."""

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> CaptionConditioner:
        """The method's part of a caption decoder (:mod:`.caption_blocks`): how the image enters
        a decoder of ``layers`` layers of ``width`` with ``heads`` heads, from image tokens of
        ``image_width`` and pooled embeddings of ``embed_dim``. A new instance with fresh weights
        (the captioning task trains it), built from this method's options.

        Raises:
            NotImplementedError: the method has no caption decoder (it does not support captioning).
        """
        raise NotImplementedError(f"fusion method {type(self).__name__} has no caption decoder")

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; one group at ``lr`` by default."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr, "lr_scale": 1.0}]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # buffers sized by fit_reference (reference banks) take the stored shape
        for name, buf in list(self._buffers.items()):
            stored = state_dict.get(prefix + name)
            if buf is not None and stored is not None and stored.shape != buf.shape:
                self._buffers[name] = torch.empty_like(stored, device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


FUSIONS: Registry[type[FusionMethod]] = Registry("fusion method")


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, K) ``logits`` against integer labels (B,) (``F.cross_entropy``)
    or against (B, K) target probabilities (rows summing to 1)."""
    if target.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, target)
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()


def gather(prepared: Prepared, index: torch.Tensor) -> Prepared:
    """Rows ``index`` of every prepared tensor (``index`` may be 2-D: (G, C) for captions).

    An ``index`` that is every row in order (VQA over a gallery whose every image has a
    question) returns the tensors themselves, not copies: callers only read them."""
    if index.dim() == 1 and prepared:
        n = len(index)
        if all(v.shape[0] == n for v in prepared.values()) and \
                torch.equal(index, torch.arange(n, device=index.device, dtype=index.dtype)):
            return dict(prepared)
    return {k: v[index] for k, v in prepared.items()}
