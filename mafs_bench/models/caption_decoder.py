"""A small caption decoder conditioned on the image through a fusion method, with greedy and beam decoding.

The decoder is a causal transformer over word ids of a :class:`~mafs_bench.models.tokenizer.WordTokenizer`
(``<start> w1 .. wn <end>``). Layer ``i`` (post-norm, as the fusion stacks):

    h = LN(h + CausalSelfAttn(h));  h = conditioner.fuse(i, h, image);  h = LN(h + FFN(h))

then a linear layer to the vocabulary. The conditioner (:mod:`mafs_bench.models.fusion.caption_blocks`)
is the fusion method's part; everything else is the same for every method. So that no method
wins by size, the FFN's hidden width is chosen per method (:func:`ffn_hidden_for_budget`) to give
every decoder the same parameter count (within 1%) as a reference decoder.

Decoding (:meth:`CaptionDecoder.generate`) caches each layer's self-attention keys and values, so
a step costs one position. ``beam=1`` is greedy decoding (the arg-max word at each step, ties to
the lower id); ``beam > 1`` is beam search: each step keeps the ``beam`` best live hypotheses by
summed log-probability among the ``2 * beam`` best extensions, a hypothesis ending in ``<end>``
among the ``beam`` best is finished with score ``sum log p / length ** length_penalty`` (length
= words + the end token), and an image is done once it has ``beam`` finished hypotheses; the
best finished one is the caption. Pad, start and unknown ids are never generated, and at the
last position (``max_length``) only ``<end>`` is, so a caption has at most ``max_length - 2`` words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import ImageFeatures
from .fusion.base import Prepared, gather
from .fusion.caption_blocks import CaptionConditioner
from .tokenizer import EOT, PAD, SOT, UNK

#: ids the decoder never generates
BANNED_IDS: tuple[int, ...] = (PAD, SOT, UNK)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an optional key/value cache for step-wise decoding."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"decoder width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(B, L, W) -> (B, L, W). With ``cache``, ``x`` continues the cached positions (which it
        may attend to) and the cache is extended; without one, ``x`` is a whole sequence."""
        b, length, width = x.shape
        q, k, v = (t.view(b, length, self.heads, width // self.heads).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        if past == 0:
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=length > 1)
        elif length == 1:
            ctx = F.scaled_dot_product_attention(q, k, v)
        else:  # several new positions after cached ones: each sees the past and the new ones up to itself
            mask = torch.ones(length, past + length, dtype=torch.bool, device=x.device).tril(past)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(ctx.transpose(1, 2).reshape(b, length, width))


def pool_image_tokens(feats: ImageFeatures, grid: int | None) -> ImageFeatures:
    """Image features with their P patch tokens average-pooled to a ``grid`` x ``grid`` grid.

    The tokens must be a square ``s x s`` patch grid in row-major order (open_clip's ViT patch
    tokens); pooling uses ``adaptive_avg_pool2d``. ``grid`` None, or not smaller than ``s``,
    or tokens that are not a square grid leave the features unchanged.
    """
    n, p, width = feats.tokens.shape
    side = math.isqrt(p)
    if grid is None or side * side != p or grid >= side:
        return feats
    x = feats.tokens.transpose(1, 2).reshape(n, width, side, side)
    pooled = F.adaptive_avg_pool2d(x, grid).reshape(n, width, grid * grid).transpose(1, 2)
    return ImageFeatures(feats.emb, pooled)


def decoder_parameters(vocab_size: int, positions: int, width: int, layers: int, ffn_hidden: int) -> int:
    """Parameters of a :class:`CaptionDecoder` without its conditioner."""
    per_layer = (3 * width * width + 3 * width) + (width * width + width)  # self-attention
    per_layer += 2 * (2 * width)  # two LayerNorms
    per_layer += width * ffn_hidden + ffn_hidden + ffn_hidden * width + width  # FFN
    return vocab_size * width + positions * width + layers * per_layer + width * vocab_size + vocab_size


def ffn_hidden_for_budget(budget: int, conditioner: CaptionConditioner, vocab_size: int, positions: int,
                          width: int, layers: int) -> int:
    """The FFN hidden width that brings a decoder with ``conditioner`` closest to ``budget`` parameters.

    Raises:
        ValueError: the conditioner alone (with a minimal decoder) exceeds the budget.
    """
    fixed = decoder_parameters(vocab_size, positions, width, layers, 0) + sum(p.numel() for p in conditioner.parameters())
    per_unit = layers * (2 * width + 1)
    hidden = round((budget - fixed) / per_unit)
    if hidden < 1:
        raise ValueError(f"a caption decoder with this conditioner needs more than the budget of {budget} parameters")
    return hidden


@dataclass(frozen=True)
class DecoderShape:
    """The size of a caption decoder (the same for every method; the FFN width follows the budget).

    Attributes:
        width, heads, layers: decoder state width, attention heads and layers.
        ffn_ratio: FFN hidden width of the reference decoder (BLIP-style cross-attention in
            every layer), as a multiple of ``width``; its parameter count is every decoder's budget.
        image_grid: the image's patch tokens are average-pooled to ``image_grid`` x
            ``image_grid`` tokens before they enter the decoder (:func:`pool_image_tokens`;
            8 x 8 -> 4 x 4 cuts a training step's cost by about a third); None keeps them all.
    """

    width: int = 64
    heads: int = 4
    layers: int = 2
    ffn_ratio: int = 4
    image_grid: int | None = 4

    def __post_init__(self) -> None:
        if self.image_grid is not None and (isinstance(self.image_grid, bool) or not isinstance(self.image_grid, int)
                                            or self.image_grid < 1):
            raise ValueError(f"captioning decoder.image_grid must be a positive integer or null, got {self.image_grid!r}")
        for name in ("width", "heads", "layers", "ffn_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"captioning decoder.{name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"captioning decoder.width {self.width} must be divisible by decoder.heads {self.heads}")


class CaptionDecoder(nn.Module):
    """Causal transformer decoder over caption word ids, conditioned through ``conditioner``.

    Args:
        vocab_size: ids of the tokenizer (special tokens included).
        max_length: longest sequence, ``<start>`` and ``<end>`` included (positions beyond the
            conditioner's prefix).
        conditioner: the fusion method's :class:`CaptionConditioner`.
        width, heads, layers: decoder size (``conditioner`` must be built for the same).
        ffn_hidden: FFN hidden width.
        image_grid: pool the image tokens to this grid first (:func:`pool_image_tokens`).
    """

    def __init__(self, vocab_size: int, max_length: int, conditioner: CaptionConditioner, width: int, heads: int,
                 layers: int, ffn_hidden: int, image_grid: int | None = None) -> None:
        super().__init__()
        self.image_grid = image_grid
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (<start> and <end>), got {max_length}")
        if conditioner.width != width or conditioner.layers != layers:
            raise ValueError(f"conditioner built for width {conditioner.width} x {conditioner.layers} layers, "
                             f"decoder is {width} x {layers}")
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.conditioner = conditioner
        self.embed = nn.Embedding(vocab_size, width)
        self.positions = nn.Parameter(torch.randn(conditioner.prefix_length + max_length, width) * 0.02)
        self.attn = nn.ModuleList(CausalSelfAttention(width, heads) for _ in range(layers))
        self.norm1 = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(width, ffn_hidden), nn.GELU(), nn.Linear(ffn_hidden, width)) for _ in range(layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.head = nn.Linear(width, vocab_size)

    # -- the network ----------------------------------------------------------------------

    def prepare(self, feats: ImageFeatures) -> Prepared:
        """The conditioner's per-image tensors of ``feats`` (tokens pooled to ``image_grid``)."""
        return self.conditioner.prepare(pool_image_tokens(feats, self.image_grid))

    def _layers(self, h: torch.Tensor, prep: Prepared, caches: list[dict[str, torch.Tensor]] | None) -> torch.Tensor:
        for i in range(len(self.attn)):
            h = self.norm1[i](h + self.attn[i](h, None if caches is None else caches[i]))
            h = self.conditioner.fuse(i, h, prep)
            h = self.norm2[i](h + self.ffn[i](h))
        return h

    def _inputs(self, ids: torch.Tensor, prep: Prepared, start: int) -> torch.Tensor:
        """Embedded ids (B, L) at sequence positions ``start..`` (after the prefix), with the
        prefix states in front when ``start == 0`` and the conditioner has a prefix."""
        p = self.conditioner.prefix_length
        x = self.embed(ids) + self.positions[p + start : p + start + ids.shape[1]]
        if p and start == 0:
            x = torch.cat([self.conditioner.prefix(prep) + self.positions[:p], x], dim=1)
        return x

    def forward(self, ids: torch.Tensor, prep: Prepared) -> torch.Tensor:
        """Teacher forcing: ids (B, L) from ``<start>`` -> next-word logits (B, L, vocab).

        ``prep``: the conditioner's prepared rows of each sequence's image (B rows)."""
        if ids.shape[1] > self.max_length:
            raise ValueError(f"sequences of {ids.shape[1]} ids exceed the decoder's max_length {self.max_length}")
        h = self._layers(self._inputs(ids, prep, 0), prep, None)
        return self.head(h[:, self.conditioner.prefix_length :])

    def regulariser(self, prep: Prepared, strength: torch.Tensor) -> torch.Tensor:
        """The conditioner's extra training loss."""
        return self.conditioner.regulariser(prep, strength)

    def param_groups(self, lr: float) -> list[dict[str, torch.Tensor]]:
        """The conditioner's groups, plus the rest of the decoder at ``lr``."""
        groups = self.conditioner.param_groups(lr)
        ids = {id(p) for p in self.conditioner.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest, "lr": lr, "lr_scale": 1.0}, *groups]

    # -- decoding -------------------------------------------------------------------------

    def _step_logprobs(self, h_last: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.head(h_last).float(), dim=-1)
        logp[:, list(BANNED_IDS)] = float("-inf")
        return logp

    def _start(self, prep: Prepared) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Log-probabilities of the first word (B, vocab) and the filled caches."""
        caches: list[dict[str, torch.Tensor]] = [{} for _ in self.attn]
        b = len(next(iter(prep.values())))
        sot = torch.full((b, 1), SOT, dtype=torch.long, device=self.positions.device)
        h = self._layers(self._inputs(sot, prep, 0), prep, caches)
        return self._step_logprobs(h[:, -1]), caches

    def _next(self, tokens: torch.Tensor, position: int, prep: Prepared,
              caches: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Log-probabilities after feeding ``tokens`` (B,) at caption position ``position``."""
        h = self._layers(self._inputs(tokens[:, None], prep, position), prep, caches)
        return self._step_logprobs(h[:, -1])

    @torch.no_grad()
    def generate(self, prep: Prepared, beam: int = 1, max_length: int | None = None,
                 length_penalty: float = 1.0) -> list[list[int]]:
        """Word ids (without ``<start>``/``<end>``) of each image's caption.

        Args:
            prep: :meth:`prepare` of N images.
            beam: beam size; 1 = greedy.
            max_length: longest sequence, start and end included (default and at most the decoder's).
            length_penalty: exponent of the length normalisation of finished beam hypotheses.

        Returns:
            N lists of word ids, in image order.
        """
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ValueError(f"beam must be a positive integer, got {beam!r}")
        limit = self.max_length if max_length is None else min(int(max_length), self.max_length)
        n = len(next(iter(prep.values())))
        if n == 0:
            return []
        if beam == 1:
            return self._greedy(prep, limit)
        return self._beam(prep, beam, limit, length_penalty)

    def _greedy(self, prep: Prepared, limit: int) -> list[list[int]]:
        logp, caches = self._start(prep)
        n = logp.shape[0]
        out = torch.full((n, limit), PAD, dtype=torch.long, device=logp.device)
        done = torch.zeros(n, dtype=torch.bool, device=logp.device)
        for pos in range(1, limit):
            if pos == limit - 1:
                logp = _only_end(logp)
            token = logp.topk(1, dim=-1).indices[:, 0]
            token = torch.where(done, torch.full_like(token, PAD), token)
            out[:, pos - 1] = token
            done |= token == EOT
            if bool(done.all()) or pos == limit - 1:
                break
            logp = self._next(torch.where(done, torch.full_like(token, EOT), token), pos, prep, caches)
        return [_words(row) for row in out.tolist()]

    def _beam(self, prep: Prepared, beam: int, limit: int, length_penalty: float) -> list[list[int]]:
        logp, caches = self._start(prep)
        n, vocab = logp.shape
        device = logp.device
        rows = torch.arange(n, device=device).repeat_interleave(beam)
        prep = gather(prep, rows)
        caches = [{k: v[rows] for k, v in c.items()} for c in caches]
        logp = logp[rows]
        scores = torch.full((n, beam), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live hypothesis at first: no duplicates
        seqs = torch.zeros((n * beam, 0), dtype=torch.long, device=device)
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
        done = [False] * n
        for pos in range(1, limit):
            if pos == limit - 1:
                logp = _only_end(logp)
            cand = (scores[:, :, None] + logp.view(n, beam, vocab)).view(n, beam * vocab)
            top_scores, top_idx = cand.topk(2 * beam, dim=-1)
            src, tok = top_idx // vocab, top_idx % vocab
            new_src = torch.zeros((n, beam), dtype=torch.long)
            new_tok = torch.full((n, beam), EOT, dtype=torch.long)
            new_scores = torch.full((n, beam), float("-inf"))
            ts, sr, tk = top_scores.tolist(), src.tolist(), tok.tolist()
            seq_list = seqs.tolist()
            for i in range(n):
                if done[i]:
                    continue
                live = 0
                for rank in range(2 * beam):
                    score = ts[i][rank]
                    if score == float("-inf"):
                        break
                    if tk[i][rank] == EOT:
                        if rank < beam:
                            words = seq_list[i * beam + sr[i][rank]]
                            finished[i].append((score / (len(words) + 1) ** length_penalty, words))
                        continue
                    new_src[i, live], new_tok[i, live], new_scores[i, live] = sr[i][rank], tk[i][rank], score
                    live += 1
                    if live == beam:
                        break
                if len(finished[i]) >= beam or live == 0:
                    done[i] = True
            if all(done):
                break
            flat = (torch.arange(n)[:, None] * beam + new_src).view(-1).to(device)
            seqs = torch.cat([seqs[flat], new_tok.view(-1, 1).to(device)], dim=1)
            scores = new_scores.to(device)
            for c in caches:
                c["k"], c["v"] = c["k"][flat], c["v"][flat]
            if pos == limit - 1:
                break
            logp = self._next(new_tok.view(-1).to(device), pos, prep, caches)
        seq_list = seqs.tolist()
        score_list = scores.tolist()
        out = []
        for i in range(n):
            if not done[i]:  # out of length: the live hypotheses count as finished
                for j in range(beam):
                    if score_list[i][j] > float("-inf"):
                        words = seq_list[i * beam + j]
                        finished[i].append((score_list[i][j] / (len(words) + 1) ** length_penalty, words))
            best = max(finished[i], key=lambda f: f[0]) if finished[i] else (0.0, [])
            out.append(_words(best[1]))
        return out


def _only_end(logp: torch.Tensor) -> torch.Tensor:
    """Log-probabilities that allow only ``<end>`` (the last position: every caption ends)."""
    out = torch.full_like(logp, float("-inf"))
    out[:, EOT] = logp[:, EOT]
    return out


def _words(ids: list[int]) -> list[int]:
    """Ids up to (without) the first ``<end>`` or pad."""
    out = []
    for t in ids:
        if t in (EOT, PAD):
            break
        out.append(t)
    return out
