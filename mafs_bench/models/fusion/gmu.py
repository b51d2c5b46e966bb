"""GMU, the gated multimodal unit (Arevalo et al. 2017, "Gated Multimodal Units for Information
Fusion"; REFERENCES.md s3).

``h_v = tanh(W_v x_v)``, ``h_t = tanh(W_t x_t)``, gate ``z = sigmoid(W_z [x_v; x_t])`` (one
gate per hidden unit), output ``h = z * h_v + (1 - z) * h_t``, then a two-layer MLP to the
classes. The streams are those of :mod:`.streams`. The gate is a per-sample fusion weight: we
report ``alpha_v = mean(z)`` over the hidden units and ``alpha_t = 1 - alpha_v``, so GMU's
adaptivity can be read like MA-AFS's.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import FUSIONS, PairSignals
from .caption_blocks import StreamConditioner
from .streams import TwoStreamFusion, mlp


@FUSIONS.register("gmu")
class GMU(TwoStreamFusion):
    """Gated multimodal unit on the two streams, then an MLP to the classes."""

    network = "gmu"
    tasks = frozenset({"retrieval", "vqa", "captioning"})

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> StreamConditioner:
        """Captioning: the two streams in every decoder layer, fused by the gated unit
        (:class:`~.caption_blocks.StreamConditioner`)."""
        return StreamConditioner(image_width, width, heads, layers, "gmu")

    def __init__(self, image_width: int, text_width: int, hidden: int = 256, **options: object) -> None:
        super().__init__(image_width, text_width, hidden=hidden, **options)
        self.proj_v = nn.Linear(self.width, self.hidden)
        self.proj_t = nn.Linear(self.width, self.hidden)
        self.gate = nn.Linear(2 * self.width, self.hidden)

    def build_outputs(self, n: int) -> None:
        self.out = mlp(self.hidden, self.hidden, n)

    def fuse_streams(self, x_v: torch.Tensor, x_t: torch.Tensor,
                     signals: PairSignals) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        z = torch.sigmoid(self.gate(torch.cat([x_v, x_t], dim=-1)))
        h = z * torch.tanh(self.proj_v(x_v)) + (1 - z) * torch.tanh(self.proj_t(x_t))
        a_v = z.mean(-1)
        return self.out(h), torch.stack([a_v, 1 - a_v], dim=-1), {}
