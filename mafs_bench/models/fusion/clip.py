"""CLIP-style: no fusion; pairs are ranked by the dual encoder's cosine similarity (ITC).

Captioning: the dual encoder's pooled image embedding, projected, is the first token of a light
decoder (:class:`~.caption_blocks.PrefixConditioner`, a ClipCap-style prefix): no cross-attention
to the image tokens, so "no fusion" stays a row.
"""

from __future__ import annotations

from .base import FUSIONS, FusionMethod
from .caption_blocks import PrefixConditioner


@FUSIONS.register("clip")
class CLIPStyle(FusionMethod):
    """The dual encoder alone (REFERENCES.md s2: score = cosine similarity)."""

    has_fusion = False
    network = "none"

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> PrefixConditioner:
        return PrefixConditioner(embed_dim, width, layers)
