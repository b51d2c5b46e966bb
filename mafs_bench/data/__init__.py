"""Datasets: the embedded world (offline default) and real-data loaders, registered in :data:`DATASETS`.

Every module of this package is imported (:func:`~mafs_bench.registry.import_submodules`): a new
dataset is one new module with a ``@DATASETS.register`` class.
"""

from ..registry import import_submodules
from .base import DATASETS, DataMissingError, Dataset, ImageTextData

import_submodules(__name__)  # registration

__all__ = ["DATASETS", "DataMissingError", "Dataset", "ImageTextData", "create_dataset"]


def create_dataset(name: str, **options: object) -> Dataset:
    """Instantiate the registered dataset ``name`` with the suite's options."""
    return DATASETS.get(name)(**options)
