"""Weights cache: keys follow the training code, files are safetensors, nothing is unpickled."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mafs_bench.models import cache

CFG = {"a": 1, "b": [1, 2]}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))
    cache.code_version.cache_clear()
    yield
    cache.code_version.cache_clear()


def _use_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copy the installed packages to ``tmp_path/src`` and make the cache hash the copy."""
    root = tmp_path / "src"
    for package in ("mafs_bench", "corruptions"):
        shutil.copytree(cache._package_dir(package), root / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "_package_dir", lambda package: root / package)
    cache.code_version.cache_clear()
    return root


@pytest.fixture
def source_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the installed packages that the cache hashes instead of the real ones."""
    return _use_copy(tmp_path, monkeypatch)


def _edit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one byte
    path.write_bytes(bytes(data))


def test_every_code_source_pattern_matches_a_file() -> None:
    for pattern in cache.CODE_SOURCES:
        assert cache.source_files([pattern]), f"CODE_SOURCES entry {pattern!r} matches nothing: renamed?"


def test_modules_that_training_imports_are_covered() -> None:
    import sys

    import mafs_bench.models.backends.embedded  # noqa: F401
    import mafs_bench.models.training  # noqa: F401

    covered = {path.resolve() for _, path in cache.source_files()}
    prefixes = ("corruptions", "mafs_bench.models.fusion", "mafs_bench.models.training", "mafs_bench.models.encoder",
                "mafs_bench.models.tokenizer", "mafs_bench.data.world")
    loaded = [m for name, m in sys.modules.items() if name.startswith(prefixes) and getattr(m, "__file__", None)]
    assert len(loaded) > 10
    for module in loaded:
        assert Path(module.__file__).resolve() in covered, f"{module.__name__} trains weights but is not in CODE_SOURCES"


def test_code_version_does_not_depend_on_install_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = cache.code_version()
    root = _use_copy(tmp_path, monkeypatch)
    assert all(path.is_relative_to(root) for _, path in cache.source_files())
    assert cache.code_version() == installed


@pytest.mark.parametrize("covered", [
    "mafs_bench/models/training.py",
    "mafs_bench/models/fusion/mafs.py",
    "mafs_bench/models/configs/mafs-tiny-vit.json",
    "mafs_bench/models/backends/embedded.py",
    "mafs_bench/data/world.py",
    "corruptions/image/noise.py",
])
def test_one_byte_of_a_covered_source_changes_the_key(source_copy: Path, covered: str) -> None:
    before = cache.config_key(CFG)
    _edit(source_copy / covered)
    cache.code_version.cache_clear()
    assert cache.config_key(CFG) != before


def test_unrelated_files_and_line_endings_leave_the_key(source_copy: Path) -> None:
    before = cache.config_key(CFG)
    _edit(source_copy / "mafs_bench/reporting/report.py")
    _edit(source_copy / "mafs_bench/data/coco.py")
    (source_copy / "mafs_bench/models/notes.txt").write_text("not a source")
    training = source_copy / "mafs_bench/models/training.py"
    training.write_bytes(training.read_bytes().replace(b"\n", b"\r\n"))  # a Windows checkout
    cache.code_version.cache_clear()
    assert cache.config_key(CFG) == before


def test_code_version_is_computed_once_per_process(source_copy: Path) -> None:
    first = cache.code_version()
    _edit(source_copy / "mafs_bench/models/training.py")
    assert cache.code_version() == first  # the running process trains with the code it imported


class _Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(7, 4)
        self.head = torch.nn.Linear(4, 7, bias=False)
        self.head.weight = self.embed.weight  # tied: one tensor under two names
        self.proj = torch.nn.Parameter(torch.randn(4, 3).t())  # a non-contiguous view
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.low = torch.nn.Parameter(torch.randn(3, dtype=torch.bfloat16))


def test_round_trip_of_a_module_with_tied_views_and_dtypes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _Tied()
    path = cache.save_weights("fusion", CFG, source.state_dict(), {"loss": 0.5, "steps": 3})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"
    torch.manual_seed(1)
    target = _Tied()
    got = cache.load_weights("fusion", dict(reversed(CFG.items())))  # key order does not matter
    assert got is not None and got["meta"] == {"loss": 0.5, "steps": 3} and got["config"] == CFG
    target.load_state_dict(got["state_dict"])  # strict
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor) and target.state_dict()[name].dtype == tensor.dtype, name
    assert target.head.weight is target.embed.weight
    recipe = cache.recipe_path("fusion", CFG).read_text()
    assert cache.code_version() in recipe and '"kind": "fusion"' in recipe and '"torch"' in recipe


def test_non_tensor_state_is_refused() -> None:
    with pytest.raises(TypeError, match="state_dict\\['step'\\] is a int"):
        cache.save_weights("x", CFG, {"w": torch.ones(2), "step": 3}, {})
    assert not cache.weights_path("x", CFG).exists()


class _Payload:
    """Unpickling this touches a marker file: proof that a pickle was (not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def no_unpickling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists(), "the payload must work for the test to mean anything"
    marker.unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("the cache unpickled a file")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    return marker


def _write_pickle(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": {"w": _Payload(marker)}}))


def _valid_bytes(tmp_path: Path) -> bytes:
    cache.save_weights("x", CFG, {"w": torch.arange(100.0)}, {})
    return cache.weights_path("x", CFG).read_bytes()


@pytest.mark.parametrize("content", ["pickle", "torch_save", "garbage", "truncated", "no_recipe"])
def test_unreadable_weights_are_absent_with_a_warning_and_never_unpickled(
        tmp_path: Path, no_unpickling: Path, content: str) -> None:
    path = cache.weights_path("x", CFG)
    valid = _valid_bytes(tmp_path)
    if content == "pickle":
        _write_pickle(path, no_unpickling)
    elif content == "torch_save":  # what the cache wrote before (format 1), at the new name
        with open(path, "wb") as f:
            torch.save({"w": torch.ones(2)}, f)
    elif content == "garbage":
        path.write_bytes(b"\x00" * 3)
    elif content == "truncated":  # e.g. a copy killed mid-way
        path.write_bytes(valid[: len(valid) - 40])
    else:  # valid safetensors, but not written by the cache
        save_file({"w": torch.ones(2)}, path)
    with pytest.warns(cache.CacheWarning, match=re.escape(str(path))):
        assert cache.load_weights("x", CFG) is None
    assert not no_unpickling.exists()


def test_weights_of_another_config_are_not_used(tmp_path: Path) -> None:
    other = {"a": 2, "b": [1, 2]}
    cache.save_weights("x", other, {"w": torch.ones(2)}, {})
    cache.save_weights("y", CFG, {"w": torch.ones(2)}, {})
    path = cache.weights_path("x", CFG)
    shutil.copy(cache.weights_path("x", other), path)  # a file under the wrong name
    with pytest.warns(cache.CacheWarning, match=re.escape(str(path)) + ".*config"):
        assert cache.load_weights("x", CFG) is None
    shutil.copy(cache.weights_path("y", CFG), path)  # right config, other kind
    with pytest.warns(cache.CacheWarning, match=re.escape(str(path)) + ".*kind"):
        assert cache.load_weights("x", CFG) is None


def test_legacy_pt_files_are_ignored(tmp_path: Path, no_unpickling: Path) -> None:
    path = cache.weights_path("encoder", CFG)
    _write_pickle(path.with_suffix(".pt"), no_unpickling)
    _write_pickle(path.parent / "0123456789abcdef.pt", no_unpickling)
    assert cache.load_weights("encoder", CFG) is None
    assert not no_unpickling.exists()
    cache.save_weights("encoder", CFG, {"w": torch.ones(2)}, {})
    assert torch.equal(cache.load_weights("encoder", CFG)["state_dict"]["w"], torch.ones(2))


def test_cached_weights_that_do_not_fit_are_retrained_not_a_crash() -> None:
    """A cache entry whose recipe matches but whose tensors do not fit the module is not used."""
    import warnings

    from mafs_bench.models.backends.embedded import load_into
    from mafs_bench.models.fusion import create_fusion

    method = create_fusion("fixed_sum", 16, 16, width=16, heads=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_into(method, {"head.weight": torch.zeros(3, 3)}, "fusion head fixed_sum") is False
    assert any(issubclass(w.category, cache.CacheWarning) and "fixed_sum" in str(w.message) for w in caught)
    assert load_into(method, method.state_dict(), "fusion head fixed_sum") is True
