"""Digital corruptions: ImageNet-C contrast, elastic transform, pixelate, JPEG and saturate, plus low resolution.

Severity tables from Hendrycks & Dietterich (2019) / imagecorruptions 1.1.2 (REFERENCES.md s4),
reimplemented with OpenCV. All but saturate run natively on uint8 (``uint8=True``): contrast is a
per-channel lookup table computed with the float formulation's exact float32 arithmetic (so the
bytes equal the float path's, and :mod:`corruptions.torch_ops`'); JPEG, pixelate, low resolution
and the elastic warp work on the 8-bit image directly, as the reference's PIL / OpenCV code does.

Size rules: pixelate and low_resolution scale by a factor, so they mean the same at any size.
elastic_transform follows imagecorruptions (not hendrycks' 244 px table): the random
displacement fields are uniform in +-0.005 * H, smoothed by a Gaussian of sigma 0.01 * (H, W),
then multiplied by alpha = 250 * (.05, .065, .085, .1, .12). Because the field's sigma grows
with the image as fast as its amplitude, the displacement is about the same number of pixels at
any size (std ~1-2.5 px), spread over distortions 1% of the image wide.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ..base import U8_TO_FLOAT, float_to_uint8, register_corruption, uint8_to_float
from .noise import lookup_per_channel, uniform16
from .weather import channel_max, channel_min

IMAGENET_C = "Hendrycks & Dietterich 2019; imagecorruptions 1.1.2"


def contrast_float(img: np.ndarray, factor: float) -> np.ndarray:
    """The float formulation of :func:`contrast` on float32 HxWx3 in [0, 1] (reference for tests)."""
    means = np.asarray(cv2.mean(img)[:3], dtype=np.float32)
    out = img - means
    out *= np.float32(factor)
    out += means
    return out


@register_corruption(
    "contrast", modality="image", family="digital",
    severities=(0.4, 0.3, 0.2, 0.1, 0.05), param_names=("factor",), reference=IMAGENET_C, uint8=True,
)
def contrast(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Low contrast: pull each channel toward its mean, (x - mean) * factor + mean (ImageNet-C contrast).

    Native uint8: the channel means are the float formulation's (float64 mean of the float32
    pixels), and each channel's 256 outputs are computed with its float32 operations, then
    applied as a lookup table: byte-identical to ``rint(clip(contrast_float(img / 255) * 255))``.
    """
    means = np.asarray(cv2.mean(uint8_to_float(img))[:3], dtype=np.float32)
    lut = U8_TO_FLOAT[:, None] - means
    lut *= np.float32(factor)
    lut += means
    return lookup_per_channel(img, float_to_uint8(lut))


