"""Fixed-sum fusion: the MA-AFS network with its weights pinned at (0.5, 0.5).

The exact ablation of MA-AFS (REFERENCES.md s1): same block, same head, same training; only the
scheduler is gone. Its ``alpha`` is still reported (constant), so reports treat both alike.
"""

from __future__ import annotations

from typing import Any

from .base import FUSIONS
from .mafs import ScheduledFusion


@FUSIONS.register("fixed_sum")
class FixedSum(ScheduledFusion):
    """MA-AFS network with ``alpha_v = alpha_t = 0.5``."""

    def __init__(self, image_width: int, text_width: int, fixed_alpha_v: float | None = 0.5, **options: Any) -> None:
        super().__init__(image_width, text_width, fixed_alpha_v=0.5 if fixed_alpha_v is None else fixed_alpha_v, **options)
