"""BLIP-style fusion (salesforce/BLIP; REFERENCES.md s2): ITM logit + ITC similarity.

BLIP's image-grounded text encoder puts cross-attention in every layer. On frozen towers with a
single trainable fusion layer, that encoder and ALBEF's fusion encoder are the same network
(self-attention, cross-attention from [CLS], FFN, ITM head), so ``blip`` shares ``albef``'s
network and trained weights; the methods differ in BLIP's score rule, ITM match logit plus the
ITC cosine similarity.
"""

from __future__ import annotations

import torch

from .albef import ClsCrossAttentionFusion
from .base import FUSIONS, PairOutput
from .caption_blocks import CrossAttentionConditioner


@FUSIONS.register("blip")
class BLIPStyle(ClsCrossAttentionFusion):
    """BLIP-style: ranking score = ITM match logit + ITC similarity.

    Captioning: BLIP's image-grounded text decoder, causal self-attention, cross-attention to
    the image tokens and FFN in every layer (:class:`~.caption_blocks.CrossAttentionConditioner`).
    """

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> CrossAttentionConditioner:
        return CrossAttentionConditioner(image_width, width, heads, layers)

    def score(self, out: PairOutput, itc: torch.Tensor) -> torch.Tensor:
        return out.match_logit + itc
