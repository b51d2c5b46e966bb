"""Every registry entry has a test, and registries discover their modules.

The guard (albumentations' "every transform has test parameters", made simple): each registered
name must appear as a string literal in some test module other than this one. A test
parametrised over the whole registry (``FUSIONS.names()``) gives a new entry only the generic
checks, which is why it does not count: a new corruption, fusion method, task, dataset, backend,
augmentation or preset needs a test that names it (its expected behaviour, or at least its
entry in a per-registry table of cases such as ``tests/test_corruptions_text.py``'s
``TEXT_PARAMS``). This is a floor, not a proof of a good test. A new registry must be listed in
:data:`REGISTRIES` (a test finds every ``Registry`` in the packages).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import corruptions
import mafs_bench
from corruptions.presets import PRESETS
from mafs_bench.data import DATASETS
from mafs_bench.models.augment import AUGMENTATIONS
from mafs_bench.models.backends import BACKENDS
from mafs_bench.models.fusion import FUSIONS
from mafs_bench.registry import Registry, import_submodules
from mafs_bench.tasks import TASKS

TESTS = Path(__file__).resolve().parent

#: every registry of mafs-bench and the corruption engine, by what its entries are
REGISTRIES: dict[str, Registry] = {
    "fusion method": FUSIONS,
    "task": TASKS,
    "dataset": DATASETS,
    "model backend": BACKENDS,
    "training augmentation": AUGMENTATIONS,
    "corruption": corruptions.CORRUPTIONS,
    "preset": PRESETS,
}


def _names_in_tests() -> set[str]:
    """String constants of every test module except this one."""
    found: set[str] = set()
    for path in sorted(TESTS.rglob("test_*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


NAMED_IN_TESTS = _names_in_tests()
ENTRIES = [(kind, name) for kind, registry in REGISTRIES.items() for name in registry.names()]


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_every_registered_entry_is_named_by_a_test(kind: str, name: str) -> None:
    assert name in NAMED_IN_TESTS, (
        f"{kind} {name!r} is registered but no test names it: add a test of its behaviour (or its row in "
        f"the registry's table of test cases); a test parametrised over the whole registry does not count")


def _all_modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return [info.name for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.")]


def test_every_registry_is_listed() -> None:
    """A registry created anywhere in mafs_bench or corruptions must be guarded above."""
    found = {}
    for module_name in _all_modules("mafs_bench") + _all_modules("corruptions"):
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, Registry):
                found[id(value)] = value.kind
    listed = {id(r) for r in REGISTRIES.values()}
    missing = sorted(kind for key, kind in found.items() if key not in listed)
    assert not missing, f"registries not listed in REGISTRIES: {missing}"


@pytest.mark.parametrize("package", ["mafs_bench.models.fusion", "mafs_bench.tasks", "mafs_bench.data",
                                     "mafs_bench.models.backends", "corruptions", "corruptions.image",
                                     "corruptions.text", "corruptions.pair"])
def test_importing_a_registry_package_imports_all_its_modules(package: str) -> None:
    pkg = importlib.import_module(package)
    modules = [info.name for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_")]
    skipped = {"corruptions": {"torch_ops"}}.get(package, set())
    assert modules
    for name in modules:
        if name not in skipped:
            assert f"{package}.{name}" in sys.modules, f"{package} did not import its module {name}"


def _write_package(root: Path, name: str, modules: dict[str, str]) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for module, body in modules.items():
        (root / name / f"{module}.py").write_text(body)


def test_import_submodules_order_first_skip_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = "import builtins\nbuiltins._discovery_log.append(__name__.rsplit('.', 1)[1])\n"
    _write_package(tmp_path, "disc_pkg", {"zeta": log, "alpha": log, "mid": log, "_private": log, "heavy": log})
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    monkeypatch.setattr(builtins, "_discovery_log", [], raising=False)
    order = import_submodules("disc_pkg", first=("zeta",), skip=("heavy",))
    assert order == ["zeta", "alpha", "mid"]
    assert builtins._discovery_log == ["zeta", "alpha", "mid"]  # type: ignore[attr-defined]
    assert "disc_pkg.heavy" not in sys.modules and "disc_pkg._private" not in sys.modules
    with pytest.raises(ValueError, match=r"no module named \['gone'\]"):
        import_submodules("disc_pkg", first=("gone",))
    with pytest.raises(ValueError, match="not a package"):
        import_submodules("disc_pkg.alpha")


def test_a_new_module_registers_without_an_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of discovery: dropping a file into the package is the whole change."""
    _write_package(tmp_path, "reg_pkg", {"base": "from corruptions.registry import Registry\nTHINGS = Registry('thing')\n"})
    (tmp_path / "reg_pkg" / "__init__.py").write_text(
        "from corruptions.registry import import_submodules\nfrom .base import THINGS\nimport_submodules(__name__)\n")
    (tmp_path / "reg_pkg" / "new_thing.py").write_text("from .base import THINGS\nTHINGS.add('new_thing', 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.import_module("reg_pkg").THINGS.names() == ["new_thing"]


def test_corruption_listing_order_is_kept() -> None:
    """Discovery keeps the documented order: ImageNet-C's families, then mafs-bench's own, text, pair."""
    names = corruptions.names()
    assert names[:5] == ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur"]
    assert names.index("elastic_transform") < names.index("occlusion") < names.index("keyboard")
    assert names.index("word_mask") < names.index("caption_shuffle") < names.index("qmf_image_noise")
    assert mafs_bench.__version__
