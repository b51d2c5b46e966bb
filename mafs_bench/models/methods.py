"""Fusion methods by reference: registered names, ``"package.module:Class"`` and entry points.

A suite's ``models:`` entry names a leaderboard row and the fusion method behind it
(:class:`ModelSpec`). The method is one of, looked up in this order:

1. ``"package.module:Class"`` (the string has a colon): the module is imported and ``Class``
   (a dotted path inside it is allowed, ``"mod:Outer.Inner"``) must be a subclass of
   :class:`~mafs_bench.models.fusion.FusionMethod`. Or ``"path/to/file.py:Class"``: the file is
   loaded as module ``mafs_bench_plugin_<file stem>`` (no ``sys.path`` needed; a suite file's
   relative paths are relative to that suite file, :func:`mafs_bench.runner.suite.read_suite_dict`);
2. a name registered in :data:`~mafs_bench.models.fusion.FUSIONS` (the built-ins);
3. a name in the Python entry-point group ``mafs_bench.fusion_methods``
   (:data:`ENTRY_POINT_GROUP`), declared by an installed distribution, e.g. in its
   ``pyproject.toml``::

       [project.entry-points."mafs_bench.fusion_methods"]
       my_fusion = "my_package.fusion:MyFusion"

   A built-in name wins over an entry point of the same name.

Methods from outside mafs-bench (*plugins*: cases 1 and 3, unless the class is itself defined
inside mafs-bench) train under exactly the built-ins' recipe; their trained weights are cached
under a key that adds :meth:`ModelSpec.plugin_identity`: the class's import path and a hash of
the source file of every class of its MRO defined outside mafs-bench (mafs-bench's own sources
are already in every key, :data:`mafs_bench.models.cache.CODE_SOURCES`). Editing the plugin file
retrains it; a plugin never shares weights (or pair outputs) with a built-in method.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..registry import UnknownNameError
from .fusion import FUSIONS, FusionMethod

#: the entry-point group through which installed distributions provide fusion methods
ENTRY_POINT_GROUP = "mafs_bench.fusion_methods"

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # mafs_bench/


class MethodReferenceError(ValueError):
    """A fusion-method reference that cannot be resolved; the message says why and what exists."""


def entry_point_names() -> list[str]:
    """Names declared in the entry-point group :data:`ENTRY_POINT_GROUP`, sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def _entry_point(name: str) -> metadata.EntryPoint | None:
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if len(found) > 1 and len({ep.value for ep in found}) > 1:
        raise MethodReferenceError(f"fusion method {name!r} is declared by several entry points of group "
                                   f"{ENTRY_POINT_GROUP!r}: {sorted(ep.value for ep in found)}")
    return found[0] if found else None


def _check_class(obj: Any, ref: str) -> type[FusionMethod]:
    if not (inspect.isclass(obj) and issubclass(obj, FusionMethod)):
        what = f"class {obj.__module__}.{obj.__qualname__}" if inspect.isclass(obj) else f"a {type(obj).__name__}"
        raise MethodReferenceError(f"{ref!r} is {what}, not a subclass of mafs_bench.FusionMethod")
    if obj is FusionMethod:
        raise MethodReferenceError(f"{ref!r} is the abstract base class mafs_bench.FusionMethod itself; name a subclass")
    return obj


#: prefix of the module name a plugin file (``"file.py:Class"``) is loaded under
FILE_MODULE_PREFIX = "mafs_bench_plugin_"


def is_file_reference(ref: str) -> bool:
    """Whether ``ref`` names a class in a Python file (``"path/to/file.py:Class"``)."""
    return ref.rpartition(":")[0].endswith(".py")


