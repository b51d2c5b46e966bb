"""mafs-bench corruption engine: image, text and image-text pair corruptions at severities 1..5.

Standalone: imports numpy (and OpenCV / Pillow / nlpaug inside individual corruptions), never torch.

The contract every other part of mafs-bench uses::

    import corruptions
    corruptions.names("image")                     # registered image corruptions
    corruptions.apply("gaussian_noise", img, 3, seed=0, sample_id=17)   # HxWx3 uint8 -> same
    corruptions.apply("keyboard", "a red circle", 2, seed=0)             # str -> str
    corruptions.apply("caption_shuffle", captions, 4, seed=0, groups=image_ids)  # list -> list

Every random choice comes from :func:`corruptions.rng.sample_rng` (seed, sample id, corruption,
severity), so outputs are byte-identical across runs, processes and batch orders. Without a
sample id the id is :func:`corruptions.rng.content_id` of the sample (a SHA-256 of its content):
different samples get independent draws, equal samples equal ones.

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
from .rng import content_id, sample_rng

from .registry import import_submodules

# Importing the families registers their corruptions: every module and subpackage here is
# imported (image/, text/, pair/ first, in that listing order), except torch_ops, which needs
# torch and is imported on demand by whoever runs corruptions on tensors.
import_submodules(__name__, first=("image", "text", "pair"), skip=("torch_ops",))

__all__ = [
    "CORRUPTIONS",
    "MODALITIES",
    "SEVERITIES",
    "Corruption",
    "Registry",
    "UnknownNameError",
    "apply",
    "apply_batch",
    "content_id",
    "get",
    "import_submodules",
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
    sample_id: int | None = None,
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
            caption ``i`` uses ``sample_id + i``). Omitted (None): :func:`corruptions.rng.content_id`
            of ``x``, a 63-bit SHA-256 of its content, so that different samples get independent
            draws and equal samples equal ones, in any process. (A fixed default id gave every
            image of a loop the same noise field and every caption the same draws.) An explicit
            id gives exactly the draws it always gave.
        groups: pair corruptions only: the item each caption belongs to (default: each its own).

    Returns:
        The corrupted sample, of the input's type, shape and dtype. Degenerate inputs: an image
        with no pixels (a zero height or width) comes back as an unchanged copy; an empty or
        blank caption comes back unchanged (``missing_text`` may return ``""``); an empty
        caption list gives ``[]``.
    """
    spec = get(name)
    severity = check_severity(severity)
    if spec.modality == "image":
        return _apply_image(spec, x, severity, seed, sample_id)
    if spec.modality == "text":
        if not isinstance(x, str):
            raise TypeError(f"text corruption {name!r} takes a str, got {type(x).__name__}")
        sid = content_id(x) if sample_id is None else sample_id
        return spec.fn(x, spec.param(severity), sample_rng(seed, sid, name, spec.draw_key(severity)))
    captions = _captions(name, x)
    ids = _first_ids(captions) if sample_id is None else list(range(sample_id, sample_id + len(captions)))
    return _apply_pair(spec, captions, severity, seed, ids, groups)


def _apply_image(spec: Corruption, x: Any, severity: int, seed: int, sample_id: int | None) -> np.ndarray:
    """One image through ``spec``: the grayscale / RGBA rule, the uint8-native or the float path."""
    rgb, alpha = split_rgb(x) if spec.uint8 else to_rgb_float(x)  # also validates x
    sid = content_id(x) if sample_id is None else sample_id
    check_ids(seed, sid)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:  # no pixels: nothing to corrupt (OpenCV borders would loop)
        return x.copy()
    out = spec.fn(rgb, spec.param(severity), LazyGenerator(seed, sid, spec.name, spec.draw_key(severity)))
    _check_image_output(spec.name, out, rgb.shape, np.uint8 if spec.uint8 else None)
    return merge_rgb(out, x, alpha) if spec.uint8 else from_rgb_float(out, x, alpha)


def _captions(name: str, x: Any) -> list[str]:
    """A pair corruption's input as a list of str (TypeError otherwise)."""
    if isinstance(x, str):
        raise TypeError(f"pair corruption {name!r} takes a sequence of str captions, not one str")
    captions = list(x)
    if not all(isinstance(c, str) for c in captions):
        raise TypeError(f"pair corruption {name!r} takes a sequence of str captions")
    return captions


def _first_ids(captions: list[str]) -> list[int]:
    """Default ids of a caption list: ``content_id(captions) + k`` for caption ``k``."""
    first = content_id(captions)
    return list(range(first, first + len(captions)))


