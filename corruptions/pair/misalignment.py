"""Image-text misalignment: captions that no longer (fully) describe their image.

Three pair corruptions, family "misalignment", each on a batch of captions with ``groups[i]``
the item (image) caption ``i`` belongs to and ``rngs[i]`` its own generator:

* ``caption_shuffle``: a share ``rate`` (0.1 .. 0.5) of the captions is replaced by the caption
  of another item (a different group).
* ``partial_caption_swap``: in every caption, a share ``rate`` (0.1 .. 0.5) of the words is
  replaced by words of one other item's caption.
* ``attribute_swap``: a share ``rate`` (0.1 .. 0.5) of the captions gets one attribute word
  (colour, number, size, position, shape or object noun: :mod:`corruptions.pair.attributes`)
  replaced by another word of the same kind, ``"a red circle"`` -> ``"a blue circle"``. A caption
  without attribute words is left as is (so the realised share is lower on such data). The
  replacement comes from the word lists, so ``groups`` is not used.

Determinism: caption ``i``'s decisions (whether, which donor, which words) use ``rngs[i]`` only
and read the *original* captions, never already-corrupted ones, so the result does not depend
on batch order beyond which other captions are in the batch. The first draw of every caption
decides whether it is corrupted, so the chosen set does not depend on the batch at all.

Donors: a replacement caption comes from another group; among those, captions whose text
differs from caption ``i`` are preferred (templated data repeats captions across images, and a
swap that changes nothing would understate the corruption). A batch with a single group has no
donor: its captions are returned unchanged (``caption_shuffle``, ``partial_caption_swap``).
Donors are drawn by rejection sampling (uniform over valid donors), then by a scan if that
fails, so large galleries stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base import register_corruption
from ..text.common import Tokens, match_case, perturb_count, pick, split_core
from .attributes import replacement_options

RATES = (0.1, 0.2, 0.3, 0.4, 0.5)
MISALIGN = "mafs-bench misalignment protocol: share 0.1 * severity"
REJECTION_TRIES = 64


def _donor(i: int, captions: Sequence[str], groups: Sequence[Any], rng: np.random.Generator) -> int | None:
    """Index of a caption from another group than caption ``i``, text-different preferred; None if none."""
    n = len(captions)

    def ok(j: int, strict: bool) -> bool:
        return groups[j] != groups[i] and (not strict or captions[j] != captions[i])

    for strict in (True, False):
        for _ in range(REJECTION_TRIES):
            j = int(rng.integers(n))
            if ok(j, strict):
                return j
        valid = [j for j in range(n) if ok(j, strict)]
        if valid:
            return valid[int(rng.integers(len(valid)))]
    return None


@register_corruption(
    "caption_shuffle", modality="pair", family="misalignment", severities=RATES, param_names=("pair_share",),
    reference=MISALIGN,
)
def caption_shuffle(captions: list[str], rate: float, rngs: list[np.random.Generator], groups: list[Any]) -> list[str]:
    """A share ``rate`` of the captions replaced by another item's caption."""
    out = list(captions)
    for i, rng in enumerate(rngs):
        if rng.random() < rate:
            j = _donor(i, captions, groups, rng)
            if j is not None:
                out[i] = captions[j]
    return out


@register_corruption(
    "partial_caption_swap", modality="pair", family="misalignment", severities=RATES, param_names=("word_share",),
    reference=MISALIGN,
)
def partial_caption_swap(captions: list[str], rate: float, rngs: list[np.random.Generator], groups: list[Any]) -> list[str]:
    """In each caption, a share ``rate`` of the words replaced by words of another item's caption.

    The count is ``rate * n_words`` rounded stochastically (as the text corruptions); a word is
    replaced by a word of the donor that differs from it (case-insensitive), lower-cased and
    given the replaced word's capitalisation; punctuation around the word stays.
    """
    out = list(captions)
    for i, rng in enumerate(rngs):
        tokens = Tokens(captions[i])
        k = perturb_count(len(tokens), rate, rng)
        if k == 0:
            continue
        j = _donor(i, captions, groups, rng)
        if j is None:
            continue
        donor_words = [core.lower() for core in (split_core(w)[1] for w in captions[j].split()) if core]
        if not donor_words:
            continue
        cores = [split_core(w)[1] for w in tokens.words]
        replaceable = [p for p, core in enumerate(cores) if core and any(d != core.lower() for d in donor_words)]
        for p in pick([replaceable], k, rng):
            pre, core, post = split_core(tokens.words[p])
            options = [d for d in donor_words if d != core.lower()]
            tokens.words[p] = pre + match_case(options[int(rng.integers(len(options)))], core) + post
        out[i] = str(tokens)
    return out


@register_corruption(
    "attribute_swap", modality="pair", family="misalignment", severities=RATES, param_names=("pair_share",),
    reference=MISALIGN + "; attribute word lists in corruptions/pair/attributes.py",
)
def attribute_swap(captions: list[str], rate: float, rngs: list[np.random.Generator], groups: list[Any]) -> list[str]:
    """A share ``rate`` of the captions get one attribute word replaced by another of the same kind."""
    out = list(captions)
    for i, rng in enumerate(rngs):
        if rng.random() >= rate:
            continue
        tokens = Tokens(captions[i])
        cores = [split_core(w)[1] for w in tokens.words]
        found = [p for p, core in enumerate(cores) if replacement_options(core)]
        if not found:
            continue
        p = found[int(rng.integers(len(found)))]
        pre, core, post = split_core(tokens.words[p])
        options = replacement_options(core)
        tokens.words[p] = pre + match_case(options[int(rng.integers(len(options)))], core) + post
        out[i] = str(tokens)
    return out