def _import_file(path: Path, ref: str) -> Any:
    """The module of plugin file ``path``, loaded once per process under
    ``mafs_bench_plugin_<stem>``; a second file with the same stem is an error."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise MethodReferenceError(f"plugin file of {ref!r} not found: {path}")
    name = FILE_MODULE_PREFIX + "".join(c if c.isalnum() else "_" for c in path.stem)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "")).resolve() != path:
            raise MethodReferenceError(f"{ref!r}: another plugin file with the stem {path.stem!r} is already loaded "
                                       f"({loaded.__file__}); rename one of them")
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise MethodReferenceError(f"{ref!r}: {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any failure of the plugin's import is the user's to see
        del sys.modules[name]
        raise MethodReferenceError(f"cannot load plugin file {path} of {ref!r}: {type(err).__name__}: {err}") from err
    return module


def _import_hint(module_name: str, attr: str, err: Exception) -> str:
    """What to do about a module that did not import. The ``mafs-bench`` command does not put
    the working directory on ``sys.path`` (``python -m`` does), so a module file sitting there
    is not found; name it as a file instead, or set ``PYTHONPATH``."""
    top = module_name.split(".")[0]
    if isinstance(err, ModuleNotFoundError) and err.name == top:
        here = Path.cwd()
        as_file = Path(*module_name.split(".")).with_suffix(".py")
        where = "it is in the working directory, which is not on sys.path: "
        if (here / as_file).is_file():
            return where + f"write {f'{as_file.as_posix()}:{attr}'!r} instead, or run with PYTHONPATH=."
        if (here / top).is_dir():
            return where + "run with PYTHONPATH=."
    return "is it installed, or on sys.path?"


def import_method(ref: str) -> type[FusionMethod]:
    """The class named by ``"package.module:Class"`` or ``"path/to/file.py:Class"`` (``Class``
    may be ``Outer.Inner``). A relative file path is relative to the working directory.

    Raises:
        MethodReferenceError: malformed reference, the module cannot be imported or the file
            loaded (the error is given), no such attribute, or not a :class:`FusionMethod` subclass.
    """
    module_name, sep, attr = ref.rpartition(":")
    if is_file_reference(ref) and attr:
        module = _import_file(Path(module_name), ref)
    else:
        if not sep or not attr or not all(part.isidentifier() for part in module_name.split(".")):
            raise MethodReferenceError(f"{ref!r} is not of the form 'package.module:Class' or 'path/to/file.py:Class'")
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # noqa: BLE001 - any failure of the plugin's import is the user's to see
            raise MethodReferenceError(f"cannot import module {module_name!r} of {ref!r}: {type(err).__name__}: {err} "
                                       f"({_import_hint(module_name, attr, err)})") from err
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise MethodReferenceError(f"module {module.__name__!r} ({getattr(module, '__file__', '?')}) has no "
                                       f"attribute {attr!r}") from None
    return _check_class(obj, ref)


def get_fusion_method(name: str) -> type[FusionMethod]:
    """The class of the fusion method registered as ``name`` (built-in or entry point), to subclass.

    Example::

        import mafs_bench

        class MyMAFS(mafs_bench.get_fusion_method("mafs")):
            ...

    Raises:
        UnknownNameError: no such name; the message lists the built-in and entry-point names
            (with a "did you mean").
        MethodReferenceError: the entry point exists but does not load a FusionMethod subclass.
    """
    if name in FUSIONS:
        return FUSIONS.get(name)
    ep = _entry_point(name)
    if ep is None:
        plugins = entry_point_names()
        extra = f"; entry points ({ENTRY_POINT_GROUP}): {', '.join(plugins)}" if plugins else \
            f"; no entry points in group {ENTRY_POINT_GROUP!r}"
        raise UnknownNameError(FUSIONS.unknown_message(name) + extra)
    try:
        obj = ep.load()
    except Exception as err:  # noqa: BLE001
        raise MethodReferenceError(f"entry point {name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP}) failed to "
                                   f"load: {type(err).__name__}: {err}") from err
    return _check_class(obj, f"{name} = {ep.value}")


def resolve_method(ref: str) -> type[FusionMethod]:
    """The class behind a suite's ``method``: ``"module:Class"``, a registered name, or an entry point.

    Raises:
        MethodReferenceError, UnknownNameError: see :func:`import_method`, :func:`get_fusion_method`.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise MethodReferenceError(f"a fusion method is a registered name or 'package.module:Class', got {ref!r}")
    return import_method(ref) if ":" in ref else get_fusion_method(ref)


def is_builtin(cls: type) -> bool:
    """Whether ``cls`` is defined inside mafs-bench (its source is in every cache key already)."""
    path = _class_file(cls)
    return path is not None and path.is_relative_to(_PACKAGE_DIR)