def _apply_pair(
    spec: Corruption, captions: list[str], severity: int, seed: int, ids: list[int], groups: Sequence[Any] | None
) -> list[str]:
    """Captions ``captions`` (caption ``k`` with id ``ids[k]``) through the pair corruption ``spec``."""
    group_list = list(groups) if groups is not None else list(ids)
    if len(group_list) != len(captions):
        raise ValueError(f"groups has {len(group_list)} entries for {len(captions)} captions")
    rngs = [sample_rng(seed, i, spec.name, spec.draw_key(severity)) for i in ids]
    return spec.fn(captions, spec.param(severity), rngs, group_list)


def apply_batch(
    name: str,
    xs: Any,
    severity: int,
    seed: int = 0,
    sample_ids: Sequence[int] | None = None,
    groups: Sequence[Any] | None = None,
) -> Any:
    """Apply ``name`` to a batch; sample ``k`` gets ``sample_ids[k]``.

    Images: an NxHxWxC uint8 array (or a list of arrays) gives the same type back; a corruption
    with a vectorised ``batch_fn`` runs it on the whole stack at once. Texts: a list of str.
    Pair corruptions: a list of captions (``groups`` as in :func:`apply`).
    The result equals applying :func:`apply` sample by sample with the same ids.

    ``sample_ids`` omitted (None): each image or text gets :func:`corruptions.rng.content_id` of
    its own content, exactly what :func:`apply` uses without an id, so two different batches
    get independent draws (the former default, ids 0..N-1, gave them identical draws position by
    position) and the result equals :func:`apply` on each sample without an id. Pair corruptions
    act on the caption list as a whole: caption ``k`` gets ``content_id(captions) + k``, as
    :func:`apply` does. Runners should pass their dataset's stable ids.

    An empty batch gives an empty result of the input's kind: an empty uint8 array comes back
    as an empty copy of the same shape, an empty list as ``[]``.
    """
    spec = get(name)
    severity = check_severity(severity)
    n = len(xs)
    given = None if sample_ids is None else [int(i) for i in sample_ids]
    if given is not None and len(given) != n:
        raise ValueError(f"sample_ids has {len(given)} entries for a batch of {n}")
    if spec.modality == "pair":
        captions = _captions(name, xs)
        return _apply_pair(spec, captions, severity, seed, _first_ids(captions) if given is None else given, groups)
    if n == 0:
        return _empty_batch(spec, xs)
    ids = [content_id(x) for x in xs] if given is None else given
    if spec.modality == "image" and spec.batch_fn is not None and isinstance(xs, np.ndarray) and xs.ndim == 4 and xs.shape[3] == 3:
        return _image_batch(spec, xs, severity, seed, ids)
    outs = [apply(name, x, severity, seed=seed, sample_id=i) for x, i in zip(xs, ids)]
    if isinstance(xs, np.ndarray):
        return np.stack(outs)
    return outs


def _empty_batch(spec: Corruption, xs: Any) -> Any:
    """The result for an empty batch: an empty copy of an image stack, else ``[]``."""
    if not isinstance(xs, np.ndarray):
        return []
    if spec.modality == "image":
        if xs.dtype != np.uint8:
            raise TypeError(f"image corruptions take uint8 arrays, got dtype {xs.dtype}")
        if xs.ndim not in (3, 4) or (xs.ndim == 4 and xs.shape[3] not in (1, 3, 4)):
            raise ValueError(f"an image batch must be NxHxW or NxHxWxC (C = 1, 3, 4), got shape {xs.shape}")
        return xs.copy()
    return []


def _image_batch(spec: Corruption, xs: np.ndarray, severity: int, seed: int, ids: list[int]) -> np.ndarray:
    """An NxHxWx3 uint8 stack through ``spec.batch_fn`` (equal to the per-sample path)."""
    if xs.dtype != np.uint8:
        raise TypeError(f"image corruptions take uint8 arrays, got dtype {xs.dtype}")
    for i in ids:
        check_ids(seed, i)
    if xs.shape[1] == 0 or xs.shape[2] == 0:
        return xs.copy()
    rngs = [LazyGenerator(seed, i, spec.name, spec.draw_key(severity)) for i in ids]
    param = spec.param(severity)
    if spec.uint8:
        out8 = spec.batch_fn(np.ascontiguousarray(xs), param, rngs)
        _check_image_output(spec.name, out8, xs.shape, np.uint8)
        return out8.copy() if np.may_share_memory(out8, xs) else out8
    out = spec.batch_fn(uint8_to_float(xs), param, rngs)
    _check_image_output(spec.name, out, xs.shape, None)
    return float_to_uint8(out)


def _check_image_output(name: str, out: Any, shape: tuple[int, ...], dtype: Any) -> None:
    """A corruption must return an array of the input's shape (and uint8 if native uint8)."""
    if not isinstance(out, np.ndarray) or out.shape != shape:
        got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
        raise RuntimeError(f"corruption {name!r} changed the image shape {shape} -> {got}")
    if dtype is not None and out.dtype != dtype:
        raise RuntimeError(f"native-uint8 corruption {name!r} returned dtype {out.dtype}, not uint8")
