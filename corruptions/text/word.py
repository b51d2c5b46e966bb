"""Word-level text corruptions (MMRobustness, Qiu et al. 2022, arXiv 2212.08044).

synonym_replace, word_insert, word_swap, word_delete: the EDA operations (Wei & Zou 2019);
insert_punctuation: AEDA (Karimi et al. 2021); all at rate ``0.05 * severity`` as in
MMRobustness. word_mask (ours, not in MMRobustness): words replaced by :data:`MASK_TOKEN`.

Common rules (see :mod:`corruptions.text.common`): a word is a whitespace token; ``share *
n_words`` words are perturbed, rounded stochastically, with no cap on long captions; edits
replace a word's core and keep the punctuation around it; whitespace is kept.

Choices where the references leave room (documented deviations):

* synonym_replace: only content words that have a WordNet synonym are candidates (EDA skips
  stopwords too); the count is computed over *all* words and filled from the candidates, so
  the share holds unless fewer content words than that have synonyms. The synonym keeps the
  replaced word's capitalisation; it is inserted in its base form (as EDA). WordNet data: see
  :mod:`corruptions.text.wordnet`; missing data raises, it never returns the input unchanged.
* word_insert: EDA's random insertion (a synonym of a random content word, at a random
  position). A caption with no content word that has synonyms gets copies of its own words
  instead, so the inserted share still holds. Inserted words are lower case, as in EDA.
* word_swap: EDA swaps ``alpha * n`` pairs, moving up to ``2 * alpha * n`` words; here
  ``share * n / 2`` pairs are swapped (each word moves at most once, the two words differ),
  so the share of *moved* words is ``share``, like the other corruptions. Cores are swapped,
  punctuation stays in place; the first word's capitalisation stays with the first position.
* word_delete: EDA deletes each word with probability ``share``; here exactly
  ``share * n_words`` (stochastically rounded), never every word.
* insert_punctuation: ``share * n_words`` marks from AEDA's ``. ; ? : ! ,``, each a word of
  its own at a random position (AEDA draws 1..n/3 marks; MMRobustness ties the count to the
  severity).
* MMRobustness resampled word-level outputs until a sentence-embedding similarity >= 0.9;
  that needs a sentence model and is not done here.
"""

from __future__ import annotations

import numpy as np

from ..base import register_corruption
from .common import Tokens, match_case, perturb_count, pick, split_core
from .wordnet import is_content_word, load_table

WORD_SHARES = (0.05, 0.10, 0.15, 0.20, 0.25)
MMROBUSTNESS = "MMRobustness (Qiu et al. 2022, arXiv 2212.08044): {op}, rate 0.05 * severity"
MASK_TOKEN = "[MASK]"
PUNCTUATION = (".", ";", "?", ":", "!", ",")  # AEDA's marks


