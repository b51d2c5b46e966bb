"""The embedded world as a registered dataset (``embedded_world``): no downloads, deterministic."""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import cached_property
from typing import Any

import numpy as np

from .base import DATASETS, Dataset, ImageTextData
from .world import (DEFAULT_TEST_SIZE, DOMAINS, WorldConfig, WorldSplit, build_split, caption_ambiguity, question_type,
                    vocabulary, with_domain)

#: question ids are ``image_id * QUESTION_ID_STRIDE + k`` for the image's k-th question, so a
#: question's id (which seeds its corruptions) does not depend on the other images
QUESTION_ID_STRIDE = 16


def world_data(world: WorldSplit, name: str) -> ImageTextData:
    """A rendered world split as :class:`ImageTextData`: its captions and its question-answer
    pairs (one reference answer each, typed by :func:`question_type`)."""
    captions, owner = world.flat_captions()
    questions, answers, q_owner = world.flat_qa()
    offsets = np.concatenate([np.arange(len(p)) for p in world.qa]) if world.qa else np.zeros(0, np.int64)
    q_ids = world.ids[q_owner] * QUESTION_ID_STRIDE + offsets.astype(np.int64)
    return ImageTextData(name, world.domain, world.images, captions, owner, world.ids,
                         questions=questions, answers=[[a] for a in answers], question_image=q_owner,
                         question_types=[question_type(q) for q in questions], question_ids=q_ids)


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
        return world_data(world, f"embedded_world-{self.split}")

    @cached_property
    def _train(self) -> WorldSplit:
        return build_split(self.config, "train", self.domains[0], self.train_size, self.seed)

    def train_split(self) -> ImageTextData:
        """The world's training split (``train_size`` images, captions and questions)."""
        return world_data(self._train, "embedded_world-train")

    def load_shifted(self, domain: str, strength: float, base: str) -> ImageTextData:
        """``domain`` at style ``strength`` from ``base``: the pixel blend of
        :func:`~mafs_bench.data.world.render_scenes` (0 = ``base``'s images, 1 = ``domain``'s)."""
        for name in (domain, base):
            if name not in self.domains:
                raise ValueError(f"embedded_world has no domain {name!r}; known: {', '.join(self.domains)}")
        if strength == 1.0:
            return self.load(domain)
        world = with_domain(self._base, base, self.config) if base != self.domains[0] else self._base
        return world_data(with_domain(world, domain, self.config, strength), f"embedded_world-{self.split}")

    def training_data(self) -> tuple[np.ndarray, list[list[str]], list[str]]:
        return self._train.images, self._train.captions, vocabulary(self.config)

    def vocabulary(self) -> list[str]:
        """Every word the world's texts can contain (the tokenizer's vocabulary)."""
        return vocabulary(self.config)

    def recipe(self) -> dict[str, Any]:
        """What determines the training data (part of the trained weights' cache key)."""
        return {"world": asdict(self.config), "train_size": self.train_size, "seed": self.seed}

    def describe(self) -> dict[str, Any]:
        return {"split": self.split, "size": self.size, "seed": self.seed,
                "caption_ambiguity": caption_ambiguity(self._base)}
