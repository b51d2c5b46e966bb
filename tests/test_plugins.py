"""Fusion methods from outside mafs-bench, suite ``models:`` entries and per-model backends."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import mafs_bench
from mafs_bench.models.backends import create_backend
from mafs_bench.models.fusion import FUSIONS, FusionMethod
from mafs_bench.models.fusion.mafs import MAAFS
from mafs_bench.models.methods import (
    ENTRY_POINT_GROUP,
    MethodReferenceError,
    ModelSpec,
    UnknownNameError,
    plugin_sources,
)
from mafs_bench.runner import PreflightError, SuiteError, load_suite, suite_from_dict
from mafs_bench.runner.run import preflight, run_suite

PLUGINS = Path(__file__).resolve().parent / "plugins"

BASE: dict[str, Any] = {
    "name": "t",
    "dataset": {"name": "embedded_world"},
    "models": ["clip"],
    "tasks": [{"name": "retrieval", "k": 4, "ks": [1, 3]}],
    "corruptions": ["gaussian_noise"],
    "severities": [1],
}

#: small and fast: the micro encoder on 32 px images, a few training steps
FAST_BACKEND: dict[str, Any] = {"name": "embedded", "options": {
    "encoder": "mafs-micro-vit",
    "encoder_train": {"steps": 3, "batch_size": 16, "precision": "fp32", "warmup": 1},
    "fusion_train": {"steps": 3, "batch_size": 8, "warmup": 1},
    "fusion_pool": 60,
    "reference_size": 20,
}}
FAST_DATASET: dict[str, Any] = {"name": "embedded_world", "options": {"size": 12, "train_size": 100, "world": {"image_size": 32}}}
SMALL_HEAD = {"width": 16, "heads": 2, "layers": 1}


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def plugin_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(PLUGINS))
    return PLUGINS


# --- the public API -------------------------------------------------------------------------


def test_public_api_at_the_top_level() -> None:
    assert mafs_bench.FusionMethod is FusionMethod
    assert mafs_bench.get_fusion_method("mafs") is MAAFS
    assert {"FusionMethod", "get_fusion_method", "PairOutput"} <= set(dir(mafs_bench))
    with pytest.raises(UnknownNameError, match=r"Unknown fusion method 'mafz'\. Did you mean 'mafs'\? Known: .*clip"):
        mafs_bench.get_fusion_method("mafz")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        mafs_bench.nothing  # noqa: B018


def test_import_mafs_bench_stays_light() -> None:
    """The plugin API is loaded on first use: ``import mafs_bench`` imports no torch."""
    code = "import sys, mafs_bench; print(sorted(m for m in ('torch', 'corruptions', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- suite models: entries ------------------------------------------------------------------


def test_model_entries_are_names_or_mappings_grouped_by_backend() -> None:
    suite = suite_from_dict({**BASE, "models": [
        "clip",
        {"name": "small_mafs", "method": "mafs", "options": {"width": 32}},
        {"name": "mafs", "backend": "embedded"},  # the default backend, spelled out: same group
        {"name": "clip_b", "method": "clip", "backend": {"name": "embedded", "options": {"fusion_pool": 50}}},
    ]}, "s.yaml")
    assert suite.model_names == ["clip", "small_mafs", "mafs", "clip_b"]
    specs = suite.model_specs()
    assert specs[1] == ModelSpec("small_mafs", "mafs", {"width": 32}) and specs[2].method == "mafs"
    groups = suite.backend_groups()
    assert [[m.name for m in models] for _, models in groups] == [["clip", "small_mafs", "mafs"], ["clip_b"]]
    assert groups[1][0].options == {"fusion_pool": 50}


def test_a_plugin_class_is_imported_at_validation(plugin_path: Path) -> None:
    suite = suite_from_dict({**BASE, "models": ["clip", {"name": "mafs", "method": "scrambled_mafs:ScrambledMAFS"}]})
    spec = suite.model_specs()[1]
    assert spec.cls.__name__ == "ScrambledMAFS" and issubclass(spec.cls, MAAFS)
    identity = spec.plugin_identity()
    digest = hashlib.sha256((plugin_path / "scrambled_mafs.py").read_bytes().replace(b"\r\n", b"\n")).hexdigest()[:16]
    assert identity == {"class": "scrambled_mafs:ScrambledMAFS", "sources": {"scrambled_mafs": digest}}
    assert ModelSpec("mafs").plugin_identity() is None  # built-ins are keyed as before


def test_plugin_keys_cover_every_plugin_class_it_inherits_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key_base.py").write_text("import mafs_bench\n\nclass Base(mafs_bench.get_fusion_method('blip')):\n    pass\n")
    (tmp_path / "key_child.py").write_text("from key_base import Base\n\nclass Child(Base):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sources = ModelSpec("c", "key_child:Child").plugin_identity()["sources"]
    assert set(sources) == {"key_base", "key_child"}  # the built-in blip/albef sources are in every key already


@pytest.mark.parametrize(("method", "message"), [
    ("no_such_pkg.fusion:Mine", "cannot import module 'no_such_pkg.fusion'"),
    ("scrambled_mafs:Nope", "has no attribute 'Nope'"),
    ("os.path:join", "not a subclass of mafs_bench.FusionMethod"),
    ("collections:OrderedDict", "class collections.OrderedDict, not a subclass"),
    ("mafs_bench.models.fusion.base:FusionMethod", "abstract base class"),
    ("a:b:c", "not of the form 'package.module:Class'"),
    ("mafz", "Did you mean 'mafs'"),
])
def test_bad_methods_name_file_field_and_value(tmp_path: Path, plugin_path: Path, method: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**BASE, "models": ["clip", {"name": "mine", "method": method}]}))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    msg = str(err.value)
    assert str(path) in msg and "field models.1.method" in msg and repr(method) in msg and message in msg


def test_a_plugin_module_that_fails_to_import_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_fusion.py").write_text("import mafs_bench\nraise RuntimeError('plugin bug on line 2')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SuiteError, match=r"field models\.0\.method: cannot import module 'broken_fusion'.*"
                                         r"RuntimeError: plugin bug on line 2"):
        suite_from_dict({**BASE, "models": [{"name": "b", "method": "broken_fusion:X"}]}, "s.yaml")


def test_a_module_in_the_working_directory_gets_a_hint_that_works(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The mafs-bench command does not put the working directory on sys.path (python -m does):
    the error says so and gives the file reference that loads the same class."""
    (tmp_path / "cwd_fusion.py").write_text("import mafs_bench\n\nclass Mine(mafs_bench.get_fusion_method('blip')):\n"
                                            "    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    with pytest.raises(SuiteError) as err:
        suite_from_dict({**BASE, "models": [{"name": "m", "method": "cwd_fusion:Mine"}]}, "s.yaml")
    assert "working directory, which is not on sys.path: write 'cwd_fusion.py:Mine' instead, or run with " \
           "PYTHONPATH=." in str(err.value)
    suite = suite_from_dict({**BASE, "models": [{"name": "m", "method": "cwd_fusion.py:Mine"}]}, "s.yaml")
    assert suite.model_specs()[0].cls.__name__ == "Mine"


def test_a_missing_module_elsewhere_asks_whether_it_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SuiteError, match=r"cannot import module 'nowhere_fusion'.*is it installed, or on sys\.path\?"):
        suite_from_dict({**BASE, "models": [{"name": "m", "method": "nowhere_fusion:Mine"}]}, "s.yaml")


