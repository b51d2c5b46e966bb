"""Weights cache: files are safetensors checked against the recipe asked for; nothing is unpickled."""

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
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))


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
    assert '"kind": "fusion"' in recipe and '"torch"' in recipe


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
