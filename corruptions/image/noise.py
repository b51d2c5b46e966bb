"""Noise corruptions (ImageNet-C): additive, Poisson, salt-and-pepper and multiplicative noise.

Severity tables from Hendrycks & Dietterich (2019) / imagecorruptions 1.1.2 (REFERENCES.md s4).
Every pixel channel draws independently, as in the reference. Each corruption has a batch
version that draws each image's noise from that image's own generator, in the same order as the
per-sample function, so both paths give byte-identical results.

Speed notes. All draws read the generator's raw 64-bit words (``bit_generator.random_raw``,
2-3x cheaper than numpy's float samplers):

* normals (gaussian, speckle; snow and spatter too) are inverse-CDF lookups of 16-bit words in
  a table of the 65536 standard-normal quantiles at (i + 0.5) / 65536 (see
  :func:`standard_normal32`); gaussian and speckle noise stay float32 corruptions, computed op
  for op as :mod:`corruptions.torch_ops` computes them;
* impulse noise reads the same 32-bit words ``rng.random(shape, dtype=float32)`` would turn
  into uniforms and compares them as integers, and shot noise the same 64-bit words
  ``rng.random(shape)`` would use; so both draw exactly what :mod:`corruptions.torch_ops` draws
  (with numpy's samplers), and both run natively on uint8 images with results byte-identical
  to their float formulation (tested in ``tests/test_corruptions_engine.py``).
"""

from __future__ import annotations

import functools
import math
import statistics
import sys

import cv2
import numpy as np

from ..base import float_to_uint8, register_batch, register_corruption

IMAGENET_C = "Hendrycks & Dietterich 2019; imagecorruptions 1.1.2"


# --- normals --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def normal_quantiles16() -> np.ndarray:
    """float32 (65536,): the standard-normal quantile at (i + 0.5) / 65536, exactly antisymmetric."""
    nd = statistics.NormalDist()
    upper = np.array([nd.inv_cdf((i + 0.5) / 65536.0) for i in range(32768, 65536)], dtype=np.float32)
    table = np.concatenate([-upper[::-1], upper])
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=64)
def _scaled_quantiles16(std: float) -> np.ndarray:
    """``normal_quantiles16() * float32(std)``, elementwise in float32 (so equal to scaling the draws)."""
    table = normal_quantiles16() * np.float32(std)
    table.flags.writeable = False
    return table


def uniform32(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 uniforms in [0, 1) on the 2**-24 grid: what ``rng.random(shape, dtype=float32)`` returns
    for a fresh generator (the same 32-bit words, the top 24 bits of each), ~2x faster."""
    n = math.prod(shape)
    words = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    words >>= 8
    out = words.astype(np.float32)
    out *= np.float32(2.0**-24)
    return out.reshape(shape)


@functools.lru_cache(maxsize=16)
def _uniform_table16(low: float, high: float) -> np.ndarray:
    """float32 (65536,): the midpoints of 65536 equal cells of [low, high)."""
    table = (low + (np.arange(65536, dtype=np.float64) + 0.5) * ((high - low) / 65536.0)).astype(np.float32)
    table.flags.writeable = False
    return table


def uniform16(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """float32 uniforms on [low, high) at 16-bit resolution (cell midpoints): a quarter of the draws of float64."""
    words = _words16(rng, math.prod(shape))
    return lookup16(_uniform_table16(float(low), float(high)), words).reshape(shape)


def _words16(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform 16-bit words: the generator's next ceil(n / 4) raw 64-bit outputs, split."""
    return rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n]


def standard_normal32(rng: np.random.Generator, shape: tuple[int, ...], std: float = 1.0) -> np.ndarray:
    """Standard normal float32 samples (times ``float32(std)``) by inverse-CDF table lookup.

    Each sample is the quantile of a uniform 16-bit word: the normal distribution quantised to
    65536 equiprobable values (exact mean 0, std 0.99999, |z| <= 4.33; every tail mass is exact
    to 2e-5). ``standard_normal32(rng, s, std)`` equals ``standard_normal32(rng, s) *
    float32(std)`` element for element. 2-4x faster than a Box-Muller transform of numpy
    uniforms (one table lookup, a quarter of a raw word per sample). Shared with
    :mod:`corruptions.torch_ops`, which moves these same draws to the device.
    """
    n = math.prod(shape)
    table = normal_quantiles16() if std == 1.0 else _scaled_quantiles16(float(std))
    return lookup16(table, _words16(rng, n)).reshape(shape)


