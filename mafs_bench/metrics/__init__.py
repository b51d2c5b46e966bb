"""Task metrics as plain functions, usable without a run (no torch import).

* VQA: :func:`vqa_accuracy` / :func:`vqa_accuracy_per_item`, the VQAv2 accuracy with the
  official answer normalisation (:func:`normalize_vqa_answer`); see :mod:`.vqa`.
* Captioning: :func:`caption_metrics` / :func:`caption_metrics_per_item`, BLEU-1..4, METEOR,
  ROUGE-L and CIDEr-D exactly as pycocoevalcap computes them (needs Java); see
  :mod:`.captioning`.
"""

from .captioning import (
    CAPTION_METRICS,
    JAVA_MISSING_MESSAGE,
    JavaNotFoundError,
    caption_metrics,
    caption_metrics_per_item,
)
from .vqa import normalize_vqa_answer, vqa_accuracy, vqa_accuracy_per_item

__all__ = [
    "CAPTION_METRICS",
    "JAVA_MISSING_MESSAGE",
    "JavaNotFoundError",
    "caption_metrics",
    "caption_metrics_per_item",
    "normalize_vqa_answer",
    "vqa_accuracy",
    "vqa_accuracy_per_item",
]