def test_a_model_entry_in_a_task_list_says_where_it_belongs() -> None:
    data = {**BASE, "models": ["clip"], "tasks": [{"name": "retrieval", "k": 4, "ks": [1, 3],
                                                  "models": ["clip", {"name": "mine", "method": "fixed_sum"}]}]}
    with pytest.raises(SuiteError) as err:
        suite_from_dict(data, "s.yaml")
    msg = str(err.value)
    assert "field tasks.0.models" in msg and "takes names of the suite's models" in msg
    assert "{'name': 'mine', 'method': 'fixed_sum'}" in msg and "top-level `models:` and write 'mine' here" in msg


@pytest.mark.parametrize(("models", "field", "message"), [
    (["clip", {"name": "clip", "method": "mafs"}], "models", "listed twice: ['clip']"),
    ([{"name": "", "method": "clip"}], "models.0.name", "at least 1 character"),
    ([{"name": "x", "method": "clip", "backend": "nope"}], "models.0.backend.name", "Unknown model backend 'nope'"),
    ([{"name": "x", "method": "clip", "weights": 1}], "models.0.weights",
     "unknown field 'weights'; known fields: name, method, options, backend"),
    ([{"name": "x", "methd": "clip"}], "models.0.methd",
     "unknown field 'methd' (did you mean 'method'?); known fields: name, method, options, backend"),
])
def test_bad_model_entries(models: list, field: str, message: str) -> None:
    with pytest.raises(SuiteError) as err:
        suite_from_dict({**BASE, "models": models}, "s.yaml")
    assert f"s.yaml: field {field}: " in str(err.value) and message in str(err.value)


