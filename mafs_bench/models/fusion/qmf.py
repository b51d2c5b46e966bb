"""QMF, quality-aware multimodal fusion (Zhang et al., ICML 2023, "Provable Dynamic Fusion for
Low-Quality Multimodal Data"; REFERENCES.md s3), implemented from its definition.

* per-modality heads ``f_v(x_v)``, ``f_t(x_t)`` (two-layer MLPs to the classes) on the two
  streams of :mod:`.streams` (the image stream is the image tokens pooled by attention from the
  question or caption, so on VQA ``f_v`` reads the image's answer to the question; ``f_t`` is
  the question alone, the language prior);
* energy ``E_m = -logsumexp(f_m)``, weight ``w_m = -0.1 * E_m``; fused logits
  ``w_v.detach() * f_v + w_t.detach() * f_t``;
* loss: fused cross-entropy + each head's cross-entropy + ``rank_weight`` (0.1) x a margin
  ranking loss that orders the weights of two samples (each with its neighbour in the batch)
  by their loss histories: the sample whose head has had the lower loss should get the higher
  weight, by at least the difference of the histories. The history of a training item is the
  running mean of its head's cross-entropy over the steps it was drawn (``PairSignals.items``);
  without item ids (ITM pairs, whose negatives are drawn anew each step) the current losses
  stand in for the history.

Reported fusion weights: ``(w_v, w_t) / (w_v + w_t)`` with each ``w`` floored at 1e-6 (QMF's
weights are not normalised; the ratio is what decides which head leads).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import FUSIONS, AnswerOutput, PairOutput, PairSignals, soft_cross_entropy
from .streams import TwoStreamFusion, flat_rows, mlp

#: QMF's energy scale: w_m = -ENERGY_SCALE * E_m
ENERGY_SCALE = 0.1


def per_sample_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) cross-entropy of (B, K) logits against labels (B,) or probabilities (B, K)."""
    if target.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, target, reduction="none")
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1)


@FUSIONS.register("qmf")
class QMF(TwoStreamFusion):
    """Energy-weighted sum of per-modality heads (QMF).

    Args:
        hidden: hidden width of each head.
        rank_weight: weight of the ranking loss (QMF: 0.1).
        history_momentum: weight of the past in an item's loss history (running mean when 0).
    """

    network = "qmf"

    def __init__(self, image_width: int, text_width: int, hidden: int = 758, rank_weight: float = 0.1,
                 history_momentum: float = 0.0, **options: Any) -> None:
        super().__init__(image_width, text_width, hidden=hidden, rank_weight=rank_weight,
                         history_momentum=history_momentum, **options)
        if rank_weight < 0 or not 0.0 <= history_momentum < 1.0:
            raise ValueError(f"qmf: rank_weight must be >= 0 and history_momentum in [0, 1), got {rank_weight}, {history_momentum}")
        self.rank_weight = rank_weight
        self.history_momentum = history_momentum
        # training state, not weights: per-item loss sums and counts of each head
        self._history: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def build_outputs(self, n: int) -> None:
        self.head_v = mlp(self.width, self.hidden, n)
        self.head_t = mlp(self.width, self.hidden, n)

    def fuse_streams(self, x_v: torch.Tensor, x_t: torch.Tensor,
                     signals: PairSignals) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        f_v, f_t = self.head_v(x_v), self.head_t(x_t)
        w_v = ENERGY_SCALE * torch.logsumexp(f_v, dim=-1)  # -0.1 * energy
        w_t = ENERGY_SCALE * torch.logsumexp(f_t, dim=-1)
        fused = w_v.detach()[..., None] * f_v + w_t.detach()[..., None] * f_t
        pos = torch.stack([w_v, w_t], dim=-1).detach().clamp_min(1e-6)
        aux = {"f_v": f_v, "f_t": f_t, "w_v": w_v, "w_t": w_t}
        if signals.items is not None:
            aux["items"] = signals.items
        return fused, pos / pos.sum(-1, keepdim=True), aux

    def task_loss(self, logits: torch.Tensor, target: torch.Tensor, out: PairOutput | AnswerOutput) -> torch.Tensor:
        aux = out.aux or {}
        loss = soft_cross_entropy(logits, target)
        if "f_v" not in aux:
            return loss
        items = flat_rows(aux["items"][..., None])[:, 0] if "items" in aux else None
        for m in ("v", "t"):
            ce = per_sample_ce(flat_rows(aux[f"f_{m}"]), target)
            loss = loss + ce.mean()
            history = self._update_history(m, items, ce.detach())
            loss = loss + self.rank_weight * rank_loss(flat_rows(aux[f"w_{m}"][..., None])[:, 0], history)
        return loss

    def _update_history(self, modality: str, items: torch.Tensor | None, losses: torch.Tensor) -> torch.Tensor:
        """The loss history of each row's item after adding this step's losses (the losses
        themselves when the rows have no item ids)."""
        if items is None:
            return losses
        size = int(items.max()) + 1
        total, count = self._history.get(modality, (losses.new_zeros(0), losses.new_zeros(0)))
        if len(total) < size:
            total = torch.cat([total, losses.new_zeros(size - len(total))])
            count = torch.cat([count, losses.new_zeros(size - len(count))])
        if self.history_momentum > 0:
            seen = count[items] > 0
            total[items] = torch.where(seen, self.history_momentum * total[items] + (1 - self.history_momentum) * losses, losses)
            count[items] = 1.0
        else:
            total.index_add_(0, items, losses)
            count.index_add_(0, items, torch.ones_like(losses))
        self._history[modality] = (total, count)
        return total[items] / count[items]

    def train(self, mode: bool = True) -> "QMF":
        if mode and not self.training:
            self._history = {}  # a new training run starts with no history
        return super().train(mode)


def rank_loss(confidence: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """QMF's ranking loss: each row against the next (rolled) row; the row with the *lower*
    loss history should have the higher confidence, by at least the histories' difference.

    Args:
        confidence: (B,) weights w_m (with gradient).
        history: (B,) loss histories (no gradient).
    """
    other_c, other_h = confidence.roll(-1), history.roll(-1)
    sign = torch.sign(other_h - history)  # +1: this row has the lower loss -> higher confidence
    margin = (other_h - history).abs()
    return F.relu(margin - sign * (confidence - other_c)).mean()
