"""Shared pieces of the text corruptions: tokens, how many words to perturb, case, the word-share metric.

A *word* is a whitespace-separated token, exactly as ``str.split()`` sees it; the whitespace
between words is kept byte for byte. A word's *core* is what is left after stripping leading and
trailing non-word characters (``"(dog)."`` -> ``"("``, ``"dog"``, ``")."``), so edits never move
punctuation around and ``"surfboard."`` stays one word with its full stop.

Severity -> number of perturbed words: ``share * n_words`` rounded *stochastically* (floor, plus
one with probability equal to the fractional part, drawn from the sample's generator). The
expected share is exactly ``share`` for captions of any length: there is no ``aug_word_min``
(nlpaug's 1, which doubles severity 1 on 10-word captions) and no ``aug_word_max`` (nlpaug's 10,
which caps severity on long captions; REFERENCES.md s5).
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"(\S+)(\s*)")
_LEAD = re.compile(r"\s*")
_CORE = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
_JOINERS = {"\u200d", "\u200c"}  # zero-width (non-)joiner: part of the grapheme before it


class Tokens:
    """A text as whitespace-separated words plus the exact whitespace around them.

    ``str(Tokens(t)) == t`` for every string ``t``. Words can be replaced, deleted and inserted;
    the surrounding whitespace is kept (an inserted word gets a single space).

    Example:
        >>> t = Tokens("  a red  circle.")
        >>> t.words
        ['a', 'red', 'circle.']
        >>> t.delete(1); str(t)
        '  a circle.'
    """

    def __init__(self, text: str) -> None:
        self.lead = _LEAD.match(text).group()
        pairs = _TOKEN.findall(text, len(self.lead))
        self.words: list[str] = [w for w, _ in pairs]
        self.seps: list[str] = [s for _, s in pairs]

    def __len__(self) -> int:
        return len(self.words)

    def __str__(self) -> str:
        return self.lead + "".join(w + s for w, s in zip(self.words, self.seps))

    def delete(self, i: int) -> None:
        """Remove word ``i`` and the whitespace after it (the last word: the whitespace before it)."""
        last = i == len(self.words) - 1
        if last and i > 0:
            self.seps[i - 1] = self.seps[i]
        del self.words[i], self.seps[i]

    def insert(self, i: int, word: str) -> None:
        """Insert ``word`` so that it becomes word ``i`` (0..len), separated by one space."""
        n = len(self.words)
        if i == n and n > 0:
            self.words.append(word)
            self.seps.append(self.seps[-1])
            self.seps[-2] = " "
        elif n == 0:
            self.words.append(word)
            self.seps.append("")
        else:
            self.words.insert(i, word)
            self.seps.insert(i, " ")


def split_core(word: str) -> tuple[str, str, str]:
    """``"(dog)."`` -> ``("(", "dog", ").")``; a word with no word character has an empty core."""
    m = _CORE.match(word)
    return m.group(1), m.group(2), m.group(3)


def graphemes(text: str) -> list[str]:
    """Split ``text`` into user-perceived characters: combining marks and joiners stay attached.

    Character edits work on these units, so ``"e\\u0301"`` (e + combining acute) is never split.
    """
    out: list[str] = []
    for ch in text:
        attach = out and (
            unicodedata.combining(ch) or ch in _JOINERS or out[-1][-1] in _JOINERS
            or unicodedata.category(ch) in ("Mn", "Me") or 0xFE00 <= ord(ch) <= 0xFE0F
        )
        if attach:
            out[-1] += ch
        else:
            out.append(ch)
    return out


def with_case(unit: str, upper: bool) -> str:
    """``unit`` upper- or lower-cased, unless that changes its length (``"ß".upper() == "SS"``)."""
    changed = unit.upper() if upper else unit.lower()
    return changed if len(changed) == len(unit) else unit


def match_case(new: str, old: str) -> str:
    """Give ``new`` the capitalisation pattern of ``old``: ALL CAPS, Capitalised, or as is."""
    if len(old) > 1 and old.isupper():
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def perturb_count(n_words: int, share: float, rng: np.random.Generator) -> int:
    """How many of ``n_words`` to perturb: ``share * n_words`` with unbiased stochastic rounding.

    Always draws exactly one number from ``rng``, so the rest of the stream does not depend on it.
    """
    expected = round(share * n_words, 9)
    k = math.floor(expected)
    if rng.random() < expected - k:
        k += 1
    return k


def pick(tiers: Sequence[Sequence[int]], k: int, rng: np.random.Generator) -> list[int]:
    """Choose ``k`` distinct indices, all from the first tier if it has enough, then the next.

    Used to prefer the words nlpaug would pick (e.g. at least 4 characters) while still reaching
    the target count on captions with few such words. Returns fewer than ``k`` only when all
    tiers together hold fewer. Sorted ascending.
    """
    chosen: list[int] = []
    taken: set[int] = set()
    for tier in tiers:
        need = k - len(chosen)
        if need <= 0:
            break
        avail = [i for i in tier if i not in taken]
        if not avail:
            continue
        order = rng.permutation(len(avail))[:need]
        for o in order:
            chosen.append(avail[int(o)])
            taken.add(avail[int(o)])
    return sorted(chosen)


def changed_word_share(original: str, corrupted: str) -> float:
    """Share of ``original``'s words that a corruption changed (the benchmark's severity check).

    ``difflib.SequenceMatcher`` aligns the two word lists (``str.split()``); with ``m`` matched
    words the share is ``max(len(orig) - m, len(new) - m) / len(orig)``. For substitutions,
    deletions and swaps that is ``1 - m / len(orig)``; for insertions (``word_insert``,
    ``insert_punctuation``) it counts the inserted words relative to the original length. An
    empty original gives 0.0.

    Caveat: on periodic text (one caption repeated many times) difflib's greedy alignment can
    match across periods and overstate the share; measure long captions on non-repeating text.
    """
    a, b = original.split(), corrupted.split()
    if not a:
        return 0.0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return max(len(a) - matched, len(b) - matched) / len(a)
