"""Digital corruptions: ImageNet-C contrast, elastic transform, pixelate, JPEG and saturate, plus low resolution.

Severity tables from Hendrycks & Dietterich (2019) / imagecorruptions 1.1.2 (REFERENCES.md s4),
reimplemented with OpenCV on float32 images.

Size rules: pixelate and low_resolution scale by a factor, so they mean the same at any size.
elastic_transform follows imagecorruptions (not hendrycks' 244 px table): the random
displacement fields are uniform in +-0.005 * H, smoothed by a Gaussian of sigma 0.01 * (H, W),
then multiplied by alpha = 250 * (.05, .065, .085, .1, .12). Because the field's sigma grows
with the image as fast as its amplitude, the displacement is about the same number of pixels at
any size (std ~1-2.5 px), spread over distortions 1% of the image wide.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..base import register_corruption
from .weather import channel_max, channel_min

IMAGENET_C = "Hendrycks & Dietterich 2019; imagecorruptions 1.1.2"


@register_corruption(
    "contrast", modality="image", family="digital",
    severities=(0.4, 0.3, 0.2, 0.1, 0.05), param_names=("factor",), reference=IMAGENET_C,
)
def contrast(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Low contrast: pull each channel toward its mean, (x - mean) * factor + mean (ImageNet-C contrast)."""
    means = np.asarray(cv2.mean(img)[:3], dtype=np.float32)
    out = img - means
    out *= np.float32(factor)
    out += means
    return out


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


@register_corruption(
    "jpeg_compression", modality="image", family="digital",
    severities=(25, 18, 15, 10, 7), param_names=("quality",), reference=IMAGENET_C,
)
def jpeg_compression(img: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG round trip at ``quality`` (libjpeg via OpenCV, 4:2:0 chroma as Pillow's default) (ImageNet-C)."""
    # convertScaleAbs rounds and saturates to uint8 in one pass.
    bgr = cv2.cvtColor(cv2.convertScaleAbs(img, alpha=255.0), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb *= np.float32(1.0 / 255.0)
    return rgb


@register_corruption(
    "pixelate", modality="image", family="digital",
    severities=(0.6, 0.5, 0.4, 0.3, 0.25), param_names=("resize_factor",), reference=IMAGENET_C,
)
def pixelate(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Pixelation: box-downsample to ``factor`` of the size, nearest-neighbour back up (ImageNet-C pixelate)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, int(w * factor)), max(1, int(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


@register_corruption(
    "low_resolution", modality="image", family="digital",
    severities=(2, 3, 4, 6, 8), param_names=("downsample_factor",),
    reference="mafs-bench: area downsample by the factor, bilinear upsample back",
)
def low_resolution(img: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """Low resolution: area-downsample by ``factor`` (1/2 .. 1/8 of the side), bilinear upsample back (mafs-bench)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@register_corruption(
    "elastic_transform", modality="image", family="digital",
    severities=(250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12),
    param_names=("alpha",), reference=IMAGENET_C + " (size rule: sigma = 0.01 * size)",
)
def elastic_transform(img: np.ndarray, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Elastic warp by a smoothed random displacement field (ImageNet-C elastic_transform, imagecorruptions' size rule)."""
    h, w = img.shape[:2]
    max_d = 0.005 * h
    sy, sx = 0.01 * h, 0.01 * w
    fields = rng.random((2, h, w), dtype=np.float32)  # uniform in [-max_d, max_d)
    fields *= np.float32(2.0 * max_d)
    fields -= np.float32(max_d)
    # scikit-image gaussian(mode='reflect', truncate=3), separable with per-axis sigma.
    kx, ky = 2 * int(3 * sx + 0.5) + 1, 2 * int(3 * sy + 0.5) + 1
    dx = cv2.GaussianBlur(fields[0], (kx, ky), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT) * np.float32(alpha)
    dy = cv2.GaussianBlur(fields[1], (kx, ky), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT) * np.float32(alpha)
    grid_x = np.arange(w, dtype=np.float32)[None, :] + dx
    grid_y = np.arange(h, dtype=np.float32)[:, None] + dy
    return cv2.remap(img, grid_x, grid_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

