"""Tasks (retrieval, VQA, captioning), registered in :data:`TASKS`.

Every module of this package is imported (:func:`~mafs_bench.registry.import_submodules`): a new
task is one new module with a ``@TASKS.register`` class.
"""

from ..registry import import_submodules
from .base import TASKS, EncodedCell, ItemScores, MethodKey, QuestionSet, Task, TaskResult

import_submodules(__name__)  # registration

__all__ = ["TASKS", "EncodedCell", "ItemScores", "MethodKey", "QuestionSet", "Task", "TaskResult", "create_task"]


def create_task(name: str, **options: object) -> Task:
    """Instantiate the registered task ``name`` with its suite options."""
    return TASKS.get(name)(**options)
