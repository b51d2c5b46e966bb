"""The ``open_clip`` backend: pretrained open_clip models from local weights, never downloaded.

Give either ``pretrained`` (an open_clip tag, e.g. ``ViT-B-32`` + ``laion2b_s34b_b79k``, looked
up in the local Hugging Face cache only) or ``checkpoint`` (a local weights file). Without
either available the run stops before any work with a message naming what is missing.
Only the ``clip`` method (ITC ranking) runs on this backend for now: fusion heads need training
on features of this encoder, which is the embedded backend's job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from ..encoder import ImageFeatures, TextFeatures
from ..fusion import FUSIONS, create_fusion
from .base import BACKENDS, Backend, ModelBundle, ProgressFactory, WeightsMissingError


class OpenClipEncoder:
    """Encoder interface over an open_clip model and its own preprocessing and tokenizer."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, device: torch.device, batch_size: int = 64) -> None:
        self.model, self.preprocess, self.tokenizer = model.eval().to(device), preprocess, tokenizer
        self.device, self.batch_size = device, batch_size

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    @property
    def embed_dim(self) -> int:
        """Width of the contrastive embedding (of the text projection)."""
        proj = getattr(self.model, "text_projection", None)
        return int(proj.shape[-1]) if proj is not None else int(self.model.visual.output_dim)

    @torch.no_grad()
    def encode_images(self, images: Any) -> ImageFeatures:
        embs = []
        for start in range(0, len(images), self.batch_size):
            batch = [self.preprocess(Image.fromarray(np.asarray(images[i]))) for i in range(start, min(start + self.batch_size, len(images)))]
            embs.append(F.normalize(self.model.encode_image(torch.stack(batch).to(self.device)).float(), dim=-1))
        emb = torch.cat(embs) if embs else torch.zeros((0, self.embed_dim), device=self.device)
        return ImageFeatures(emb, emb.new_zeros((len(emb), 0, 0)))

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> TextFeatures:
        embs = []
        for start in range(0, len(texts), 256):
            ids = self.tokenizer(texts[start : start + 256]).to(self.device)
            embs.append(F.normalize(self.model.encode_text(ids).float(), dim=-1))
        emb = torch.cat(embs) if embs else torch.zeros((0, self.embed_dim), device=self.device)
        return TextFeatures(emb, emb.new_zeros((len(emb), 0, 0)), torch.zeros((len(emb), 0), dtype=torch.bool))


@BACKENDS.register("open_clip")
class OpenClipBackend(Backend):
    """Pretrained open_clip encoder.

    Args:
        model: open_clip architecture name (``open_clip.list_models()``).
        pretrained: pretrained tag (``open_clip.list_pretrained()``), resolved offline.
        checkpoint: path to a local weights file (overrides ``pretrained``); ``~`` and
            environment variables are expanded.
        seed: unused (pretrained weights are fixed); accepted for a uniform suite schema.
    """

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k",
                 checkpoint: str | None = None, seed: int = 0) -> None:
        self.model_name = model
        self.pretrained = pretrained
        self.checkpoint = Path(os.path.expandvars(checkpoint)).expanduser() if checkpoint else None

    def preflight(self, models: list[str]) -> list[str]:
        problems = [FUSIONS.unknown_message(m) for m in models if m not in FUSIONS]
        for m in models:
            if m in FUSIONS and FUSIONS.get(m).has_fusion:
                problems.append(f"model {m!r}: the open_clip backend runs only 'clip' (ITC ranking) for now; "
                                f"fusion heads need training on this encoder's features")
        if self.model_name not in open_clip.list_models():
            problems.append(f"backend.options.model {self.model_name!r} is not an open_clip architecture")
        elif self.checkpoint is not None:
            if not self.checkpoint.is_file():
                problems.append(f"backend.options.checkpoint: file not found: {self.checkpoint}")
        elif not self.pretrained:
            problems.append("backend 'open_clip' needs backend.options.pretrained (a tag) or backend.options.checkpoint (a file)")
        elif self._cached_pretrained() is None:
            problems.append(
                f"open_clip weights {self.model_name}/{self.pretrained} are not available offline (not in the local "
                f"Hugging Face cache, and this machine has no internet). On a machine with internet run "
                f"`python -c \"import open_clip; open_clip.create_model_and_transforms('{self.model_name}', "
                f"pretrained='{self.pretrained}')\"` and copy its ~/.cache/huggingface here, or download the "
                f"weights file and set backend.options.checkpoint to its path"
            )
        return problems

    def _cached_pretrained(self) -> str | None:
        """Local path of the tag's weights if already cached, else None; never downloads."""
        cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained or "")
        if not cfg:
            return None
        hf_hub = cfg.get("hf_hub", "")
        if not hf_hub:
            return None
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub comes with open_clip
            return None
        repo = hf_hub.rstrip("/")
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return found
        return None

    def build(self, dataset: Any, models: list[str], device: torch.device, progress: ProgressFactory,
              seeds: list[int], tasks: dict[str, list[str]] | None = None) -> ModelBundle:
        trained_tasks = sorted(t for t in (tasks or {}) if t != "retrieval")
        if trained_tasks:
            raise WeightsMissingError(f"backend 'open_clip' has no heads for tasks {trained_tasks} (they need training "
                                      f"on this encoder's features); use backend 'embedded' for them")
        problems = self.preflight(models)
        if problems:
            raise WeightsMissingError("; ".join(problems))
        weights = str(self.checkpoint) if self.checkpoint else self._cached_pretrained()
        model, _, preprocess = open_clip.create_model_and_transforms(self.model_name, pretrained=weights)
        encoder = OpenClipEncoder(model, preprocess, open_clip.get_tokenizer(self.model_name), device)
        methods = {m: create_fusion(m, 0, 0) for m in models}
        return ModelBundle(encoder, {s: methods for s in seeds}, {"model": self.model_name, "weights": weights},
                           {"seeds": list(seeds), "augmentations": [], "corruptions_seen": [],
                            "note": "pretrained weights; nothing trained"})
