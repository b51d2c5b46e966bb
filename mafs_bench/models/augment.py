"""Training-time degradations of the fusion heads, kept apart from the evaluation corruptions.

ImageNet-C's rule (REFERENCES.md s9): a benchmark's corruptions are not training data. A fusion
head that trained on ``gaussian_noise`` and is then evaluated on ``gaussian_noise`` measures
memory, not robustness; if it also shares the evaluation's random draws (same seed and sample
ids), training image *i* and test image *i* even get the identical noise field. So the fusion
heads degrade their inputs with the augmentations below, which:

* act on *frozen encoder features* (the pooled embedding and the tokens), not on pixels or
  words, so none of them equals a pixel- or word-level corruption of :mod:`corruptions`;
* are registered in their own registry, :data:`AUGMENTATIONS`, whose names never coincide with
  a corruption's (a test checks it);
* draw from a ``torch.Generator`` of their own seed namespace
  (:func:`augmentation_generator`), never from :func:`corruptions.sample_rng`.

Each augmentation takes a strength ``s`` in [0, 1] per sample (0 = untouched, 1 = no
information left) and the feature statistics of the training pool (:class:`FeatureStats`).
A recipe may *also* name registered corruptions (``fusion_train.corruptions``); that is
allowed, recorded in ``run.json``, and the leaderboard marks those cells "seen in training".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..registry import Registry


@dataclass(frozen=True)
class FeatureStats:
    """Statistics of one modality's clean training features.

    Attributes:
        emb_mean: (D,) mean of the L2-normalised embeddings.
        tok_mean: (W,) mean token feature.
        tok_std: (W,) per-channel standard deviation of the token features.
    """

    emb_mean: torch.Tensor
    tok_mean: torch.Tensor
    tok_std: torch.Tensor

    @classmethod
    def of(cls, emb: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> FeatureStats:
        """Statistics of (N, D) embeddings and (N, L, W) tokens (``mask`` (N, L): valid tokens)."""
        flat = tokens.reshape(-1, tokens.shape[-1]) if mask is None else tokens[mask]
        return cls(emb.mean(0), flat.mean(0), flat.std(0).clamp_min(1e-6))


#: fn(emb (B, D), tokens (B, L, W), strength (B,), stats, generator) -> (emb, tokens)
AugmentFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, FeatureStats, torch.Generator],
                     tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Augmentation:
    """A registered training-time degradation of one modality's features."""

    name: str
    modality: str  # "image" or "text"
    fn: AugmentFn
    doc: str


AUGMENTATIONS: Registry[Augmentation] = Registry("training augmentation")

#: noise norm, relative to the unit-norm embedding, at strength 1
NOISE_SCALE = 2.0


def register_augmentation(name: str, modality: str) -> Callable[[AugmentFn], AugmentFn]:
    """Decorator: register ``fn`` as augmentation ``name`` for ``modality`` ("image" / "text")."""
    if modality not in ("image", "text"):
        raise ValueError(f"augmentation modality must be 'image' or 'text', got {modality!r}")

    def add(fn: AugmentFn) -> AugmentFn:
        AUGMENTATIONS.add(name, Augmentation(name, modality, fn, (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return add


def _feature_noise(emb: torch.Tensor, tokens: torch.Tensor, s: torch.Tensor, stats: FeatureStats,
                   gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise on the features: token noise std ``2 s`` x the channel's std, embedding
    noise of norm about ``2 s`` before re-normalisation."""
    d = emb.shape[-1]
    noise_e = torch.randn(emb.shape, generator=gen) * (NOISE_SCALE / d**0.5)
    noise_t = torch.randn(tokens.shape, generator=gen) * stats.tok_std * NOISE_SCALE
    emb = F.normalize(emb + s[:, None] * noise_e.to(emb), dim=-1)
    return emb, tokens + s[:, None, None] * noise_t.to(tokens)


def _token_dropout(emb: torch.Tensor, tokens: torch.Tensor, s: torch.Tensor, stats: FeatureStats,
                   gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token replaced by the pool's mean token with probability ``s``; the embedding moved
    a share ``s`` of the way to the pool's mean embedding (an input that says nothing)."""
    drop = torch.rand(tokens.shape[:2], generator=gen).to(s.device) < s[:, None]
    tokens = torch.where(drop[..., None], stats.tok_mean.to(tokens), tokens)
    emb = F.normalize((1 - s[:, None]) * emb + s[:, None] * stats.emb_mean.to(emb), dim=-1)
    return emb, tokens


register_augmentation("image_feature_noise", "image")(_feature_noise)
register_augmentation("image_token_dropout", "image")(_token_dropout)
register_augmentation("text_feature_noise", "text")(_feature_noise)
register_augmentation("text_token_dropout", "text")(_token_dropout)

DEFAULT_AUGMENTATIONS: tuple[str, ...] = ("image_feature_noise", "image_token_dropout",
                                          "text_feature_noise", "text_token_dropout")


def augmentation_generator(seed: int) -> torch.Generator:
    """The generator of the fusion heads' training draws (batches, negatives, degradations).

    Seeded from ``("mafs-bench/fusion-train", seed)`` through SHA-256, a namespace that no
    corruption draw uses (those come from :func:`corruptions.sample_rng`)."""
    digest = hashlib.sha256(f"mafs-bench/fusion-train/{int(seed)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def check_augmentations(names: tuple[str, ...] | list[str]) -> None:
    """Raise ValueError naming the first unknown augmentation (with the known ones)."""
    for name in names:
        if name not in AUGMENTATIONS:
            raise ValueError(f"fusion_train.augmentations: {AUGMENTATIONS.unknown_message(name)}")
