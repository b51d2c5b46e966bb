"""Missing text: captions lost entirely (the text counterpart of a missing image).

``missing_text`` drops a severity-scaled share of the captions: each caption is replaced by the
empty string with probability ``0.05 * severity`` (5% at severity 1, 25% at severity 5) and is
otherwise left as it is. That is the MMRobustness rule every text corruption here follows, about
``0.05 * severity`` of the words lost, applied to whole captions, so text corruptions compare at
equal severity: keyboard typos and missing captions at severity 3 both cost about 15% of the
words, spread over all captions or concentrated in a few. (An earlier version dropped every
caption at every severity: the loss did not grow with severity, and its changed-word share of 1
broke the share rule the issue asks of every text corruption.)

The draw is shared across severities (``shared_draws``): a caption's uniform number is the same
at every severity, so a caption missing at severity s is missing at every higher severity and the
share grows with severity for every sample set, not only on average. A model that cannot take an
empty caption should map it to its own "no text" input (e.g. a tokenizer's empty sequence).
"""

from __future__ import annotations

import numpy as np

from ..base import register_corruption

MISSING = ""


@register_corruption(
    "missing_text", modality="text", family="missing", severities=(0.05, 0.10, 0.15, 0.20, 0.25),
    param_names=("drop_rate",), shared_draws=True,
    reference="MMRobustness share rule (0.05 x severity of the words) applied to whole captions",
)
def missing_text(text: str, drop_rate: float, rng: np.random.Generator) -> str:
    """The caption replaced by the empty string with probability ``drop_rate``, else unchanged."""
    return MISSING if rng.random() < drop_rate else text
