"""The ``open_clip`` backend: any open_clip model from local files, never downloaded.

Where the model comes from (option ``model``, with ``pretrained`` / ``checkpoint``):

* an architecture and a pretrained tag (``model: ViT-B-32, pretrained: laion2b_s34b_b79k``): the
  tag's weights file, looked up in the local Hugging Face cache (``$HF_HUB_CACHE``, default
  ``~/.cache/huggingface/hub``) or, for tags open_clip fetches by URL, in ``~/.cache/clip``;
  preprocessing and QuickGELU from the tag, as open_clip sets them;
* ``model: hf-hub:org/repo``: that repository's ``open_clip_config.json`` and weights from the
  local Hugging Face cache;
* ``model: local-dir:/path``: open_clip's folder format, ``open_clip_config.json`` (with its
  ``model_cfg`` and optional ``preprocess_cfg``) and a weights file beside it;
* an architecture and ``checkpoint: /path/to/weights`` (``.safetensors``, ``.bin``, ``.pt``);
  a ``pretrained`` tag given too sets the preprocessing.

Nothing is ever fetched (whatever ``HF_HUB_OFFLINE`` says): a missing piece stops the run in
preflight with a message naming the model, the tag, the cache path searched and how to provide
them.

Features: besides the pooled, L2-normalised contrastive embeddings, the encoder returns token
features, ``model.forward_intermediates`` of the last block with the tower's final norm applied
(open_clip's own ``output_tokens``: the vision tower's ``ln_post``-normed patch tokens without
the class token, the text tower's ``ln_final``-normed token states). Every trainable fusion
method trains its head on them with the encoder frozen (:mod:`.pretrained`). The text mask marks
each caption's tokens up to and including the token the tower pools at (the end-of-text token),
so the heads' ``end_token`` is where open_clip pools.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from .. import cache
from ..encoder import ImageFeatures, TextFeatures
from ..heads import ProgressFactory
from ..methods import ModelSpec, as_model_specs
from .base import BACKENDS, ModelBundle, WeightsMissingError
from .pretrained import (PretrainedBackend, autocast, encode_image_batches, encoder_key, image_batches, resolve_batch_size, resolve_precision,
                         resolve_workers)

HF_PREFIX, LOCAL_PREFIX = "hf-hub:", "local-dir:"
#: weights file names open_clip looks for in a folder, in its order of preference
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")


def hf_cache_dir() -> str:
    """The local Hugging Face hub cache searched for weights, read when asked: ``$HF_HUB_CACHE``,
    else ``$HF_HOME/hub``, else huggingface_hub's default (``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def cached_hub_file(repo: str, filename: str) -> str | None:
    """The local path of ``filename`` of hub repo ``repo`` in :func:`hf_cache_dir`, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=hf_cache_dir())
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class OpenClipSource:
    """Where an open_clip model's config and weights are, resolved from local files only.

    Attributes:
        model_name: what ``open_clip.create_model_and_transforms`` gets (an architecture or
            ``local-dir:<folder>``).
        weights: the local weights file.
        create_kwargs: extra arguments (QuickGELU, preprocessing of a tag).
        identity: what identifies the features in cache keys: the architecture's ``model_cfg``
            (and a folder's ``preprocess_cfg``) and the weights file's SHA-256 digest, not where
            the files are.
    """

    model_name: str
    weights: str
    create_kwargs: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)


def _find_weights(folder: Path) -> Path | None:
    """The weights file open_clip loads from a ``local-dir:`` folder (its own choice when the
    installed open_clip exposes it, else the same order of preference)."""
    try:
        from open_clip.factory import _find_checkpoint_in_dir

        found = _find_checkpoint_in_dir(folder)
        return Path(found) if found else None
    except ImportError:  # pragma: no cover - older or newer open_clip
        pass
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    found = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("*.pth"), *folder.glob("*.pt")])
    return found[0] if found else None


def _tag_kwargs(tag_cfg: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing and QuickGELU that open_clip derives from a pretrained tag."""
    kwargs: dict[str, Any] = {}
    if tag_cfg.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
    for src, dst in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation"),
                     ("resize_mode", "image_resize_mode")):
        if tag_cfg.get(src) is not None:
            kwargs[dst] = tuple(tag_cfg[src]) if isinstance(tag_cfg[src], (list, tuple)) else tag_cfg[src]
    return kwargs


