"""Missing text: the caption is lost entirely (the text counterpart of a missing image).

``missing_text`` replaces the caption by a constant, the empty string, at every severity: the
loss is total, so there is nothing to scale (the severity table repeats one entry so that the
corruption fits the 1..5 protocol). It is the limit case of the word-level corruptions and is
exempt from their changed-word-share check (its share is 1.0). A model that cannot take an empty
caption should map it to its own "no text" input (e.g. a tokenizer's empty sequence).
"""

from __future__ import annotations

import numpy as np

from ..base import register_corruption

MISSING = ""


@register_corruption(
    "missing_text", modality="text", family="missing", severities=(MISSING,) * 5, param_names=("replacement",),
    reference="mafs-bench: missing-modality protocol (caption dropped), same at every severity",
)
def missing_text(text: str, replacement: str, rng: np.random.Generator) -> str:
    """The whole caption replaced by ``replacement`` (the empty string)."""
    return replacement
