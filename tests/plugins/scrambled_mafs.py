"""A deliberately broken MA-AFS for the regression-gate acceptance test (tests/test_plugins.py).

It trains exactly like ``mafs`` (same class, same recipe), but at evaluation time (eval mode) its
pair scoring runs with every parameter's values permuted by a fixed generator: the trained
network is scrambled while the stored weights stay as trained. ``mafs-bench compare`` must flag
the drop. Loaded by a suite as ``method: "scrambled_mafs:ScrambledMAFS"`` with this folder on
``sys.path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

import mafs_bench


class ScrambledMAFS(mafs_bench.get_fusion_method("mafs")):
    """MA-AFS whose weights are permuted (seeded, per tensor) whenever it scores pairs in eval mode."""

    @contextmanager
    def _scrambled(self) -> Iterator[None]:
        gen = torch.Generator().manual_seed(1234)
        saved = [(p, p.data) for p in self.parameters()]
        for p, data in saved:
            perm = torch.randperm(data.numel(), generator=gen).to(data.device)
            p.data = data.flatten()[perm].view_as(data)
        try:
            yield
        finally:
            for p, data in saved:
                p.data = data

    def pair_forward(self, img, txt, signals):  # type: ignore[no-untyped-def]
        if self.training:
            return super().pair_forward(img, txt, signals)
        with self._scrambled():
            return super().pair_forward(img, txt, signals)
