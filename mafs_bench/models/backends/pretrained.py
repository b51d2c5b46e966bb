"""What the pretrained backends (``open_clip``, ``hf``) share: batching, precision, and the
fusion heads they train on their frozen encoder's features.

* **Precision**: ``precision: auto`` encodes under bfloat16 autocast on CUDA and in float32 on
  the CPU (so the CPU path is exact); ``fp32`` / ``bf16`` force one. Features always come back
  as float32.
* **Batches**: ``batch_size: auto`` is 512 images (CUDA) or 32 (CPU) per forward pass, captions
  four times as many. Images are decoded and preprocessed by ``num_workers`` DataLoader worker
  processes (``auto``: up to 8 on CUDA, none on the CPU, where they would only compete with the
  model for the cores) and copied to the GPU from pinned memory.
* **Heads**: every trainable fusion method trains on the frozen encoder's token features under
  the embedded world's recipe (:class:`mafs_bench.models.heads.HeadTrainer`), on the dataset's
  training split (COCO / Flickr30k Karpathy: ``train`` = train + restval), cached under the kind
  ``head`` whose key covers the encoder's weights (file digests), preprocessing and precision,
  the training data, the recipe and the code (:data:`mafs_bench.models.cache.KIND_SOURCES`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .. import cache
from ..fusion import FusionMethod
from ..fusion_training import FusionTrainConfig
from ..heads import HeadTrainer, ProgressFactory
from ..methods import ModelSpec, as_model_specs
from .base import Backend

#: images per forward pass by device type (``batch_size: auto``)
AUTO_IMAGE_BATCH = {"cuda": 512, "cpu": 32}
#: the head-training pool and reference banks of a pretrained backend (images of the training split)
DEFAULT_POOL, DEFAULT_REFERENCE = 10_000, 1_000
#: options of built-in methods on a pretrained encoder (under the backend's and the model's own):
#: ALBEF/BLIP-style heads project caption tokens to the fusion width before their text layer, so
#: their size does not grow with the encoder's text width (:mod:`mafs_bench.models.fusion.albef`)
DEFAULT_METHOD_OPTIONS: dict[str, dict[str, Any]] = {"albef": {"project_first": True}, "blip": {"project_first": True}}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on CUDA, ``fp32`` elsewhere; ``fp32`` / ``bf16`` as given.

    Raises:
        ValueError: any other value.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"backend.options.precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bfloat16 autocast on ``device`` when ``precision`` is ``bf16``, else a disabled one."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def resolve_batch_size(batch_size: int | str, device: torch.device) -> int:
    """``auto`` -> :data:`AUTO_IMAGE_BATCH` of the device type; an integer >= 1 as given."""
    if batch_size == "auto":
        return AUTO_IMAGE_BATCH.get(device.type, AUTO_IMAGE_BATCH["cpu"])
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"backend.options.batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")
    return batch_size


def resolve_workers(num_workers: int | str, device: torch.device) -> int:
    """``auto`` -> up to 8 decoding workers on CUDA (one core left for the main process), 0 on the CPU."""
    if num_workers == "auto":
        return min(8, max(0, (os.cpu_count() or 1) - 1)) if device.type == "cuda" else 0
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"backend.options.num_workers must be 'auto' or an integer >= 0, got {num_workers!r}")
    return num_workers


class _Preprocessed(torch.utils.data.Dataset):
    """Item ``i``: ``preprocess(images[i])``, run in a DataLoader worker (decoding included for
    lazily read images)."""

    def __init__(self, images: Sequence[Any], preprocess: Callable[[np.ndarray], torch.Tensor]) -> None:
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(np.asarray(self.images[i]))


def image_batches(images: Sequence[Any], preprocess: Callable[[np.ndarray], torch.Tensor], batch_size: int,
                  device: torch.device, num_workers: int) -> Iterator[torch.Tensor]:
    """Preprocessed image batches ``(B, 3, S, S)`` on ``device``, in order.

    ``images``: uint8 HxWx3 arrays (an (N, H, W, 3) array, a list, or a lazy sequence reading
    files). With ``num_workers`` > 0 the preprocessing (and any file decoding) runs in worker
    processes and batches come through pinned memory; the result is the same either way.
    """
    loader = torch.utils.data.DataLoader(_Preprocessed(images, preprocess), batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, pin_memory=device.type == "cuda",
                                         persistent_workers=False, prefetch_factor=4 if num_workers else None)
    for batch in loader:
        yield batch.to(device, non_blocking=True)


def encode_image_batches(wrapper: Any, images: Any) -> Any:
    """``wrapper``'s features of N uint8 HxWx3 images (array, list or lazy sequence), batched.

    The one image-encoding loop of the pretrained wrappers: ``wrapper`` gives ``_preprocess``,
    ``batch_size``, ``device``, ``num_workers``, ``precision`` and ``_forward_images(pixels) ->
    (pooled (B, D), tokens (B, P, W))``. Returns :class:`~mafs_bench.models.encoder.ImageFeatures`
    on the device: L2-normalised embeddings and tokens, float32. No images: an empty set of the
    right widths (one blank image is encoded to learn them).
    """
    import torch.nn.functional as F

    from ..encoder import ImageFeatures

    if len(images) == 0:
        one = encode_image_batches(wrapper, [np.zeros((8, 8, 3), np.uint8)])
        return ImageFeatures(one.emb[:0], one.tokens[:0])
    embs, toks = [], []
    for pixels in image_batches(images, wrapper._preprocess, wrapper.batch_size, wrapper.device, wrapper.num_workers):
        with autocast(wrapper.device, wrapper.precision):
            pooled, tokens = wrapper._forward_images(pixels)
        embs.append(F.normalize(pooled.float(), dim=-1))
        toks.append(tokens.float())
    return ImageFeatures(torch.cat(embs), torch.cat(toks))


class PretrainedBackend(Backend):
    """Base of backends whose encoder is pretrained: options shared by ``open_clip`` and ``hf``.

    Args:
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on the CPU), ``fp32`` or ``bf16``.
        batch_size: images per forward pass, or ``auto``.
        num_workers: image decoding workers, or ``auto``.
        fusion_train: overrides of :class:`FusionTrainConfig` (the heads' recipe; the same
            defaults as the embedded backend's).
        fusion_pool: training-split images whose features train the heads.
        reference_size: further training-split images whose features form the reference banks.
        methods: per-model options by leaderboard row, e.g. ``{mafs: {queries: tokens}}``; a model
            entry's own ``options`` override them.
        checkpoint_every: steps between head-training checkpoints (resume after an interruption).
        seed: unused (the suite's ``seeds`` are the heads' training seeds); accepted for a
            uniform suite schema.
    """

    #: the backend's name in messages
    name = ""

    def __init__(self, precision: str = "auto", batch_size: int | str = "auto", num_workers: int | str = "auto",
                 fusion_train: dict[str, Any] | None = None, fusion_pool: int = DEFAULT_POOL,
                 reference_size: int = DEFAULT_REFERENCE, methods: dict[str, dict[str, Any]] | None = None,
                 checkpoint_every: int = 50, seed: int = 0) -> None:
        resolve_precision(precision, torch.device("cpu"))
        resolve_batch_size(batch_size, torch.device("cpu"))
        resolve_workers(num_workers, torch.device("cpu"))
        self.precision, self.batch_size, self.num_workers = precision, batch_size, num_workers
        ft = dict(fusion_train or {})
        if "seed" in ft:
            raise ValueError("backend.options.fusion_train.seed: training seeds are the suite field `seeds`")
        for key in ("augmentations", "corruptions"):
            if key in ft:
                if not isinstance(ft[key], (list, tuple)):
                    raise ValueError(f"backend.options.fusion_train.{key} must be a list of names, got {ft[key]!r}")
                ft[key] = tuple(ft[key])
        self.fusion_train = FusionTrainConfig(**ft)
        for option, value, low in (("fusion_pool", fusion_pool, 2), ("reference_size", reference_size, 2),
                                   ("checkpoint_every", checkpoint_every, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"backend.options.{option} must be an integer >= {low}, got {value!r}")
        self.fusion_pool, self.reference_size, self.checkpoint_every = fusion_pool, reference_size, checkpoint_every
        self.method_options = methods or {}

    # --- what subclasses provide ----------------------------------------------------------------

    def has_pretrained_head(self) -> bool:
        """Whether the model has its own image-text matching head (method ``itm_head``)."""
        return False

    # --- shared ---------------------------------------------------------------------------------

    def method_problems(self, models: Sequence[str | ModelSpec]) -> list[str]:
        """Unresolvable methods, ``itm_head`` on a model without one, options a method refuses
        (checked by building it at placeholder widths; the real ones are known once the model
        is loaded)."""
        specs = as_model_specs(models)
        problems: list[str] = []
        unknown = sorted(set(self.method_options) - {m.name for m in specs})
        if unknown:
            problems.append(f"backend.options.methods: options for models the suite does not list: {unknown}")
        for spec in specs:
            where = f"models.{spec.name}.options" if spec.options else f"backend.options.methods.{spec.name}"
            try:
                cls = spec.cls
            except (ValueError, KeyError) as err:
                problems.append(f"model {spec.name!r}: {err}")
                continue
            if cls.pretrained_head and not self.has_pretrained_head():
                problems.append(f"model {spec.name!r}: method {spec.method!r} needs a model with its own image-text "
                                f"matching head (BlipForImageTextRetrieval through the hf backend); backend "
                                f"{self.name!r} with this model has none")
            try:
                self._create(spec, 64, 64)
            except (TypeError, ValueError) as err:
                problems.append(f"{where}: {err}")
            except Exception as err:  # noqa: BLE001 - a plugin's constructor may fail in any way
                problems.append(f"{where}: building {spec.method!r} failed: {type(err).__name__}: {err}")
        return problems

    def _create(self, spec: ModelSpec, image_width: int, text_width: int) -> FusionMethod:
        """``spec``'s method: :data:`DEFAULT_METHOD_OPTIONS` (built-ins), then the backend's options
        for its row, then the spec's own."""
        return spec.create(image_width, text_width, **self.row_options(spec))

    def row_options(self, spec: ModelSpec) -> dict[str, Any]:
        """Options of ``spec``'s row before its own: built-in defaults, then the backend's."""
        defaults = DEFAULT_METHOD_OPTIONS.get(spec.method, {}) if spec.plugin_identity() is None else {}
        return {**defaults, **self.method_options.get(spec.name, {})}

    def build_methods(self, encoder: Any, encoder_key: str, dataset: Any, specs: list[ModelSpec],
                      seeds: Sequence[int], device: torch.device, progress: ProgressFactory,
                      attach: Callable[[FusionMethod], None] | None = None) -> tuple[dict[int, dict[str, FusionMethod]], dict[str, Any]]:
        """Every model's method per seed: ITC-only methods as they are, ``itm_head`` methods with
        the model's own head (``attach``), the rest trained on the encoder's features
        (:class:`HeadTrainer`, cached). Returns ``(methods[seed][row], info)``."""
        trainable = [s for s in specs if s.cls.has_fusion and not s.cls.pretrained_head]
        by_seed: dict[int, dict[str, FusionMethod]] = {s: {} for s in seeds}
        info: dict[str, Any] = {}
        if trainable:
            image_width, text_width = encoder.token_widths()

            def split() -> tuple[Any, list[list[str]]]:
                found = dataset.training_data() if dataset is not None else None
                if found is None:
                    raise ValueError(f"backend {self.name!r}: models {[s.name for s in trainable]} train fusion heads on "
                                     f"the dataset's training split, but dataset {type(dataset).__name__} has none")
                return found[0], list(found[1])

            trainer = HeadTrainer(encoder, encoder_key, dataset.recipe(), image_width, text_width, self.fusion_train,
                                  self.fusion_pool, self.reference_size, split, progress, kind="head",
                                  checkpoint_every=self.checkpoint_every)
            heads, info = trainer.build(trainable, seeds, {s.name: self.row_options(s) for s in trainable}, device)
            for s in seeds:
                by_seed[s].update(heads[s])
        fixed: dict[str, FusionMethod] = {}
        for spec in specs:
            if spec in trainable:
                continue
            method = self._create(spec, 0, 0)
            if spec.cls.pretrained_head:
                if attach is None:
                    raise ValueError(f"model {spec.name!r}: backend {self.name!r} has no pretrained head for {spec.method!r}")
                attach(method)
                method.weights_id = f"{spec.method}:{encoder_key}"
            fixed[spec.name] = method.eval().to(device)
        for s in seeds:  # fixed methods: the same object under every seed
            by_seed[s].update(fixed)
            by_seed[s] = {spec.name: by_seed[s][spec.name] for spec in specs}
        return by_seed, info

    def training_record(self, seeds: Sequence[int], trained: bool) -> dict[str, Any]:
        """The ``run.json["training"]`` record: the heads' recipe (when any head is trained)."""
        if not trained:
            return {"seeds": list(seeds), "augmentations": [], "corruptions_seen": [],
                    "note": "pretrained weights; nothing trained"}
        recipe = {k: v for k, v in self.fusion_train.as_dict().items() if k != "seed"}
        return {"encoder": "pretrained, frozen", "fusion": recipe, "seeds": list(seeds),
                "fusion_pool": self.fusion_pool, "reference_size": self.reference_size,
                "augmentations": list(self.fusion_train.augmentations),
                "corruptions_seen": list(self.fusion_train.corruptions)}

    @staticmethod
    def trains_heads(models: Sequence[str | ModelSpec]) -> bool:
        """Whether any model trains a fusion head."""
        return any(s.cls.has_fusion and not s.cls.pretrained_head for s in as_model_specs(models))


def encoder_key(identity: dict[str, Any]) -> str:
    """The cache-key hash of a pretrained encoder's identity (weights digests, preprocessing,
    precision): the ``encoder`` field of its heads' keys."""
    return cache.config_key({"pretrained_encoder": identity}, "head")


__all__ = ["PretrainedBackend", "autocast", "encoder_key", "image_batches", "resolve_batch_size",
           "resolve_precision", "resolve_workers"]
