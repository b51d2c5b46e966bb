"""mafs-bench: robustness benchmarking for image-text fusion models (MA-AFS and fixed-fusion baselines).

The plugin API, for benchmarking a fusion method that lives outside mafs-bench (README,
"Benchmark your own fusion method"):

* :class:`FusionMethod`: the base class of every fusion method (its hooks are documented in
  :mod:`mafs_bench.models.fusion.base`); :class:`PairOutput`, :class:`PairSignals` and
  :class:`ReferencePool` are what the hooks take and return;
* :func:`get_fusion_method`: the class of a registered method (``"mafs"``, ``"albef"``, ...,
  or one provided through the entry-point group ``mafs_bench.fusion_methods``), to subclass.

A suite then names the class as ``{name: my_row, method: "my_package.my_module:MyFusion"}``.
These names are loaded on first access, so ``import mafs_bench`` stays light (no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .models.fusion.base import FusionMethod, PairOutput, PairSignals, ReferencePool
    from .models.methods import get_fusion_method

#: public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "FusionMethod": "mafs_bench.models.fusion.base",
    "PairOutput": "mafs_bench.models.fusion.base",
    "PairSignals": "mafs_bench.models.fusion.base",
    "ReferencePool": "mafs_bench.models.fusion.base",
    "get_fusion_method": "mafs_bench.models.methods",
}

__all__ = ["FusionMethod", "PairOutput", "PairSignals", "ReferencePool", "__version__", "get_fusion_method"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mafs_bench' has no attribute {name!r}")
    import importlib

    if module == "mafs_bench.models.fusion.base":
        importlib.import_module("mafs_bench.models.fusion")  # the registered methods come with the base class
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