def test_model_and_backend_options_are_checked_in_preflight() -> None:
    models = ["clip", {"name": "m", "method": "mafs", "options": {"cues": ["foo"]}},
              {"name": "c", "method": "clip", "backend": {"name": "embedded", "options": {"fusion_train": {"steps": 0}}}}]
    with pytest.raises(PreflightError) as err:
        preflight(suite_from_dict({**BASE, "models": models}, "s.yaml"))
    msg = str(err.value)
    assert "models.m.options: fusion option cues" in msg
    assert "suite field models[2].backend.options: fusion_train.steps must be an integer >= 1, got 0" in msg


def test_plugin_files_are_relative_to_the_suite_file_that_names_them(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "file_fusion.py").write_text(
        "import mafs_bench\n\nclass FileFusion(mafs_bench.get_fusion_method('blip')):\n    pass\n")
    (tmp_path / "shared" / "base.yaml").write_text(yaml.safe_dump(
        {**BASE, "models": ["clip", {"name": "mine", "method": "file_fusion.py:FileFusion"}]}))
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "suite.yaml").write_text(yaml.safe_dump({"include": "../shared/base.yaml", "name": "child"}))
    spec = load_suite(tmp_path / "child" / "suite.yaml").model_specs()[1]
    assert spec.method == f"{(tmp_path / 'shared' / 'file_fusion.py').resolve()}:FileFusion"
    assert spec.cls.__name__ == "FileFusion" and spec.cls.__module__ == "mafs_bench_plugin_file_fusion"
    assert spec.plugin_identity()["class"] == "mafs_bench_plugin_file_fusion:FileFusion"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file_fusion.py").write_text((tmp_path / "shared" / "file_fusion.py").read_text())
    with pytest.raises(MethodReferenceError, match="another plugin file with the stem 'file_fusion'"):
        ModelSpec("x", f"{tmp_path / 'other' / 'file_fusion.py'}:FileFusion").cls
    with pytest.raises(SuiteError, match=r"field models\.0\.method: plugin file of '.*missing\.py:X' not found"):
        suite_from_dict({**BASE, "models": [{"name": "m", "method": str(tmp_path / "missing.py") + ":X"}]}, "s.yaml")


def test_the_readme_example_plugin() -> None:
    """examples/my_fusion.yaml validates and its LateFusion scores grouped pairs."""
    from mafs_bench.models.encoder import ImageFeatures, TextFeatures

    suite = load_suite(Path(__file__).parents[1] / "examples" / "my_fusion.yaml")
    spec = {m.name: m for m in suite.model_specs()}["late_fusion"]
    method = spec.create(64, 64).eval()
    assert method.has_fusion and method.network == "late_fusion_mlp" and spec.plugin_identity() is not None
    g = torch.Generator().manual_seed(0)
    emb_i = torch.nn.functional.normalize(torch.randn(3, 64, generator=g), dim=-1)
    emb_t = torch.nn.functional.normalize(torch.randn(5, 64, generator=g), dim=-1)
    img = method.prepare_images(ImageFeatures(emb_i, torch.zeros(3, 4, 64)))
    txt = method.prepare_texts(TextFeatures(emb_t, torch.zeros(5, 6, 64), torch.ones(5, 6, dtype=torch.bool)))
    from mafs_bench.models.fusion import PairSignals, gather

    index = torch.tensor([[0, 1], [2, 3], [4, 0]])  # G = 3 images, C = 2 captions each
    itc = (emb_i[:, None] * emb_t[index]).sum(-1)
    out = method.pair_forward(gather(img, torch.arange(3)), gather(txt, index), PairSignals(itc))
    assert out.itm_logits.shape == (3, 2, 2) and out.alpha is None
    assert torch.allclose(method.score(out, itc), out.match_logit + itc)


# --- entry points ---------------------------------------------------------------------------


def _install_fake_distribution(root: Path) -> None:
    """A distribution on sys.path that declares two entry points of the group."""
    (root / "ep_fusion_plugin.py").write_text(
        "import mafs_bench\n\n"
        "class EpFusion(mafs_bench.get_fusion_method('clip')):\n    pass\n\n"
        "not_a_class = 3\n")
    info = root / "ep_fusion_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-fusion-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nep_fusion = ep_fusion_plugin:EpFusion\nep_broken = ep_fusion_plugin:not_a_class\n")


