"""Fusion heads on a frozen encoder's features: the one training path of every backend.

The ``embedded`` backend trains its own encoder first; ``open_clip`` and ``hf`` load pretrained
ones. From there on they are alike: each fusion method's head trains on the frozen encoder's
token features of the dataset's training split under the same recipe
(:mod:`mafs_bench.models.fusion_training`: the same pool, batches, negatives, feature-level
degradations and seeds for every method, never an evaluation corruption), once per training
seed, and is cached by a key that covers

* the encoder's identity (``encoder_key``: the backend's description of its weights, e.g. the
  weights file's SHA-256, and preprocessing),
* the training data (``data_key``: the dataset's :meth:`~mafs_bench.data.Dataset.recipe`),
* the recipe (:class:`FusionTrainConfig`, pool and reference sizes), the method's network and
  options,
* and the code that trains it (:func:`mafs_bench.models.cache.config_key` of ``kind``).

A training saves a checkpoint (head, optimizer, step, the generator of its draws and the losses
so far) every ``checkpoint_every`` steps under ``<cache>/checkpoints/``; a run that stops part
way (Ctrl-C, a lost machine) continues from the last checkpoint the next time and ends with the
same weights as an uninterrupted run (same device and thread count; a test checks it).
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ContextManager

import torch

from . import cache
from .fusion import FusionMethod
from .methods import ModelSpec, class_path
from .fusion_training import FeatureEncoder, FusionTrainConfig, FusionTrainData, TrainState, build_fusion_data, train_fusion

#: progress(description, total) -> update(done, total, loss)
ProgressFactory = Callable[[str, int], Callable[[int, int, float], None]]


def split_pool(n_train: int, fusion_pool: int, reference_size: int) -> tuple[slice, slice]:
    """Training-split rows of the fusion pool and of the reference banks (disjoint).

    The reference items follow the pool; on a small training split the banks take at most a
    fifth of it.

    Raises:
        ValueError: fewer than 2 images left for the pool.
    """
    n_ref = min(reference_size, max(2, n_train // 5))
    n_pool = min(fusion_pool, n_train - n_ref)
    if n_pool < 2:
        raise ValueError(f"the training split has {n_train} images: too few for a fusion pool and reference banks")
    return slice(0, n_pool), slice(n_pool, n_pool + n_ref)


def state_tensors(state: TrainState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A :class:`TrainState` as safetensors tensors and JSON meta (the checkpoint format)."""
    tensors = {f"method.{k}": v for k, v in state.method.items()}
    tensors["generator"] = state.generator
    opt_meta: dict[str, Any] = {"param_groups": state.optimizer["param_groups"], "scalars": {}}
    for pid, entry in state.optimizer["state"].items():
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer.{pid}.{k}"] = v
            else:
                opt_meta["scalars"][f"{pid}.{k}"] = v
    return tensors, {"step": state.step, "losses": state.losses, "optimizer": opt_meta}


def state_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> TrainState:
    """Inverse of :func:`state_tensors`."""
    method = {k[len("method."):]: v for k, v in tensors.items() if k.startswith("method.")}
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optimizer."):
            pid, name = k[len("optimizer."):].split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = v
    for k, v in meta["optimizer"]["scalars"].items():
        pid, name = k.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v
    optimizer = {"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]}
    return TrainState(int(meta["step"]), [float(x) for x in meta["losses"]], method, optimizer, tensors["generator"])


def load_into(module: torch.nn.Module, state_dict: dict[str, Any], what: str) -> bool:
    """Load cached weights; False (with a :class:`cache.CacheWarning`) when they do not fit the
    module (a cache file whose recipe matches but whose tensors do not), so the caller retrains."""
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError) as err:
        warnings.warn(f"cached weights of the {what} do not fit it ({str(err).splitlines()[0]}); training again",
                      cache.CacheWarning, stacklevel=2)
        return False
    return True


