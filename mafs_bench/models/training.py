"""Training the embedded dual encoder: contrastive (CLIP) training on the dataset's training split.

* Dual encoder: open_clip's ``ClipLoss`` on (image, one random caption of it) pairs from a fixed
  pool of training images, AdamW with warm-up and cosine decay.

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

    def __post_init__(self) -> None:
        for field, low in (("steps", 1), ("batch_size", 2)):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < low:
                raise ValueError(f"encoder_train.{field} must be an integer >= {low}, got {getattr(self, field)!r}")

    def as_dict(self) -> dict:
        return asdict(self)


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
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr)
        idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
        pick = (torch.rand(len(idx), generator=gen) * per_image[idx]).long()
        ids = torch.stack([token_ids[i][j] for i, j in zip(idx.tolist(), pick.tolist())])
        with torch.autocast(model.mean.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            v, _ = model.forward_images(model.preprocess(images[idx.numpy()]))
            t, _ = model.forward_texts(ids.to(model.mean.device))
        loss = loss_fn(F.normalize(v.float(), dim=-1), F.normalize(t.float(), dim=-1), model.logit_scale)
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
