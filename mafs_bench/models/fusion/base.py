"""The fusion-method contract: score image-text pairs from frozen dual-encoder features.

A fusion method is an ``nn.Module`` registered in :data:`FUSIONS`. Retrieval (and later VQA and
captioning) never branch on a method's name; they call the four hooks below:

* :meth:`FusionMethod.prepare_images` / :meth:`prepare_texts`: per-item work done once per
  image or caption (projections of tokens), so re-ranking k candidates costs only the pairwise
  part;
* :meth:`pair_forward`: ITM logits for a *grouped* batch, ``G`` images each with ``C`` captions
  (image tensors lead with ``G``, caption tensors with ``(G, C)``), plus per-pair fusion weights
  ``alpha = (alpha_v, alpha_t)`` when the method has them (the diagnostic reports show them).
  Grouping lets a method attend from many captions to one image's tokens without copying
  those tokens per pair; a plain list of pairs is the case ``C = 1``;
* :meth:`score`: how the method turns (ITM logit, ITC similarity) into its ranking score.

Methods without a fusion network (``clip``) set ``has_fusion = False``; retrieval then ranks
by ITC alone and never calls the pair hooks.
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
    """Per-pair reliability cues (REFERENCES.md s1): normalised entropies and agreement."""

    h_v: torch.Tensor  # (G, C) visual entropy of the pair's image against the text bank, in [0, 1]
    h_t: torch.Tensor  # (G, C) textual entropy of the pair's caption against the image bank, in [0, 1]
    agreement: torch.Tensor  # (G, C) cos(v, t)

    def stacked(self) -> torch.Tensor:
        """(G, C, 3) tensor ``[H_v, H_t, a]``."""
        return torch.stack([self.h_v, self.h_t, self.agreement], dim=-1)


@dataclass
class PairOutput:
    """What a fusion method says about a batch of pairs."""

    itm_logits: torch.Tensor  # (G, C, 2): [no-match, match]
    alpha: torch.Tensor | None = None  # (G, C, 2): (alpha_v, alpha_t), summing to 1

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


FUSIONS: Registry[type[FusionMethod]] = Registry("fusion method")


def gather(prepared: Prepared, index: torch.Tensor) -> Prepared:
    """Rows ``index`` of every prepared tensor (``index`` may be 2-D: (G, C) for captions)."""
    return {k: v[index] for k, v in prepared.items()}
