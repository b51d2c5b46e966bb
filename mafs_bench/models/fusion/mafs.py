"""MA-AFS: Modality-Aware Adaptive Fusion Scheduling (arXiv 2506.12733), our specification.

Only the paper's abstract is public; REFERENCES.md s1 holds the specification implemented here:

* cues per pair: visual entropy ``H_v`` (the image against the task's text bank), textual entropy
  ``H_t`` (the caption against the image bank), both divided by log K, and agreement
  ``a = cos(v, t)``; the task computes them (:class:`PairSignals`);
* scheduler: MLP 3 -> 32 -> 2, ``softmax(logits / T)`` = ``(alpha_v, alpha_t)``;
* fusion inside cross-attention fusion layers: ``h = LN(alpha_t * h_text + alpha_v * CrossAttn(h_text, V))``
  then ``LN(h + FFN(h))`` (:class:`FusionStack`), masked mean over the query states and an ITM
  head ``Linear(d, 2)``;
* loss: ITM cross-entropy + ``kl_weight * KL(alpha || uniform)`` (default 0.01).

Which text states are the queries ``h_text`` (option ``queries``) is our choice, not the paper's:

* ``"cls"`` (default): the caption's pooled state (the text tower's end token, where it pools),
  as ALBEF's ITM reads its [CLS]. One query per pair.
* ``"tokens"``: every caption token. Measured on this project's 2-core CPU, this scores about
  6,000 pairs/s against about 400,000 for ``"cls"`` (1000 images x 5000 captions, top-16
  re-ranking is ~100k pairs per cell), too slow for the embedded default; kept for GPUs.

With ``alpha`` fixed at (0.5, 0.5) the same network is the ``fixed_sum`` baseline, which makes
the ablation exact (see ``fixed_sum.py``). Also our choice: the ranking score is the ITM match
logit alone, as for ALBEF, so that the only difference to ``fixed_sum`` is the scheduling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..encoder import ImageFeatures, TextFeatures
from .base import FUSIONS, FusionMethod, PairOutput, PairSignals, Prepared
from .blocks import FusionStack, Scheduler, end_token, kl_to_uniform, masked_mean


class ScheduledFusion(FusionMethod):
    """The MA-AFS network; ``fixed_alpha_v`` set gives the fixed-weight variant (no scheduler)."""

    network = "scheduled_fusion"

    def __init__(self, image_width: int, text_width: int, width: int = 128, heads: int = 8, layers: int = 2,
                 ffn_ratio: int = 2, scheduler_hidden: int = 32, temperature: float = 1.0, kl_weight: float = 0.01,
                 fixed_alpha_v: float | None = None, queries: str = "cls", **options: Any) -> None:
        super().__init__(image_width, text_width, width=width, heads=heads, layers=layers, ffn_ratio=ffn_ratio,
                         scheduler_hidden=scheduler_hidden, temperature=temperature, kl_weight=kl_weight,
                         fixed_alpha_v=fixed_alpha_v, queries=queries, **options)
        if queries not in ("cls", "tokens"):
            raise ValueError(f"fusion option queries must be 'cls' or 'tokens', got {queries!r}")
        self.queries = queries
        self.text_in = nn.Linear(text_width, width)
        self.stack = FusionStack(image_width, width, heads, layers, ffn_ratio)
        self.head = nn.Linear(width, 2)
        self.kl_weight = kl_weight
        self.fixed_alpha_v = fixed_alpha_v
        self.scheduler = Scheduler(scheduler_hidden, temperature) if fixed_alpha_v is None else None

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        return self.stack.prepare_images(feats.tokens)

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        tokens, mask = feats.tokens, feats.mask
        if self.queries == "cls":
            tokens = end_token(tokens, mask)
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return {"t": self.text_in(tokens), "mask": mask}

    def weights(self, signals: PairSignals) -> torch.Tensor:
        """(G, C, 2) fusion weights (alpha_v, alpha_t)."""
        if self.scheduler is None:
            a = torch.full_like(signals.h_v, float(self.fixed_alpha_v))
            return torch.stack([a, 1.0 - a], dim=-1)
        return self.scheduler(signals.stacked())

    def pair_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> PairOutput:
        alpha = self.weights(signals)
        h = self.stack(txt["t"], img, alpha)
        # constant weights (fixed_sum) are not reported: they carry no per-sample information
        return PairOutput(self.head(masked_mean(h, txt["mask"])), alpha if self.scheduler is not None else None)

    def regulariser(self, out: PairOutput) -> torch.Tensor:
        if self.scheduler is None or out.alpha is None:
            return super().regulariser(out)
        return self.kl_weight * kl_to_uniform(out.alpha)


@FUSIONS.register("mafs")
class MAAFS(ScheduledFusion):
    """MA-AFS with the learned scheduler (see module docstring)."""
