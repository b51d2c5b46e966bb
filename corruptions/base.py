"""The corruption contract: a severity table plus a pure function, registered by name.

A :class:`Corruption` is data a reader can hold against the reference (its name, modality,
family and the 5-entry severity table) plus a function that applies one severity's parameters
with a generator it is given. The functions never touch a global RNG.

Function signatures by modality:

* ``image``: ``fn(img, param, rng) -> img`` where ``img`` is float32 HxWx3 in [0, 1] (RGB).
  The engine converts the caller's uint8 array in and out (see :func:`to_rgb_float`,
  :func:`from_rgb_float`), clips both ends and rounds, so a function may overshoot.
  A corruption registered with ``uint8=True`` is *native uint8* instead: ``fn(img, param, rng)``
  takes the uint8 HxWx3 RGB array (C-contiguous; possibly the caller's own array, so it must
  not be modified) and returns a new uint8 HxWx3 array; the engine skips the float round trip
  (see :func:`split_rgb`, :func:`merge_rgb`). Its ``batch_fn``, if any, takes and returns
  uint8 NxHxWx3 stacks. ``rng`` is a :class:`LazyGenerator`: it behaves as the sample's
  ``numpy.random.Generator`` and is only built if the function draws from it.
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

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
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
        uint8: image corruptions only: ``fn`` (and ``batch_fn``) take and return uint8 RGB
            instead of float32 in [0, 1] (see the module docstring).
        shared_draws: the sample's random draws are the same at every severity (its generator
            is derived with severity 0): severity changes only the strength, never the draw
            (common random numbers), so one sample's degradation grows with severity instead of
            jumping between draws. For corruptions whose draws are few and decisive (which frost
            texture, which fog field).
        reference_severities: the reference's own table, given only where ``severities``
            deliberately departs from it (the registering module's docstring says why);
            None when ``severities`` is the reference's table (or there is no reference).
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
    uint8: bool = False
    reference_severities: tuple[Any, ...] | None = None
    shared_draws: bool = False

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"corruption {self.name!r}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.uint8 and self.modality != "image":
            raise ValueError(f"corruption {self.name!r}: uint8=True is only for image corruptions")
        if len(self.severities) != len(SEVERITIES):
            raise ValueError(
                f"corruption {self.name!r}: severity table needs exactly {len(SEVERITIES)} entries, "
                f"got {len(self.severities)}"
            )
        if self.reference_severities is not None and len(self.reference_severities) != len(SEVERITIES):
            raise ValueError(
                f"corruption {self.name!r}: reference_severities needs exactly {len(SEVERITIES)} entries, "
                f"got {len(self.reference_severities)}"
            )

    def draw_key(self, severity: int) -> int:
        """The severity the sample generator is derived with: ``severity``, or 0 with ``shared_draws``."""
        return 0 if self.shared_draws else int(severity)

    def departures(self) -> tuple[int, ...]:
        """Severities (1..5) whose parameters differ from the reference's table; () if none."""
        if self.reference_severities is None:
            return ()
        return tuple(s for s, ours, ref in zip(SEVERITIES, self.severities, self.reference_severities) if ours != ref)

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
    uint8: bool = False,
    reference_severities: Sequence[Any] | None = None,
    shared_draws: bool = False,
    **extra: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that registers ``fn`` as the corruption ``name`` with its severity table.

    ``uint8=True`` (image corruptions only) registers a native-uint8 function: it gets the
    uint8 HxWx3 RGB image itself and returns uint8 (see the module docstring).
    ``reference_severities`` is the reference's table where ``severities`` departs from it on
    purpose, kept beside ours so the difference is data a reader (and ``corruptions list``) can see.
    ``shared_draws=True``: the same draws at every severity (see :class:`Corruption`).

    Example:
        >>> @register_corruption("my_noise", modality="image", family="noise",
        ...                      severities=(.1, .2, .3, .4, .5), param_names=("std",))
        ... def my_noise(img, std, rng):
        ...     return img + rng.normal(0, std, img.shape)
        >>> @register_corruption("my_invert", modality="image", family="digital",
        ...                      severities=(1, 1, 1, 1, 1), uint8=True)
        ... def my_invert(img, param, rng):
        ...     return 255 - img
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
                uint8=bool(uint8),
                reference_severities=None if reference_severities is None else tuple(reference_severities),
                shared_draws=bool(shared_draws),
            ),
        )
        return fn

    return add


