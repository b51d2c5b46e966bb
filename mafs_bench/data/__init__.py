"""Datasets: the embedded world (offline default) and real-data loaders, registered in :data:`DATASETS`."""

from . import coco, embedded, nocaps  # noqa: F401  (registration)
from .base import DATASETS, DataMissingError, Dataset, ImageTextData

__all__ = ["DATASETS", "DataMissingError", "Dataset", "ImageTextData", "create_dataset"]


def create_dataset(name: str, **options: object) -> Dataset:
    """Instantiate the registered dataset ``name`` with the suite's options."""
    return DATASETS.get(name)(**options)
