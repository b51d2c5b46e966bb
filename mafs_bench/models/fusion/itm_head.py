"""A backend model's own pretrained image-text matching head, as a fusion method (``itm_head``).

Real BLIP (``BlipForImageTextRetrieval`` through the ``hf`` backend) is a fixed-fusion baseline
with real weights: its image-grounded text encoder cross-attends from the caption's tokens to
every image token (the vision tower's last hidden states, [CLS] included) and its ITM head
``Linear(768, 2)`` reads the fused [CLS]. Nothing is trained here. The backend encodes images
and captions once per cell as usual: ``ImageFeatures.tokens`` are the vision tower's hidden
states and ``TextFeatures.ids`` / ``mask`` the caption's token ids and attention mask; this
method hands them, pair by pair, to the head the backend attaches (:meth:`attach`), which runs
the model's own layers (:class:`mafs_bench.models.backends.hf.BlipITMHead`).

Retrieval follows the ALBEF/BLIP protocol as for every other method: ITC ranking of the whole
gallery, then the ITM head re-scores the top k (``tasks: retrieval k``). Score rule (option
``score``): ``itm+itc`` (default) is BLIP's ``score_matrix[i, topk] = itm_logit + topk_sim``
(salesforce/BLIP ``train_retrieval.py``, ``evaluation``); ``itm`` is ALBEF's, the match logit
alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..encoder import ImageFeatures, TextFeatures
from .base import FUSIONS, FusionMethod, PairOutput, PairSignals, Prepared

SCORES = ("itm+itc", "itm")


@FUSIONS.register("itm_head")
class PretrainedITMHead(FusionMethod):
    """The backend model's pretrained ITM head (BLIP-ITM); nothing trainable.

    Args:
        score: ``itm+itc`` (BLIP's ranking score) or ``itm`` (ALBEF's).
        max_pairs: pairs per forward pass of the head (memory: each pair carries a copy of its
            image's tokens through the head's cross-attention).

    Raises:
        ValueError: an unknown ``score`` or ``max_pairs`` < 1.
    """

    pretrained_head: ClassVar[bool] = True
    network = "pretrained_itm"

    def __init__(self, image_width: int = 0, text_width: int = 0, score: str = "itm+itc", max_pairs: int = 1024,
                 **options: Any) -> None:
        if score not in SCORES:
            raise ValueError(f"itm_head option score must be one of {list(SCORES)}, got {score!r}")
        if isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1:
            raise ValueError(f"itm_head option max_pairs must be an integer >= 1, got {max_pairs!r}")
        super().__init__(image_width, text_width, score=score, max_pairs=max_pairs, **options)
        self.score_rule, self.max_pairs = score, max_pairs
        self.head: nn.Module | None = None

    def attach(self, head: nn.Module) -> PretrainedITMHead:
        """Give the method the model's head: ``head(image_tokens (B, P, W), ids (B, L) int64,
        mask (B, L) bool) -> (B, 2)`` logits [no-match, match]."""
        self.head = head
        return self

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        return {"tokens": feats.tokens}

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        if feats.ids is None:
            raise ValueError("itm_head needs the captions' token ids (TextFeatures.ids), which only the hf backend "
                             "provides")
        return {"ids": feats.ids, "mask": feats.mask}

    @torch.no_grad()
    def pair_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> PairOutput:
        if self.head is None:
            raise RuntimeError("itm_head has no head attached: build it through a backend that provides one (hf)")
        tokens, ids, mask = img["tokens"], txt["ids"], txt["mask"]
        g, c = ids.shape[:2]
        flat_ids, flat_mask = ids.reshape(g * c, -1), mask.reshape(g * c, -1)
        owner = torch.arange(g, device=tokens.device).repeat_interleave(c)
        out = []
        for start in range(0, g * c, self.max_pairs):
            rows = slice(start, start + self.max_pairs)
            out.append(self.head(tokens[owner[rows]], flat_ids[rows], flat_mask[rows]).float())
        logits = torch.cat(out) if out else tokens.new_zeros((0, 2))
        return PairOutput(logits.view(g, c, 2))

    def score(self, out: PairOutput, itc: torch.Tensor) -> torch.Tensor:
        return out.match_logit + itc if self.score_rule == "itm+itc" else out.match_logit
