"""Building blocks shared by the fusion methods: multi-head cross-attention with precomputable
projections, and the scheduled fusion block of MA-AFS.

Projections of image keys/values and text queries are computed once per image / caption
(``prepare_*``); the pairwise part is only the attention itself, which keeps re-ranking the
top-k of a 1000 x 5000 gallery affordable on a CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """Multi-head attention from text queries to image tokens, split into per-side projections."""

    def __init__(self, text_width: int, image_width: int, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"fusion width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(text_width, width)
        self.kv = nn.Linear(image_width, 2 * width)
        self.out = nn.Linear(width, width)

    def project_images(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, P, W_img) -> keys, values (N, heads, P, d)."""
        k, v = self.kv(tokens).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def project_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., L, W_txt) -> queries (..., heads, L, d)."""
        return self._split(self.q(tokens))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Grouped pairs: queries (G, C, h, L, d) of C captions per image, keys/values
        (G, h, P, d) of that image -> (G, C, L, width). Each query row attends independently,
        so the C captions are stacked along the query axis and the image tokens are not copied."""
        g, c, h, length, d = q.shape
        stacked = q.permute(0, 2, 1, 3, 4).reshape(g, h, c * length, d)
        ctx = F.scaled_dot_product_attention(stacked, k, v)
        ctx = ctx.view(g, h, c, length, d).permute(0, 2, 3, 1, 4).reshape(g, c, length, h * d)
        return self.out(ctx)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        *lead, length, width = x.shape
        return x.view(*lead, length, self.heads, width // self.heads).transpose(-3, -2)


class FusionStack(nn.Module):
    """``layers`` fusion layers: cross-attention from the text state to the image tokens, a
    weighted residual ``LN(alpha_t * h + alpha_v * CrossAttn(h, V))``, then ``LN(h + FFN(h))``.

    ``alpha = (1, 1)`` is the standard residual of ALBEF/BLIP fusion layers; MA-AFS passes its
    scheduled weights (the same for every layer). Image keys/values of every layer depend only on
    the image, so :meth:`prepare_images` computes them once per image.
    """

    def __init__(self, image_width: int, width: int, heads: int, layers: int, ffn_ratio: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"fusion layers must be >= 1, got {layers}")
        self.cross = nn.ModuleList(CrossAttention(width, image_width, width, heads) for _ in range(layers))
        self.norm1 = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(width, ffn_ratio * width), nn.GELU(), nn.Linear(ffn_ratio * width, width))
            for _ in range(layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))

    def prepare_images(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer keys and values of (N, P, W_img) image tokens."""
        out = {}
        for i, cross in enumerate(self.cross):
            out[f"k{i}"], out[f"v{i}"] = cross.project_images(tokens)
        return out

    def prepare_texts(self, h: torch.Tensor) -> torch.Tensor:
        """The first layer's queries of (M, L, W) text states, (M, heads, L, d): they depend only
        on the caption, so a task computes them once per caption instead of once per pair."""
        return self.cross[0].project_texts(h)

    def forward(self, h: torch.Tensor, img: dict[str, torch.Tensor], alpha: torch.Tensor | None,
                q0: torch.Tensor | None = None) -> torch.Tensor:
        """Text state (G, C, L, W) attending to its group's image (G, ...) -> fused (G, C, L, W).

        ``q0``: :meth:`prepare_texts` of ``h``, gathered like it (optional)."""
        return self.forward_with_context(h, img, alpha, q0)[0]

    def forward_with_context(self, h: torch.Tensor, img: dict[str, torch.Tensor], alpha: torch.Tensor | None,
                             q0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`forward`, also returning the last layer's attended image context (G, C, L, W)."""
        attended = h
        for i, cross in enumerate(self.cross):
            q = q0 if i == 0 and q0 is not None else cross.project_texts(h)
            attended = cross.attend(q, img[f"k{i}"], img[f"v{i}"])
            if alpha is None:
                h = self.norm1[i](h + attended)
            else:
                h = self.norm1[i](alpha[..., 1, None, None] * h + alpha[..., 0, None, None] * attended)
            h = self.norm2[i](h + self.ffn[i](h))
        return h, attended


def end_token(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(M, L, W) token states -> (M, 1, W) state at each caption's last valid position."""
    end = mask.sum(1).clamp_min(1) - 1
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), end].unsqueeze(1)


class Scheduler(nn.Module):
    """MA-AFS scheduler: MLP on the cues ``[H_v, H_t, a]`` -> softmax(logits / T) = (alpha_v, alpha_t).

    Our specification (REFERENCES.md s1): 3 -> hidden -> 2 with ReLU (``inputs`` cues). The final
    layer starts at zero, so training starts from the uniform (0.5, 0.5) weights of the fixed-sum
    baseline.
    """

    def __init__(self, hidden: int = 32, temperature: float = 1.0, inputs: int = 3) -> None:
        super().__init__()
        self.temperature = temperature
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        """(..., 3) cues -> (..., 2) weights (alpha_v, alpha_t) summing to one."""
        return torch.softmax(self.net(signals) / self.temperature, dim=-1)


def kl_to_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """Mean KL(alpha || uniform) over all pairs: keeps the scheduler off a single modality."""
    k = alpha.shape[-1]
    return (alpha * (alpha.clamp_min(1e-8).log() + torch.log(torch.tensor(float(k))))).sum(-1).mean()


def normalised_entropy(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` along ``dim`` divided by log(size), in [0, 1].

    A size-1 axis has no uncertainty: the result is 0 there (on the logits' device). A -inf
    logit is probability 0 (a masked entry, adding 0); a NaN or +inf logit makes its row's
    entropy NaN, which flows on into the scores of a method using the cue (and is counted
    there as non-finite)."""
    size = logits.shape[dim]
    if size < 2:
        return logits.new_zeros(logits.sum(dim).shape)
    logp = torch.log_softmax(logits, dim=dim)
    plogp = torch.where(logp.isneginf(), 0.0, logp.exp() * logp)  # 0 * log 0 = 0, not NaN
    return -plogp.sum(dim) / math.log(size)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the token axis of (..., L, W) counting only ``mask`` (..., L) positions."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(-2) / m.sum(-2).clamp_min(1.0)
