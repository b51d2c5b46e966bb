"""The corruption contract: a severity table plus a pure function, registered by name.

A :class:`Corruption` is data a reader can hold against the reference (its name, modality,
family and the 5-entry severity table) plus a function that applies one severity's parameters
with a generator it is given. The functions never touch a global RNG.

Function signatures by modality:

* ``image``: ``fn(img, param, rng) -> img`` where ``img`` is float32 HxWx3 in [0, 1] (RGB).
  The engine converts the caller's uint8 array in and out (see :func:`to_rgb_float`,
  :func:`from_rgb_float`), clips both ends and rounds, so a function may overshoot.
* ``text``: ``fn(text, param, rng) -> text``.
* ``pair``: ``fn(captions, param, rngs, groups) -> captions``; acts on a whole batch because a
  misaligned caption must come from another item. ``groups[i]`` names the item (image) caption
  ``i`` belongs to, so a replacement is always taken from another item; ``rngs[i]`` is caption
  ``i``'s own generator, so the decision for caption ``i`` does not depend on batch order.

Grayscale and RGBA rule (documented contract): an HxW or HxWx1 image is replicated to RGB,
corrupted, and converted back with the ITU-R BT.601 luma weights; an RGBA image has its RGB
corrupted and its alpha channel returned unchanged. Output shape and dtype (uint8) always
equal the input's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .registry import Registry

Modality = Literal["image", "text", "pair"]
MODALITIES: tuple[str, ...] = ("image", "text", "pair")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
BT601_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Corruption:
    """One registered corruption.

    Attributes:
        name: registered name (ImageNet-C / MMRobustness spelling where one exists).
        modality: "image", "text" or "pair".
        family: grouping for reports ("noise", "blur", "weather", "digital", "occlusion",
            "character", "word", "missing", "misalignment", ...).
        severities: exactly five parameter entries, severity 1 first.
        fn: the pure function (see module docstring for its signature per modality).
        param_names: what each parameter entry holds, for ``corruptions list``.
        batch_fn: optional vectorised image version ``batch_fn(imgs NxHxWx3, param, rngs)``.
        reference: where the severity table comes from.
    """

    name: str
    modality: Modality
    family: str
    severities: tuple[Any, ...]
    fn: Callable[..., Any]
    param_names: tuple[str, ...] = ()
    batch_fn: Callable[..., Any] | None = None
    reference: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"corruption {self.name!r}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if len(self.severities) != len(SEVERITIES):
            raise ValueError(
                f"corruption {self.name!r}: severity table needs exactly {len(SEVERITIES)} entries, "
                f"got {len(self.severities)}"
            )

    def param(self, severity: int) -> Any:
        """The parameter entry for ``severity`` (1..5)."""
        return self.severities[check_severity(severity) - 1]


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register_corruption(
    name: str,
    *,
    modality: Modality,
    family: str,
    severities: Sequence[Any],
    param_names: Sequence[str] = (),
    reference: str = "",
    **extra: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that registers ``fn`` as the corruption ``name`` with its severity table.

    Example:
        >>> @register_corruption("my_noise", modality="image", family="noise",
        ...                      severities=(.1, .2, .3, .4, .5), param_names=("std",))
        ... def my_noise(img, std, rng):
        ...     return img + rng.normal(0, std, img.shape)
    """

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        CORRUPTIONS.add(
            name,
            Corruption(
                name=name,
                modality=modality,
                family=family,
                severities=tuple(severities),
                fn=fn,
                param_names=tuple(param_names),
                reference=reference,
                extra=dict(extra),
            ),
        )
        return fn

    return add


def register_batch(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach a vectorised ``batch_fn(imgs, param, rngs)`` to the already registered ``name``."""

    def add(batch_fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = CORRUPTIONS.get(name)
        object.__setattr__(spec, "batch_fn", batch_fn)
        return batch_fn

    return add


def check_severity(severity: int) -> int:
    """Return ``severity`` if it is an int in 1..5, else raise a clear ``ValueError``."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def to_rgb_float(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 HxW / HxWx1 / HxWx3 / HxWx4 -> (float32 HxWx3 in [0, 1], alpha channel or None)."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"image corruptions take a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise TypeError(f"image corruptions take uint8 arrays, got dtype {img.dtype}")
    alpha = None
    if img.ndim == 2:
        rgb = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        rgb = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 3:
        rgb = img
    elif img.ndim == 3 and img.shape[2] == 4:
        rgb, alpha = img[:, :, :3], img[:, :, 3]
    else:
        raise ValueError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {img.shape}")
    return rgb.astype(np.float32) * np.float32(1.0 / 255.0), alpha


def from_rgb_float(out: np.ndarray, like: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """float HxWx3 (any range) -> uint8 with the shape of ``like``: clipped, rounded, channel rule."""
    rgb = np.clip(np.asarray(out, dtype=np.float32) * np.float32(255.0), 0.0, 255.0)
    if like.ndim == 2 or like.shape[2] == 1:
        gray = np.rint(rgb @ (BT601_LUMA)).astype(np.uint8)
        return gray if like.ndim == 2 else gray[:, :, None]
    rgb8 = np.rint(rgb).astype(np.uint8)
    if alpha is not None:
        return np.concatenate([rgb8, alpha[:, :, None]], axis=2)
    return rgb8
