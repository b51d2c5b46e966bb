"""ALBEF-style fusion (salesforce/ALBEF; REFERENCES.md s2), on frozen dual-encoder towers.

ALBEF runs text layers, then fusion layers (self-attention, cross-attention to all image tokens,
FFN) and puts its ITM head ``Linear(d, 2)`` on the fused [CLS]. Here the towers are frozen, so:
a trainable text layer (self-attention + FFN over the caption tokens, image-independent and
therefore computed once per caption), then one fusion layer whose [CLS] query (our text tower's
end token, where it pools) cross-attends to all image tokens, then an FFN and the ITM head.
With a single fusion layer only the [CLS] output reaches the head, so only its query is computed.
Retrieval score: the ITM match logit alone.

One fusion layer by default (``layers: 1``): with the trainable text layer that gives the same
parameter budget as the two fusion layers of MA-AFS / fixed-sum (within 1%; ``run.json`` lists
every method's count), so no method wins by size. That holds when the token widths equal the
fusion width (the embedded encoder's 128). On a pretrained encoder's wider text tokens the text
layer would grow with them (ViT-B-32: 2.47M parameters against MA-AFS's 0.66M), so the pretrained
backends set ``project_first: true``: tokens are projected to the fusion width first and the text
layer runs there (0.49M on ViT-B-32, :data:`mafs_bench.models.backends.pretrained.DEFAULT_METHOD_OPTIONS`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..encoder import ImageFeatures, TextFeatures
from .base import FUSIONS, AnswerOutput, AnswerSpace, FusionMethod, PairOutput, PairSignals, Prepared
from .blocks import FusionStack, end_token
from .caption_blocks import CrossAttentionConditioner


class ClsCrossAttentionFusion(FusionMethod):
    """Trainable text layer, then [CLS]-query fusion layers (:class:`FusionStack`) and ITM head."""

    network = "cls_cross_attention"
    tasks = frozenset({"retrieval", "vqa", "captioning"})

    def __init__(self, image_width: int, text_width: int, width: int = 128, heads: int = 8, layers: int = 1,
                 ffn_ratio: int = 2, project_first: bool = False, **options: Any) -> None:
        if project_first:  # recorded (and keyed) only when on, so the default's weights keep their key
            options["project_first"] = True
        super().__init__(image_width, text_width, width=width, heads=heads, layers=layers, ffn_ratio=ffn_ratio, **options)
        #: project the caption tokens to ``width`` before the text layer (its size then does not
        #: grow with the encoder's text width: 512 on ViT-B-32 would make this head 3.7x MA-AFS's)
        self.project_first = bool(project_first)
        layer_width = width if project_first else text_width
        text_heads = 4 if layer_width % 4 == 0 else 1
        self.text_pre = nn.Linear(text_width, width) if project_first else None
        self.text_layer = nn.TransformerEncoderLayer(
            layer_width, text_heads, dim_feedforward=ffn_ratio * layer_width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.text_in = nn.Identity() if project_first else nn.Linear(text_width, width)
        self.stack = FusionStack(image_width, width, heads, layers, ffn_ratio)
        self.itm = nn.Linear(width, 2)

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        return self.stack.prepare_images(feats.tokens)

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        cls = self.text_in(self.text_layer_at_end(feats))  # (M, 1, W)
        return {"cls": cls, "q0": self.stack.prepare_texts(cls)}

    def text_layer_at_end(self, feats: TextFeatures) -> torch.Tensor:
        """The text layer's output at each caption's end token, (M, 1, W).

        Only that position feeds the fusion, and in a single pre-norm layer a position's output
        depends on the others only through its own attention query, so computing the layer for
        that one query gives exactly ``text_layer(tokens)[end]`` at a fraction of the cost.
        """
        layer = self.text_layer
        x = feats.tokens if self.text_pre is None else self.text_pre(feats.tokens)
        normed = layer.norm1(x)
        end = end_token(x, feats.mask)
        attended, _ = layer.self_attn(end_token(normed, feats.mask), normed, normed,
                                      key_padding_mask=~feats.mask, need_weights=False)
        h = end + attended
        return h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))

    def pair_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> PairOutput:
        h = self.stack(txt["cls"], img, None, txt.get("q0"))  # (G, C, 1, W)
        return PairOutput(self.itm(h[:, :, 0]))

    def setup_answers(self, space: AnswerSpace, embed_dim: int) -> None:
        """VQA: the fused [CLS] of the question is classified over the answers (ALBEF and BLIP
        fine-tune an answer decoder for VQA; a classifier over the frequent answers is the
        common simplification, e.g. in ALBEF's ablations and most VQAv2 baselines)."""
        self.itm = nn.Linear(self.itm.in_features, len(space.answers))
        self.answer_space = space

    def answer_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> AnswerOutput:
        h = self.stack(txt["cls"], img, None, txt.get("q0"))
        return AnswerOutput(self.itm(h[:, :, 0]))


@FUSIONS.register("albef")
class ALBEFStyle(ClsCrossAttentionFusion):
    """ALBEF-style: ranking score = ITM match logit.

    Captioning: ALBEF's layout, text layers then fusion layers; the decoder's lower half
    (``layers // 2`` layers) is text-only and its upper half cross-attends to the image tokens
    (:class:`~.caption_blocks.CrossAttentionConditioner`). ALBEF itself has no caption decoder;
    this is its fusion encoder's layout made causal.
    """

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> CrossAttentionConditioner:
        return CrossAttentionConditioner(image_width, width, heads, layers, fuse_layers=range(layers // 2, layers))
