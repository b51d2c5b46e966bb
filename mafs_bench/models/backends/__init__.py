"""Model backends registered in :data:`BACKENDS` (``embedded``, ``open_clip``, ``hf``).

Every module of this package is imported (:func:`~mafs_bench.registry.import_submodules`): a new
backend is one new module with a ``@BACKENDS.register`` class.
"""

from ...registry import import_submodules
from .base import BACKENDS, Backend, ModelBundle, WeightsMissingError

import_submodules(__name__)  # registration

__all__ = ["BACKENDS", "Backend", "ModelBundle", "WeightsMissingError", "create_backend"]


def create_backend(name: str, **options: object) -> Backend:
    """Instantiate the registered backend ``name`` with the suite's options."""
    return BACKENDS.get(name)(**options)
