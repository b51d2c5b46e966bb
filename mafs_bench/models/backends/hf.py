"""The ``hf`` backend: Hugging Face transformers models from local files, never downloaded.

Option ``model``: a hub id resolved from the local Hugging Face cache (``$HF_HUB_CACHE``, default
``~/.cache/huggingface/hub``; nothing is fetched), or a folder written by ``save_pretrained``
(the model and its processor). The model's ``config.json`` ``architectures`` picks the wrapper
(:data:`HF_ARCHITECTURES`):

* ``CLIPModel``: a dual encoder, like an open_clip model. Features: the projected pooled
  embeddings (``get_image_features`` / ``get_text_features``), the vision tower's patch tokens
  after its ``post_layernorm`` (open_clip's convention) and the text tower's last hidden states;
  the trainable fusion methods train heads on them (:mod:`.pretrained`).
* ``BlipForImageTextRetrieval`` (e.g. ``Salesforce/blip-itm-base-coco``): BLIP with its own
  weights. ITC: ``vision_proj`` / ``text_proj`` of the unimodal [CLS] states, as the model's
  ``use_itm_head=False`` forward; method ``itm_head`` re-ranks with the model's own
  image-grounded text encoder and ITM head, as its ``use_itm_head=True`` forward (ALBEF/BLIP
  protocol: ITC ranking, then ITM on the top k; :mod:`mafs_bench.models.fusion.itm_head`). The
  image tokens are the vision tower's last hidden states ([CLS] included, what the ITM head
  cross-attends to); ``TextFeatures.ids`` carry the token ids the ITM head needs. Trainable
  heads can train on these features too. BLIP-ITM has no learned temperature in transformers;
  its ``logit_scale`` here is ``exp(config.logit_scale_init_value)`` (1 / 0.07), used only by
  head training and MA-AFS's cues.

Preprocessing is the model's own processor (``AutoProcessor``): its image processor and its
tokenizer, captions truncated at ``max_text_length`` tokens (default: BLIP's retrieval setting,
35, for BLIP; the text tower's positions, 77, for CLIP). A test checks that the embeddings and
ITM scores equal those of calling transformers directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .. import cache
from ..encoder import ImageFeatures, TextFeatures
from ..fusion import FusionMethod
from ..heads import ProgressFactory
from ..methods import ModelSpec, as_model_specs
from .base import BACKENDS, ModelBundle, WeightsMissingError
from .open_clip_hub import hf_cache_dir
from .pretrained import (PretrainedBackend, autocast, encode_image_batches, encoder_key, image_batches, resolve_batch_size, resolve_precision,
                         resolve_workers)

#: files whose digests identify a save_pretrained folder (weights, configs, tokenizer, processor)
IDENTITY_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")
#: BLIP's caption length in retrieval (salesforce/BLIP ``blip_retrieval.py``: ``max_length=35``)
BLIP_MAX_TEXT = 35


def resolve_hf_folder(model: str, revision: str | None = None) -> Path:
    """The local folder of an ``hf`` model: a ``save_pretrained`` folder, or a hub id's snapshot
    in the local cache (never downloaded).

    Raises:
        WeightsMissingError: neither; the message names the id, the cache and how to provide it.
    """
    how = (f"Provide it as a local folder written by save_pretrained (model and processor) in "
           f"backend.options.model, or, on a machine with internet, run `huggingface-cli download {model}` and "
           f"copy its Hugging Face cache to {hf_cache_dir()} here (or set HF_HUB_CACHE to the copy).")
    path = Path(os.path.expandvars(model)).expanduser()
    if path.is_dir():
        folder = path
    elif path.is_absolute() or model.startswith((".", "~")):
        raise WeightsMissingError(f"hf model {model!r}: folder not found: {path}. " + how)
    else:
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(model, revision=revision, local_files_only=True, cache_dir=hf_cache_dir()))
        except Exception as err:  # noqa: BLE001 - huggingface_hub raises several types for "not cached"
            raise WeightsMissingError(f"hf model {model!r} is not in the local Hugging Face cache {hf_cache_dir()} "
                                      f"({type(err).__name__}; nothing is downloaded). " + how) from None
    if not (folder / "config.json").is_file():
        raise WeightsMissingError(f"hf model {model!r}: {folder / 'config.json'} not found. " + how)
    weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("*.safetensors.index.json")]
    if not weights:
        raise WeightsMissingError(f"hf model {model!r}: no weights (*.safetensors, *.bin) in {folder}. " + how)
    return folder


def architecture(folder: Path) -> str:
    """The model class named in ``config.json`` (``architectures[0]``)."""
    config = json.loads((folder / "config.json").read_text())
    names = config.get("architectures") or []
    return str(names[0]) if names else ""


class _HFEncoder:
    """Shared machinery of the transformers wrappers: batching, precision, processors."""

    def __init__(self, model: Any, processor: Any, device: torch.device, precision: str, batch_size: int,
                 num_workers: int, max_text_length: int) -> None:
        self.model = model.eval().requires_grad_(False).to(device)
        self.image_processor, self.tokenizer = processor.image_processor, processor.tokenizer
        self.device, self.precision = device, precision
        self.batch_size, self.num_workers, self.max_text_length = batch_size, num_workers, max_text_length

    def _preprocess(self, image: np.ndarray) -> torch.Tensor:
        pil = Image.fromarray(np.ascontiguousarray(image).astype(np.uint8, copy=False)).convert("RGB")
        return self.image_processor(images=[pil], return_tensors="pt")["pixel_values"][0]

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, attention mask) of ``texts``, padded to the longest, truncated at ``max_text_length``."""
        enc = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=self.max_text_length,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()

    def text_length(self, texts: list[str]) -> int:
        """Tokens of the longest of ``texts`` (special tokens included)."""
        return int(self.tokenize(texts)[1].sum(1).max())

    def _forward_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _forward_texts(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def encode_images(self, images: Any) -> ImageFeatures:
        """N uint8 HxWx3 images -> :class:`ImageFeatures` on the device (float32)."""
        return encode_image_batches(self, images)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], length: int | None = None) -> TextFeatures:
        """Captions -> :class:`TextFeatures` (mask = attention mask, ids = input ids), tokens
        trimmed (or padded) to the longest caption (or ``length``)."""
        if len(texts) == 0:
            one = self.encode_texts([""], length=length)
            return TextFeatures(one.emb[:0], one.tokens[:0], one.mask[:0], one.ids[:0])
        ids, mask = self.tokenize(texts)
        if length is not None and length > ids.shape[1]:
            pad_id = self.tokenizer.pad_token_id or 0
            ids = F.pad(ids, (0, length - ids.shape[1]), value=pad_id)
            mask = F.pad(mask, (0, length - mask.shape[1]), value=False)
        length = ids.shape[1] if length is None else length
        embs, toks = [], []
        step = 4 * self.batch_size
        for start in range(0, len(texts), step):
            rows = slice(start, start + step)
            with autocast(self.device, self.precision):
                emb, tokens = self._forward_texts(ids[rows].to(self.device), mask[rows].to(self.device))
            embs.append(F.normalize(emb.float(), dim=-1))
            toks.append(tokens[:, :length].float())
        return TextFeatures(torch.cat(embs), torch.cat(toks), mask[:, :length].to(self.device), ids[:, :length].to(self.device))

    def token_widths(self) -> tuple[int, int]:
        """Widths of the image and text token features."""
        return int(self.encode_images([np.zeros((8, 8, 3), np.uint8)]).tokens.shape[-1]), \
            int(self.encode_texts(["a"]).tokens.shape[-1])

    def itm_head(self) -> nn.Module | None:
        """The model's own image-text matching head, if it has one."""
        return None


