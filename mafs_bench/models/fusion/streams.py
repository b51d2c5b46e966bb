"""The two streams that the late-fusion peers (concat_mlp, gmu, qmf, pdf) fuse.

QMF, PDF and GMU (REFERENCES.md s3) fuse one representation per modality; they differ only in
*how* they combine them. So that they differ here in nothing else, they share this front end,
our choice:

* text stream ``x_t``: the caption's / question's pooled state (the text tower's end token)
  through ``Linear`` and ``LayerNorm``, (M, W);
* image stream ``x_v``: the image tokens pooled by one multi-head attention whose query is
  ``x_t`` (the top-down attention of Anderson et al. 2018's VQA model), (G, C, W). It carries
  image content only (its values are image tokens); the text chooses where to look, as a VQA
  model must know what is asked before it can read the answer off the image.

A subclass defines :meth:`TwoStreamFusion.build_outputs` (its fusion and output layers for
``n`` classes: 2 for ITM, the answers for VQA) and :meth:`TwoStreamFusion.fuse_streams`. The
same network then serves retrieval (ITM logits) and VQA (answer logits); the runner trains a
separate instance per task.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..encoder import ImageFeatures, TextFeatures
from .base import AnswerOutput, AnswerSpace, FusionMethod, PairOutput, PairSignals, Prepared
from .blocks import CrossAttention, end_token


class TwoStreamFusion(FusionMethod):
    """Base of the late-fusion peers: text stream, question-guided image stream, then a fusion.

    Args:
        image_width, text_width: token widths of the encoder's towers.
        width: stream width W.
        heads: heads of the image stream's attention.
        hidden: width of the fusion's hidden layers (sized per method so that every method's
            retrieval network has about the same number of parameters).
    """

    tasks = frozenset({"retrieval", "vqa"})

    def __init__(self, image_width: int, text_width: int, width: int = 128, heads: int = 8, hidden: int = 256,
                 **options: Any) -> None:
        super().__init__(image_width, text_width, width=width, heads=heads, hidden=hidden, **options)
        for name, value in (("width", width), ("heads", heads), ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"fusion option {name} must be a positive integer, got {value!r}")
        self.width, self.hidden = width, hidden
        self.text_in = nn.Sequential(nn.Linear(text_width, width), nn.LayerNorm(width))
        self.attn = CrossAttention(width, image_width, width, heads)
        self.image_norm = nn.LayerNorm(width)
        self.build_outputs(2)

    def build_outputs(self, n: int) -> None:
        """Create the fusion and output layers for ``n`` classes."""
        raise NotImplementedError

    def fuse_streams(self, x_v: torch.Tensor, x_t: torch.Tensor,
                     signals: PairSignals) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """(G, C, W) streams -> logits (G, C, n), weights (alpha_v, alpha_t) (G, C, 2) or None,
        and training-only tensors for :meth:`task_loss`."""
        raise NotImplementedError

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        k, v = self.attn.project_images(feats.tokens)
        return {"k": k, "v": v}

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        x_t = self.text_in(end_token(feats.tokens, feats.mask))  # (M, 1, W)
        return {"x_t": x_t, "q": self.attn.project_texts(x_t)}

    def streams(self, img: Prepared, txt: Prepared) -> tuple[torch.Tensor, torch.Tensor]:
        """Grouped pairs -> (x_v, x_t), each (G, C, W)."""
        x_v = self.attn.attend(txt["q"], img["k"], img["v"])[:, :, 0]
        return self.image_norm(x_v), txt["x_t"][:, :, 0]

    def pair_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> PairOutput:
        logits, alpha, aux = self.fuse_streams(*self.streams(img, txt), signals)
        return PairOutput(logits, alpha, None, aux or None)

    def setup_answers(self, space: AnswerSpace, embed_dim: int) -> None:
        self.build_outputs(len(space.answers))
        self.answer_space = space

    def answer_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> AnswerOutput:
        logits, alpha, aux = self.fuse_streams(*self.streams(img, txt), signals)
        return AnswerOutput(logits, alpha, None, aux or None)


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """``Linear(inputs, hidden) -> GELU -> Linear(hidden, outputs)``."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), nn.Linear(hidden, outputs))


def flat_rows(x: torch.Tensor) -> torch.Tensor:
    """(G, C, K) -> (G * C, K), the row layout of :meth:`FusionMethod.task_loss`'s logits."""
    return x.reshape(-1, x.shape[-1])
