"""Model backends: where the encoder comes from and how the fusion methods get their weights.

A backend turns a suite's model list into a :class:`ModelBundle` (one encoder shared by every
method, plus the methods by leaderboard row). ``embedded`` trains small models on the embedded
world and caches them; ``open_clip`` loads pretrained open_clip weights from local files. A
backend checks what it needs before any work (:meth:`Backend.preflight`), so a missing file stops
a run at once.

Models reach a backend as :class:`~mafs_bench.models.methods.ModelSpec` (row name, method
reference, options); a plain name ``m`` means ``ModelSpec(m)`` (use
:func:`~mafs_bench.models.methods.as_model_specs`). One suite may use several backends: the runner
groups its models by backend spec and builds each group with its own backend instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ...registry import Registry
from ..encoder import ImageFeatures, TextFeatures
from ..fusion import FusionMethod
from ..heads import ProgressFactory
from ..methods import ModelSpec



class WeightsMissingError(RuntimeError):
    """Model weights are not available offline; the message says what and how to provide them."""


class Encoder(Protocol):
    """What tasks need from an encoder."""

    def encode_images(self, images: np.ndarray) -> ImageFeatures: ...

    def encode_texts(self, texts: list[str]) -> TextFeatures: ...

    @property
    def logit_scale(self) -> torch.Tensor: ...


@dataclass
class ModelBundle:
    """One encoder and the fusion methods that run on its features, per training seed.

    ``methods[seed][row]``: the model of leaderboard row ``row`` trained with ``seed`` (methods without
    trainable weights appear under every seed as the same object). ``info`` goes to
    ``run.json["models"]``; ``training`` to ``run.json["training"]`` (the recipe: steps, seeds,
    ``augmentations``, and ``corruptions_seen``: registered corruptions the heads trained on).
    """

    encoder: Any
    methods: dict[int, dict[str, FusionMethod]]
    info: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    #: methods trained for a task other than retrieval, ``task_methods[task][seed][name]``
    #: (VQA: instances with an answer head); a task not listed here uses :attr:`methods`
    task_methods: dict[str, dict[int, dict[str, FusionMethod]]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        """The training seeds, in order."""
        return list(self.methods) or list(next(iter(self.task_methods.values()), {}))

    def methods_for(self, task: str) -> dict[int, dict[str, FusionMethod]]:
        """``[seed][name]`` of the methods to evaluate on ``task``."""
        return self.task_methods.get(task, self.methods)


class Backend:
    """Base class of registered backends; ``options`` come from the suite's ``backend`` block."""

    def preflight(self, models: list[str | ModelSpec]) -> list[str]:
        """Problems that would stop a run (missing weights, unsupported methods or options);
        empty if none. ``models``: this backend's models (names or ModelSpecs)."""
        return []

    def build(self, dataset: Any, models: list[str | ModelSpec], device: torch.device, progress: ProgressFactory,
              seeds: list[int], tasks: dict[str, list[str]] | None = None) -> ModelBundle:
        """Load (or train) the encoder and every model in ``models``, once per training seed;
        ``methods[seed]`` of the bundle is keyed by each model's row name.

        ``tasks``: task -> the rows evaluated on it (default: every model on retrieval); a
        backend builds per-task instances where a task needs its own heads (VQA)."""
        raise NotImplementedError


BACKENDS: Registry[type[Backend]] = Registry("model backend")
