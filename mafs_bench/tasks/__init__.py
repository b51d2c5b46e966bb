"""Tasks (retrieval, VQA; captioning plugs in the same way), registered in :data:`TASKS`."""

from . import retrieval, vqa  # noqa: F401  (registration)
from .base import TASKS, EncodedCell, ItemScores, QuestionSet, Task, TaskResult

__all__ = ["TASKS", "EncodedCell", "ItemScores", "QuestionSet", "Task", "TaskResult", "create_task"]


def create_task(name: str, **options: object) -> Task:
    """Instantiate the registered task ``name`` with its suite options."""
    return TASKS.get(name)(**options)
