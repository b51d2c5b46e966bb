"""CLIP-style: no fusion; pairs are ranked by the dual encoder's cosine similarity (ITC)."""

from __future__ import annotations

from .base import FUSIONS, FusionMethod


@FUSIONS.register("clip")
class CLIPStyle(FusionMethod):
    """The dual encoder alone (REFERENCES.md s2: score = cosine similarity)."""

    has_fusion = False
    network = "none"
    tasks = frozenset({"retrieval", "vqa"})
