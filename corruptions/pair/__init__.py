"""Image-text pair corruptions: misalignment between an image and its caption.

Importing this package (which imports each of its modules, found by
:func:`corruptions.registry.import_submodules`) registers ``caption_shuffle``, ``partial_caption_swap`` and
``attribute_swap`` (module ``misalignment``; attribute word lists in ``attributes``).
"""

from ..registry import import_submodules

import_submodules(__name__)
