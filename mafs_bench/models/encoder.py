"""The dual encoder: an open_clip ``CustomTextCLIP`` built from a config file, plus its tokenizer.

Architectures are data (``configs/*.json``, open_clip's own config format); the text vocabulary
size is derived from the tokenizer, so it is not written in the file. Both towers return their
token features as well (``output_tokens``), which the fusion methods consume.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from .tokenizer import PAD, WordTokenizer

CONFIG_PACKAGE = "mafs_bench.models.configs"


def list_encoder_configs() -> list[str]:
    """Names of the bundled encoder configs (file names without ``.json``)."""
    return sorted(p.name[:-5] for p in resources.files(CONFIG_PACKAGE).iterdir() if p.name.endswith(".json"))


def load_encoder_config(name: str) -> dict[str, Any]:
    """The bundled open_clip config ``name`` as a dict."""
    path = resources.files(CONFIG_PACKAGE) / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"Unknown encoder config {name!r}. Known: {', '.join(list_encoder_configs())}")
    return json.loads(path.read_text())


def image_array(images: Sequence[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Images as one (N, size, size, 3) uint8 array.

    An (N, H, W, 3) uint8 array of that size is returned as it is; any other sequence (a lazy
    one reading files, images of different sizes) is read image by image, each resized to
    ``size`` x ``size`` as :meth:`DualEncoder.preprocess` resizes (bilinear, antialiased), then
    rounded to uint8. A grey (H, W) or RGBA image gets three channels first.

    Raises:
        ValueError: an image that is not (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); the message
            gives its position and shape.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:] == (size, size, 3) \
            and images.dtype == np.uint8:
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i in range(len(images)):
        img = np.asarray(images[i])
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
            raise ValueError(f"image {i}: expected an (H, W, 3) RGB array, got shape {img.shape}")
        img = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img[..., :3]
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


@dataclass
class ImageFeatures:
    """Encoded images: L2-normalised contrastive embeddings and patch tokens."""

    emb: torch.Tensor  # (N, D)
    tokens: torch.Tensor  # (N, P, W)

    def __len__(self) -> int:
        return self.emb.shape[0]


@dataclass
class TextFeatures:
    """Encoded captions: L2-normalised contrastive embeddings, token features and validity mask.

    ``ids``: the token ids behind ``tokens`` (aligned with ``mask``), for methods that run a
    backend's own pretrained fusion on raw inputs (:mod:`mafs_bench.models.fusion.itm_head`);
    None when the encoder does not provide them.
    """

    emb: torch.Tensor  # (M, D)
    tokens: torch.Tensor  # (M, L, W)
    mask: torch.Tensor  # (M, L) bool, True for real tokens (start .. end)
    ids: torch.Tensor | None = None  # (M, L) int64

    def __len__(self) -> int:
        return self.emb.shape[0]


class DualEncoder(torch.nn.Module):
    """A CLIP-style dual encoder with its preprocessing and tokenizer attached.

    Preprocessing (uint8 HxWx3 -> normalised tensor) is derived from the model's config, so a
    caller never restates it.
    """

    def __init__(self, config: dict[str, Any], tokenizer: WordTokenizer,
                 mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.25, 0.25, 0.25),
                 precision: str = "fp32") -> None:
        super().__init__()
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"encoder precision must be 'fp32' or 'bf16', got {precision!r}")
        #: "bf16": encode under bfloat16 autocast, as a model trained that way (about 2x faster on CPU)
        self.precision = precision
        cfg = copy.deepcopy(config)
        cfg.pop("custom_text", None)
        cfg["text_cfg"]["vocab_size"] = tokenizer.vocab_size
        cfg["text_cfg"]["context_length"] = tokenizer.context_length
        self.config = cfg
        self.tokenizer = tokenizer
        self.clip = open_clip.CustomTextCLIP(**cfg)
        self.image_size = int(cfg["vision_cfg"]["image_size"])
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp of the learned log temperature (1 / tau)."""
        return self.clip.logit_scale.exp()

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NxHxWx3 -> float Nx3xSxS, resized to the tower's size and normalised."""
        x = torch.as_tensor(images)
        x = x.to(self.mean.device).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean) / self.std

    def forward_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised pixels -> (unnormalised embedding, patch tokens)."""
        pooled, tokens = self.clip.visual(pixels)
        return pooled, tokens

    def forward_texts(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids -> (unnormalised embedding, token features)."""
        pooled, tokens = self.clip.text(ids)
        return pooled, tokens

    def autocast(self) -> torch.autocast:
        """The autocast context matching :attr:`precision`."""
        return torch.autocast(self.mean.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    @torch.no_grad()
    def encode_images(self, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 512) -> ImageFeatures:
        """uint8 NxHxWx3 -> :class:`ImageFeatures` (eval mode, no grad, float32 outputs).

        A sequence of images of any sizes (a lazy one reading files) is read batch by batch
        through :func:`image_array`.

        No images give empty features, (0, D) and (0, P, W)."""
        if len(images) == 0:
            with self.autocast():
                pooled, tokens = self.forward_images(self.preprocess(np.zeros((1, 1, 1, 3), np.uint8)))
            return ImageFeatures(pooled.float()[:0], tokens.float()[:0])
        embs, toks = [], []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size] if isinstance(images, np.ndarray) else \
                image_array([images[i] for i in range(start, min(start + batch_size, len(images)))], self.image_size)
            with self.autocast():
                pooled, tokens = self.forward_images(self.preprocess(batch))
            embs.append(F.normalize(pooled.float(), dim=-1))
            toks.append(tokens.float())
        return ImageFeatures(torch.cat(embs), torch.cat(toks))

    def text_length(self, texts: list[str]) -> int:
        """Tokens of the longest of ``texts`` (start and end included): the ``length`` that lines
        up several encoded caption sets."""
        return max(len(self.tokenizer.encode(c)) for c in texts)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 1024, length: int | None = None) -> TextFeatures:
        """Captions -> :class:`TextFeatures`, token features trimmed to the longest caption
        (or to ``length`` tokens, so that several sets line up)."""
        if len(texts) == 0:  # empty features of the right widths
            empty = self.encode_texts([""], length=length)
            return TextFeatures(empty.emb[:0], empty.tokens[:0], empty.mask[:0])
        ids = self.tokenizer(texts).to(self.mean.device)
        if length is None:
            length = int((ids != PAD).sum(1).max().item()) if len(texts) else 1
        embs, toks = [], []
        for start in range(0, len(texts), batch_size):
            with self.autocast():
                pooled, tokens = self.forward_texts(ids[start : start + batch_size])
            embs.append(F.normalize(pooled.float(), dim=-1))
            toks.append(tokens[:, :length].float())
        return TextFeatures(torch.cat(embs), torch.cat(toks), (ids[:, :length] != PAD))