def test_entry_point_methods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = mafs_bench.get_fusion_method("ep_fusion")
    assert cls.__name__ == "EpFusion" and not cls.__module__.startswith("mafs_bench")
    assert "ep_fusion" not in FUSIONS  # an entry point is not registered into the built-ins
    suite = suite_from_dict({**BASE, "models": ["clip", {"name": "mine", "method": "ep_fusion"}]})
    assert suite.model_specs()[1].plugin_identity()["class"] == "ep_fusion_plugin:EpFusion"
    with pytest.raises(UnknownNameError, match=r"entry points \(mafs_bench.fusion_methods\): ep_broken, ep_fusion"):
        mafs_bench.get_fusion_method("ep_fusoin")
    with pytest.raises(MethodReferenceError, match=r"'ep_broken = ep_fusion_plugin:not_a_class' is a int, not a subclass"):
        mafs_bench.get_fusion_method("ep_broken")
    with pytest.raises(SuiteError, match=r"field models\.0\.method: 'ep_broken = ep_fusion_plugin:not_a_class'"):
        suite_from_dict({**BASE, "models": ["ep_broken"]}, "s.yaml")


# --- training and caching of plugins --------------------------------------------------------


def _no_progress(desc: str, total: int):  # noqa: ANN202
    return lambda *a: None


