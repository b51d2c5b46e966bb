"""Image corruptions: ImageNet-C (noise, blur, weather, digital) plus occlusion and missing images.

Importing this package registers every image corruption; each family lives in its own module,
found by :func:`corruptions.registry.import_submodules` (a new module is imported without an
edit here). Import order is listing order: ImageNet-C's family order, then every other module
alphabetically (mafs-bench's own: ``occlusion``).
"""

from ..registry import import_submodules

import_submodules(__name__, first=("noise", "blur", "weather", "digital"))
