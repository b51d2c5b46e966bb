"""Fusion methods, one file each, registered in :data:`FUSIONS` by name.

Adding a method is one new module with a ``@FUSIONS.register`` class: every module of this
package is imported here (:func:`~mafs_bench.registry.import_submodules`). Registered: ``mafs``,
``fixed_sum``, ``albef``, ``blip``, ``clip``, the late-fusion peers ``concat_mlp``, ``gmu``,
``qmf``, ``pdf`` (sharing :mod:`.streams`), the ``prior`` baseline and ``itm_head`` (a pretrained
model's own ITM head). A method outside mafs-bench needs no registration at all: a suite names it
as ``"package.module:Class"`` or through the entry-point group ``mafs_bench.fusion_methods``
(:mod:`mafs_bench.models.methods`).
"""

from ...registry import import_submodules
from .base import (CUE_NAMES, FUSIONS, AnswerOutput, AnswerSpace, FusionMethod, PairOutput, PairSignals, ReferencePool,
                   gather, soft_cross_entropy)

__all__ = ["CUE_NAMES", "FUSIONS", "AnswerOutput", "AnswerSpace", "FusionMethod", "PairOutput", "PairSignals",
           "ReferencePool", "gather", "create_fusion", "soft_cross_entropy"]

import_submodules(__name__)  # registration: one module per method


def create_fusion(name: str, image_width: int, text_width: int, **options: object) -> FusionMethod:
    """Instantiate the registered fusion method ``name`` with its options."""
    return FUSIONS.get(name)(image_width, text_width, **options)
