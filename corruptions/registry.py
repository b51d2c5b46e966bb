"""A small generic registry: one per extension point (corruptions, datasets, fusion methods, tasks...).

Adding an entry is one decorator on one class or function; lookups of unknown names fail with
the list of known names and a "did you mean" hint, never with a bare ``KeyError``.
This module has no dependencies beyond the standard library so that ``corruptions`` stays
importable without torch, and ``mafs_bench`` reuses it for its own registries.

Registries discover their entries: a package whose modules register entries calls
:func:`import_submodules` in its ``__init__``, so adding an entry is adding one file, with no
central list of imports to edit.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry is asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Name -> object mapping filled by a decorator.

    Args:
        kind: what the entries are ("corruption", "fusion method", ...), used in error messages.

    Example:
        >>> FUSIONS = Registry("fusion method")
        >>> @FUSIONS.register("sum")
        ... class Sum: ...
        >>> FUSIONS.get("sum") is Sum
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds ``obj`` under ``name``; a duplicate name is an error."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        """Add ``obj`` under ``name``; refuses to overwrite an existing entry."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise :class:`UnknownNameError` with suggestions."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        """The error text for an unknown ``name``: the known names and the closest match."""
        known = sorted(self._entries)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}"

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs in registration order."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def import_submodules(package: str, first: Sequence[str] = (), skip: Sequence[str] = ()) -> list[str]:
    """Import every module and subpackage directly inside ``package``, so their registry
    decorators run: the discovery that replaces a hand-kept list of imports.

    Called from the package's own ``__init__`` (``import_submodules(__name__)``); found with
    :func:`pkgutil.iter_modules` over the package's ``__path__`` (plain folders and zip imports
    alike). Names starting with ``_`` are private and not imported. Subpackages are imported
    too (their own ``__init__`` decides what they import); nothing is imported recursively here.

    Args:
        package: dotted name of an imported (or importing) package.
        first: modules imported first, in this order; registration order is listing order, so
            this keeps a family's documented order (e.g. ImageNet-C's). Every other module
            follows in alphabetical order; a new module needs no entry here.
        skip: modules that must not be imported eagerly (e.g. ``corruptions.torch_ops``, which
            needs torch); each needs a reason at the call site.

    Returns:
        The imported module names (without the package prefix), in import order.

    Raises:
        ValueError: a name in ``first`` or ``skip`` is not a module of ``package`` (a rename
            would otherwise silently change the order or import a skipped module).
    """
    module = sys.modules.get(package) or importlib.import_module(package)
    path = getattr(module, "__path__", None)
    if path is None:
        raise ValueError(f"import_submodules: {package!r} is a module, not a package")
    found = sorted(info.name for info in pkgutil.iter_modules(path) if not info.name.startswith("_"))
    stale = [name for name in (*first, *skip) if name not in found]
    if stale:
        raise ValueError(f"import_submodules({package!r}): no module named {stale} (found {found})")
    order = [*first, *(name for name in found if name not in first and name not in skip)]
    for name in order:
        importlib.import_module(f"{package}.{name}")
    return order
