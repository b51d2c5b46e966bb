"""Tasks (retrieval now; VQA and captioning plug in the same way), registered in :data:`TASKS`."""

from . import retrieval  # noqa: F401  (registration)
from .base import TASKS, EncodedCell, ItemScores, Task, TaskResult

__all__ = ["TASKS", "EncodedCell", "ItemScores", "Task", "TaskResult", "create_task"]


def create_task(name: str, **options: object) -> Task:
    """Instantiate the registered task ``name`` with its suite options."""
    return TASKS.get(name)(**options)