def _choice(options, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def _synonym_sources(tokens: Tokens) -> list[int]:
    """Indices of content words that have WordNet synonyms."""
    table = load_table()
    out = []
    for i, word in enumerate(tokens.words):
        core = split_core(word)[1]
        if is_content_word(core) and table.synonyms(core):
            out.append(i)
    return out


@register_corruption(
    "synonym_replace", modality="text", family="word", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(op="EDA synonym replacement (WordNet 3.0)"),
)
def synonym_replace(text: str, share: float, rng: np.random.Generator) -> str:
    """Content words replaced by a WordNet synonym."""
    table = load_table()  # raises WordNetMissingError before anything else
    tokens = Tokens(text)
    k = perturb_count(len(tokens), share, rng)
    if k == 0:
        return text
    for i in pick([_synonym_sources(tokens)], k, rng):
        pre, core, post = split_core(tokens.words[i])
        tokens.words[i] = pre + match_case(_choice(table.synonyms(core), rng), core) + post
    return str(tokens)


@register_corruption(
    "word_insert", modality="text", family="word", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(op="EDA random insertion (WordNet 3.0)"),
)
def word_insert(text: str, share: float, rng: np.random.Generator) -> str:
    """Synonyms of the caption's own words inserted at random positions."""
    table = load_table()
    tokens = Tokens(text)
    k = perturb_count(len(tokens), share, rng)
    if k == 0:
        return text
    # Resolve the source words before inserting: insertions shift indices.
    sources = [split_core(tokens.words[i])[1] for i in _synonym_sources(tokens)]
    originals = [split_core(w)[1] or w for w in tokens.words]
    for _ in range(k):
        if sources:
            new = _choice(table.synonyms(_choice(sources, rng)), rng)
        else:
            new = _choice(originals, rng).lower()
        tokens.insert(int(rng.integers(len(tokens) + 1)), new)
    return str(tokens)


@register_corruption(
    "word_swap", modality="text", family="word", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(op="EDA random swap (share of moved words)"),
)
def word_swap(text: str, share: float, rng: np.random.Generator) -> str:
    """Pairs of different words exchange places (punctuation stays where it was)."""
    tokens = Tokens(text)
    n_pairs = perturb_count(len(tokens), share / 2, rng)
    if n_pairs == 0:
        return text
    parts = [split_core(w) for w in tokens.words]
    free = [i for i, (_, core, _) in enumerate(parts) if core]
    lower = [core.lower() for _, core, _ in parts]
    for _ in range(n_pairs):
        if len(free) < 2:
            break
        a = _choice(free, rng)
        partners = [j for j in free if lower[j] != lower[a]]
        if not partners:  # every free word equals word a, so no pair of free words differs
            break
        b = _choice(partners, rng)
        core_a, core_b = parts[a][1], parts[b][1]
        if 0 in (a, b):
            first, other = (core_a, core_b) if a == 0 else (core_b, core_a)
            if first[:1].isupper() and not (len(first) > 1 and first.isupper()) and other[:1].islower():
                # Sentence case stays with the first position: "A dog bites a man" -> "Man dog bites a a".
                first, other = first[:1].lower() + first[1:], other[:1].upper() + other[1:]
                core_a, core_b = (first, other) if a == 0 else (other, first)
        parts[a], parts[b] = (parts[a][0], core_b, parts[a][2]), (parts[b][0], core_a, parts[b][2])
        free = [i for i in free if i not in (a, b)]
    tokens.words = ["".join(p) for p in parts]
    return str(tokens)


@register_corruption(
    "word_delete", modality="text", family="word", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(op="EDA random deletion"),
)
def word_delete(text: str, share: float, rng: np.random.Generator) -> str:
    """Words deleted (with the whitespace after them); at least one word always remains."""
    tokens = Tokens(text)
    k = min(perturb_count(len(tokens), share, rng), max(len(tokens) - 1, 0))
    if k == 0:
        return text
    for i in reversed(pick([range(len(tokens))], k, rng)):
        tokens.delete(i)
    return str(tokens)


@register_corruption(
    "insert_punctuation", modality="text", family="word", severities=WORD_SHARES, param_names=("word_share",),
    reference=MMROBUSTNESS.format(op="AEDA punctuation insertion (. ; ? : ! ,)"),
)
def insert_punctuation(text: str, share: float, rng: np.random.Generator) -> str:
    """Punctuation marks inserted between words, each as a word of its own."""
    tokens = Tokens(text)
    k = perturb_count(len(tokens), share, rng)
    for _ in range(k):
        tokens.insert(int(rng.integers(len(tokens) + 1)), _choice(PUNCTUATION, rng))
    return str(tokens) if k else text


@register_corruption(
    "word_mask", modality="text", family="word", severities=WORD_SHARES, param_names=("word_share",),
    reference="mafs-bench: words replaced by the mask token '[MASK]' (BERT's), rate 0.05 * severity",
)
def word_mask(text: str, share: float, rng: np.random.Generator) -> str:
    """Words replaced by ``[MASK]`` (punctuation around them kept): partially missing text."""
    tokens = Tokens(text)
    k = perturb_count(len(tokens), share, rng)
    if k == 0:
        return text
    candidates = [i for i, w in enumerate(tokens.words) if split_core(w)[1] and MASK_TOKEN not in w]
    for i in pick([candidates], k, rng):
        pre, _, post = split_core(tokens.words[i])
        tokens.words[i] = pre + MASK_TOKEN + post
    return str(tokens)