class HFClipEncoder(_HFEncoder):
    """``CLIPModel`` as a dual encoder with token features (module docstring)."""

    default_max_text: Callable[[Any], int] = staticmethod(lambda config: int(config.text_config.max_position_embeddings))

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().reshape(())

    def _forward_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.vision_model(pixel_values=pixels)
        tokens = self.model.vision_model.post_layernorm(out.last_hidden_state[:, 1:])
        return self.model.visual_projection(out.pooler_output), tokens

    def _forward_texts(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.text_model(input_ids=ids, attention_mask=mask.long())
        return self.model.text_projection(out.pooler_output), out.last_hidden_state


class BlipITMHead(nn.Module):
    """BLIP's image-grounded text encoder and ITM head, as ``BlipForImageTextRetrieval.forward``
    with ``use_itm_head=True`` computes them, on encoded image tokens.

    ``forward(image_tokens (B, P, W), ids (B, L), mask (B, L) bool) -> (B, 2)`` float32 logits.
    """

    def __init__(self, model: Any, precision: str) -> None:
        super().__init__()
        self.text_encoder, self.itm = model.text_encoder, model.itm_head
        self.precision = precision

    def forward(self, image_tokens: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        device = image_tokens.device
        with autocast(device, self.precision):
            image_atts = torch.ones(image_tokens.shape[:-1], dtype=torch.long, device=device)
            out = self.text_encoder(input_ids=ids, attention_mask=mask.long(), encoder_hidden_states=image_tokens,
                                    encoder_attention_mask=image_atts)
            return self.itm(out.last_hidden_state[:, 0, :]).float()


class HFBlipEncoder(_HFEncoder):
    """``BlipForImageTextRetrieval``: BLIP's ITC towers, and its ITM head (module docstring)."""

    default_max_text: Callable[[Any], int] = staticmethod(lambda config: BLIP_MAX_TEXT)

    @property
    def logit_scale(self) -> torch.Tensor:
        return torch.tensor(float(self.model.config.logit_scale_init_value)).exp()

    def _forward_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model.vision_model(pixel_values=pixels).last_hidden_state
        return self.model.vision_proj(hidden[:, 0, :]), hidden

    def _forward_texts(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model.text_encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return self.model.text_proj(hidden[:, 0, :]), hidden

    def itm_head(self) -> nn.Module:
        return BlipITMHead(self.model, self.precision)


#: ``config.json`` architecture -> (transformers class name, wrapper)
HF_ARCHITECTURES: dict[str, tuple[str, type[_HFEncoder]]] = {
    "CLIPModel": ("CLIPModel", HFClipEncoder),
    "BlipForImageTextRetrieval": ("BlipForImageTextRetrieval", HFBlipEncoder),
}


@BACKENDS.register("hf")
class HFBackend(PretrainedBackend):
    """A transformers model from local files (module docstring).

    Args:
        model: hub id (from the local cache) or ``save_pretrained`` folder.
        revision: hub revision (branch, tag or commit) of a hub id.
        max_text_length: caption tokens kept (default per architecture, module docstring).
        **options: the shared options of :class:`PretrainedBackend`.
    """

    name = "hf"

    def __init__(self, model: str | None = None, revision: str | None = None, max_text_length: int | None = None,
                 **options: Any) -> None:
        super().__init__(**options)
        if not isinstance(model, str) or not model:
            raise ValueError("backend 'hf' needs option model: a hub id (e.g. Salesforce/blip-itm-base-coco, from the "
                             "local cache) or a save_pretrained folder")
        if max_text_length is not None and (isinstance(max_text_length, bool) or not isinstance(max_text_length, int)
                                            or max_text_length < 2):
            raise ValueError(f"backend.options.max_text_length must be an integer >= 2, got {max_text_length!r}")
        self.model_id, self.revision, self.max_text_length = model, revision, max_text_length
        self._folder: Path | None = None

    def folder(self) -> Path:
        """The model's local folder (:func:`resolve_hf_folder`), once."""
        if self._folder is None:
            self._folder = resolve_hf_folder(self.model_id, self.revision)
        return self._folder

    def has_pretrained_head(self) -> bool:
        try:
            return architecture(self.folder()) == "BlipForImageTextRetrieval"
        except WeightsMissingError:
            return True  # the missing model is reported on its own

    def preflight(self, models: list[str | ModelSpec]) -> list[str]:
        problems: list[str] = []
        try:
            arch = architecture(self.folder())
            if arch not in HF_ARCHITECTURES:
                problems.append(f"hf model {self.model_id!r} is a {arch or 'model without config.json architectures'}; "
                                f"the hf backend wraps {sorted(HF_ARCHITECTURES)}")
        except WeightsMissingError as err:
            problems.append(str(err))
        except (OSError, ValueError) as err:
            problems.append(f"hf model {self.model_id!r}: unreadable config.json ({err})")
        return problems + self.method_problems(models)

    def load(self, device: torch.device) -> _HFEncoder:
        """The wrapped model and processor on ``device``."""
        import transformers

        folder = self.folder()
        class_name, wrapper = HF_ARCHITECTURES[architecture(folder)]
        level = transformers.logging.get_verbosity()
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            model = getattr(transformers, class_name).from_pretrained(str(folder), local_files_only=True)
            processor = transformers.AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        finally:
            transformers.logging.set_verbosity(level)
            if bars:
                transformers.utils.logging.enable_progress_bar()
        max_len = self.max_text_length or wrapper.default_max_text(model.config)
        return wrapper(model, processor, device, resolve_precision(self.precision, device),
                       resolve_batch_size(self.batch_size, device), resolve_workers(self.num_workers, device), max_len)

    def build(self, dataset: Any, models: list[str | ModelSpec], device: torch.device, progress: ProgressFactory,
              seeds: list[int], tasks: dict[str, list[str]] | None = None) -> ModelBundle:
        trained_tasks = sorted(t for t, rows in (tasks or {}).items() if t != "retrieval" and rows)
        if trained_tasks:
            raise WeightsMissingError(f"backend 'hf' has no heads for tasks {trained_tasks} yet (VQA heads and caption "
                                      f"decoders train on the embedded backend only); use backend 'embedded' for them")
        problems = self.preflight(models)
        if problems:
            raise WeightsMissingError("; ".join(problems))
        encoder = self.load(device)
        folder = self.folder()
        identity = {"backend": "hf", "files": cache.tree_digest(folder, IDENTITY_SUFFIXES), "precision": encoder.precision,
                    "max_text_length": encoder.max_text_length}
        key = encoder_key(identity)

        def attach(method: FusionMethod) -> None:
            head = encoder.itm_head()
            if head is None:
                raise WeightsMissingError(f"hf model {self.model_id!r} ({architecture(folder)}) has no ITM head")
            method.attach(head)  # type: ignore[attr-defined]

        by_seed, heads_info = self.build_methods(encoder, key, dataset, as_model_specs(models), seeds, device, progress,
                                                 attach)
        info = {"model": self.model_id, "folder": str(folder), "architecture": architecture(folder), "encoder_key": key,
                "precision": encoder.precision, "max_text_length": encoder.max_text_length,
                "encoder_params": sum(p.numel() for p in encoder.model.parameters()), **heads_info}
        return ModelBundle(encoder, by_seed, info, self.training_record(seeds, self.trains_heads(models)))
