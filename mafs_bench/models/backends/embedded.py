"""The ``embedded`` backend: small models trained on the dataset's own training split, cached.

The dual encoder (an open_clip ``CustomTextCLIP`` from a bundled config, word-level tokenizer) is
trained contrastively; each fusion network is then trained on its frozen features (see
:mod:`mafs_bench.models.training`). Weights are cached by a hash of everything that determines
them, so the second run of a suite trains nothing. Methods sharing a network design and options
(``albef`` and ``blip``) share one set of trained weights. A method from outside mafs-bench (a
plugin, :mod:`mafs_bench.models.methods`) trains by the same code under the same recipe; its key
adds the plugin's class and source hashes, so it shares weights with no built-in.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from .. import cache
from ..encoder import DualEncoder, load_encoder_config
from ..fusion import FusionMethod
from ..fusion_training import FusionTrainConfig
from ..heads import HeadTrainer, load_into, split_pool
from ..methods import ModelSpec, as_model_specs
from ..tokenizer import WordTokenizer
from ..training import EncoderTrainConfig, train_encoder
from .base import BACKENDS, Backend, ModelBundle, ProgressFactory

__all__ = ["EmbeddedBackend", "load_into"]


@BACKENDS.register("embedded")
class EmbeddedBackend(Backend):
    """Trains (or loads from the cache) the encoder and fusion heads on the dataset's training data.

    Args:
        encoder: bundled encoder config name (``mafs_bench/models/configs``).
        context_length: tokenizer length (start and end tokens included).
        encoder_train: overrides of :class:`EncoderTrainConfig`.
        fusion_train: overrides of :class:`FusionTrainConfig`.
        fusion_pool: training images whose features train the fusion heads.
        reference_size: held-out training images (after the pool) whose clean features form the
            reference banks of :meth:`FusionMethod.fit_reference` (MA-AFS's cue banks).
        methods: per-model options by leaderboard row, e.g. ``{mafs: {kl_weight: 0.01}}``;
            a model entry's own ``options`` override them.
        seed: the encoder's training seed (the suite's ``seed``); the fusion heads are trained
            once per seed of the suite's ``seeds`` (:meth:`build`).
    """

    def __init__(self, encoder: str = "mafs-tiny-vit", context_length: int = 40,
                 encoder_train: dict[str, Any] | None = None, fusion_train: dict[str, Any] | None = None,
                 fusion_pool: int = 4000, reference_size: int = 1000, methods: dict[str, dict[str, Any]] | None = None,
                 seed: int = 0) -> None:
        self.encoder_name = encoder
        self.encoder_config = load_encoder_config(encoder)
        self.context_length = context_length
        self.encoder_train = replace(EncoderTrainConfig(seed=seed), **(encoder_train or {}))
        ft = dict(fusion_train or {})
        if "seed" in ft:
            raise ValueError("backend.options.fusion_train.seed: training seeds are the suite field `seeds`")
        for key in ("augmentations", "corruptions"):
            if key in ft:
                if not isinstance(ft[key], (list, tuple)):
                    raise ValueError(f"backend.options.fusion_train.{key} must be a list of names, got {ft[key]!r}")
                ft[key] = tuple(ft[key])
        self.fusion_train = FusionTrainConfig(**ft)
        self.fusion_pool = fusion_pool
        if reference_size < 2:
            raise ValueError(f"backend.options.reference_size must be >= 2, got {reference_size}")
        self.reference_size = reference_size
        self.method_options = methods or {}

    def preflight(self, models: list[str | ModelSpec]) -> list[str]:
        """Unresolvable methods, and options a method refuses (checked by building it at the
        encoder's widths)."""
        specs = as_model_specs(models)
        problems: list[str] = []
        unknown = sorted(set(self.method_options) - {m.name for m in specs})
        if unknown:
            problems.append(f"backend.options.methods: options for models the suite does not list: {unknown}")
        widths = self._widths()
        for spec in specs:
            where = f"models.{spec.name}.options" if spec.options else f"backend.options.methods.{spec.name}"
            try:
                cls = spec.cls
            except (ValueError, KeyError) as err:
                problems.append(f"model {spec.name!r}: {err}")
                continue
            if cls.pretrained_head:
                problems.append(f"model {spec.name!r}: method {spec.method!r} runs a backend model's own pretrained "
                                f"head; the embedded backend has none (give the model the hf backend)")
                continue
            try:
                self._create(spec, *widths)
            except (TypeError, ValueError) as err:
                problems.append(f"{where}: {err}")
            except Exception as err:  # noqa: BLE001 - a plugin's constructor may fail in any way
                problems.append(f"{where}: building {spec.method!r} failed: {type(err).__name__}: {err}")
        return problems

    def _widths(self) -> tuple[int, int]:
        """Token widths (image, text) of the encoder the fusion heads read."""
        return int(self.encoder_config["vision_cfg"]["width"]), int(self.encoder_config["text_cfg"]["width"])

    def _create(self, spec: ModelSpec, image_width: int, text_width: int) -> FusionMethod:
        """``spec``'s method with the backend's options for its row under the spec's own."""
        return spec.create(image_width, text_width, **self.method_options.get(spec.name, {}))

    def split_pool(self, n_train: int) -> tuple[slice, slice]:
        """Training-split rows of the fusion pool and of the reference banks (:func:`split_pool`)."""
        return split_pool(n_train, self.fusion_pool, self.reference_size)

    def build(self, dataset: Any, models: list[str | ModelSpec], device: torch.device, progress: ProgressFactory,
              seeds: list[int]) -> ModelBundle:
        specs = as_model_specs(models)
        vocab = dataset.vocabulary()
        if vocab is None:
            raise ValueError(f"backend 'embedded' trains on the dataset's training split, but dataset "
                             f"{type(dataset).__name__} provides none; use a pretrained backend (open_clip)")
        recipe = dataset.recipe()
        tokenizer = WordTokenizer(vocab, self.context_length)
        precision = self.encoder_train.precision
        encoder = DualEncoder(self.encoder_config, tokenizer, precision=precision)
        training_data: tuple | None = None

        def train_split() -> tuple:  # built only when something must be trained
            nonlocal training_data
            if training_data is None:
                training_data = dataset.training_data()
            return training_data

        enc_key = {"encoder": self.encoder_config, "name": self.encoder_name, "vocab": vocab,
                   "context_length": self.context_length, "train": self.encoder_train.as_dict(), "data": recipe}
        info: dict[str, Any] = {"encoder_key": cache.config_key(enc_key, "encoder")}
        cached = cache.load_weights("encoder", enc_key)
        if cached is not None and not load_into(encoder, cached["state_dict"], "encoder"):
            cached = None
        if cached is None:
            torch.manual_seed(self.encoder_train.seed)  # open_clip initialises from torch's default generator
            encoder = DualEncoder(self.encoder_config, tokenizer, precision=precision)
            start = time.time()
            images, captions, _ = train_split()
            losses = train_encoder(encoder, images, captions, self.encoder_train,
                                   progress("train encoder", self.encoder_train.steps))
            cache.save_weights("encoder", enc_key, encoder.state_dict(),
                               {"final_loss": losses[-1], "seconds": time.time() - start})
            info["encoder_trained"] = True
        else:
            info["encoder_trained"] = False
        encoder.eval().to(device)
        info["encoder_params"] = sum(p.numel() for p in encoder.parameters())

        image_width, text_width = self._widths()

        @contextlib.contextmanager
        def on_cpu() -> Iterator[None]:  # the pool is encoded and the heads trained on the CPU
            encoder.to("cpu")
            try:
                yield
            finally:
                encoder.to(device)

        def split() -> tuple[Any, list[list[str]]]:
            images, captions, _ = train_split()
            return images, captions

        trainer = HeadTrainer(encoder, info["encoder_key"], recipe, image_width, text_width, self.fusion_train,
                              self.fusion_pool, self.reference_size, split, progress, kind="fusion", encoding=on_cpu)
        by_seed, head_info = trainer.build(specs, seeds, self.method_options, device)
        info.update(head_info)
        recipe_out = {k: v for k, v in self.fusion_train.as_dict().items() if k != "seed"}
        training = {"encoder": self.encoder_train.as_dict(), "fusion": recipe_out, "seeds": list(seeds),
                    "fusion_pool": self.fusion_pool, "reference_size": self.reference_size,
                    "augmentations": list(self.fusion_train.augmentations),
                    "corruptions_seen": list(self.fusion_train.corruptions)}
        return ModelBundle(encoder, by_seed, info, training)
