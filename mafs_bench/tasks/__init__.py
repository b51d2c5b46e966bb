"""Tasks (retrieval, VQA, captioning), registered in :data:`TASKS`."""

from . import captioning, retrieval, vqa  # noqa: F401  (registration)
from .base import TASKS, EncodedCell, ItemScores, MethodKey, QuestionSet, Task, TaskResult

__all__ = ["TASKS", "EncodedCell", "ItemScores", "MethodKey", "QuestionSet", "Task", "TaskResult", "create_task"]


def create_task(name: str, **options: object) -> Task:
    """Instantiate the registered task ``name`` with its suite options."""
    return TASKS.get(name)(**options)
