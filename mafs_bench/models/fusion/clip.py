"""CLIP-style: no fusion. Retrieval ranks pairs by the dual encoder's cosine similarity (ITC).

For VQA (REFERENCES.md s2 has no CLIP VQA head; ours, so that "no fusion" stays a row): a light
head on the frozen contrastive embeddings, ``logits = W LN([v; t]) + b``, one linear layer over the
concatenated image and question embeddings (standardised by a ``LayerNorm`` first: the
unit-norm embeddings have entries near ``1 / sqrt(D)``, too small for a linear layer to reach
confident logits within a short recipe). Being linear, it adds the image's and the
question's evidence for each answer without any interaction between them: it can learn answer
priors per question and what an image shows in general, not what a question asks of an image.

Captioning: the dual encoder's pooled image embedding, projected, is the first token of a light
decoder (:class:`~.caption_blocks.PrefixConditioner`, a ClipCap-style prefix): no cross-attention
to the image tokens, so "no fusion" stays a row.
"""

from __future__ import annotations

import torch
from torch import nn

from ..encoder import ImageFeatures, TextFeatures
from .base import FUSIONS, AnswerOutput, AnswerSpace, FusionMethod, PairSignals, Prepared
from .caption_blocks import PrefixConditioner


@FUSIONS.register("clip")
class CLIPStyle(FusionMethod):
    """The dual encoder alone (REFERENCES.md s2: score = cosine similarity); a linear answer
    head on its embeddings for VQA."""

    has_fusion = False
    network = "none"
    tasks = frozenset({"retrieval", "vqa", "captioning"})

    def setup_answers(self, space: AnswerSpace, embed_dim: int) -> None:
        self.head = nn.Sequential(nn.LayerNorm(2 * embed_dim), nn.Linear(2 * embed_dim, len(space.answers)))
        self.answer_space = space

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        return {"emb": feats.emb}

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        return {"emb": feats.emb}

    def answer_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> AnswerOutput:
        v = img["emb"][:, None].expand(*txt["emb"].shape[:2], -1)
        return AnswerOutput(self.head(torch.cat([v, txt["emb"]], dim=-1)))

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> PrefixConditioner:
        return PrefixConditioner(embed_dim, width, layers)