def test_plugins_train_under_the_builtins_recipe_and_cache_apart(tmp_path: Path, cache_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A do-nothing subclass of mafs trains to exactly mafs's weights (same data, steps, seed,
    degradations) but is cached under its own key, which covers its source file."""
    plugin = tmp_path / "plain_mafs.py"
    plugin.write_text("import mafs_bench\n\nclass PlainMAFS(mafs_bench.get_fusion_method('mafs')):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from mafs_bench.data import create_dataset

    dataset = create_dataset(FAST_DATASET["name"], **FAST_DATASET["options"])
    backend = create_backend("embedded", **FAST_BACKEND["options"], methods={"mafs": SMALL_HEAD, "plain": SMALL_HEAD})
    specs = [ModelSpec("mafs"), ModelSpec("plain", "plain_mafs:PlainMAFS")]
    assert backend.preflight(specs) == []
    bundle = backend.build(dataset, specs, torch.device("cpu"), _no_progress, [0])
    builtin, mine = bundle.methods[0]["mafs"], bundle.methods[0]["plain"]
    assert type(mine).__name__ == "PlainMAFS"
    a, b = builtin.state_dict(), mine.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same recipe, bit for bit
    assert builtin.weights_id != mine.weights_id  # never shares pair outputs with the built-in
    keys = bundle.info["fusion_keys"]
    assert keys["mafs"]["0"] != keys["plain"]["0"]
    recipe = json.loads((cache_dir / "weights" / "fusion" / f"{keys['plain']['0']}.json").read_text())
    assert recipe["config"]["plugin"]["class"] == "plain_mafs:PlainMAFS"
    assert recipe["config"]["plugin"]["options"] == SMALL_HEAD  # the options it was given, whatever it stores
    assert recipe["meta"]["class"] == "plain_mafs:PlainMAFS"
    before = plugin_sources(mine.__class__)
    plugin.write_text(plugin.read_text() + "# an edit\n")
    assert plugin_sources(mine.__class__) != before  # an edited plugin gets a new key: retrained


# --- per-model backends ---------------------------------------------------------------------


def test_backend_groups_share_the_corrupted_inputs(tmp_path: Path, cache_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Three backend specs: the default, the same encoder written differently (a second group
    that loads the same weights), and a different encoder. Every cell is corrupted once, each
    group encodes exactly the same images and captions, and every model gets its rows."""
    from mafs_bench.models.encoder import DualEncoder
    from mafs_bench.runner import run as run_module

    same = {**FAST_BACKEND, "options": {**FAST_BACKEND["options"], "context_length": 40}}  # 40 is the default
    other = {**FAST_BACKEND, "options": {**FAST_BACKEND["options"], "encoder_train": {
        **FAST_BACKEND["options"]["encoder_train"], "steps": 4}}}
    methods = {"methods": {"mafs": SMALL_HEAD}}
    suite = suite_from_dict({**BASE, "seeds": [0], "dataset": FAST_DATASET,
                             "backend": {**FAST_BACKEND, "options": {**FAST_BACKEND["options"], **methods}},
                             "corruptions": ["gaussian_noise", "keyboard"],
                             "models": ["clip", "mafs",
                                        {"name": "clip_same", "method": "clip", "backend": same},
                                        {"name": "mafs_same", "method": "mafs", "options": SMALL_HEAD, "backend": same},
                                        {"name": "clip_other", "method": "clip", "backend": other}]}, "s.yaml")
    seen: dict[str, list[tuple[int, str]]] = {"images": [], "texts": []}
    encode_images, encode_texts = DualEncoder.encode_images, DualEncoder.encode_texts

    def spy_images(self: DualEncoder, images: np.ndarray, **kwargs: Any) -> Any:
        seen["images"].append((id(self), hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()))
        return encode_images(self, images, **kwargs)

    def spy_texts(self: DualEncoder, texts: list[str], **kwargs: Any) -> Any:
        seen["texts"].append((id(self), hashlib.sha256("\n".join(texts).encode()).hexdigest()))
        return encode_texts(self, texts, **kwargs)

    build_groups = run_module.build_groups

    def build_then_spy(*args: Any, **kwargs: Any) -> Any:  # spy on evaluation only, not on training
        bundles = build_groups(*args, **kwargs)
        monkeypatch.setattr(DualEncoder, "encode_images", spy_images)
        monkeypatch.setattr(DualEncoder, "encode_texts", spy_texts)
        return bundles

    calls = {"images": 0, "captions": 0}
    corrupt_images, corrupt_captions = run_module.corrupt_images, run_module.corrupt_captions

    def count_images(*args: Any, **kwargs: Any) -> Any:
        calls["images"] += 1
        return corrupt_images(*args, **kwargs)

    def count_captions(*args: Any, **kwargs: Any) -> Any:
        calls["captions"] += 1
        return corrupt_captions(*args, **kwargs)

    monkeypatch.setattr(run_module, "build_groups", build_then_spy)
    monkeypatch.setattr(run_module, "corrupt_images", count_images)
    monkeypatch.setattr(run_module, "corrupt_captions", count_captions)
    result = run_suite(suite, tmp_path / "out", _no_progress, log=lambda line: None)

    assert calls == {"images": 1, "captions": 1}  # one image and one text cell, each corrupted once for all groups
    for side in ("images", "texts"):
        by_encoder: dict[int, list[str]] = {}
        for encoder, digest in seen[side]:
            by_encoder.setdefault(encoder, []).append(digest)
        assert len(by_encoder) == 3  # one encoder per group
        first, *rest = by_encoder.values()
        assert all(other_inputs == first for other_inputs in rest)  # the same inputs, in the same order
    metrics = result.metrics
    assert set(metrics.model) == {"clip", "mafs", "clip_same", "mafs_same", "clip_other"}
    per_model = metrics.groupby("model").size()
    assert per_model.nunique() == 1  # every model has every row
    value = metrics.set_index(["model", "corruption", "severity", "metric"]).value
    for a, b in (("clip", "clip_same"), ("mafs", "mafs_same")):  # same weights, same inputs: same numbers
        pd.testing.assert_series_equal(value[a], value[b], check_names=False)
    assert not value["clip"].equals(value["clip_other"])  # another encoder
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["models"]["mafs_same"]["backend"] == {"name": "embedded", "options": same["options"], "group": 1}
    assert run["models"]["clip_other"]["backend"]["group"] == 2 and run["models"]["mafs"]["backend"]["group"] == 0
    assert run["models"]["mafs"]["method"] == "mafs" and run["models"]["mafs"]["plugin"] is False
    assert [b["models"] for b in run["backends"]] == [["clip", "mafs"], ["clip_same", "mafs_same"], ["clip_other"]]
    assert run["backends"][0]["info"]["encoder_key"] == run["backends"][1]["info"]["encoder_key"]
    assert run["backends"][0]["info"]["encoder_key"] != run["backends"][2]["info"]["encoder_key"]
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert sorted(board.model) == sorted(suite.model_names)
    from mafs_bench.reporting.html import build_report  # the report's per-entry JSON names each row's backend

    build_report([tmp_path / "out"], tmp_path / "report", resamples=10)
    entry = json.loads((tmp_path / "report" / "entries" / "retrieval__mafs_same.json").read_text())
    config = entry["configuration"]
    assert config["backend"] == {"name": "embedded", "options": same["options"]}
    assert config["model_facts"]["method"] == "mafs" and config["model_facts"]["mafs_same_params"] > 0
    assert config["model_facts"]["weights_keys"] == run["backends"][1]["info"]["fusion_keys"]["mafs_same"]
    assert config["training"] == run["backends"][1]["training"]


def test_train_command_builds_every_backend_group(tmp_path: Path, cache_dir: Path) -> None:
    from typer.testing import CliRunner

    from mafs_bench.cli.main import app

    other = {**FAST_BACKEND, "options": {**FAST_BACKEND["options"], "fusion_pool": 50}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "dataset": FAST_DATASET, "backend": FAST_BACKEND,
                                    "models": ["clip", {"name": "clip_b", "method": "clip", "backend": other}]}))
    result = CliRunner().invoke(app, ["train", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "backend embedded (backend group 2):" in result.output
    assert result.output.count("encoder_key:") == 2 and "clip_b" in result.output
