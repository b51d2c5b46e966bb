"""The one generic registry type used for every mafs-bench extension point.

It lives in the standalone ``corruptions`` package (which may not depend on us) and is
re-exported here so that datasets, backends, fusion methods and tasks use the same class.
"""

from corruptions.registry import Registry, UnknownNameError

__all__ = ["Registry", "UnknownNameError"]
