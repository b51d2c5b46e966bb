"""The prior: no model, the training split's most frequent target, so a leaderboard shows where chance is.

Captioning: every image gets the most frequent caption of the decoders' training pool
(:func:`mafs_bench.models.caption_training.most_frequent_caption`; on a tie the first to occur).
It has no network and no trained weights; tasks recognise it by ``predicts_prior`` and never call
its network hooks.
"""

from __future__ import annotations

from .base import FUSIONS, FusionMethod


@FUSIONS.register("prior")
class Prior(FusionMethod):
    """The most frequent training target, whatever the input."""

    has_fusion = False
    predicts_prior = True
    network = "prior"
