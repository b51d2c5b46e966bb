"""Noise corruptions (ImageNet-C): additive, Poisson, salt-and-pepper and multiplicative noise.

Severity tables from Hendrycks & Dietterich (2019) / imagecorruptions 1.1.2 (REFERENCES.md s4).
Every pixel channel draws independently, as in the reference. Each corruption has a vectorised
batch version that draws each image's noise from that image's own generator, in the same order
as the per-sample function, so both paths give byte-identical results.
"""

from __future__ import annotations

import functools

import numpy as np

from ..base import register_batch, register_corruption

IMAGENET_C = "Hendrycks & Dietterich 2019; imagecorruptions 1.1.2"
_TWO_PI = np.float32(2.0 * np.pi)


def standard_normal32(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 samples by the Box-Muller transform of ``rng``'s uniforms.

    Exactly Gaussian up to float32 resolution (uniforms on a 2^-24 grid cap |z| at 5.8, a tail
    of probability 1e-8), and ~3x faster than numpy's float32 ziggurat on our machines. Shared
    with :mod:`corruptions.torch_ops`, which moves these same draws to the device.
    """
    n = int(np.prod(shape))
    half = (n + 1) // 2
    u = rng.random((2, half), dtype=np.float32)
    radius, angle = u[0], u[1]  # computed in place: fewer big temporaries, fewer page faults
    np.subtract(np.float32(1.0), radius, out=radius)  # 1 - u in (0, 1], exact in float32
    np.log(radius, out=radius)
    radius *= np.float32(-2.0)
    np.sqrt(radius, out=radius)
    angle *= _TWO_PI
    out = np.empty(2 * half, dtype=np.float32)
    np.cos(angle, out=out[:half])
    np.sin(angle, out=out[half:])
    out[:half] *= radius
    out[half:] *= radius
    return out[:n].reshape(shape)


@register_corruption(
    "gaussian_noise", modality="image", family="noise",
    severities=(0.08, 0.12, 0.18, 0.26, 0.38), param_names=("std",), reference=IMAGENET_C,
)
def gaussian_noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive zero-mean Gaussian noise with standard deviation ``std`` (ImageNet-C gaussian_noise)."""
    noise = standard_normal32(rng, img.shape)
    noise *= np.float32(std)
    noise += img  # = img + noise * std, in place
    return noise


@register_batch("gaussian_noise")
def gaussian_noise_batch(imgs: np.ndarray, std: float, rngs: list[np.random.Generator]) -> np.ndarray:
    """Vectorised :func:`gaussian_noise`: each image draws from its own generator."""
    noise = np.stack([standard_normal32(r, imgs.shape[1:]) for r in rngs])
    return imgs + noise * np.float32(std)


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


@register_corruption(
    "shot_noise", modality="image", family="noise",
    severities=(60, 25, 12, 5, 3), param_names=("scale",), reference=IMAGENET_C,
)
def shot_noise(img: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise: Poisson(x * scale) / scale (ImageNet-C shot_noise)."""
    u = rng.random(img.shape, dtype=np.float64)
    return poisson_from_uniform(_levels(img), u, scale) * np.float32(1.0 / scale)


@register_batch("shot_noise")
def shot_noise_batch(imgs: np.ndarray, scale: float, rngs: list[np.random.Generator]) -> np.ndarray:
    """Vectorised :func:`shot_noise`."""
    u = np.stack([r.random(imgs.shape[1:], dtype=np.float64) for r in rngs])
    return poisson_from_uniform(_levels(imgs), u, scale) * np.float32(1.0 / scale)


# --- salt and pepper, speckle -------------------------------------------------------------------


def _salt_pepper(img: np.ndarray, amount: float, u: np.ndarray) -> np.ndarray:
    """Salt where u < amount / 2, pepper where amount / 2 <= u < amount."""
    half = np.float32(amount / 2.0)
    out = img.copy()
    np.copyto(out, np.float32(1.0), where=u < half)
    np.copyto(out, np.float32(0.0), where=(u >= half) & (u < np.float32(amount)))
    return out


@register_corruption(
    "impulse_noise", modality="image", family="noise",
    severities=(0.03, 0.06, 0.09, 0.17, 0.27), param_names=("amount",), reference=IMAGENET_C,
)
def impulse_noise(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: each channel value set to 1 or 0 with probability amount/2 each (ImageNet-C)."""
    return _salt_pepper(img, amount, rng.random(img.shape, dtype=np.float32))


@register_batch("impulse_noise")
def impulse_noise_batch(imgs: np.ndarray, amount: float, rngs: list[np.random.Generator]) -> np.ndarray:
    """Vectorised :func:`impulse_noise`."""
    u = np.stack([r.random(imgs.shape[1:], dtype=np.float32) for r in rngs])
    return _salt_pepper(imgs, amount, u)


@register_corruption(
    "speckle_noise", modality="image", family="noise",
    severities=(0.15, 0.20, 0.35, 0.45, 0.60), param_names=("std",), reference=IMAGENET_C,
)
def speckle_noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative Gaussian noise x + x * N(0, std^2) (ImageNet-C speckle_noise)."""
    noise = standard_normal32(rng, img.shape)
    noise *= np.float32(std)
    noise *= img
    noise += img  # = img + img * (noise * std), in place
    return noise


@register_batch("speckle_noise")
def speckle_noise_batch(imgs: np.ndarray, std: float, rngs: list[np.random.Generator]) -> np.ndarray:
    """Vectorised :func:`speckle_noise`."""
    noise = np.stack([standard_normal32(r, imgs.shape[1:]) for r in rngs])
    return imgs + imgs * (noise * np.float32(std))
