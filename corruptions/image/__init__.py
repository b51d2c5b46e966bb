"""Image corruptions: ImageNet-C (noise, blur, weather, digital) plus occlusion and missing images.

Importing this package registers every image corruption; each family lives in its own module.
Import order is listing order: ImageNet-C's family order, then mafs-bench's own.
"""

from . import noise  # noqa: F401  (isort: skip)
from . import blur  # noqa: F401  (isort: skip)
from . import weather  # noqa: F401  (isort: skip)
from . import digital  # noqa: F401  (isort: skip)
from . import occlusion  # noqa: F401  (isort: skip)