def _cached_tag_weights(tag_cfg: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The local weights file of a pretrained tag, and the places searched."""
    searched: list[str] = []
    hub = (tag_cfg.get("hf_hub") or "").strip()
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            searched.append(f"{hf_cache_dir()} (repo {repo}, file {name})")
            found = cached_hub_file(repo, name)
            if found is not None:
                return found, searched
    url = tag_cfg.get("url") or ""
    if url:
        path = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        searched.append(str(path))
        if path.is_file():
            return str(path), searched
    return None, searched


def _identity(config: Path, weights: Path) -> dict[str, Any]:
    """What identifies a folder model's features: its ``model_cfg`` / ``preprocess_cfg`` and the
    weights file's digest (not the folder's path: the same files give the same key)."""
    data = json.loads(config.read_text())
    return {"model_cfg": data.get("model_cfg"), "preprocess_cfg": data.get("preprocess_cfg"),
            "weights": cache.file_digest(weights)}


def resolve_source(model: str, pretrained: str | None, checkpoint: str | None) -> OpenClipSource:
    """Find an open_clip model's config and weights on this machine (nothing is downloaded).

    Raises:
        WeightsMissingError: a piece is missing; the message names the model, the tag, where it
            looked and how to provide it.
    """
    arch, tag = (model, pretrained or "TAG") if not model.startswith((LOCAL_PREFIX, HF_PREFIX)) else ("ARCH", "TAG")
    how = ("Provide it in one of these ways: an open_clip folder (open_clip_config.json + weights) as "
           "backend.options.model: local-dir:/path; a weights file as backend.options.checkpoint with the "
           "architecture as model; or, on a machine with internet, run `python -c \"import open_clip; "
           f"open_clip.create_model_and_transforms('{arch}', pretrained='{tag}')\"` and copy its Hugging Face cache "
           f"to {hf_cache_dir()} here (or set HF_HUB_CACHE to the copy).")
    if model.startswith(LOCAL_PREFIX):
        folder = Path(os.path.expandvars(model[len(LOCAL_PREFIX):])).expanduser()
        config = folder / "open_clip_config.json"
        if not config.is_file():
            raise WeightsMissingError(f"open_clip model {model!r}: {config} not found (an open_clip local-dir: folder "
                                      f"holds open_clip_config.json with model_cfg, and a weights file). " + how)
        try:
            if "model_cfg" not in json.loads(config.read_text()):
                raise ValueError("it has no 'model_cfg'")
        except ValueError as err:
            raise WeightsMissingError(f"open_clip model {model!r}: {config} is not an open_clip config ({err})") from None
        weights = _find_weights(folder)
        if weights is None:
            raise WeightsMissingError(f"open_clip model {model!r}: no weights file in {folder} (looked for "
                                      f"{', '.join(WEIGHT_FILES[:3])}, *.safetensors, *.bin, *.pth, *.pt). " + how)
        return OpenClipSource(f"{LOCAL_PREFIX}{folder}", str(weights), {}, _identity(config, weights))
    if model.startswith(HF_PREFIX):
        repo = model[len(HF_PREFIX):].strip("/")
        config = cached_hub_file(repo, "open_clip_config.json")
        weights = cached_hub_file(repo, "open_clip_model.safetensors") or cached_hub_file(repo, "open_clip_pytorch_model.bin")
        if not isinstance(config, str) or weights is None:
            missing = [n for n, ok in (("open_clip_config.json", isinstance(config, str)),
                                       ("open_clip_model.safetensors or open_clip_pytorch_model.bin", weights is not None)) if not ok]
            raise WeightsMissingError(f"open_clip model {model!r}: {' and '.join(missing)} of repo {repo} not in the local "
                                      f"Hugging Face cache {hf_cache_dir()} (nothing is downloaded). " + how)
        return OpenClipSource(f"{LOCAL_PREFIX}{Path(config).parent}", weights, {}, _identity(Path(config), Path(weights)))
    if model not in open_clip.list_models():
        raise WeightsMissingError(f"backend.options.model {model!r} is not an open_clip architecture "
                                  f"(open_clip.list_models()), nor hf-hub:org/repo or local-dir:/path")
    tag_cfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained else {}
    if pretrained and not tag_cfg and not checkpoint:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise WeightsMissingError(f"open_clip model {model!r}: unknown pretrained tag {pretrained!r}; its tags are {tags}")
    kwargs = _tag_kwargs(tag_cfg or {})
    if checkpoint:
        path = Path(os.path.expandvars(checkpoint)).expanduser()
        if not path.is_file():
            raise WeightsMissingError(f"open_clip model {model!r}: backend.options.checkpoint file not found: {path}. " + how)
        return OpenClipSource(model, str(path), kwargs, {"model_cfg": open_clip.get_model_config(model),
                                                         "weights": cache.file_digest(path)})
    if not pretrained:
        raise WeightsMissingError(f"open_clip model {model!r}: no weights given (backend.options.pretrained, a tag, or "
                                  f"backend.options.checkpoint, a file). " + how)
    found, searched = _cached_tag_weights(tag_cfg)
    if found is None:
        raise WeightsMissingError(f"open_clip weights {model}/{pretrained} are not on this machine (searched "
                                  f"{'; '.join(searched)}; nothing is downloaded). " + how)
    return OpenClipSource(model, found, kwargs, {"model_cfg": open_clip.get_model_config(model),
                                                 "weights": cache.file_digest(found)})


class OpenClipEncoder:
    """Encoder interface over an open_clip model: pooled embeddings and token features.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP``.
        preprocess: its evaluation transform (PIL image -> (3, S, S) tensor).
        tokenizer: its tokenizer (texts -> (N, context_length) int64 ids).
        device: where the model runs and the features come back.
        precision: ``fp32`` or ``bf16`` (autocast; features come back as float32).
        batch_size: images per forward pass (captions: four times as many).
        num_workers: DataLoader workers that decode and preprocess images.
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, device: torch.device, precision: str = "fp32",
                 batch_size: int = 32, num_workers: int = 0) -> None:
        self.model = model.eval().requires_grad_(False).to(device)
        self.preprocess, self.tokenizer = preprocess, tokenizer
        self.device, self.precision = device, precision
        self.batch_size, self.num_workers = batch_size, num_workers
        self._image_fmt = "NLC"

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp of the model's learned log temperature (1 / tau)."""
        return self.model.logit_scale.exp().reshape(())

    def _preprocess(self, image: np.ndarray) -> torch.Tensor:
        return self.preprocess(Image.fromarray(np.ascontiguousarray(image).astype(np.uint8, copy=False)).convert("RGB"))

    def _forward_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding, tokens (B, P, W)): the last block's output; towers that give feature maps
        only (ModifiedResNet: NCHW) have their H x W positions as the tokens."""
        try:
            out = self.model.forward_intermediates(image=pixels, image_indices=1, normalize=False,
                                                   normalize_intermediates=True, image_output_fmt=self._image_fmt)
        except AssertionError:  # the tower supports only NCHW intermediates
            if self._image_fmt == "NCHW":
                raise
            self._image_fmt = "NCHW"
            return self._forward_images(pixels)
        tokens = out["image_intermediates"][-1]
        if tokens.ndim == 4:
            tokens = tokens.flatten(2).transpose(1, 2)
        return out["image_features"], tokens

    def _forward_texts(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.forward_intermediates(text=ids, text_indices=1, normalize=False, normalize_intermediates=True)
        return out["text_features"], out["text_intermediates"][-1]

    @torch.no_grad()
    def encode_images(self, images: Any) -> ImageFeatures:
        """N uint8 HxWx3 images (array, list or lazy sequence) -> :class:`ImageFeatures` on the
        device: (N, D) normalised embeddings, (N, P, W) patch tokens, float32."""
        return encode_image_batches(self, images)

    def _ids_and_mask(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (N, context_length) and the mask of each caption's tokens up to and
        including the one the text tower pools at."""
        ids = self.tokenizer(list(texts))
        length = ids.shape[1]
        pool_type = getattr(self.model, "text_pool_type", None) or getattr(getattr(self.model, "text", None), "pool_type", "argmax")
        eos = getattr(self.model, "text_eos_id", None) or getattr(getattr(self.model, "text", None), "eos_id", None)
        if pool_type == "eos" and eos is not None:
            end = (ids == eos).int().argmax(-1)
        elif pool_type == "argmax":
            end = ids.argmax(-1)
        else:  # first / last / none: every non-pad token
            pad = getattr(getattr(self.tokenizer, "tokenizer", None), "pad_token_id", 0) or 0
            valid = ids != pad
            end = torch.where(valid.any(1), length - 1 - valid.flip(1).int().argmax(1), torch.zeros_like(ids[:, 0]))
        mask = torch.arange(length)[None, :] <= end[:, None]
        return ids, mask

    def text_length(self, texts: list[str]) -> int:
        """Tokens of the longest of ``texts`` (start and end included)."""
        return int(self._ids_and_mask(texts)[1].sum(1).max())

    @torch.no_grad()
    def encode_texts(self, texts: list[str], length: int | None = None) -> TextFeatures:
        """Captions -> :class:`TextFeatures`: (M, D) normalised embeddings, (M, L, W) token states,
        (M, L) mask and ids, ``L`` = the longest caption's tokens (or ``length``)."""
        if len(texts) == 0:
            one = self.encode_texts([""], length=length)
            return TextFeatures(one.emb[:0], one.tokens[:0], one.mask[:0], one.ids[:0])
        ids, mask = self._ids_and_mask(texts)
        if length is None:
            length = int(mask.sum(1).max())
        embs, toks = [], []
        step = 4 * self.batch_size
        for start in range(0, len(texts), step):
            with autocast(self.device, self.precision):
                pooled, tokens = self._forward_texts(ids[start : start + step].to(self.device))
            embs.append(F.normalize(pooled.float(), dim=-1))
            toks.append(tokens[:, :length].float())
        return TextFeatures(torch.cat(embs), torch.cat(toks), mask[:, :length].to(self.device),
                            ids[:, :length].to(self.device))

    def token_widths(self) -> tuple[int, int]:
        """Widths of the image and text token features."""
        return int(self.encode_images([np.zeros((8, 8, 3), np.uint8)]).tokens.shape[-1]), \
            int(self.encode_texts(["a"]).tokens.shape[-1])


