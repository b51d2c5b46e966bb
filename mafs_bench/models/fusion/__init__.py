"""Fusion methods, one file each, registered in :data:`FUSIONS` by name.

Adding a method (QMF, PDF, GMU, ...) is one new module with a ``@FUSIONS.register`` class and an
import line here.
"""

from . import albef, blip, clip, fixed_sum, mafs, prior  # noqa: F401  (registration)
from .base import CUE_NAMES, FUSIONS, FusionMethod, PairOutput, PairSignals, ReferencePool, gather

__all__ = ["CUE_NAMES", "FUSIONS", "FusionMethod", "PairOutput", "PairSignals", "ReferencePool", "gather",
           "create_fusion"]


def create_fusion(name: str, image_width: int, text_width: int, **options: object) -> FusionMethod:
    """Instantiate the registered fusion method ``name`` with its options."""
    return FUSIONS.get(name)(image_width, text_width, **options)
