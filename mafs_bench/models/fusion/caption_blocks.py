"""How a fusion method brings the image into a caption decoder: the captioning conditioners.

A caption decoder (:class:`mafs_bench.models.caption_decoder.CaptionDecoder`) is a small causal
transformer over the caption's words, the *language stream*. Each layer is

    h = LN(h + CausalSelfAttn(h));  h = conditioner.fuse(layer, h, image);  h = LN(h + FFN(h))

and the fusion method decides only the middle step (and whether the image also enters as a
prefix token). A method's :meth:`FusionMethod.caption_conditioner` returns one of these:

* :class:`CrossAttentionConditioner` (``blip``, and ``albef`` on its upper layers):
  ``h = LN(h + CrossAttn(h, V))``, the image-grounded decoder of BLIP (cross-attention in every
  layer) or ALBEF's split into text layers then fusion layers;
* :class:`ScheduledConditioner` (``mafs``, ``fixed_sum``):
  ``h = LN(alpha_t * h + alpha_v * CrossAttn(h, V))``, MA-AFS's fusion with the language stream
  as the text side. For captioning the caption is the model's own output, so the scheduler's cues
  are the image's: its normalised entropy ``h_v`` against a fixed caption bank (held-out training
  captions) and its bank agreement ``a_v`` (largest cosine with that bank). ``alpha`` is one pair
  per image, trained towards the image's reliability (``1 - s`` for a training degradation of
  strength ``s``, the language stream counting as clean); ``fixed_sum`` pins it at (0.5, 0.5);
* :class:`PrefixConditioner` (``clip``): no fusion; the dual encoder's pooled image embedding,
  projected, is the decoder's first token (a ClipCap-style prefix), so "no fusion" stays a row.

Every conditioner works per image: :meth:`CaptionConditioner.prepare` computes what depends on
the image alone (keys and values of its tokens, cues, weights) once, and :meth:`fuse` is called
with the prepared rows of the batch's images (``B`` rows, aligned with the language stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..encoder import ImageFeatures
from .base import CUE_NAMES, Prepared, ReferencePool
from .blocks import CrossAttention, Scheduler, kl_to_uniform, normalised_entropy

#: the cues a captioning scheduler can read: the image's (the caption is the decoder's output)
IMAGE_CUES: tuple[str, ...] = ("h_v", "a_v")


class CaptionConditioner(nn.Module):
    """Base class: brings the image into the language stream of a caption decoder.

    Args:
        width: the decoder's state width.
        layers: the decoder's layer count (``fuse`` is called once per layer).
    """

    #: image tokens prepended to the caption (a prefix conditioner); 0 = none
    prefix_length: int = 0

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        self.width = width
        self.layers = layers

    def fit_reference(self, pool: ReferencePool) -> None:
        """Called once before training with clean training features; nothing by default."""

    def prepare(self, feats: ImageFeatures) -> Prepared:
        """Per-image tensors (first dimension = image) that :meth:`fuse` and :meth:`prefix` read."""
        raise NotImplementedError

    def prefix(self, prep: Prepared) -> torch.Tensor:
        """(B, prefix_length, width) prefix states of the batch's images."""
        raise NotImplementedError

    def fuse(self, layer: int, h: torch.Tensor, prep: Prepared) -> torch.Tensor:
        """The language stream (B, L, width) after layer ``layer``'s fusion with the images ``prep`` (B rows)."""
        return h

    def regulariser(self, prep: Prepared, strength: torch.Tensor) -> torch.Tensor:
        """Extra training loss given each image's training degradation strength (B,); zero by default."""
        return next(iter(prep.values())).new_zeros(())

    def weights(self, prep: Prepared) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-image fusion weights (B, 2) ``(alpha_v, alpha_t)`` and raw cues (B, len(CUE_NAMES))
        (NaN for cues the method does not read), or None for a method without weights."""
        return None

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups (the decoder adds its own parameters at ``lr``)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr, "lr_scale": 1.0}]


def _attend(cross: CrossAttention, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, L, W) queries attending each to its own image's keys/values (B, heads, P, d) -> (B, L, W)."""
    return cross.attend(cross.project_texts(h).unsqueeze(1), k, v)[:, 0]


