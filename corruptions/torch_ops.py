"""Torch path for the pointwise and blur image corruptions, for runners that keep images on a GPU.

Not imported by :mod:`corruptions` (which never imports torch); import it explicitly::

    from corruptions import torch_ops
    out = torch_ops.apply_torch("gaussian_noise", images, 3, seed=0, sample_ids=ids)

``images`` is an NxCxHxW float tensor in [0, 1] (C = 3, or 1 for grayscale, handled like the
numpy engine: replicated to RGB, corrupted, converted back with BT.601 luma) on any device. The
result is clamped to [0, 1], on the same device and dtype.

Randomness and equality with the numpy path (``corruptions.apply``):

* Every random draw comes from the same per-sample numpy generator
  ``sample_rng(seed, sample_id, name, severity)`` (severity 0 for a ``shared_draws`` corruption) and in the same order as the numpy function,
  then the draws (noise fields, uniforms, the motion-blur angle) are moved to the device. So
  the noise is the *same* noise, not just the same distribution.
* Pointwise corruptions (gaussian, shot, impulse and speckle noise, brightness, contrast,
  saturate) repeat the numpy arithmetic op for op in float32 (shot noise with the same
  inverse-CDF tables), so after the engine's ``rint(clip(x * 255))`` they are byte-identical
  to the numpy path for inputs ``uint8 * float32(1 / 255)`` (what the engine feeds its numpy
  functions). Contrast's channel means are float64 sums in both paths, in a different order.
* Blurs (gaussian, defocus, motion) are convolutions with the very same kernels and border
  rules as the OpenCV path, but OpenCV sums in another order (and uses a DFT for large
  kernels), so results agree to float rounding: at most 1 level in 255 after rounding, with
  the vast majority of values identical (tested in ``tests/test_corruptions_image.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import get
from .base import BT601_LUMA, check_severity
from .image import blur as _blur
from .image import noise as _noise
from .rng import content_id, sample_rng

_Op = Callable[[torch.Tensor, object, list[np.random.Generator]], torch.Tensor]
_OPS: dict[str, _Op] = {}


def _op(name: str) -> Callable[[_Op], _Op]:
    def add(fn: _Op) -> _Op:
        _OPS[name] = fn
        return fn

    return add


def supported() -> list[str]:
    """Corruption names :func:`apply_torch` implements."""
    return list(_OPS)


def apply_torch(
    name: str,
    images: torch.Tensor,
    severity: int,
    seed: int = 0,
    sample_ids: Sequence[int] | None = None,
) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` to a batch of images on their device.

    Args:
        name: one of :func:`supported`.
        images: NxCxHxW float tensor in [0, 1], C = 3 (RGB) or 1.
        severity: 1..5.
        seed: the run's seed.
        sample_ids: each image's stable id, as for ``corruptions.apply_batch``. Omitted (None):
            :func:`content_ids`, derived from each image's content like the numpy engine's
            default, so different images get independent draws (a default of 0..N-1 gave two
            batches identical noise position by position) and an image made from uint8 pixels
            gets the draws ``corruptions.apply_batch`` gives those pixels without ids. Costs a
            copy of the batch to the CPU: runners should pass their dataset's ids.

    Returns:
        The corrupted batch, clamped to [0, 1], same shape, dtype and device. An empty batch
        or images with no pixels come back as an unchanged copy.
    """
    if name not in _OPS:
        spec = get(name)  # raises the registry's "did you mean" error for unknown names
        raise ValueError(f"corruption {spec.name!r} has no torch implementation; supported: {', '.join(_OPS)}")
    severity = check_severity(severity)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be NxCxHxW with C = 1 or 3, got shape {tuple(images.shape)}")
    n = images.shape[0]
    ids = content_ids(images) if sample_ids is None else [int(i) for i in sample_ids]
    if len(ids) != n:
        raise ValueError(f"sample_ids has {len(ids)} entries for a batch of {n}")
    if images.numel() == 0:
        return images.clone()
    rngs = [sample_rng(seed, i, name, get(name).draw_key(severity)) for i in ids]
    x = images.to(torch.float32)
    gray = x.shape[1] == 1
    if gray:
        x = x.expand(-1, 3, -1, -1)
    with torch.no_grad():
        out = _OPS[name](x.contiguous(), get(name).param(severity), rngs).clamp_(0.0, 1.0)
        if gray:
            luma = torch.as_tensor(BT601_LUMA, device=out.device).view(1, 3, 1, 1)
            out = (out * luma).sum(dim=1, keepdim=True)
    return out.to(images.dtype)


