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

Methods without a fusion network (``clip``) set ``has_fusion = False``; retrieval then ranks
by ITC alone and never calls the pair hooks.

Before training, :meth:`FusionMethod.fit_reference` hands a method the clean features of its
training pool (:class:`ReferencePool`); MA-AFS keeps fixed reference banks and cue statistics
from it as buffers, so that its cues are computed the same way in training and at test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ...registry import Registry
from ..encoder import ImageFeatures, TextFeatures

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
    """

    bank_images: torch.Tensor
    bank_texts: torch.Tensor
    images: torch.Tensor
    texts: torch.Tensor
    caption_image: torch.Tensor
    logit_scale: float


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


class FusionMethod(nn.Module):
    """Base class of every registered fusion method.

    Args:
        image_width: width of the image tokens.
        text_width: width of the text tokens.
        options: method options from the suite / model config (documented per method).
    """

    has_fusion: ClassVar[bool] = True
    #: names of the tasks (registered in ``mafs_bench.tasks.TASKS``) this method can be evaluated
    #: on. A suite checks its models against it when it is loaded (``runner/suite.py``): a model
    #: named in a task's own ``models`` list must support the task (else the suite is rejected);
    #: a model of the suite-wide ``models`` list that does not support a task is skipped for
    #: that task, with a note in the log and in ``run.json`` (``skipped``).
    tasks: ClassVar[frozenset[str]] = frozenset({"retrieval"})
    #: name of the network design; methods that share it (and its options) share trained weights.
    network: ClassVar[str] = ""
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

    def regulariser(self, out: PairOutput) -> torch.Tensor:
        """Extra training loss term (MA-AFS: KL to uniform); zero by default."""
        return out.itm_logits.new_zeros(())

    def fit_reference(self, pool: ReferencePool) -> None:
        """Called once before training with the pool's clean features; nothing by default."""

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


def gather(prepared: Prepared, index: torch.Tensor) -> Prepared:
    """Rows ``index`` of every prepared tensor (``index`` may be 2-D: (G, C) for captions)."""
    return {k: v[index] for k, v in prepared.items()}