class CrossAttentionConditioner(CaptionConditioner):
    """``h = LN(h + CrossAttn(h, V))`` in the layers ``fuse_layers`` (the others pass ``h`` on).

    Args:
        image_width: width of the image tokens.
        width, heads, layers: the decoder's.
        fuse_layers: indices of the layers that cross-attend (default: all, BLIP's decoder).
    """

    def __init__(self, image_width: int, width: int, heads: int, layers: int,
                 fuse_layers: Sequence[int] | None = None) -> None:
        super().__init__(width, layers)
        chosen = list(range(layers)) if fuse_layers is None else sorted(set(int(i) for i in fuse_layers))
        if not chosen or chosen[0] < 0 or chosen[-1] >= layers:
            raise ValueError(f"fuse_layers must be a non-empty subset of 0..{layers - 1}, got {fuse_layers}")
        self.fuse_layers = chosen
        self.cross = nn.ModuleDict({str(i): CrossAttention(width, image_width, width, heads) for i in chosen})
        self.norm = nn.ModuleDict({str(i): nn.LayerNorm(width) for i in chosen})

    def prepare(self, feats: ImageFeatures) -> Prepared:
        out: Prepared = {}
        for i in self.fuse_layers:
            out[f"k{i}"], out[f"v{i}"] = self.cross[str(i)].project_images(feats.tokens)
        return out

    def fuse(self, layer: int, h: torch.Tensor, prep: Prepared) -> torch.Tensor:
        if layer not in self.fuse_layers:
            return h
        attended = _attend(self.cross[str(layer)], h, prep[f"k{layer}"], prep[f"v{layer}"])
        return self.norm[str(layer)](h + attended)