def content_ids(images: torch.Tensor) -> list[int]:
    """Default sample ids of an NxCxHxW batch in [0, 1]: ``content_id`` of each image as uint8 HxWxC.

    Each image is quantised the way the engine rounds (``rint(clip(x, 0, 1) * 255)``) and laid
    out HxWxC (HxWx1 for grayscale), so a tensor made from uint8 pixels as ``pixels * (1 / 255)``
    gets the ids ``corruptions.apply_batch`` derives from those pixels (an RGB image exactly as
    an HxWx3 array). Float images off the 1/255 grid that round to the same pixels share an id.
    """
    x = images.detach().to(device="cpu", dtype=torch.float32).permute(0, 2, 3, 1).numpy()
    pixels = np.rint(np.clip(x * np.float32(255.0), 0.0, 255.0)).astype(np.uint8)
    return [content_id(img) for img in pixels]


def _f32(value: float) -> torch.Tensor:
    """A 0-d float32 tensor holding ``np.float32(value)`` (the numpy path's constants)."""
    return torch.tensor(np.float32(value))


def _stack(fields: list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
    """Per-sample HxWx3 numpy draws -> Nx3xHxW tensor on ``like``'s device."""
    return torch.from_numpy(np.stack(fields)).permute(0, 3, 1, 2).to(like.device)


def _hw3(x: torch.Tensor) -> tuple[int, int, int]:
    return (x.shape[2], x.shape[3], 3)


# --- noise ----------------------------------------------------------------------------------------


@_op("gaussian_noise")
def _gaussian_noise(x: torch.Tensor, std: float, rngs: list[np.random.Generator]) -> torch.Tensor:
    noise = _stack([_noise.standard_normal32(r, _hw3(x)) for r in rngs], x)
    return x + noise * _f32(std).to(x.device)


@_op("speckle_noise")
def _speckle_noise(x: torch.Tensor, std: float, rngs: list[np.random.Generator]) -> torch.Tensor:
    noise = _stack([_noise.standard_normal32(r, _hw3(x)) for r in rngs], x)
    return x + x * (noise * _f32(std).to(x.device))


@_op("impulse_noise")
def _impulse_noise(x: torch.Tensor, amount: float, rngs: list[np.random.Generator]) -> torch.Tensor:
    u = _stack([r.random(_hw3(x), dtype=np.float32) for r in rngs], x)
    half, amt = _f32(amount / 2.0).to(x.device), _f32(amount).to(x.device)
    out = torch.where(u < half, torch.ones_like(x), x)
    return torch.where((u >= half) & (u < amt), torch.zeros_like(x), out)


@_op("shot_noise")
def _shot_noise(x: torch.Tensor, scale: float, rngs: list[np.random.Generator]) -> torch.Tensor:
    u = _stack([r.random(_hw3(x), dtype=np.float64) for r in rngs], x)
    cdf_np, guide_np, k_max = _noise.poisson_tables(float(scale))
    cdf = torch.from_numpy(cdf_np).to(x.device)
    guide = torch.from_numpy(guide_np).to(device=x.device, dtype=torch.int64)
    levels = torch.round(x.clamp(0.0, 1.0) * _f32(255.0).to(x.device)).to(torch.int64).reshape(-1)
    uf = u.reshape(-1)
    bins = (uf * _noise._GUIDE_BINS).to(torch.int64)  # same truncation as numpy's astype(int32)
    base = levels * k_max
    pos = base + guide[levels * _noise._GUIDE_BINS + bins]
    active = torch.nonzero(cdf[pos] <= uf).reshape(-1)
    while active.numel():
        pos[active] += 1
        active = active[cdf[pos[active]] <= uf[active]]
    counts = (pos - base).to(torch.float32).reshape(x.shape)
    return counts * _f32(1.0 / scale).to(x.device)


# --- colour -------------------------------------------------------------------------------------


@_op("brightness")
def _brightness(x: torch.Tensor, shift: float, rngs: list[np.random.Generator]) -> torch.Tensor:
    value = x.amax(dim=1, keepdim=True)
    new_value = torch.minimum(value + _f32(shift).to(x.device), torch.ones_like(value))
    safe = torch.where(value > 0, value, torch.ones_like(value))
    return torch.where(value > 0, x * (new_value / safe), new_value.expand_as(x))


@_op("contrast")
def _contrast(x: torch.Tensor, factor: float, rngs: list[np.random.Generator]) -> torch.Tensor:
    means = x.to(torch.float64).mean(dim=(2, 3), keepdim=True).to(torch.float32)
    return (x - means) * _f32(factor).to(x.device) + means


@_op("saturate")
def _saturate(x: torch.Tensor, param: tuple[float, float], rngs: list[np.random.Generator]) -> torch.Tensor:
    scale, shift = param
    value = x.amax(dim=1, keepdim=True)
    chroma = value - x.amin(dim=1, keepdim=True)
    one = torch.ones_like(value)
    sat = chroma / torch.where(value > 0, value, one)
    new_sat = (sat * _f32(scale).to(x.device) + _f32(shift).to(x.device)).clamp(0.0, 1.0)
    gray = chroma <= 0
    out = value - (value - x) * (new_sat / torch.where(gray, one, sat))
    if shift > 0:
        hue0 = torch.cat([value, value * (1 - new_sat), value * (1 - new_sat)], dim=1)
        out = torch.where(gray, hue0, out)
    return out


# --- blur -------------------------------------------------------------------------------------------


def _reflect101_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Source indices of a side of length ``n`` padded by ``before`` / ``after`` cells, OpenCV's
    BORDER_REFLECT_101 (``gfedcb|abcdefgh|gfedcba``) at any pad size, as ``cv2.borderInterpolate``:
    torch's 'reflect' padding refuses pads >= the side (images smaller than the kernel)."""
    i = torch.arange(-before, n + after, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * n - 2
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def _pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int, mode: str) -> torch.Tensor:
    """``F.pad`` with ``mode`` 'replicate', or 'reflect' (OpenCV's reflect-101) at any pad size."""
    if mode != "reflect":
        return F.pad(x, (left, right, top, bottom), mode=mode)
    rows = _reflect101_index(x.shape[2], top, bottom, x.device)
    cols = _reflect101_index(x.shape[3], left, right, x.device)
    return x.index_select(2, rows).index_select(3, cols)


def _correlate(x: torch.Tensor, kernel: np.ndarray, anchor: tuple[int, int], mode: str) -> torch.Tensor:
    """cv2.filter2D semantics: correlation with ``kernel`` anchored at (x, y), border ``mode``."""
    kh, kw = kernel.shape
    ax, ay = anchor
    padded = _pad(x, ax, kw - 1 - ax, ay, kh - 1 - ay, mode)
    weight = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32)).to(x.device)
    weight = weight.view(1, 1, kh, kw).expand(x.shape[1], 1, kh, kw)
    return F.conv2d(padded, weight, groups=x.shape[1])


@_op("gaussian_blur")
def _gaussian_blur(x: torch.Tensor, sigma: float, rngs: list[np.random.Generator]) -> torch.Tensor:
    radius = int(4.0 * sigma + 0.5)
    taps = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_32F).reshape(-1)
    rows = _correlate(x, taps[None, :], (radius, 0), "replicate")
    return _correlate(rows, taps[:, None], (0, radius), "replicate")


@_op("defocus_blur")
def _defocus_blur(x: torch.Tensor, param: tuple[float, float], rngs: list[np.random.Generator]) -> torch.Tensor:
    kernel = _blur.disk_kernel(*param)
    r = kernel.shape[0] // 2
    return _correlate(x, kernel, (r, r), "reflect")  # OpenCV BORDER_REFLECT_101, see _pad


@_op("motion_blur")
def _motion_blur(x: torch.Tensor, param: tuple[int, float], rngs: list[np.random.Generator]) -> torch.Tensor:
    radius, sigma = param
    outs = []
    for k, r in enumerate(rngs):
        kernel, anchor = _blur.line_kernel(radius, sigma, r.uniform(-45.0, 45.0))
        outs.append(_correlate(x[k : k + 1], kernel, anchor, "replicate"))
    return torch.cat(outs)
