"""Occlusion and missing-image corruptions (mafs-bench's own, in the spirit of MMRobustness).

* ``occlusion``: 1-4 random rectangles (aspect ratio 1:2 to 2:1), each filled with 50% gray or a
  random colour, until a severity-scaled share of the image area (.1 .. .5) is covered. Patches
  may overlap; each new one is sized to at most the area still to cover, so the covered share
  reaches the target (to within a few pixels of rounding) and never overshoots by more.
* ``missing_image``: the whole image replaced by a constant image of the ImageNet mean colour
  (RGB .485, .456, .406), the usual "no image" input for a model normalised with ImageNet
  statistics. It is the same at every severity (a missing image cannot be more missing); the
  five-entry table just repeats the fill colour. Its text counterpart differs on purpose:
  ``missing_text`` drops whole captions at a rate of 0.05 x severity, because every text
  corruption follows the MMRobustness share rule (see :mod:`corruptions.text.missing`); no such
  rule exists for images, and the issue defines ``missing_image`` as the replaced image.
"""

from __future__ import annotations

import math

import numpy as np

from ..base import float_to_uint8, register_corruption

IMAGENET_MEAN = (0.485, 0.456, 0.406)
_MAX_PATCHES = 32


def occlusion_mask_and_fill(h: int, w: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rectangles covering ``share`` of an HxW image: (int32 HxW patch index map, -1 = clear; fill colours Px3)."""
    index = np.full((h, w), -1, dtype=np.int32)
    target = share * h * w
    n_patches = int(rng.integers(1, 5))
    patch_area = target / n_patches
    colours = []
    covered = 0
    while covered < target - 0.5 and len(colours) < _MAX_PATCHES:
        area = min(patch_area, target - covered)
        aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))  # width / height
        ph = int(min(h, max(1, round(math.sqrt(area / aspect)))))
        pw = int(min(w, max(1, round(area / ph))))
        y0 = int(rng.integers(0, h - ph + 1))
        x0 = int(rng.integers(0, w - pw + 1))
        gray = rng.random() < 0.5
        colour = rng.random(3)
        colours.append(np.full(3, 0.5) if gray else colour)
        index[y0 : y0 + ph, x0 : x0 + pw] = len(colours) - 1
        covered = int(np.count_nonzero(index >= 0))
    return index, np.asarray(colours, dtype=np.float32).reshape(-1, 3)


@register_corruption(
    "occlusion", modality="image", family="occlusion",
    severities=(0.1, 0.2, 0.3, 0.4, 0.5), param_names=("area_share",),
    reference="mafs-bench: random rectangular patches (cf. MMRobustness / cutout)", uint8=True,
)
def occlusion(img: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Occlusion: random gray or coloured rectangles covering ``share`` of the image area (mafs-bench); native uint8."""
    h, w = img.shape[:2]
    index, colours = occlusion_mask_and_fill(h, w, share, rng)
    covered = index >= 0
    out = img.copy()
    out[covered] = float_to_uint8(colours)[index[covered]]
    return out


@register_corruption(
    "missing_image", modality="image", family="missing",
    severities=(IMAGENET_MEAN,) * 5, param_names=("fill_rgb",),
    reference="mafs-bench: constant ImageNet-mean image, same at every severity", uint8=True,
)
def missing_image(img: np.ndarray, fill: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Missing image: every pixel replaced by the ImageNet mean colour, at all severities (mafs-bench); native uint8."""
    h, w = img.shape[:2]
    out = np.empty((h, w * 3), dtype=np.uint8)
    out[:] = np.tile(float_to_uint8(np.asarray(fill, dtype=np.float32)), w)  # row copies: fast
    return out.reshape(img.shape)
