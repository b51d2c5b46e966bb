"""Fusion methods, one file each, registered in :data:`FUSIONS` by name.

Adding a method is one new module with a ``@FUSIONS.register`` class and an import line here.
Registered: ``mafs``, ``fixed_sum``, ``albef``, ``blip``, ``clip``, the late-fusion peers
``concat_mlp``, ``gmu``, ``qmf``, ``pdf`` (sharing :mod:`.streams`), and the ``prior`` baseline.
"""

from . import albef, blip, clip, concat_mlp, fixed_sum, gmu, mafs, pdf, prior, qmf  # noqa: F401  (registration)
from .base import (CUE_NAMES, FUSIONS, AnswerOutput, AnswerSpace, FusionMethod, PairOutput, PairSignals, ReferencePool,
                   gather, soft_cross_entropy)

__all__ = ["CUE_NAMES", "FUSIONS", "AnswerOutput", "AnswerSpace", "FusionMethod", "PairOutput", "PairSignals",
           "ReferencePool", "gather", "create_fusion", "soft_cross_entropy"]


def create_fusion(name: str, image_width: int, text_width: int, **options: object) -> FusionMethod:
    """Instantiate the registered fusion method ``name`` with its options."""
    return FUSIONS.get(name)(image_width, text_width, **options)