def register_batch(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach a vectorised ``batch_fn(imgs, param, rngs)`` to the already registered ``name``.

    ``imgs`` is float32 NxHxWx3 in [0, 1], or uint8 NxHxWx3 for a ``uint8=True`` corruption (which
    then returns uint8 too). Sample ``k`` must draw only from ``rngs[k]``, in the same order as the
    per-sample function, so the batch equals the per-sample results byte for byte.
    """

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


class LazyGenerator:
    """A sample's ``numpy.random.Generator``, built on first use.

    Deriving a generator (SeedSequence hashing, PCG64 seeding) costs ~20 us, a sizeable share of
    a fast corruption; deterministic corruptions never draw, so they never pay it. Attribute
    access is forwarded to ``sample_rng(seed, sample_id, corruption, severity)``, built once.
    """

    __slots__ = ("_args", "_gen")

    def __init__(self, seed: int, sample_id: int, corruption: str, severity: int) -> None:
        self._args = (seed, sample_id, corruption, severity)
        self._gen: np.random.Generator | None = None

    @property
    def generator(self) -> np.random.Generator:
        """The underlying generator (built now if not yet)."""
        gen = self._gen
        if gen is None:
            from .rng import sample_rng

            gen = self._gen = sample_rng(*self._args)
        return gen

    def stratum(self, n: int) -> int:
        """An index in 0..n-1 dealt by sample id: ``(sample_id + offset) % n``, no draw.

        Over any ``n`` consecutive sample ids each index comes up exactly once (stratified
        sampling); ``offset`` comes from (seed, corruption), so seeds deal differently. Default
        ids (:func:`corruptions.rng.content_id`, when the caller gives none) are not consecutive:
        the deal is then as good as a uniform draw, equal for equal inputs.
        """
        seed, sample_id, corruption, _ = self._args
        return (sample_id + _stratum_offset(seed, corruption, n)) % n

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.generator, attr)


@functools.lru_cache(maxsize=256)
def _stratum_offset(seed: int, corruption: str, n: int) -> int:
    """Where (seed, corruption)'s deal of ``n`` strata starts."""
    from .rng import sample_rng

    return int(sample_rng(seed, 0, corruption + "/stratum", 0).integers(n))


def stratified_choice(rng: "LazyGenerator | np.random.Generator", n: int) -> int:
    """One of ``n`` options for a sample: dealt by sample id (:meth:`LazyGenerator.stratum`) when
    the engine's lazy generator is given, else drawn from ``rng`` (a plain generator, in tests)."""
    if isinstance(rng, LazyGenerator):
        return rng.stratum(n)
    return int(rng.integers(n))


def check_ids(seed: int, sample_id: int) -> None:
    """The checks :func:`corruptions.rng.sample_rng` makes, done eagerly for lazy generators."""
    if seed < 0 or sample_id < 0:
        raise ValueError(f"seed and sample_id must be non-negative, got seed={seed}, sample_id={sample_id}")


# uint8 level -> float32 in [0, 1], exactly ``float32(v) * float32(1 / 255)``.
U8_TO_FLOAT = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)


def float_to_uint8(x: np.ndarray) -> np.ndarray:
    """``rint(clip(x * 255, 0, 255))`` as uint8, for float32 ``x`` of any shape (values in [0, 1] scale).

    Byte-identical to the numpy expression (float32 product, round half to even; NaN -> 0) but
    ~2x faster: OpenCV clamps to [0, 1] (``THRESH_TRUNC``, then ``THRESH_TOZERO`` in place), then
    ``convertScaleAbs`` multiplies, rounds half to even and saturates in one pass.
    """
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.size == 0 or arr.ndim == 0:
        return np.rint(np.clip(arr * np.float32(255.0), 0.0, 255.0)).astype(np.uint8)
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)
    _, clamped = cv2.threshold(flat, 1.0, 1.0, cv2.THRESH_TRUNC)
    cv2.threshold(clamped, 0.0, 0.0, cv2.THRESH_TOZERO, dst=clamped)
    return cv2.convertScaleAbs(clamped, alpha=255.0).reshape(arr.shape)


def uint8_to_float(img: np.ndarray) -> np.ndarray:
    """uint8 array -> float32 ``img * float32(1 / 255)`` (a new array)."""
    out = img.astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    return out


def split_rgb(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 HxW / HxWx1 / HxWx3 / HxWx4 -> (C-contiguous uint8 HxWx3 RGB, alpha channel or None).

    An HxWx3 C-contiguous input is returned as is (not copied): native-uint8 corruptions must not
    modify their input.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f"image corruptions take a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise TypeError(f"image corruptions take uint8 arrays, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 3:
        return np.ascontiguousarray(img), None
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2)), None
    if img.ndim == 3 and img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2)), None
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3]), img[:, :, 3]
    raise ValueError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {img.shape}")


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
    return uint8_to_float(rgb), alpha


def from_rgb_float(out: np.ndarray, like: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """float HxWx3 (any range) -> uint8 with the shape of ``like``: clipped, rounded, channel rule."""
    if like.ndim == 2 or like.shape[2] == 1:
        rgb = np.clip(np.asarray(out, dtype=np.float32) * np.float32(255.0), 0.0, 255.0)
        gray = np.rint(rgb @ (BT601_LUMA)).astype(np.uint8)
        return gray if like.ndim == 2 else gray[:, :, None]
    rgb8 = float_to_uint8(out)
    if alpha is not None:
        return np.concatenate([rgb8, alpha[:, :, None]], axis=2)
    return rgb8


def merge_rgb(rgb8: np.ndarray, like: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """uint8 HxWx3 RGB -> uint8 with the shape of ``like`` (the grayscale / RGBA rule); never ``like`` itself."""
    if like.ndim == 2 or like.shape[2] == 1:
        gray = np.rint(rgb8.astype(np.float32) @ BT601_LUMA).astype(np.uint8)
        return gray if like.ndim == 2 else gray[:, :, None]
    if alpha is not None:
        return np.concatenate([rgb8, alpha[:, :, None]], axis=2)
    if np.may_share_memory(rgb8, like):
        return rgb8.copy()
    return rgb8