_LUT16 = [True]  # whether cv2.LUT takes 16-bit indices (OpenCV >= 5); cleared on the first failure


@functools.lru_cache(maxsize=8)
def _channel_offsets(h: int, w: int) -> np.ndarray:
    """uint16 HxWx3 holding 0, 256, 512 in channels 0, 1, 2."""
    offsets = np.empty((h, w * 3), dtype=np.uint16)
    offsets[:] = np.tile(np.array([0, 256, 512], dtype=np.uint16), w)
    offsets.flags.writeable = False
    return offsets.reshape(h, w, 3)


def lookup_per_channel(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> uint8: channel c of each pixel through ``lut[:, c]`` (``lut`` uint8 256x3).

    With OpenCV's 16-bit LUT, one lookup of ``c << 8 | x`` in a 768-entry table (~1.5x faster than
    ``cv2.LUT`` with a 3-channel table, which is the fallback).
    """
    h, w = img.shape[:2]
    if _LUT16[0] and img.size:
        table = np.zeros(65536, dtype=np.uint8)
        table[:768] = np.ascontiguousarray(lut.T).ravel()
        index = img.astype(np.uint16)
        index |= _channel_offsets(h, w)
        return lookup16(table, index)
    return cv2.LUT(img, np.ascontiguousarray(lut).reshape(256, 1, 3))


def lookup16(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[index]`` for a 65536-entry table and uint16 indices (OpenCV's 16-bit LUT when available, ~2.5x np.take)."""
    if _LUT16[0] and index.size:
        try:
            return cv2.LUT(index.reshape(1, -1), table).reshape(index.shape)
        except cv2.error:
            _LUT16[0] = False
    return np.take(table, index)