@register_corruption(
    "saturate", modality="image", family="digital",
    severities=((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
    param_names=("saturation_scale", "saturation_shift"), reference=IMAGENET_C,
)
def saturate(img: np.ndarray, param: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Saturation change: HSV S -> clip(S * scale + shift, 0, 1) (ImageNet-C saturate).

    Severities 1-2 desaturate and 3-5 oversaturate, so the parameter is not monotone but the
    distance from the clean image grows. Closed form: with hue and value fixed, each channel is
    ``V - (V - c) * S' / S``; a gray pixel (S = 0, hue 0 by convention) becomes
    ``(V, V (1 - S'), V (1 - S'))``, as an HSV round trip gives.
    """
    scale, shift = param
    value = channel_max(img)
    chroma = value - channel_min(img)
    safe_v = np.where(value > 0, value, np.float32(1.0))
    sat = chroma / safe_v
    new_sat = np.clip(sat * np.float32(scale) + np.float32(shift), 0.0, 1.0)
    gray = chroma <= 0
    ratio = new_sat / np.where(gray, np.float32(1.0), sat)
    out = value - (value - img) * ratio
    if shift > 0 and gray.any():
        hue0 = np.concatenate([value, value * (1 - new_sat), value * (1 - new_sat)], axis=2)
        out = np.where(gray, hue0, out)
    return out


_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes straight to RGB


@register_corruption(
    "jpeg_compression", modality="image", family="digital",
    severities=(25, 18, 15, 10, 7), param_names=("quality",), reference=IMAGENET_C, uint8=True,
)
def jpeg_compression(img: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG round trip at ``quality`` (libjpeg via OpenCV, 4:2:0 chroma as Pillow's default) (ImageNet-C); native uint8."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    if _IMREAD_RGB is not None:
        return cv2.imdecode(buf, _IMREAD_RGB)
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def box_bounds(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's BOX-filter windows for resizing ``n_in`` pixels to ``n_out``: output ``j`` averages
    the input pixels ``bounds[j]:bounds[j + 1]`` (those whose centres lie in (j s, (j + 1) s], s = n_in / n_out).
    """
    scale = n_in / n_out
    bounds = np.array([int(j * scale + 0.5) for j in range(n_out + 1)], dtype=np.intp)
    bounds[-1] = n_in
    return bounds


@functools.lru_cache(maxsize=64)
def _pixelate_plan(h: int, w: int, small_h: int, small_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column window bounds and the float32 (small_h, small_w, 3) reciprocal window areas."""
    by, bx = box_bounds(h, small_h), box_bounds(w, small_w)
    area = np.diff(by)[:, None] * np.diff(bx)[None, :]
    recip = np.repeat((1.0 / np.maximum(area, 1)).astype(np.float32)[:, :, None], 3, axis=2)
    for a in (by, bx, recip):
        a.flags.writeable = False
    return by, bx, recip


@register_corruption(
    "pixelate", modality="image", family="digital",
    severities=(0.6, 0.5, 0.4, 0.3, 0.25), param_names=("resize_factor",), reference=IMAGENET_C, uint8=True,
)
def pixelate(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Pixelation: box-downsample to ``factor`` of the size, nearest-neighbour back up (ImageNet-C pixelate); native uint8.

    As the reference (Pillow's BOX then NEAREST resize): each small pixel is the mean of the
    whole input pixels whose centres fall in it, computed exactly from the integral image (one
    rounding, where Pillow rounds after each axis), then enlarged by nearest neighbour.
    """
    h, w = img.shape[:2]
    small_h, small_w = max(1, int(h * factor)), max(1, int(w * factor))
    by, bx, recip = _pixelate_plan(h, w, small_h, small_w)
    exact32 = 255 * (h + 1) * (w + 1) < 2**31
    integral = cv2.integral(img, sdepth=cv2.CV_32S if exact32 else cv2.CV_64F)
    corners = np.take(np.take(integral, by, axis=0), bx, axis=1)
    sums = np.diff(np.diff(corners, axis=0), axis=1).astype(np.float32)
    sums *= recip
    small = cv2.convertScaleAbs(sums)  # rounds; means lie in [0, 255]
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


@register_corruption(
    "low_resolution", modality="image", family="digital",
    severities=(2, 3, 4, 6, 8), param_names=("downsample_factor",),
    reference="mafs-bench: area downsample by the factor, bilinear upsample back", uint8=True,
)
def low_resolution(img: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """Low resolution: area-downsample by ``factor`` (1/2 .. 1/8 of the side), bilinear upsample back (mafs-bench); native uint8."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=16)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """float32 HxWx2 of (x, y) pixel coordinates (an identity map for ``cv2.remap``)."""
    grid = np.empty((h, w, 2), dtype=np.float32)
    grid[:, :, 0] = np.arange(w, dtype=np.float32)[None, :]
    grid[:, :, 1] = np.arange(h, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


@register_corruption(
    "elastic_transform", modality="image", family="digital",
    severities=(250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12),
    param_names=("alpha",), reference=IMAGENET_C + " (size rule: sigma = 0.01 * size)", uint8=True,
)
def elastic_transform(img: np.ndarray, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Elastic warp by a smoothed random displacement field (ImageNet-C elastic_transform, imagecorruptions' size rule); native uint8."""
    h, w = img.shape[:2]
    max_d = 0.005 * h
    sy, sx = 0.01 * h, 0.01 * w
    # (dx, dy) uniform in [-max_d, max_d) (16-bit resolution: the blur averages ~100 of them),
    # as one 2-channel field.
    fields = uniform16(rng, (h, w, 2), -max_d, max_d)
    # scikit-image gaussian(mode='reflect', truncate=3), separable with per-axis sigma.
    kx, ky = 2 * int(3 * sx + 0.5) + 1, 2 * int(3 * sy + 0.5) + 1
    shift = cv2.GaussianBlur(fields, (kx, ky), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)
    shift *= np.float32(alpha)
    shift += _pixel_grid(h, w)
    return cv2.remap(img, shift, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
