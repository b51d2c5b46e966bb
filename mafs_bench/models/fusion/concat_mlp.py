"""Late fusion by concatenation: ``MLP([x_v; x_t])``, the plainest fusion of two streams.

The streams are those of :mod:`.streams` (the text's pooled state; the image tokens pooled by
attention from the text). No weights between the modalities, so no fusion weights reported.
"""

from __future__ import annotations

import torch

from .base import FUSIONS, PairSignals
from .caption_blocks import StreamConditioner
from .streams import TwoStreamFusion, mlp


@FUSIONS.register("concat_mlp")
class ConcatMLP(TwoStreamFusion):
    """Concatenate the two streams, then a two-layer MLP to the classes (ITM or answers)."""

    network = "concat_mlp"
    tasks = frozenset({"retrieval", "vqa", "captioning"})

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> StreamConditioner:
        """Captioning: the two streams in every decoder layer, fused by concatenation and an MLP
        (:class:`~.caption_blocks.StreamConditioner`)."""
        return StreamConditioner(image_width, width, heads, layers, "concat")

    def __init__(self, image_width: int, text_width: int, hidden: int = 768, **options: object) -> None:
        super().__init__(image_width, text_width, hidden=hidden, **options)

    def build_outputs(self, n: int) -> None:
        self.out = mlp(2 * self.width, self.hidden, n)

    def fuse_streams(self, x_v: torch.Tensor, x_t: torch.Tensor,
                     signals: PairSignals) -> tuple[torch.Tensor, None, dict[str, torch.Tensor]]:
        return self.out(torch.cat([x_v, x_t], dim=-1)), None, {}