@dataclass
class HeadTrainer:
    """Builds (loads from the cache, or trains) the fusion heads of a suite's models on one
    frozen encoder, per training seed.

    Attributes:
        encoder: the frozen encoder (:class:`FeatureEncoder`).
        encoder_key: its identity in cache keys (weights and preprocessing).
        data_key: what determines the training data (the dataset's ``recipe()``).
        image_width, text_width: widths of the image and text token features.
        recipe: the training recipe; its ``seed`` is replaced by each training seed.
        fusion_pool, reference_size: training-split images for the pool and the reference banks
            (:func:`split_pool`).
        training_split: returns (images, caption lists) of the training split; called only when
            something must be trained.
        progress: progress bars.
        kind: the cache kind (its code sources, :data:`mafs_bench.models.cache.KIND_SOURCES`).
        checkpoint_every: steps between checkpoints (0: none).
        encoding: context in which the pool is encoded (the embedded backend encodes on the CPU).
    """

    encoder: FeatureEncoder
    encoder_key: str
    data_key: dict[str, Any]
    image_width: int
    text_width: int
    recipe: FusionTrainConfig
    fusion_pool: int
    reference_size: int
    training_split: Callable[[], tuple[Any, list[list[str]]]]
    progress: ProgressFactory
    kind: str = "fusion"
    checkpoint_every: int = 50
    encoding: Callable[[], ContextManager[Any]] = contextlib.nullcontext
    _pool: FusionTrainData | None = field(default=None, init=False, repr=False)

    def key(self, method: FusionMethod, train_cfg: FusionTrainConfig) -> dict[str, Any]:
        """The cache key of ``method``'s head trained with ``train_cfg``."""
        return {"network": method.network, "options": method.options, "encoder": self.encoder_key,
                "data": self.data_key, "train": train_cfg.as_dict(), "pool": self.fusion_pool,
                "reference": self.reference_size}

    def pool(self) -> FusionTrainData:
        """The encoded fusion pool and reference banks (encoded once, on first use)."""
        if self._pool is None:
            images, captions = self.training_split()
            pool, ref = split_pool(len(images), self.fusion_pool, self.reference_size)
            done = self.progress(f"encode training pool ({pool.stop} images, {ref.stop - ref.start} for the banks)", 1)
            with self.encoding():
                self._pool = build_fusion_data(self.encoder, _rows(images, pool), captions[pool], _rows(images, ref),
                                               [c[0] for c in captions[ref]], self.recipe)
            done(1, 1, float("nan"))
        return self._pool

    def build(self, specs: Sequence[ModelSpec], seeds: Sequence[int], method_options: dict[str, dict[str, Any]],
              device: torch.device) -> tuple[dict[int, dict[str, FusionMethod]], dict[str, Any]]:
        """Every model's method per seed, trained heads loaded or trained (then cached).

        ``method_options``: the backend's options by leaderboard row (a spec's own options win).
        Methods sharing a network and options (``albef`` and ``blip``) share one set of weights
        per seed; a plugin's key adds its class and source hashes
        (:meth:`~mafs_bench.models.methods.ModelSpec.plugin_identity`). Returns
        ``(methods[seed][row], info)``; ``info`` has ``<row>_params``, ``fusion_keys`` (row ->
        seed -> cache key) and, for trainings that continued from a checkpoint, ``resumed:
        {row@seed: step}``.
        """
        by_seed: dict[int, dict[str, FusionMethod]] = {}
        trained: dict[str, dict[str, Any]] = {}
        info: dict[str, Any] = {}
        for seed in seeds:
            train_cfg = replace(self.recipe, seed=seed)
            methods: dict[str, FusionMethod] = {}
            for spec in specs:
                method = self._create(spec, method_options)
                if method.has_fusion:
                    key = self.key(method, train_cfg)
                    plugin = spec.plugin_identity()
                    if plugin is not None:  # a plugin's own code determines its weights too, and the
                        # options it was given even if it does not hand them to FusionMethod.options
                        key["plugin"] = {**plugin, "options": {**method_options.get(spec.name, {}), **spec.options}}
                    key_hash = cache.config_key(key, self.kind)
                    state = trained.get(key_hash) or cache.load_weights(self.kind, key)
                    if state is not None and not load_into(method, state["state_dict"], f"fusion head {spec.name}"):
                        state = None
                    if state is None:
                        method, resumed_at = self._train(spec, method_options, key, train_cfg)
                        if resumed_at:
                            info.setdefault("resumed", {})[f"{spec.name}@{seed}"] = resumed_at
                        state = {"state_dict": method.state_dict()}
                    trained[key_hash] = state
                    method.weights_id = key_hash
                    info[f"{spec.name}_params"] = sum(p.numel() for p in method.parameters())
                    info.setdefault("fusion_keys", {}).setdefault(spec.name, {})[str(seed)] = key_hash
                methods[spec.name] = method.eval().to(device)
            by_seed[seed] = methods
        return by_seed, info

    def _create(self, spec: ModelSpec, method_options: dict[str, dict[str, Any]]) -> FusionMethod:
        """``spec``'s method at the encoder's widths (backend options for its row under its own)."""
        return spec.create(self.image_width, self.text_width, **method_options.get(spec.name, {}))

    def _train(self, spec: ModelSpec, method_options: dict[str, dict[str, Any]], key: dict[str, Any],
               train_cfg: FusionTrainConfig) -> tuple[FusionMethod, int]:
        """Train one head (continuing from its checkpoint if there is one), cache it, drop the
        checkpoint; returns the method and the step it resumed at (0: from the start)."""
        pool = self.pool()
        torch.manual_seed(train_cfg.seed)  # nn.Module initialisers draw from torch's default generator
        method = self._create(spec, method_options).to(pool.images[0].emb.device)
        resume = self._resume_state(key, method)
        label = f"train {method.network} ({spec.name}) seed {train_cfg.seed}"
        if resume is not None:
            label += f", resumed at step {resume.step}"

        def save(state: TrainState) -> None:
            tensors, meta = state_tensors(state)
            cache.save_checkpoint(self.kind, key, tensors, {**meta, "method": spec.name})

        start = time.time()
        losses = train_fusion(method, pool, train_cfg, self.progress(label, train_cfg.steps), resume, save,
                              self.checkpoint_every)
        cache.save_weights(self.kind, key, method.state_dict(),
                           {"final_loss": losses[-1], "method": spec.name, "class": class_path(type(method)),
                            "seconds": round(time.time() - start, 2), "resumed_at": resume.step if resume else 0})
        cache.drop_checkpoint(self.kind, key)
        return method, resume.step if resume else 0

    def _resume_state(self, key: dict[str, Any], method: FusionMethod) -> TrainState | None:
        """The checkpoint of this training as a :class:`TrainState` whose head state fits
        ``method``, or None (with a :class:`cache.CacheWarning` for a checkpoint that does not)."""
        found = cache.load_checkpoint(self.kind, key)
        if found is None:
            return None
        try:
            state = state_from_tensors(found["state_dict"], found["meta"])
            probe = copy.deepcopy(method)
            probe.load_state_dict(state.method)
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            warnings.warn(f"ignoring checkpoint {cache.checkpoint_path(self.kind, key)}: "
                          f"{str(err).splitlines()[0] if str(err) else type(err).__name__}; training starts from the "
                          "beginning", cache.CacheWarning, stacklevel=2)
            return None
        return state


def _rows(images: Any, rows: slice) -> Any:
    """``images[rows]`` for arrays and sequences (a lazy sequence is sliced into a list view)."""
    if hasattr(images, "shape"):
        return images[rows]
    return _SliceView(images, rows)


class _SliceView(Sequence):
    """A slice of a lazy image sequence that opens nothing until indexed."""

    def __init__(self, base: Sequence[Any], rows: slice) -> None:
        self.base, self.index = base, range(len(base))[rows]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        return self.base[self.index[i]]

    def __iter__(self) -> Iterator[Any]:
        return (self.base[j] for j in self.index)