@BACKENDS.register("open_clip")
class OpenClipBackend(PretrainedBackend):
    """Any open_clip model from local files (module docstring), with fusion heads trained on its
    frozen features.

    Args:
        model: architecture name (``open_clip.list_models()``), ``hf-hub:org/repo`` or
            ``local-dir:/path``.
        pretrained: pretrained tag of the architecture (``open_clip.list_pretrained()``),
            resolved from the local caches.
        checkpoint: a local weights file for the architecture (``~`` and variables expanded).
        **options: the shared options of :class:`PretrainedBackend` (precision, batch_size,
            num_workers, fusion_train, fusion_pool, reference_size, methods, checkpoint_every).
    """

    name = "open_clip"

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k",
                 checkpoint: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        if not isinstance(model, str) or not model:
            raise ValueError(f"backend.options.model must be an open_clip model name, got {model!r}")
        self.model_name, self.pretrained, self.checkpoint = model, pretrained, checkpoint
        self._source: OpenClipSource | None = None

    def source(self) -> OpenClipSource:
        """The resolved model source (:func:`resolve_source`), once."""
        if self._source is None:
            self._source = resolve_source(self.model_name, self.pretrained, self.checkpoint)
        return self._source

    def preflight(self, models: list[str | ModelSpec]) -> list[str]:
        problems = self.method_problems(models)
        try:
            self.source()
        except WeightsMissingError as err:
            problems.append(str(err))
        return problems

    def build(self, dataset: Any, models: list[str | ModelSpec], device: torch.device, progress: ProgressFactory,
              seeds: list[int], tasks: dict[str, list[str]] | None = None) -> ModelBundle:
        trained_tasks = sorted(t for t, rows in (tasks or {}).items() if t != "retrieval" and rows)
        if trained_tasks:
            raise WeightsMissingError(f"backend 'open_clip' has no heads for tasks {trained_tasks} yet (VQA heads and "
                                      f"caption decoders train on the embedded backend only); use backend 'embedded' for them")
        problems = self.preflight(models)
        if problems:
            raise WeightsMissingError("; ".join(problems))
        src = self.source()
        weights = None if src.model_name.startswith(LOCAL_PREFIX) else src.weights  # a folder brings its own
        model, _, preprocess = open_clip.create_model_and_transforms(src.model_name, pretrained=weights,
                                                                     **src.create_kwargs)
        tokenizer = open_clip.get_tokenizer(src.model_name)
        precision = resolve_precision(self.precision, device)
        encoder = OpenClipEncoder(model, preprocess, tokenizer, device, precision,
                                  resolve_batch_size(self.batch_size, device), resolve_workers(self.num_workers, device))
        identity = {"backend": "open_clip", **src.identity,
                    "create": {k: list(v) if isinstance(v, tuple) else v for k, v in src.create_kwargs.items()},
                    "preprocess": repr(preprocess), "precision": precision}
        key = encoder_key(identity)
        entries = as_model_specs(models)
        by_seed, heads_info = self.build_methods(encoder, key, dataset, entries, seeds, device, progress)
        by_name = not self.model_name.startswith((LOCAL_PREFIX, HF_PREFIX))
        info = {"model": self.model_name, "pretrained": self.pretrained if by_name else None, "weights": src.weights,
                "encoder_key": key,
                "precision": precision, "encoder_params": sum(p.numel() for p in model.parameters()), **heads_info}
        return ModelBundle(encoder, by_seed, info, self.training_record(seeds, self.trains_heads(models)))
