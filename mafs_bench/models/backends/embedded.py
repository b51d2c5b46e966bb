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
from ..encoder import DualEncoder, image_array, load_encoder_config
from ..fusion import AnswerSpace, FusionMethod
from ..fusion_training import FusionTrainConfig
from ..heads import HeadTrainer, load_into, split_pool
from ..methods import ModelSpec, as_model_specs
from ..tokenizer import WordTokenizer
from ..training import EncoderTrainConfig, train_encoder
from ..vqa_training import VQATrainData, build_answer_space, build_vqa_data, pool_questions, train_vqa
from .base import BACKENDS, Backend, ModelBundle, ProgressFactory

#: default training steps of the VQA heads (every method alike); small, so that VQA heads for
#: every method and seed fit the quickstart's time budget
VQA_STEPS = 300
VQA_WARMUP = 30

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
        vqa_train: overrides of the VQA heads' :class:`FusionTrainConfig` (default: the
            ``fusion_train`` recipe with :data:`VQA_STEPS` steps, without its opt-in
            ``corruptions``, which the VQA heads never train on); the same for every method.
        max_answers: size of the VQA answer vocabulary (the most frequent training answers).

    VQA heads (:mod:`mafs_bench.models.vqa_training`) train on the questions of the fusion pool's
    images, one instance per method and seed, cached like the ITM heads (kind ``vqa``).
    """

    def __init__(self, encoder: str = "mafs-tiny-vit", context_length: int = 40,
                 encoder_train: dict[str, Any] | None = None, fusion_train: dict[str, Any] | None = None,
                 fusion_pool: int = 4000, reference_size: int = 1000, methods: dict[str, dict[str, Any]] | None = None,
                 seed: int = 0, vqa_train: dict[str, Any] | None = None, max_answers: int = 1000) -> None:
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
        self.vqa_train = self._vqa_config(vqa_train or {}, ft)
        if not isinstance(max_answers, int) or max_answers < 2:
            raise ValueError(f"backend.options.max_answers must be an integer >= 2, got {max_answers!r}")
        self.max_answers = max_answers
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

    @staticmethod
    def _vqa_config(overrides: dict[str, Any], fusion: dict[str, Any]) -> FusionTrainConfig:
        """The VQA recipe: the fusion recipe's settings, :data:`VQA_STEPS` steps, then ``overrides``."""
        if "seed" in overrides:
            raise ValueError("backend.options.vqa_train.seed: training seeds are the suite field `seeds`")
        if overrides.get("corruptions"):
            raise ValueError("backend.options.vqa_train.corruptions: VQA heads train on feature-level augmentations "
                             "only (no opt-in corruptions)")
        inherited = {k: v for k, v in fusion.items() if k != "corruptions"}  # fusion_train's opt-in is the ITM heads'
        merged = {"steps": VQA_STEPS, "warmup": VQA_WARMUP, **inherited, **overrides}
        for key in ("augmentations",):
            if key in merged:
                merged[key] = tuple(merged[key])
        return FusionTrainConfig(**merged)

    def split_pool(self, n_train: int) -> tuple[slice, slice]:
        """Training-split rows of the fusion pool and of the reference banks (:func:`split_pool`)."""
        return split_pool(n_train, self.fusion_pool, self.reference_size)

    def build(self, dataset: Any, models: list[str | ModelSpec], device: torch.device, progress: ProgressFactory,
              seeds: list[int], tasks: dict[str, list[str]] | None = None) -> ModelBundle:
        specs = as_model_specs(models)
        tasks = {"retrieval": [m.name for m in specs]} if tasks is None else tasks
        by_name = {m.name: m for m in specs}
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
                images, captions, vocabulary = dataset.training_data()
                # one array at the encoder's input size (a folder's lazy images are read once)
                training_data = (image_array(images, encoder.image_size), captions, vocabulary)
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
        retrieval_specs = [by_name[n] for n in tasks.get("retrieval", [])]
        by_seed, head_info = trainer.build(retrieval_specs, seeds, self.method_options, device)
        for seed in seeds:
            by_seed.setdefault(seed, {})
        info.update(head_info)
        recipe_out = {k: v for k, v in self.fusion_train.as_dict().items() if k != "seed"}
        training = {"encoder": self.encoder_train.as_dict(), "fusion": recipe_out, "seeds": list(seeds),
                    "fusion_pool": self.fusion_pool, "reference_size": self.reference_size,
                    "augmentations": list(self.fusion_train.augmentations),
                    "corruptions_seen": list(self.fusion_train.corruptions)}
        bundle = ModelBundle(encoder, by_seed, info, training)
        if tasks.get("vqa"):
            start = time.time()
            bundle.task_methods["vqa"] = self._build_vqa(dataset, [by_name[n] for n in tasks["vqa"]], encoder, info,
                                                         device, progress, seeds)
            training["vqa"] = {**{k: v for k, v in self.vqa_train.as_dict().items() if k != "seed"},
                               "max_answers": self.max_answers, "answers": info["vqa_answers"]}
            info["vqa_seconds"] = round(time.time() - start, 1)
        for task, names in tasks.items():  # tasks that train their own heads (captioning: Task.fit)
            if task not in ("retrieval", "vqa") and names:
                bundle.task_methods[task] = {
                    seed: {n: by_seed[seed][n] if n in by_seed[seed] else
                           self._create(by_name[n], image_width, text_width).eval()
                           for n in names} for seed in seeds}
        return bundle

    def _build_vqa(self, dataset: Any, models: list[ModelSpec], encoder: DualEncoder, info: dict[str, Any],
                   device: torch.device, progress: ProgressFactory, seeds: list[int]) -> dict[int, dict[str, FusionMethod]]:
        """VQA instances of ``models`` per seed: loaded from the cache, or trained on the
        questions of the fusion pool (:mod:`mafs_bench.models.vqa_training`)."""
        split: Any = None
        pool_data: VQATrainData | None = None

        def train_split() -> Any:
            nonlocal split
            if split is None:
                split = dataset.train_split()
                if split is None or not split.has_qa:
                    raise ValueError(f"backend 'embedded' trains the VQA heads on the dataset's training questions, but "
                                     f"dataset {type(dataset).__name__} has no training split with questions")
            return split

        space_key = {"encoder": info["encoder_key"], "pool": self.fusion_pool, "reference": self.reference_size,
                     "max_answers": self.max_answers}
        stored = cache.load_weights("vqa_space", space_key)
        if stored is not None:
            space = AnswerSpace(tuple(stored["meta"]["answers"]), tuple(stored["meta"]["types"]))
        else:
            train = train_split()
            pool, _ = self.split_pool(len(train.images))
            rows = pool_questions(train, pool)
            space = build_answer_space([train.answers[i] for i in rows], [train.question_types[i] for i in rows],
                                       self.max_answers)
            cache.save_weights("vqa_space", space_key, {"answers": torch.zeros(len(space.answers))},
                               {"answers": list(space.answers), "types": list(space.types)})
        info["vqa_answers"] = len(space.answers)
        embed_dim = int(self.encoder_config["embed_dim"])
        image_width = int(self.encoder_config["vision_cfg"]["width"])
        text_width = int(self.encoder_config["text_cfg"]["width"])
        trained: dict[str, dict[str, Any]] = {}
        by_seed: dict[int, dict[str, FusionMethod]] = {}
        for seed in seeds:
            cfg = replace(self.vqa_train, seed=seed)
            methods: dict[str, FusionMethod] = {}
            for spec in models:
                name = spec.name

                def fresh() -> FusionMethod:
                    torch.manual_seed(seed)  # nn.Module initialisers draw from torch's default generator
                    m = self._create(spec, image_width, text_width)
                    m.setup_answers(space, embed_dim)
                    return m

                method = fresh()
                key = {"task": "vqa", "network": method.network, "options": method.options, "space": space_key,
                       "train": cfg.as_dict()}
                plugin = spec.plugin_identity()
                if plugin is not None:  # a plugin's own code and options determine its weights too
                    key["plugin"] = {**plugin, "options": {**self.method_options.get(name, {}), **spec.options}}
                key_hash = cache.config_key(key, "vqa")
                state = trained.get(key_hash) or cache.load_weights("vqa", key)
                if state is not None and not load_into(method, state["state_dict"], f"VQA head {name}"):
                    state = None
                if state is None:
                    if pool_data is None:
                        train = train_split()
                        pool, ref = self.split_pool(len(train.images))
                        encoder.to("cpu")
                        pool_data = build_vqa_data(encoder, train, pool, ref, space)
                        encoder.to(device)
                    method = fresh()
                    losses = train_vqa(method, pool_data, cfg, progress(f"train VQA {method.network} ({name}) seed {seed}",
                                                                       cfg.steps))
                    cache.save_weights("vqa", key, method.state_dict(), {"final_loss": losses[-1] if losses else None,
                                                                         "method": name})
                    state = {"state_dict": method.state_dict()}
                trained[key_hash] = state
                method.weights_id = key_hash
                method.answer_space = space
                info[f"{name}_vqa_params"] = sum(p.numel() for p in method.parameters())
                methods[name] = method.eval().to(device)
            by_seed[seed] = methods
        return by_seed
