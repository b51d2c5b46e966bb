"""The embedded world as a registered dataset (``embedded_world``): no downloads, deterministic."""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import cached_property
from typing import Any

import numpy as np

from .base import DATASETS, Dataset, ImageTextData
from .world import DEFAULT_TEST_SIZE, DOMAINS, WorldConfig, WorldSplit, build_split, caption_ambiguity, vocabulary, with_domain


@DATASETS.register("embedded_world")
class EmbeddedWorld(Dataset):
    """Procedurally generated scenes of coloured shapes with captions (see :mod:`.world`).

    Args:
        split: evaluation split ("test" or "val").
        size: images in the evaluation split (5 captions each).
        train_size: images in the training pool used by the ``embedded`` backend.
        seed: world seed (independent of the suite's corruption seed).
        world: overrides of :class:`WorldConfig` fields (e.g. ``{image_size: 64}``).
    """

    domains = DOMAINS
    continuous_shift = True

    def __init__(self, split: str = "test", size: int = DEFAULT_TEST_SIZE, train_size: int = 20000,
                 seed: int = 0, world: dict[str, Any] | None = None) -> None:
        if split not in ("test", "val"):
            raise ValueError(f"dataset.options.split must be 'test' or 'val', got {split!r}")
        for name, value in (("size", size), ("train_size", train_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"dataset.options.{name} must be a positive integer, got {value!r}")
        self.split = split
        self.size = size
        self.train_size = train_size
        self.seed = seed
        self.config = replace(WorldConfig(), **(world or {}))

    @cached_property
    def _base(self) -> WorldSplit:
        return build_split(self.config, self.split, self.domains[0], self.size, self.seed)

    def load(self, domain: str) -> ImageTextData:
        if domain not in self.domains:
            raise ValueError(f"embedded_world has no domain {domain!r}; known: {', '.join(self.domains)}")
        world = self._base if domain == self.domains[0] else with_domain(self._base, domain, self.config)
        captions, owner = world.flat_captions()
        return ImageTextData(f"embedded_world-{self.split}", domain, world.images, captions, owner, world.ids)

    def load_shifted(self, domain: str, strength: float, base: str) -> ImageTextData:
        """``domain`` at style ``strength`` from ``base``: the pixel blend of
        :func:`~mafs_bench.data.world.render_scenes` (0 = ``base``'s images, 1 = ``domain``'s)."""
        for name in (domain, base):
            if name not in self.domains:
                raise ValueError(f"embedded_world has no domain {name!r}; known: {', '.join(self.domains)}")
        if strength == 1.0:
            return self.load(domain)
        world = with_domain(self._base, base, self.config) if base != self.domains[0] else self._base
        shifted = with_domain(world, domain, self.config, strength)
        captions, owner = shifted.flat_captions()
        return ImageTextData(f"embedded_world-{self.split}", domain, shifted.images, captions, owner, shifted.ids)

    def training_data(self) -> tuple[np.ndarray, list[list[str]], list[str]]:
        train = build_split(self.config, "train", self.domains[0], self.train_size, self.seed)
        return train.images, train.captions, vocabulary(self.config)

    def vocabulary(self) -> list[str]:
        """Every word the world's texts can contain (the tokenizer's vocabulary)."""
        return vocabulary(self.config)

    def recipe(self) -> dict[str, Any]:
        """What determines the training data (part of the trained weights' cache key)."""
        return {"world": asdict(self.config), "train_size": self.train_size, "seed": self.seed}

    def describe(self) -> dict[str, Any]:
        return {"split": self.split, "size": self.size, "seed": self.seed,
                "caption_ambiguity": caption_ambiguity(self._base)}
