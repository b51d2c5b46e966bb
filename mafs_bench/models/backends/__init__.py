"""Model backends registered in :data:`BACKENDS` (``embedded``, ``open_clip``, ``hf``)."""

from . import embedded, hf, open_clip_hub  # noqa: F401  (registration)
from .base import BACKENDS, Backend, ModelBundle, WeightsMissingError

__all__ = ["BACKENDS", "Backend", "ModelBundle", "WeightsMissingError", "create_backend"]


def create_backend(name: str, **options: object) -> Backend:
    """Instantiate the registered backend ``name`` with the suite's options."""
    return BACKENDS.get(name)(**options)
