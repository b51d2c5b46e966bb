"""Task metrics as plain functions, usable without a run (no torch import).

* VQA: :func:`vqa_accuracy` / :func:`vqa_accuracy_per_item`, the VQAv2 accuracy with the
  official answer normalisation (:func:`normalize_vqa_answer`); see :mod:`.vqa`.
"""

from .vqa import normalize_vqa_answer, vqa_accuracy, vqa_accuracy_per_item

__all__ = ["normalize_vqa_answer", "vqa_accuracy", "vqa_accuracy_per_item"]
