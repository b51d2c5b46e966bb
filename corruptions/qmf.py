"""The QMF / PDF robustness protocol (Zhang et al., ICML 2023; Cao et al., ICML 2024) as two corruptions.

Their protocol (REFERENCES.md s3): at noise level ``eps``, 50% of the images get Gaussian noise
with standard deviation ``10 * eps`` on 0..255 pixels, and in 50% of the texts each word becomes
``"_"`` with probability ``0.1 * eps``. The papers report eps in {0, 5, 10} (sometimes 0..10).

Our mapping and fixes (documented choices):

* severity ``s`` -> ``eps = 2 * s``, i.e. eps 2, 4, 6, 8, 10: severity 5 is the papers' worst
  level, and eps 0 is the clean run every suite already has.
* Whether a sample is corrupted (probability 0.5) is decided by that sample's own generator
  (first draw), so the chosen half is fixed by (seed, sample id) and does not depend on batch
  order. Both reference repositories reseed numpy with 0 on every call, giving every image the
  same noise field; here each sample draws its own noise.
* Noise std ``10 * eps / 255`` on [0, 1] pixels, clipped at both ends (the repositories clip
  only above 255).
* A word is a whitespace token, replaced whole (punctuation included) by ``"_"``, as in the
  repositories' ``split(" ")``; the whitespace between words is kept.

``qmf_text_mask`` is not an MMRobustness corruption: its expected changed-word share is
``0.5 * 0.1 * eps = 0.1 * s`` (0.5 at severity 5), set by the protocol, not by the 0.05-per-level
rule of the text corruptions.
"""

from __future__ import annotations

import numpy as np

from .base import register_corruption
from .text.common import Tokens

QMF = "QMF (Zhang et al., ICML 2023) / PDF (Cao et al., ICML 2024) robustness protocol; eps = 2 * severity"
EPS = (2, 4, 6, 8, 10)
CORRUPT_PROBABILITY = 0.5
MASK = "_"


@register_corruption(
    "qmf_image_noise", modality="image", family="noise", severities=EPS, param_names=("eps",), reference=QMF,
)
def qmf_image_noise(img: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    """With probability 0.5, Gaussian noise of std ``10 * eps`` on 0..255 (``10 * eps / 255`` on [0, 1])."""
    if rng.random() >= CORRUPT_PROBABILITY:
        return img
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(10.0 * eps / 255.0)
    return np.clip(img + noise, 0.0, 1.0)


@register_corruption(
    "qmf_text_mask", modality="text", family="word", severities=EPS, param_names=("eps",), reference=QMF,
)
def qmf_text_mask(text: str, eps: float, rng: np.random.Generator) -> str:
    """With probability 0.5, each word becomes ``"_"`` with probability ``0.1 * eps``."""
    if rng.random() >= CORRUPT_PROBABILITY:
        return text
    tokens = Tokens(text)
    if not tokens.words:
        return text
    masked = rng.random(len(tokens)) < 0.1 * eps
    tokens.words = [MASK if m else w for w, m in zip(tokens.words, masked)]
    return str(tokens)
