"""Image-text pair corruptions: misalignment between an image and its caption.

Importing this package registers ``caption_shuffle``, ``partial_caption_swap`` and
``attribute_swap`` (module ``misalignment``; attribute word lists in ``attributes``).
"""

from . import misalignment  # noqa: F401
