"""The one generic registry type used for every mafs-bench extension point, and module discovery.

It lives in the standalone ``corruptions`` package (which may not depend on us) and is
re-exported here so that datasets, backends, fusion methods and tasks use the same class.
Each registry's package imports all of its modules with :func:`import_submodules`, so a new
dataset, backend, fusion method or task is one new file with one decorator, and no list of
imports to edit.
"""

from corruptions.registry import Registry, UnknownNameError, import_submodules

__all__ = ["Registry", "UnknownNameError", "import_submodules"]
