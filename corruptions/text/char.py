"""Character-level text corruptions (MMRobustness, Qiu et al. 2022, arXiv 2212.08044).

keyboard, ocr, char_insert, char_substitute, char_swap, char_delete: the six character-level
perturbations MMRobustness makes with nlpaug's ``KeyboardAug``, ``OcrAug`` and ``RandomCharAug``
(insert / substitute / swap / delete) at ``aug_word_p = 0.05 * severity``.

How nlpaug is used. ``import nlpaug`` imports torch (and seeds and draws from Python's global
``random``), so this module never imports it: it reads only the two data files nlpaug ships,
``nlpaug/res/char/keyboard/en.json`` (QWERTY neighbours) and ``nlpaug/res/char/ocr/en.json``
(OCR confusions), located with ``importlib.util.find_spec`` (which does not run nlpaug's code),
and expands them the way nlpaug's ``Keyboard`` / ``Ocr`` models do (upper-case variants; the
reverse OCR mapping). All sampling is done here with the sample's own generator.

One departure from nlpaug's data: every map keeps only entries (keys and replacements) that are
a single printable, non-space character (:func:`is_edit_char`: Unicode category letter, number,
punctuation or symbol). nlpaug 1.1.11's ``keyboard/en.json`` lists ``" t"`` among the neighbours
of ``u`` (and its upper-case expansion adds ``" T"``), so nlpaug's KeyboardAug inserts a space
and splits a word in two (``"under"`` -> ``"jbder"``, ``"blue"`` -> ``"Hl te"``); those two
entries are dropped here. Filtering at load covers any such entry a later nlpaug release adds, in
either map and in the upper-case expansion (``"ß".upper() == "SS"`` would be two characters).

Per-word behaviour follows nlpaug's defaults:

* Words perturbed: ``share * n_words`` (stochastic rounding, no min, no max: see
  :mod:`corruptions.text.common`), chosen first among the words nlpaug would pick (at least
  ``min_char`` characters: 4, or 1 for OCR) and, when a caption has too few of those, among the
  other words the edit can change, so the share holds on short-word captions too.
* Characters edited in a chosen word: ``ceil(0.3 * len(word))``, at least ``aug_char_min``
  (1; 2 for OCR), at most 10, and at most the characters the edit applies to (keyboard / OCR:
  characters with a mapping).
* Only a word's core is edited (punctuation around it stays); characters are grapheme
  clusters (combining marks stay on their letter); nothing ever inserts whitespace, so the
  number of words never changes. Every chosen word really changes: a substitute differs from
  the original character, a swap exchanges two different characters, a delete keeps at least
  one character.
* Swap: nlpaug's ``swap_mode="adjacent"`` (the first character swaps with the next, the last
  with the previous, others with a random neighbour); each position keeps its case.
* Insert / substitute draw from nlpaug's ``RandomCharAug`` default candidates: ASCII letters,
  digits and ``!@#$%^&*()_+``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import string
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..base import register_corruption
from .common import Tokens, graphemes, perturb_count, pick, split_core, with_case

WORD_SHARES = (0.05, 0.10, 0.15, 0.20, 0.25)
MMROBUSTNESS = "MMRobustness (Qiu et al. 2022, arXiv 2212.08044): nlpaug {aug}, aug_word_p = 0.05 * severity"

CHAR_SHARE = 0.3  # nlpaug aug_char_p
CHAR_MAX = 10  # nlpaug aug_char_max (per word: not a cap on the caption)
RANDOM_CHARS = tuple(string.ascii_uppercase + string.ascii_lowercase + string.digits + "!@#$%^&*()_+")
EDIT_CATEGORIES = frozenset("LNPS")  # Unicode major classes a character edit may write


def is_edit_char(ch: str) -> bool:
    """Whether ``ch`` may be written or looked up by a character edit: exactly one printable,
    non-space character (letter, number, punctuation or symbol).

    Excludes whitespace (would split a word: nlpaug's ``" t"``), the empty string (would delete a
    character where a substitution is meant), multi-character strings, control and format
    characters, and combining marks (would attach to the previous character).
    """
    return len(ch) == 1 and unicodedata.category(ch)[0] in EDIT_CATEGORIES


def clean_map(mapping: dict[str, set[str] | list[str]]) -> dict[str, tuple[str, ...]]:
    """``mapping`` restricted to :func:`is_edit_char` keys and replacements, minus identities.

    Keys left without a replacement are dropped; replacements are sorted (deterministic order).
    """
    out: dict[str, tuple[str, ...]] = {}
    for key in sorted(k for k in mapping if is_edit_char(k)):
        options = sorted({v for v in mapping[key] if is_edit_char(v)} - {key})
        if options:
            out[key] = tuple(options)
    return out


# --- nlpaug's data -----------------------------------------------------------------------------------

def nlpaug_resource(*parts: str) -> Path:
    """Path of a data file inside the installed nlpaug package, without importing nlpaug."""
    spec = importlib.util.find_spec("nlpaug")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "keyboard and ocr read their character maps from the nlpaug package's data files: pip install nlpaug"
        )
    path = Path(next(iter(spec.submodule_search_locations)), "res", *parts)
    if not path.is_file():
        raise FileNotFoundError(f"nlpaug data file {path} is missing; reinstall nlpaug (pip install --force-reinstall nlpaug)")
    return path


@functools.lru_cache(maxsize=1)
def keyboard_map() -> dict[str, tuple[str, ...]]:
    """QWERTY neighbours of each key, with upper-case variants (as nlpaug's ``Keyboard`` model).

    Only single printable non-space characters are kept (:func:`clean_map`): nlpaug's ``" t"``
    and ``" T"`` for ``u`` / ``U`` are dropped, so a keyboard typo never splits a word.
    """
    with open(nlpaug_resource("char", "keyboard", "en.json"), encoding="utf-8") as f:
        raw = json.load(f)
    result: dict[str, set[str]] = {}
    for key, values in raw.items():
        for k in (key, key.upper()):
            bucket = result.setdefault(k, set())
            for v in values:  # nlpaug iterates a bare string value char by char, so do we
                bucket.update((v, v.upper()))
    return clean_map(result)


@functools.lru_cache(maxsize=1)
def ocr_map() -> dict[str, tuple[str, ...]]:
    """OCR confusions: nlpaug's mapping plus its reverse (as nlpaug's ``Ocr`` model).

    Filtered like :func:`keyboard_map` (nlpaug 1.1.11's OCR map has no odd entry; a later one might).
    """
    with open(nlpaug_resource("char", "ocr", "en.json"), encoding="utf-8") as f:
        raw = json.load(f)
    result: dict[str, list[str]] = {k: list(v) for k, v in raw.items()}
    for k, values in raw.items():
        for v in values:
            bucket = result.setdefault(v, [])
            if k not in bucket:
                bucket.append(k)
    return clean_map(result)


# --- the shared driver -------------------------------------------------------------------------------

def n_chars(length: int, char_min: int, n_editable: int) -> int:
    """nlpaug's per-word count: ``ceil(0.3 * length)`` clipped to [char_min, 10] and to what is editable."""
    count = min(max(math.ceil(CHAR_SHARE * length), char_min), CHAR_MAX)
    return min(count, n_editable)


def perturb_words(
    text: str,
    share: float,
    rng: np.random.Generator,
    can_edit: Callable[[list[str]], bool],
    edit: Callable[[list[str], np.random.Generator], list[str]],
    min_char: int,
) -> str:
    """Edit ``share`` of the words of ``text`` with ``edit`` (see module docstring for the rules).

    Args:
        can_edit: whether a word's grapheme list can be changed by ``edit``.
        edit: returns the changed grapheme list; must differ from its input.
        min_char: nlpaug's ``min_char``: words at least this long are preferred.
    """
    tokens = Tokens(text)
    k = perturb_count(len(tokens), share, rng)
    if k == 0:
        return text
    cores = [graphemes(split_core(w)[1]) for w in tokens.words]
    editable = [i for i, g in enumerate(cores) if g and can_edit(g)]
    preferred = [i for i in editable if len(cores[i]) >= min_char]
    for i in pick([preferred, editable], k, rng):
        pre, _, post = split_core(tokens.words[i])
        tokens.words[i] = pre + "".join(edit(cores[i], rng)) + post
    return str(tokens)


def _positions(count: int, allowed: list[int], rng: np.random.Generator) -> list[int]:
    """``count`` distinct entries of ``allowed``, sorted."""
    return sorted(allowed[int(j)] for j in rng.permutation(len(allowed))[:count])


# --- per-word edits ----------------------------------------------------------------------------------

def _map_edit(mapping: dict[str, tuple[str, ...]], char_min: int) -> Callable[[list[str], np.random.Generator], list[str]]:
    def edit(units: list[str], rng: np.random.Generator) -> list[str]:
        allowed = [i for i, u in enumerate(units) if u in mapping]
        out = list(units)
        for i in _positions(n_chars(len(units), char_min, len(allowed)), allowed, rng):
            options = mapping[units[i]]
            out[i] = options[int(rng.integers(len(options)))]
        return out

    return edit


def _insert(units: list[str], rng: np.random.Generator) -> list[str]:
    out = list(units)
    # nlpaug inserts before the chosen characters, from the last one backwards.
    for i in reversed(_positions(n_chars(len(units), 1, len(units)), list(range(len(units))), rng)):
        out.insert(i, RANDOM_CHARS[int(rng.integers(len(RANDOM_CHARS)))])
    return out


def _substitute(units: list[str], rng: np.random.Generator) -> list[str]:
    out = list(units)
    for i in _positions(n_chars(len(units), 1, len(units)), list(range(len(units))), rng):
        options = [c for c in RANDOM_CHARS if c != units[i]]
        out[i] = options[int(rng.integers(len(options)))]
    return out


def _can_swap(units: list[str]) -> bool:
    return any(units[j].lower() != units[j + 1].lower() for j in range(len(units) - 1))


def _swap_pair(out: list[str], a: int, b: int) -> None:
    """Exchange positions a and b; each position keeps its case (as nlpaug)."""
    upper_a, upper_b = out[a].isupper(), out[b].isupper()
    out[a], out[b] = with_case(out[b], upper_a), with_case(out[a], upper_b)


def _swap(units: list[str], rng: np.random.Generator) -> list[str]:
    out = list(units)
    last = len(units) - 1
    for i in _positions(n_chars(len(units), 1, len(units)), list(range(len(units))), rng):
        j = i + 1 if i == 0 else i - 1 if i == last else i + (1 if rng.random() < 0.5 else -1)
        _swap_pair(out, i, j)
    if [u.lower() for u in out] == [u.lower() for u in units]:
        # The swaps cancelled out or hit equal letters ("ll"): swap one pair that does differ.
        pairs = [j for j in range(last) if units[j].lower() != units[j + 1].lower()]
        j = pairs[int(rng.integers(len(pairs)))]
        out = list(units)
        _swap_pair(out, j, j + 1)
    return out


def _delete(units: list[str], rng: np.random.Generator) -> list[str]:
    count = min(n_chars(len(units), 1, len(units)), len(units) - 1)
    drop = set(_positions(count, list(range(len(units))), rng))
    return [u for i, u in enumerate(units) if i not in drop]


# --- registered corruptions --------------------------------------------------------------------------

@register_corruption(
    "keyboard", modality="text", family="character", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(aug="KeyboardAug (en QWERTY map)"),
)
def keyboard(text: str, share: float, rng: np.random.Generator) -> str:
    """Typos: characters replaced by a neighbouring key (nlpaug's English QWERTY map)."""
    mapping = keyboard_map()
    return perturb_words(text, share, rng, lambda g: any(u in mapping for u in g), _map_edit(mapping, 1), min_char=4)


@register_corruption(
    "ocr", modality="text", family="character", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(aug="OcrAug"),
)
def ocr(text: str, share: float, rng: np.random.Generator) -> str:
    """OCR errors: characters replaced by look-alikes (nlpaug's OCR map, e.g. o <-> 0, l <-> 1)."""
    mapping = ocr_map()
    return perturb_words(text, share, rng, lambda g: any(u in mapping for u in g), _map_edit(mapping, 2), min_char=1)


@register_corruption(
    "char_insert", modality="text", family="character", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(aug="RandomCharAug(action='insert')"),
)
def char_insert(text: str, share: float, rng: np.random.Generator) -> str:
    """Random characters inserted into words."""
    return perturb_words(text, share, rng, lambda g: True, _insert, min_char=4)


@register_corruption(
    "char_substitute", modality="text", family="character", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(aug="RandomCharAug(action='substitute')"),
)
def char_substitute(text: str, share: float, rng: np.random.Generator) -> str:
    """Characters of words replaced by random characters."""
    return perturb_words(text, share, rng, lambda g: True, _substitute, min_char=4)


@register_corruption(
    "char_swap", modality="text", family="character", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(aug="RandomCharAug(action='swap', swap_mode='adjacent')"),
)
def char_swap(text: str, share: float, rng: np.random.Generator) -> str:
    """Adjacent characters of words swapped."""
    return perturb_words(text, share, rng, _can_swap, _swap, min_char=4)


@register_corruption(
    "char_delete", modality="text", family="character", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(aug="RandomCharAug(action='delete')"),
)
def char_delete(text: str, share: float, rng: np.random.Generator) -> str:
    """Characters deleted from words (every word keeps at least one)."""
    return perturb_words(text, share, rng, lambda g: len(g) >= 2, _delete, min_char=4)
