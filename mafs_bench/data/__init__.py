"""Datasets: the embedded world (offline default), real-data loaders (COCO, Flickr30k, VQAv2) and the
generic ``folder`` format, registered in :data:`DATASETS`."""

from . import coco, embedded, folder, nocaps, vqav2  # noqa: F401  (registration)
from .base import DATASETS, DEFAULT_QUESTION_TYPE, DataMissingError, Dataset, ImageTextData, qa_answer

__all__ = ["DATASETS", "DEFAULT_QUESTION_TYPE", "DataMissingError", "Dataset", "ImageTextData", "create_dataset", "qa_answer"]


def create_dataset(name: str, **options: object) -> Dataset:
    """Instantiate the registered dataset ``name`` with the suite's options."""
    return DATASETS.get(name)(**options)