def _class_file(cls: type) -> Path | None:
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def plugin_sources(cls: type[FusionMethod]) -> tuple[tuple[str, str], ...]:
    """``(module, sha256 of the source)`` of every class of ``cls.__mro__`` (up to FusionMethod)
    that is defined outside mafs-bench, by module, computed once per process.

    The module file's bytes are hashed (CRLF read as LF); a class without a file (defined in an
    interactive session) is hashed by ``inspect.getsource``.

    Raises:
        MethodReferenceError: the source of a plugin class cannot be found, so its weights
            could not be cached safely.
    """
    sources: dict[str, str] = {}
    for klass in cls.__mro__:
        if klass is FusionMethod or not issubclass(klass, FusionMethod):
            continue
        if is_builtin(klass) or klass.__module__ in sources:
            continue
        path = _class_file(klass)
        try:
            data = path.read_bytes() if path is not None and path.is_file() else inspect.getsource(klass).encode()
        except (OSError, TypeError) as err:
            raise MethodReferenceError(f"cannot read the source of fusion method class {klass.__module__}."
                                       f"{klass.__qualname__} to key its cached weights ({err}); define it in a "
                                       f"module file") from err
        sources[klass.__module__] = hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()[:16]
    return tuple(sorted(sources.items()))


def class_path(cls: type) -> str:
    """``"module:Qualname"`` of a class (how a suite would name it)."""
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass(frozen=True)
class ModelSpec:
    """One leaderboard row: its name, the fusion method behind it and the method's options.

    Attributes:
        name: the row's name (``model`` column of every results file); unique in a suite.
        method: the reference as written (registered name, entry-point name or
            ``"package.module:Class"``); defaults to ``name``.
        options: keyword options of the method's constructor (its documented options).
    """

    name: str
    method: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    _cls: type[FusionMethod] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.method:
            object.__setattr__(self, "method", self.name)

    @property
    def cls(self) -> type[FusionMethod]:
        """The method's class (:func:`resolve_method`, resolved once)."""
        if self._cls is None:
            object.__setattr__(self, "_cls", resolve_method(self.method))
        return self._cls  # type: ignore[return-value]

    def create(self, image_width: int, text_width: int, **options: Any) -> FusionMethod:
        """A new instance: ``cls(image_width, text_width, **{**options, **self.options})``
        (``options``: defaults from elsewhere, e.g. the backend's; the spec's own win)."""
        return self.cls(image_width, text_width, **{**options, **self.options})

    def plugin_identity(self) -> dict[str, Any] | None:
        """What a plugin's cache key adds: ``{"class": "module:Qualname", "sources": {module:
        hash}}``; None for a class defined inside mafs-bench (keyed as a built-in)."""
        cls = self.cls
        if is_builtin(cls):
            return None
        return {"class": class_path(cls), "sources": dict(plugin_sources(cls))}

    def describe(self) -> dict[str, Any]:
        """For ``run.json``: method as written, the class it resolved to, options, and whether
        it is a plugin (with its source hashes)."""
        identity = self.plugin_identity()
        return {"method": self.method, "class": class_path(self.cls), "options": dict(self.options),
                "plugin": identity is not None, **({"sources": identity["sources"]} if identity else {})}


def as_model_specs(models: Any) -> list[ModelSpec]:
    """``models`` as :class:`ModelSpec` list: a str ``m`` is ``ModelSpec(m)`` (the method of the
    same name), a ModelSpec stays as it is. Backends call this on what they are given, so the
    plain list of names of older callers keeps working."""
    out = []
    for m in models:
        if isinstance(m, ModelSpec):
            out.append(m)
        elif isinstance(m, str):
            out.append(ModelSpec(m))
        else:
            raise TypeError(f"a model is a name or a ModelSpec, got {type(m).__name__}: {m!r}")
    return out


__all__ = ["ENTRY_POINT_GROUP", "FILE_MODULE_PREFIX", "MethodReferenceError", "ModelSpec", "UnknownNameError", "as_model_specs",
           "class_path", "entry_point_names", "get_fusion_method", "import_method", "is_builtin", "is_file_reference",
           "plugin_sources", "resolve_method"]
