"""Text corruptions: character level, word level (MMRobustness) and missing text.

Importing this package registers them (every module is found by
:func:`corruptions.registry.import_submodules`; a new one needs no edit here): ``char`` (keyboard, ocr, char_insert, char_substitute,
char_swap, char_delete), ``word`` (synonym_replace, word_insert, word_swap, word_delete,
insert_punctuation, word_mask) and ``missing`` (missing_text). Shared tokenisation, the
severity -> word-count rule and the changed-word-share metric live in ``common``; offline
WordNet synonyms in ``wordnet``.
"""

from ..registry import import_submodules

import_submodules(__name__)