class ScheduledConditioner(CaptionConditioner):
    """MA-AFS in a caption decoder: ``h = LN(alpha_t * h + alpha_v * CrossAttn(h, V))`` in every layer.

    ``(alpha_v, alpha_t)`` comes per image from :class:`Scheduler` on the standardised image cues
    (module docstring), or is fixed (``fixed_alpha_v``: the ``fixed_sum`` ablation, the same
    network without the scheduler). Training loss terms (:meth:`regulariser`): ``kl_weight *
    KL(alpha || uniform)`` and ``reliability_weight`` times the cross-entropy of alpha against
    the image's reliability target :func:`~mafs_bench.models.fusion.mafs.reliability_target`
    of strengths ``(s_v, 0)``. With ``detach_alpha`` the captioning loss does not train the
    scheduler (alpha stays a reliability estimate, as in retrieval).

    Args:
        image_width: width of the image tokens; width, heads, layers: the decoder's.
        cues: scheduler inputs, a non-empty subset of :data:`IMAGE_CUES`.
        bank_size: rows of the fixed caption bank (taken by :meth:`fit_reference`).
        scheduler_hidden, temperature, kl_weight, reliability_weight, detach_alpha,
        scheduler_lr_scale: as for :class:`~mafs_bench.models.fusion.mafs.ScheduledFusion`.
        fixed_alpha_v: constant image weight; None = scheduled.

    Raises:
        ValueError: empty or unknown ``cues``, ``bank_size < 2``.
    """

    def __init__(self, image_width: int, width: int, heads: int, layers: int, cues: Sequence[str] = IMAGE_CUES,
                 bank_size: int = 1000, scheduler_hidden: int = 32, temperature: float = 1.0,
                 kl_weight: float = 0.01, reliability_weight: float = 1.0, detach_alpha: bool = True,
                 scheduler_lr_scale: float = 10.0, fixed_alpha_v: float | None = None) -> None:
        super().__init__(width, layers)
        cues = tuple(cues)
        if not cues or any(c not in IMAGE_CUES for c in cues):
            raise ValueError(f"captioning scheduler cues must be a non-empty subset of {list(IMAGE_CUES)}, got {list(cues)}")
        if bank_size < 2:
            raise ValueError(f"bank_size must be >= 2, got {bank_size}")
        self.cross = nn.ModuleList(CrossAttention(width, image_width, width, heads) for _ in range(layers))
        self.norm = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.cue_index = [IMAGE_CUES.index(c) for c in cues]
        self.bank_size = bank_size
        self.kl_weight = kl_weight
        self.reliability_weight = reliability_weight
        self.detach_alpha = detach_alpha
        self.scheduler_lr_scale = scheduler_lr_scale
        self.fixed_alpha_v = fixed_alpha_v
        self.scheduler = Scheduler(scheduler_hidden, temperature, len(cues)) if fixed_alpha_v is None else None
        self.register_buffer("bank_texts", torch.zeros(0, 1))
        self.register_buffer("cue_scale", torch.ones(()))
        self.register_buffer("cue_mean", torch.zeros(len(IMAGE_CUES)))
        self.register_buffer("cue_std", torch.ones(len(IMAGE_CUES)))

    def fit_reference(self, pool: ReferencePool) -> None:
        """Keep ``bank_size`` held-out training captions as the bank, and the pool images' cue statistics."""
        k = min(self.bank_size, len(pool.bank_texts))
        if k < 2:
            raise ValueError(f"the captioning scheduler needs at least 2 bank captions, got {k}")
        self.bank_texts = pool.bank_texts[:k].float().clone()
        self.cue_scale = torch.tensor(float(pool.logit_scale))
        cues = self.image_cues(pool.images)
        self.cue_mean = cues.mean(0).float()
        self.cue_std = cues.std(0).float().clamp_min(1e-4)

    def image_cues(self, emb: torch.Tensor) -> torch.Tensor:
        """(N, D) L2-normalised image embeddings -> (N, 2) raw cues ``[h_v, a_v]`` against the caption bank."""
        if len(self.bank_texts) < 2:
            raise RuntimeError("the captioning scheduler has no caption bank: train it (fit_reference) or load trained weights")
        cos = emb.float() @ self.bank_texts.T
        return torch.stack([normalised_entropy(cos * self.cue_scale, dim=-1), cos.max(-1).values], dim=-1)

    def prepare(self, feats: ImageFeatures) -> Prepared:
        out: Prepared = {}
        for i, cross in enumerate(self.cross):
            out[f"k{i}"], out[f"v{i}"] = cross.project_images(feats.tokens)
        n = len(feats.emb)
        if self.scheduler is None:
            a = torch.full((n,), float(self.fixed_alpha_v), device=feats.emb.device)
            out["alpha"] = torch.stack([a, 1.0 - a], dim=-1)
        else:
            cues = self.image_cues(feats.emb)
            out["cues"] = cues
            out["alpha"] = self.scheduler(((cues - self.cue_mean) / self.cue_std)[:, self.cue_index])
        return out

    def fuse(self, layer: int, h: torch.Tensor, prep: Prepared) -> torch.Tensor:
        alpha = prep["alpha"].detach() if self.detach_alpha else prep["alpha"]
        attended = _attend(self.cross[layer], h, prep[f"k{layer}"], prep[f"v{layer}"])
        return self.norm[layer](alpha[:, 1, None, None] * h + alpha[:, 0, None, None] * attended)

    def regulariser(self, prep: Prepared, strength: torch.Tensor) -> torch.Tensor:
        alpha = prep["alpha"]
        if self.scheduler is None:
            return alpha.new_zeros(())
        from .mafs import reliability_target  # mafs imports this module's users; import late

        loss = self.kl_weight * kl_to_uniform(alpha)
        if self.reliability_weight > 0:
            target = reliability_target(torch.stack([strength.to(alpha), torch.zeros_like(strength).to(alpha)], dim=-1))
            loss = loss + self.reliability_weight * (-(target * alpha.clamp_min(1e-8).log()).sum(-1)).mean()
        return loss

    def weights(self, prep: Prepared) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.scheduler is None:
            return None  # constant weights carry no per-sample information (as in retrieval)
        cues = torch.full((len(prep["alpha"]), len(CUE_NAMES)), float("nan"), device=prep["alpha"].device)
        for j, name in enumerate(IMAGE_CUES):
            cues[:, CUE_NAMES.index(name)] = prep["cues"][:, j]
        return prep["alpha"], cues

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        if self.scheduler is None:
            return super().param_groups(lr)
        ids = {id(p) for p in self.scheduler.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest, "lr": lr, "lr_scale": 1.0},
                {"params": list(self.scheduler.parameters()), "lr": lr * self.scheduler_lr_scale,
                 "lr_scale": self.scheduler_lr_scale}]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        stored = state_dict.get(prefix + "bank_texts")  # sized by fit_reference: take the stored shape
        if stored is not None and stored.shape != self.bank_texts.shape:
            self.bank_texts = torch.empty_like(stored, device=self.bank_texts.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class PrefixConditioner(CaptionConditioner):
    """No fusion: the pooled image embedding, projected to the decoder's width, is its first token.

    Args:
        embed_dim: width of the dual encoder's (L2-normalised) image embedding.
        width, layers: the decoder's.
    """

    prefix_length = 1

    def __init__(self, embed_dim: int, width: int, layers: int) -> None:
        super().__init__(width, layers)
        self.project = nn.Linear(embed_dim, width)

    def prepare(self, feats: ImageFeatures) -> Prepared:
        return {"prefix": self.project(feats.emb).unsqueeze(1)}

    def prefix(self, prep: Prepared) -> torch.Tensor:
        return prep["prefix"]


class StreamConditioner(CaptionConditioner):
    """The late-fusion peers in a caption decoder (``concat_mlp``, ``gmu``), on two streams per layer.

    As in :mod:`.streams`: the language stream ``x_t = h`` (each position's state) and the image
    stream ``x_v = LN(CrossAttn(h, V))`` (the image tokens pooled by attention from that
    position). Then, by ``mode``:

    * ``"concat"``: ``h = LN(h + MLP([x_v; x_t]))`` (late fusion by concatenation);
    * ``"gmu"``: ``z = sigmoid(W_z [x_v; x_t])``, ``g = z * tanh(W_v x_v) + (1 - z) * tanh(W_t x_t)``,
      ``h = LN(h + W_o g)`` (Arevalo et al. 2017's gated unit, one gate per hidden unit).

    GMU's gate varies per position of the caption; it is not reported as a per-image weight.

    Args:
        image_width: width of the image tokens; width, heads, layers: the decoder's.
        mode: ``"concat"`` or ``"gmu"``.
        hidden: hidden width of the MLP / the gated unit (default ``width``, so that the decoder keeps
            an FFN within the common parameter budget).
    """

    def __init__(self, image_width: int, width: int, heads: int, layers: int, mode: str,
                 hidden: int | None = None) -> None:
        super().__init__(width, layers)
        if mode not in ("concat", "gmu"):
            raise ValueError(f"stream conditioner mode must be 'concat' or 'gmu', got {mode!r}")
        hidden = hidden or width
        self.mode = mode
        self.cross = nn.ModuleList(CrossAttention(width, image_width, width, heads) for _ in range(layers))
        self.image_norm = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.norm = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        if mode == "concat":
            self.fusion = nn.ModuleList(nn.Sequential(nn.Linear(2 * width, hidden), nn.GELU(), nn.Linear(hidden, width))
                                        for _ in range(layers))
        else:
            self.gate = nn.ModuleList(nn.Linear(2 * width, hidden) for _ in range(layers))
            self.proj_v = nn.ModuleList(nn.Linear(width, hidden) for _ in range(layers))
            self.proj_t = nn.ModuleList(nn.Linear(width, hidden) for _ in range(layers))
            self.out = nn.ModuleList(nn.Linear(hidden, width) for _ in range(layers))

    def prepare(self, feats: ImageFeatures) -> Prepared:
        out: Prepared = {}
        for i, cross in enumerate(self.cross):
            out[f"k{i}"], out[f"v{i}"] = cross.project_images(feats.tokens)
        return out

    def fuse(self, layer: int, h: torch.Tensor, prep: Prepared) -> torch.Tensor:
        x_v = self.image_norm[layer](_attend(self.cross[layer], h, prep[f"k{layer}"], prep[f"v{layer}"]))
        both = torch.cat([x_v, h], dim=-1)
        if self.mode == "concat":
            return self.norm[layer](h + self.fusion[layer](both))
        z = torch.sigmoid(self.gate[layer](both))
        g = z * torch.tanh(self.proj_v[layer](x_v)) + (1 - z) * torch.tanh(self.proj_t[layer](h))
        return self.norm[layer](h + self.out[layer](g))
