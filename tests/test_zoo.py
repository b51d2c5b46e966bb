"""The model zoo: weights stored at float16 precision, shipped copies used only under their own key."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mafs_bench.models import cache

CFG = {"net": "tiny", "steps": 3}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))
    zoo = tmp_path / "zoo"
    monkeypatch.setattr(cache, "SHIPPED_ROOT", zoo)
    monkeypatch.setattr(cache, "_used", {})
    cache.code_version.cache_clear()
    yield zoo
    cache.code_version.cache_clear()


def _state() -> dict[str, torch.Tensor]:
    return {"w": torch.tensor([0.1, -1.0 / 3.0, 12345.678]), "low": torch.tensor([0.1], dtype=torch.bfloat16),
            "step": torch.tensor([7])}


def test_saving_rounds_float32_to_float16_in_place() -> None:
    state = _state()
    cache.save_weights("fusion", CFG, state, {})
    assert state["w"].dtype == torch.float32
    assert state["w"].tolist() == torch.tensor([0.1, -1.0 / 3.0, 12345.678]).half().float().tolist()
    assert state["w"][0].item() == 0.0999755859375  # the float16 nearest to 0.1
    assert state["low"].item() == torch.tensor(0.1, dtype=torch.bfloat16).item()  # bfloat16 left alone
    got = cache.load_weights("fusion", CFG)
    assert got is not None and torch.equal(got["state_dict"]["w"], state["w"])


def test_a_weight_beyond_float16_range_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"state_dict\['big'\].*float16"):
        cache.save_weights("fusion", CFG, {"big": torch.tensor([1e6])}, {})


def test_shipped_weights_are_used_on_a_cache_miss(tmp_path: Path, _isolated: Path) -> None:
    state = _state()
    cache.save_weights("fusion", CFG, state, {"final_loss": 0.5})
    written = cache.ship_used()
    assert written == [cache.shipped_path("fusion", CFG)] and written[0].is_relative_to(_isolated)
    with safe_open(written[0], framework="pt") as f:
        assert f.get_tensor("w").dtype == torch.float16 and f.get_tensor("step").dtype == torch.int64
    cache.weights_path("fusion", CFG).unlink()  # a fresh machine: empty cache
    got = cache.load_weights("fusion", CFG)
    assert got is not None and got["meta"]["shipped"] == written[0].name
    assert got["state_dict"]["w"].dtype == torch.float32 and torch.equal(got["state_dict"]["w"], state["w"])
    assert cache.weights_path("fusion", CFG).is_file()  # copied into the cache


def test_shipped_weights_from_other_code_are_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    cache.save_weights("fusion", CFG, _state(), {})
    cache.ship_used()
    cache.weights_path("fusion", CFG).unlink()
    cache.code_version.cache_clear()
    monkeypatch.setattr(cache, "hash_sources", lambda patterns=(): "0123456789abcdef")  # the code changed
    with pytest.warns(cache.StaleShippedWeights, match="same config by other code"):
        assert cache.load_weights("fusion", CFG) is None


def test_an_unrelated_config_misses_silently() -> None:
    cache.save_weights("fusion", CFG, _state(), {})
    cache.ship_used()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load_weights("fusion", {"net": "other"}) is None


def test_shipping_prunes_entries_the_suite_no_longer_uses(_isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.save_weights("fusion", CFG, _state(), {})
    old = cache.ship_used()[0]
    monkeypatch.setattr(cache, "_used", {})
    cache.save_weights("fusion", {"net": "new"}, _state(), {})
    new = cache.ship_used()
    assert not old.exists() and not old.with_suffix(".json").exists() and new[0].is_file()


def test_shipping_leaves_plugin_weights_out(_isolated: Path) -> None:
    cache.save_weights("fusion", CFG, _state(), {})
    cache.save_weights("fusion", {**CFG, "plugin": {"class": "my_fusion:MyFusion", "sources": {"my_fusion.py": "ab"}}},
                       _state(), {})
    shipped = cache.ship_used()
    assert [p.stem for p in shipped] == [cache.config_key(CFG, "fusion")]
    assert sorted(p.name for p in (_isolated / "fusion").iterdir()) == sorted([shipped[0].name, shipped[0].with_suffix(".json").name])