@register_corruption(
    "gaussian_noise", modality="image", family="noise",
    severities=(0.08, 0.12, 0.18, 0.26, 0.38), param_names=("std",), reference=IMAGENET_C,
)
def gaussian_noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive zero-mean Gaussian noise with standard deviation ``std`` (ImageNet-C gaussian_noise)."""
    noise = standard_normal32(rng, img.shape, std)  # = standard normal * float32(std)
    noise += img
    return noise


@register_batch("gaussian_noise")
def gaussian_noise_batch(imgs: np.ndarray, std: float, rngs: list[np.random.Generator]) -> np.ndarray:
    """Vectorised :func:`gaussian_noise`: each image draws from its own generator."""
    noise = np.stack([standard_normal32(r, imgs.shape[1:], std) for r in rngs])
    noise += imgs
    return noise


# --- shot (Poisson) noise --------------------------------------------------------------------
# Poisson(x * scale) / scale. numpy's Poisson sampler costs ~100 ns a draw, so we sample by
# inverse CDF instead: the engine's pixels lie on the 8-bit grid, so there are only 256 rates
# per severity, and a cached table of their CDFs (plus a guide table that jumps close to the
# answer) turns one uniform draw into an exact Poisson(rate) draw in one or two lookups.
# torch_ops reuses these tables with the same uniforms, so its shot noise is byte-identical.

_GUIDE_BINS = 512


@functools.lru_cache(maxsize=16)
def poisson_tables(scale: float) -> tuple[np.ndarray, np.ndarray, int]:
    """CDF and guide tables for Poisson(level / 255 * scale), level = 0..255.

    Returns:
        ``cdf`` float64 (256 * K,): row ``level`` holds P(N <= k) for k = 0..K-1, the last entry
        forced to 2.0 so every search ends inside the row; ``guide`` int32 (256 * _GUIDE_BINS,):
        for uniform bin j, the smallest k whose CDF exceeds j / _GUIDE_BINS; and K.
    """
    lam = np.arange(256, dtype=np.float64) / 255.0 * scale
    k_max = int(np.ceil(scale + 12.0 * np.sqrt(scale) + 20.0))
    ks = np.arange(k_max, dtype=np.float64)
    # log pmf = k log(lam) - lam - log(k!), computed stably; lam = 0 gives P(N = 0) = 1.
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(ks[1:]))])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = ks[None, :] * np.log(lam)[:, None] - lam[:, None] - log_fact[None, :]
    log_pmf[0] = -np.inf
    log_pmf[0, 0] = 0.0
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    cdf[:, -1] = 2.0
    edges = np.arange(_GUIDE_BINS, dtype=np.float64) / _GUIDE_BINS
    guide = np.stack([np.searchsorted(row, edges, side="right") for row in cdf]).astype(np.int32)
    return cdf.ravel(), guide.ravel(), k_max


def poisson_from_uniform(levels: np.ndarray, u: np.ndarray, scale: float) -> np.ndarray:
    """Exact Poisson(levels / 255 * scale) counts (float32) from uniforms ``u`` in [0, 1)."""
    cdf, guide, k_max = poisson_tables(float(scale))
    lv = levels.astype(np.int32, copy=False).ravel()
    uf = u.ravel()
    start = guide[lv * _GUIDE_BINS + (uf * _GUIDE_BINS).astype(np.int32)]
    base = lv * k_max
    pos = base + start
    active = np.flatnonzero(cdf[pos] <= uf)
    while active.size:  # walk up the (few) CDF steps left inside the guide bin
        pos[active] += 1
        active = active[cdf[pos[active]] <= uf[active]]
    return (pos - base).astype(np.float32).reshape(levels.shape)


def _levels(img: np.ndarray) -> np.ndarray:
    """The 8-bit level of each pixel (exact for the engine's inputs, which come from uint8)."""
    return np.rint(np.clip(img, 0.0, 1.0) * np.float32(255.0)).astype(np.int32)


# Native uint8 shot noise. The uniform u = (w >> 11) * 2**-53 of a raw 64-bit word w (numpy's
# float64 sampler) lies in bin w >> 52 of 4096 equal bins. For most (bin, level) pairs no CDF
# step falls inside the bin, so the count is known from the bin alone: a cached 1 MB table gives
# it; the 0.2-0.9% of pairs that straddle a step are resolved exactly with the CDF. The uint8
# output of a count k is the engine's rounding of float32(k) * float32(1 / scale), also a table,
# so the result is byte-identical to the float formulation (and to torch_ops). The table index
# bin << 8 | level is w >> 44 with its low byte overwritten by the level (two passes).

_FINE_BITS = 12
_LITTLE_ENDIAN = sys.byteorder == "little"


@functools.lru_cache(maxsize=16)
def _shot_tables(scale: float) -> tuple[np.ndarray, int, np.ndarray]:
    """(count table over bin << 8 | level, its 'ambiguous' marker, uint8 output of each count)."""
    cdf, _, k_max = poisson_tables(scale)
    rows = cdf.reshape(256, k_max)
    edges = np.arange((1 << _FINE_BITS) + 1, dtype=np.float64) / (1 << _FINE_BITS)
    dtype = np.uint8 if k_max < 255 else np.uint16
    marker = int(np.iinfo(dtype).max)
    table = np.empty((256, 1 << _FINE_BITS), dtype=dtype)
    for level, row in enumerate(rows):
        k_lo = np.searchsorted(row, edges[:-1], side="right")  # the count at u = bin start
        k_hi = np.searchsorted(row, edges[1:], side="left")  # the count just below the bin end
        table[level] = np.where(k_lo == k_hi, k_lo, marker)
    counts = np.arange(max(k_max, 256), dtype=np.float32) * np.float32(1.0 / scale)
    out_of_count = float_to_uint8(counts)
    table = np.ascontiguousarray(table.T)  # bin-major
    table.flags.writeable = False
    out_of_count.flags.writeable = False
    return table.ravel(), marker, out_of_count


def shot_noise_uint8(img: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 shot noise of a uint8 array of any shape (the draws of ``rng.random(img.shape)``)."""
    table, marker, out_of_count = _shot_tables(float(scale))
    levels = img.reshape(-1)
    raw = rng.bit_generator.random_raw(levels.size)
    index = raw >> np.uint64(64 - _FINE_BITS - 8)  # bin << 8 | 8 bits to overwrite
    if _LITTLE_ENDIAN:
        index.view(np.uint8)[::8] = levels
    else:
        index &= np.uint64(~0xFF & 0xFFFFFFFFFFFFFFFF)
        index |= levels
    counts = np.take(table, index.view(np.int64))
    unsure = np.flatnonzero(counts == marker)
    if unsure.size:
        u = (raw[unsure] >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
        counts[unsure] = poisson_from_uniform(levels[unsure], u, scale).astype(counts.dtype)
    if counts.dtype == np.uint8 and levels.size:
        return cv2.LUT(counts.reshape(1, -1), out_of_count[:256]).reshape(img.shape)
    return np.take(out_of_count, counts).reshape(img.shape)


@register_corruption(
    "shot_noise", modality="image", family="noise",
    severities=(60, 25, 12, 5, 3), param_names=("scale",), reference=IMAGENET_C, uint8=True,
)
def shot_noise(img: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise: Poisson(x * scale) / scale (ImageNet-C shot_noise); native uint8."""
    return shot_noise_uint8(img, scale, rng)



# --- salt and pepper, speckle -------------------------------------------------------------------


def _impulse_thresholds(amount: float) -> tuple[int, int]:
    """(A, B): ``u < float32(amount / 2)`` iff ``w >> 8 < A`` and ``u < float32(amount)`` iff ``w >> 8 < B``.

    ``u = (w >> 8) * 2**-24`` is numpy's float32 uniform of the 32-bit word ``w``.
    """
    half, amt = float(np.float32(amount / 2.0)), float(np.float32(amount))
    return math.ceil(half * 2.0**24), math.ceil(amt * 2.0**24)


def impulse_noise_uint8(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on a uint8 array of any shape, from the draws of ``rng.random(img.shape, float32)``."""
    n = img.size
    if n == 0:
        return img.copy()
    words = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    words >>= 8  # the 24 bits numpy's float32 uniform keeps; now they fit an int32
    salt_below, pepper_below = _impulse_thresholds(amount)
    u24 = words.view(np.int32).reshape(1, n)
    flat = img.reshape(1, n)
    salt = cv2.compare(u24, salt_below, cv2.CMP_LT)  # 255 where salt
    out = cv2.max(flat, salt)
    if pepper_below > salt_below:
        pepper = cv2.inRange(u24, salt_below, pepper_below - 1)  # 255 where pepper
        cv2.subtract(out, pepper, dst=out)  # saturating: 0 where pepper
    return out.reshape(img.shape)


@register_corruption(
    "impulse_noise", modality="image", family="noise",
    severities=(0.03, 0.06, 0.09, 0.17, 0.27), param_names=("amount",), reference=IMAGENET_C, uint8=True,
)
def impulse_noise(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: each channel value set to 255 or 0 with probability amount/2 each (ImageNet-C); native uint8."""
    return impulse_noise_uint8(img, amount, rng)



@register_corruption(
    "speckle_noise", modality="image", family="noise",
    severities=(0.15, 0.20, 0.35, 0.45, 0.60), param_names=("std",), reference=IMAGENET_C,
)
def speckle_noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative Gaussian noise x + x * N(0, std^2) (ImageNet-C speckle_noise)."""
    noise = standard_normal32(rng, img.shape, std)  # = standard normal * float32(std)
    noise *= img
    noise += img  # = img + img * (noise * std), in place
    return noise


@register_batch("speckle_noise")
def speckle_noise_batch(imgs: np.ndarray, std: float, rngs: list[np.random.Generator]) -> np.ndarray:
    """Vectorised :func:`speckle_noise`."""
    noise = np.stack([standard_normal32(r, imgs.shape[1:], std) for r in rngs])
    noise *= imgs
    noise += imgs
    return noise
