"""mafs-bench corruption engine: image, text and image-text pair corruptions at severities 1..5.

Standalone: imports numpy (and OpenCV / Pillow / nlpaug inside individual corruptions), never torch.

The contract every other part of mafs-bench uses::

    import corruptions
    corruptions.names("image")                     # registered image corruptions
    corruptions.apply("gaussian_noise", img, 3, seed=0, sample_id=17)   # HxWx3 uint8 -> same
    corruptions.apply("keyboard", "a red circle", 2, seed=0)             # str -> str
    corruptions.apply("caption_shuffle", captions, 4, seed=0, groups=image_ids)  # list -> list

Every random choice comes from :func:`corruptions.rng.sample_rng` (seed, sample id, corruption,
severity), so outputs are byte-identical across runs, processes and batch orders.

Image corruptions come in two kinds (see :mod:`corruptions.base`): float ones get a float32 RGB
copy in [0, 1] and the engine rounds their result back to uint8; native-uint8 ones
(``register_corruption(..., uint8=True)``) get the uint8 RGB image itself and return uint8, with
no conversion at all. The grayscale / RGBA rule is applied by the engine for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import (
    CORRUPTIONS,
    MODALITIES,
    SEVERITIES,
    Corruption,
    LazyGenerator,
    check_ids,
    check_severity,
    float_to_uint8,
    from_rgb_float,
    merge_rgb,
    register_batch,
    register_corruption,
    split_rgb,
    to_rgb_float,
    uint8_to_float,
)
from .registry import Registry, UnknownNameError
from .rng import sample_rng

# Importing the families registers their corruptions.
from . import image as _image  # noqa: E402,F401
from . import text as _text  # noqa: E402,F401
from . import pair as _pair  # noqa: E402,F401
from . import qmf as _qmf  # noqa: E402,F401

__all__ = [
    "CORRUPTIONS",
    "MODALITIES",
    "SEVERITIES",
    "Corruption",
    "Registry",
    "UnknownNameError",
    "apply",
    "apply_batch",
    "get",
    "names",
    "register_batch",
    "register_corruption",
    "sample_rng",
]


def names(modality: str | None = None) -> list[str]:
    """Registered corruption names, optionally only those of one modality ("image", "text", "pair")."""
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES} or None, got {modality!r}")
    return [n for n, c in CORRUPTIONS.items() if modality is None or c.modality == modality]


def get(name: str) -> Corruption:
    """The :class:`Corruption` registered as ``name`` (clear error with suggestions otherwise)."""
    return CORRUPTIONS.get(name)


def apply(
    name: str,
    x: Any,
    severity: int,
    seed: int = 0,
    sample_id: int = 0,
    groups: Sequence[Any] | None = None,
) -> Any:
    """Apply corruption ``name`` at ``severity`` (1..5) to one sample.

    Args:
        name: a registered corruption.
        x: image (uint8 HxW[xC] ndarray), text (str), or for pair corruptions a sequence of
            captions (one per image-text pair).
        severity: 1..5.
        seed: the run's seed.
        sample_id: the sample's stable id (for pair corruptions: the id of the first caption;
            caption ``i`` uses ``sample_id + i``).
        groups: pair corruptions only: the item each caption belongs to (default: each its own).

    Returns:
        The corrupted sample, of the input's type, shape and dtype.
    """
    spec = get(name)
    severity = check_severity(severity)
    param = spec.param(severity)
    if spec.modality == "image":
        check_ids(seed, sample_id)
        rng = LazyGenerator(seed, sample_id, name, spec.draw_key(severity))
        if spec.uint8:
            rgb8, alpha = split_rgb(x)
            out8 = spec.fn(rgb8, param, rng)
            _check_image_output(name, out8, rgb8.shape, np.uint8)
            return merge_rgb(out8, x, alpha)
        rgb, alpha = to_rgb_float(x)
        out = spec.fn(rgb, param, rng)
        _check_image_output(name, out, rgb.shape, None)
        return from_rgb_float(out, x, alpha)
    if spec.modality == "text":
        if not isinstance(x, str):
            raise TypeError(f"text corruption {name!r} takes a str, got {type(x).__name__}")
        return spec.fn(x, param, sample_rng(seed, sample_id, name, spec.draw_key(severity)))
    captions = list(x)
    if not all(isinstance(c, str) for c in captions):
        raise TypeError(f"pair corruption {name!r} takes a sequence of str captions")
    ids = range(sample_id, sample_id + len(captions))
    group_list = list(groups) if groups is not None else list(ids)
    if len(group_list) != len(captions):
        raise ValueError(f"groups has {len(group_list)} entries for {len(captions)} captions")
    rngs = [sample_rng(seed, i, name, spec.draw_key(severity)) for i in ids]
    return spec.fn(captions, param, rngs, group_list)


def apply_batch(
    name: str,
    xs: Any,
    severity: int,
    seed: int = 0,
    sample_ids: Sequence[int] | None = None,
    groups: Sequence[Any] | None = None,
) -> Any:
    """Apply ``name`` to a batch; sample ``k`` gets ``sample_ids[k]`` (default ``k``).

    Images: an NxHxWxC uint8 array (or a list of arrays) gives the same type back; a corruption
    with a vectorised ``batch_fn`` runs it on the whole stack at once. Texts: a list of str.
    Pair corruptions: a list of captions (``groups`` as in :func:`apply`).
    The result equals applying :func:`apply` sample by sample with the same ids.
    """
    spec = get(name)
    severity = check_severity(severity)
    n = len(xs)
    ids = list(range(n)) if sample_ids is None else [int(i) for i in sample_ids]
    if len(ids) != n:
        raise ValueError(f"sample_ids has {len(ids)} entries for a batch of {n}")
    if spec.modality == "pair":
        group_list = list(groups) if groups is not None else ids
        rngs = [sample_rng(seed, i, name, spec.draw_key(severity)) for i in ids]
        return spec.fn(list(xs), spec.param(severity), rngs, group_list)
    if spec.modality == "image" and spec.batch_fn is not None and isinstance(xs, np.ndarray) and xs.ndim == 4 and xs.shape[3] == 3:
        if xs.dtype != np.uint8:
            raise TypeError(f"image corruptions take uint8 arrays, got dtype {xs.dtype}")
        for i in ids:
            check_ids(seed, i)
        rngs = [LazyGenerator(seed, i, name, spec.draw_key(severity)) for i in ids]
        if spec.uint8:
            out8 = spec.batch_fn(np.ascontiguousarray(xs), spec.param(severity), rngs)
            _check_image_output(name, out8, xs.shape, np.uint8)
            return out8.copy() if np.may_share_memory(out8, xs) else out8
        out = spec.batch_fn(uint8_to_float(xs), spec.param(severity), rngs)
        _check_image_output(name, out, xs.shape, None)
        return float_to_uint8(out)
    outs = [apply(name, x, severity, seed=seed, sample_id=i) for x, i in zip(xs, ids)]
    if isinstance(xs, np.ndarray):
        return np.stack(outs)
    return outs


def _check_image_output(name: str, out: Any, shape: tuple[int, ...], dtype: Any) -> None:
    """A corruption must return an array of the input's shape (and uint8 if native uint8)."""
    if not isinstance(out, np.ndarray) or out.shape != shape:
        got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
        raise RuntimeError(f"corruption {name!r} changed the image shape {shape} -> {got}")
    if dtype is not None and out.dtype != dtype:
        raise RuntimeError(f"native-uint8 corruption {name!r} returned dtype {out.dtype}, not uint8")
