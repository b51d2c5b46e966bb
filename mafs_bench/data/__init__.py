"""Datasets: the embedded world (offline default), real-data loaders (COCO, Flickr30k, VQAv2,
NoCaps) and the generic ``folder`` format, registered in :data:`DATASETS`.

Every module of this package is imported (:func:`~mafs_bench.registry.import_submodules`): a new
dataset is one new module with a ``@DATASETS.register`` class.
"""

from ..registry import import_submodules
from .base import DATASETS, DEFAULT_QUESTION_TYPE, DataMissingError, Dataset, ImageTextData, qa_answer

import_submodules(__name__)  # registration

__all__ = ["DATASETS", "DEFAULT_QUESTION_TYPE", "DataMissingError", "Dataset", "ImageTextData", "create_dataset", "qa_answer"]


def create_dataset(name: str, **options: object) -> Dataset:
    """Instantiate the registered dataset ``name`` with the suite's options."""
    return DATASETS.get(name)(**options)
