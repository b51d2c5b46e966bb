"""PDF, predictive dynamic fusion (Cao et al., ICML 2024, "Predictive Dynamic Fusion";
REFERENCES.md s3), implemented from its definition.

* per-modality heads ``f_v(x_v)``, ``f_t(x_t)`` (two-layer MLPs to the classes) on the two
  streams of :mod:`.streams` (on VQA: the image's answer to the question, and the question
  alone);
* a confidence net per modality (``Linear -> GELU -> Linear -> sigmoid`` on the stream)
  predicts the head's true-class probability ``tcp_m`` (trained by mean squared error against
  the head's probability of the target, detached; with VQA's soft targets, the expected
  probability ``sum_k target_k p_k``);
* Co-Belief ``cb_v = tcp_v + log(tcp_t) / log(tcp_v * tcp_t)`` (and symmetrically ``cb_t``):
  a modality's own confidence plus how unsure the other one is relative to both; weights
  ``(w_v, w_t) = softmax(cb_v, cb_t)``; fused logits ``w_v * f_v + w_t * f_t``, the weights
  detached (they learn from their own target only);
* at test time (relative calibration): the modality whose prediction is closer to uniform
  (smaller mean ``|p - 1/K|``) has its weight multiplied by the ratio of the two distances
  (<= 1), and the weights are renormalised to sum to 1;
* loss: fused cross-entropy + each head's cross-entropy + each confidence net's squared error.

The weights are reported as ``(alpha_v, alpha_t)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import FUSIONS, AnswerOutput, PairOutput, PairSignals, soft_cross_entropy
from .qmf import per_sample_ce
from .streams import TwoStreamFusion, flat_rows, mlp

#: predicted TCPs are clamped into [EPS, 1 - EPS] before the logarithms of the Co-Belief
EPS = 1e-4


@FUSIONS.register("pdf")
class PDF(TwoStreamFusion):
    """Co-Belief-weighted sum of per-modality heads (PDF).

    Args:
        hidden: hidden width of each head and confidence net.
        calibrate: apply the test-time relative calibration.
    """

    network = "pdf"

    def __init__(self, image_width: int, text_width: int, hidden: int = 381, calibrate: bool = True,
                 **options: Any) -> None:
        super().__init__(image_width, text_width, hidden=hidden, calibrate=calibrate, **options)
        self.calibrate = calibrate
        self.conf_v = nn.Sequential(nn.Linear(self.width, self.hidden), nn.GELU(), nn.Linear(self.hidden, 1))
        self.conf_t = nn.Sequential(nn.Linear(self.width, self.hidden), nn.GELU(), nn.Linear(self.hidden, 1))

    def build_outputs(self, n: int) -> None:
        self.head_v = mlp(self.width, self.hidden, n)
        self.head_t = mlp(self.width, self.hidden, n)

    def fuse_streams(self, x_v: torch.Tensor, x_t: torch.Tensor,
                     signals: PairSignals) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        f_v, f_t = self.head_v(x_v), self.head_t(x_t)
        tcp_v = torch.sigmoid(self.conf_v(x_v))[..., 0]
        tcp_t = torch.sigmoid(self.conf_t(x_t))[..., 0]
        w = co_belief_weights(tcp_v.detach(), tcp_t.detach())
        if self.calibrate and not self.training:
            w = relative_calibration(w, f_v, f_t)
        fused = w[..., :1] * f_v + w[..., 1:] * f_t
        return fused, w, {"f_v": f_v, "f_t": f_t, "tcp_v": tcp_v, "tcp_t": tcp_t}

    def task_loss(self, logits: torch.Tensor, target: torch.Tensor, out: PairOutput | AnswerOutput) -> torch.Tensor:
        aux = out.aux or {}
        loss = soft_cross_entropy(logits, target)
        if "f_v" not in aux:
            return loss
        for m in ("v", "t"):
            f = flat_rows(aux[f"f_{m}"])
            loss = loss + per_sample_ce(f, target).mean()
            p = torch.softmax(f, dim=-1).detach()
            true_p = p.gather(1, target[:, None])[:, 0] if target.dtype in (torch.int64, torch.int32) else (p * target).sum(-1)
            loss = loss + F.mse_loss(flat_rows(aux[f"tcp_{m}"][..., None])[:, 0], true_p)
        return loss


def co_belief_weights(tcp_v: torch.Tensor, tcp_t: torch.Tensor) -> torch.Tensor:
    """(...,) predicted TCPs -> (..., 2) weights softmax(cb_v, cb_t), with
    ``cb_v = tcp_v + log(tcp_t) / log(tcp_v * tcp_t)`` and symmetrically ``cb_t``."""
    tv, tt = tcp_v.clamp(EPS, 1 - EPS), tcp_t.clamp(EPS, 1 - EPS)
    joint = torch.log(tv) + torch.log(tt)  # < 0
    cb = torch.stack([tv + torch.log(tt) / joint, tt + torch.log(tv) / joint], dim=-1)
    return torch.softmax(cb, dim=-1)


def relative_calibration(w: torch.Tensor, f_v: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """PDF's test-time calibration: the weight of the modality whose softmax is closer to
    uniform is scaled by the ratio of the two mean distances from uniform, then the weights
    are renormalised."""
    k = f_v.shape[-1]
    d_v = (torch.softmax(f_v, dim=-1) - 1.0 / k).abs().mean(-1)
    d_t = (torch.softmax(f_t, dim=-1) - 1.0 / k).abs().mean(-1)
    ratio = torch.minimum(d_v, d_t) / torch.maximum(d_v, d_t).clamp_min(1e-12)
    scale = torch.stack([torch.where(d_v < d_t, ratio, 1.0), torch.where(d_t < d_v, ratio, 1.0)], dim=-1)
    w = w * scale
    return w / w.sum(-1, keepdim=True).clamp_min(1e-12)
