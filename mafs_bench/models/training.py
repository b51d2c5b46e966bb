"""Training the embedded dual encoder: contrastive (CLIP) training on the dataset's training split.

* Dual encoder: open_clip's ``ClipLoss`` on (image, one random caption of it) pairs from a fixed
  pool of training images, AdamW with warm-up and cosine decay; optionally (``token_alignment``
  > 0) plus FILIP's token-wise contrastive loss (Yao et al. 2021, arXiv 2111.07783,
  :class:`TokenAlignment`), which makes each caption word find its image patch. The ITC loss
  alone is solved on the embedded world by colours and sizes: its tokens then carry a shape
  at its place only weakly and its pooled states ignore position words, which caps VQA
  (``python benchmarks/encoder_binding.py``; ``benchmarks/RESULTS.md``).

The fusion heads train on its frozen features (:mod:`mafs_bench.models.fusion_training`). The two
live apart because the weights cache keys each kind by a hash of the code that trains it
(:mod:`mafs_bench.models.cache`): an edit to fusion training must not retrain the encoder.

Randomness comes from ``torch.Generator`` objects seeded from the config's seed; nothing touches
a global RNG (open_clip's initialisers draw from torch's default generator, which the backend
seeds first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from .encoder import DualEncoder
from .tokenizer import PAD, UNK

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Contrastive training of the dual encoder."""

    steps: int = 340
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 40
    #: "bf16" runs forward passes under bfloat16 autocast (about 1.3x faster on CPUs with AMX/AVX512-BF16)
    precision: str = "bf16"
    seed: int = 0
    #: weight of FILIP's token-wise contrastive loss added to the ITC loss (0 = ITC only, CLIP)
    token_alignment: float = 0.0

    def __post_init__(self) -> None:
        for field, low in (("steps", 1), ("batch_size", 2)):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < low:
                raise ValueError(f"encoder_train.{field} must be an integer >= {low}, got {getattr(self, field)!r}")
        if not isinstance(self.token_alignment, (int, float)) or not 0.0 <= self.token_alignment < math.inf:
            raise ValueError(f"encoder_train.token_alignment must be a number >= 0, got {self.token_alignment!r}")

    def as_dict(self) -> dict:
        return asdict(self)


class TokenAlignment(torch.nn.Module):
    """FILIP's fine-grained contrastive loss (Yao et al. 2021, arXiv 2111.07783, eq. 4-5, the
    text-to-image side): caption ``c`` matches image ``i`` by the mean, over ``c``'s word tokens,
    of each word's largest cosine with a token of ``i``, both through a linear projection;
    cross-entropy over the batch in both directions at a learned temperature.

    A training-only module: its projections are not part of the encoder (downstream heads read
    the encoder's own tokens). Initialised from ``generator`` (no global RNG).
    """

    def __init__(self, image_width: int, text_width: int, width: int, generator: torch.Generator) -> None:
        super().__init__()
        self.image = torch.nn.Linear(image_width, width)
        self.text = torch.nn.Linear(text_width, width)
        for layer in (self.image, self.text):
            bound = 1.0 / math.sqrt(layer.in_features)  # nn.Linear's default ranges
            torch.nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            torch.nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, P, W_img) image tokens, (B, L, W_txt) text tokens of the B matching captions and
        their (B, L) ids -> the loss (scalar). Only word tokens count (not pad/start/end/unknown)."""
        words = (ids > UNK).float()
        v = F.normalize(self.image(image_tokens), dim=-1)
        t = F.normalize(self.text(text_tokens), dim=-1)
        best = torch.einsum("clw,ipw->cilp", t, v).amax(-1)  # (captions, images, L)
        sim = (best * words[:, None]).sum(-1) / words.sum(-1, keepdim=True).clamp_min(1.0)
        logits = sim * self.log_scale.exp().clamp(max=100.0)
        target = torch.arange(len(sim), device=sim.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_encoder(model: DualEncoder, images: np.ndarray, captions: Sequence[Sequence[str]],
                  cfg: EncoderTrainConfig, progress: Progress | None = None) -> list[float]:
    """Train ``model`` contrastively on ``images`` (N,H,W,3 uint8) and their caption lists.

    Returns the loss per step.
    """
    if cfg.precision not in ("fp32", "bf16"):
        raise ValueError(f"encoder_train.precision must be 'fp32' or 'bf16', got {cfg.precision!r}")
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(images)
    per_image = torch.tensor([len(c) for c in captions])
    token_ids = [model.tokenizer(list(c)) for c in captions]
    loss_fn = ClipLoss()
    params = list(model.parameters())
    align = None
    if cfg.token_alignment:
        align = TokenAlignment(int(model.config["vision_cfg"]["width"]), int(model.config["text_cfg"]["width"]),
                               int(model.config["embed_dim"]), gen).to(model.mean.device)
        params += list(align.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr)
        idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
        pick = (torch.rand(len(idx), generator=gen) * per_image[idx]).long()
        ids = torch.stack([token_ids[i][j] for i, j in zip(idx.tolist(), pick.tolist())]).to(model.mean.device)
        with torch.autocast(model.mean.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            v, v_tokens = model.forward_images(model.preprocess(images[idx.numpy()]))
            t, t_tokens = model.forward_texts(ids)
            if align is not None:
                length = int((ids != PAD).sum(1).max())  # the batch's longest caption: padding adds nothing
                aligned = align(v_tokens.float(), t_tokens[:, :length].float(), ids[:, :length])
        loss = loss_fn(F.normalize(v.float(), dim=-1), F.normalize(t.float(), dim=-1), model.logit_scale)
        if align is not None:
            loss = loss + cfg.token_alignment * aligned
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.clip.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if progress:
            progress(step + 1, cfg.steps, losses[-1])
    model.eval()
    return losses
