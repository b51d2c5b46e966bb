"""The dataset contract: a registered loader gives image-text data for one domain.

Every dataset the runner evaluates is an :class:`ImageTextData`: a sequence of uint8 RGB images
(an array, or a lazy sequence reading files), a flat list of captions and, for each caption, the
index of its image. Stable ``image_ids`` / ``caption_ids`` seed the per-sample corruptions, so a
sample's corruption does not depend on batch order or on which subset was evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..registry import Registry


class DataMissingError(RuntimeError):
    """A dataset's files are not where the suite says; the message says what and how to fix it."""


@dataclass
class ImageTextData:
    """Images and captions of one evaluation set.

    Attributes:
        name: dataset name for reports.
        domain: rendering/style domain ("plain", "textured", ... for the embedded world; the
            dataset's own name for real data).
        images: N uint8 HxWx3 RGB images (an (N,H,W,3) array, or a lazy sequence).
        captions: M captions.
        caption_image: (M,) index of the image each caption describes.
        image_ids / caption_ids: stable ids used to seed corruptions.
    """

    name: str
    domain: str
    images: Sequence[np.ndarray] | np.ndarray
    captions: list[str]
    caption_image: np.ndarray
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    caption_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if len(self.image_ids) == 0:
            self.image_ids = np.arange(len(self.images), dtype=np.int64)
        if len(self.caption_ids) == 0:
            self.caption_ids = np.arange(len(self.captions), dtype=np.int64)
        self.caption_image = np.asarray(self.caption_image, dtype=np.int64)
        if len(self.caption_image) != len(self.captions):
            raise ValueError(f"{self.name}: {len(self.captions)} captions but {len(self.caption_image)} caption_image entries")


class Dataset:
    """Base class of registered datasets; ``options`` come from the suite's ``dataset`` block."""

    #: domains this dataset can render/load; the first is the in-domain one
    domains: tuple[str, ...] = ()

    #: whether :meth:`load_shifted` can render a shifted domain at a strength between 0 and 1
    continuous_shift: bool = False

    def load(self, domain: str) -> ImageTextData:
        """The evaluation data in ``domain``."""
        raise NotImplementedError

    def load_shifted(self, domain: str, strength: float, base: str) -> ImageTextData:
        """The evaluation data of ``domain`` at shift ``strength`` from ``base`` (the in-domain style).

        Strength 1 is ``domain`` itself, 0 is ``base``; a dataset that can interpolate between
        styles sets :attr:`continuous_shift` and overrides this.

        Raises:
            ValueError: ``strength`` is not 1 and the dataset cannot interpolate.
        """
        if strength == 1.0:
            return self.load(domain)
        raise ValueError(f"dataset {type(self).__name__} has no continuous shift strength; "
                         f"dataset.shifted_strengths must be [1.0], got strength {strength!r}")

    def training_data(self) -> tuple[np.ndarray, list[list[str]], list[str]] | None:
        """(images, caption lists, vocabulary) for backends that train their own models, or None."""
        return None

    def vocabulary(self) -> list[str] | None:
        """The closed vocabulary of a dataset with training data (for a word-level tokenizer), or None."""
        return None

    def recipe(self) -> dict[str, Any]:
        """What determines :meth:`training_data` (part of trained weights' cache keys)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Facts for the results record (sizes, paths, seeds)."""
        return {}


DATASETS: Registry[type[Dataset]] = Registry("dataset")
