"""Real-data backends through exactly the code path real weights take, on tiny random models in
the formats real weights come in (see :mod:`realdata`): our open_clip and transformers wrappers
against the libraries called directly, where weights are looked for and what a missing piece
says, the Karpathy training split, and fusion heads trained on a frozen pretrained encoder, with
a training that resumes after an interruption."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import realdata
from mafs_bench.data import create_dataset
from mafs_bench.models import cache
from mafs_bench.models.backends import WeightsMissingError, create_backend
from mafs_bench.models.fusion import PairSignals, gather

CPU = torch.device("cpu")


def _quiet(description: str, total: int):
    return lambda done, total_, loss: None


def _images_and_captions(coco: Path, n: int = 4) -> tuple[list[np.ndarray], list[str]]:
    data = create_dataset("coco_karpathy", root=str(coco)).load("coco")
    return [data.images[i] for i in range(n)], data.captions[: n + 2] + ["", "zebra!"]  # an empty and an unknown word


# --- the wrappers give what the libraries give ------------------------------------------------

def test_open_clip_local_dir_equals_open_clip(real_models: dict[str, Path], coco_folder: Path) -> None:
    import open_clip

    images, captions = _images_and_captions(coco_folder)
    name = f"local-dir:{real_models['open_clip']}"
    bundle = create_backend("open_clip", model=name).build(None, ["clip"], CPU, _quiet, [0])
    f, t = bundle.encoder.encode_images(images), bundle.encoder.encode_texts(captions)
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(x)) for x in images])
        ids = tokenizer(captions)
        assert torch.equal(f.emb, F.normalize(model.encode_image(pixels), dim=-1))
        assert torch.equal(t.emb, F.normalize(model.encode_text(ids), dim=-1))
        model.visual.output_tokens = True  # open_clip's own token output
        _, patch_tokens = model.visual(pixels)
    assert torch.equal(f.tokens, patch_tokens) and f.tokens.shape == (4, 16, 48)
    eot = ids.argmax(-1)  # where the text tower pools
    assert torch.equal(t.mask.sum(1), eot + 1)  # start .. end-of-text
    assert t.tokens.shape == (len(captions), int(eot.max()) + 1, 32) and torch.equal(t.ids, ids[:, : t.tokens.shape[1]])
    assert float(bundle.encoder.logit_scale) == pytest.approx(float(model.logit_scale.detach().exp()))


def test_hf_clip_equals_transformers(real_models: dict[str, Path], coco_folder: Path) -> None:
    from transformers import AutoProcessor, CLIPModel

    images, captions = _images_and_captions(coco_folder)
    encoder = create_backend("hf", model=str(real_models["hf_clip"])).build(None, ["clip"], CPU, _quiet, [0]).encoder
    f, t = encoder.encode_images(images), encoder.encode_texts(captions)
    model = CLIPModel.from_pretrained(str(real_models["hf_clip"])).eval()
    processor = AutoProcessor.from_pretrained(str(real_models["hf_clip"]))
    with torch.no_grad():
        inputs = processor(images=[Image.fromarray(x) for x in images], text=captions, padding="longest",
                           truncation=True, max_length=24, return_tensors="pt")
        img = model.get_image_features(pixel_values=inputs["pixel_values"])
        txt = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    img, txt = getattr(img, "pooler_output", img), getattr(txt, "pooler_output", txt)  # transformers 5 / 4
    assert torch.equal(f.emb, F.normalize(img, dim=-1)) and torch.equal(t.emb, F.normalize(txt, dim=-1))
    assert f.tokens.shape == (4, 16, 48) and torch.equal(t.mask, inputs["attention_mask"].bool())


def test_hf_blip_itc_and_itm_equal_transformers(real_models: dict[str, Path], coco_folder: Path) -> None:
    from transformers import AutoProcessor, BlipForImageTextRetrieval

    images, captions = _images_and_captions(coco_folder)
    captions = captions[:4]
    bundle = create_backend("hf", model=str(real_models["blip_itm"])).build(None, ["clip", "itm_head"], CPU, _quiet, [0])
    f, t = bundle.encoder.encode_images(images), bundle.encoder.encode_texts(captions)
    model = BlipForImageTextRetrieval.from_pretrained(str(real_models["blip_itm"])).eval()
    processor = AutoProcessor.from_pretrained(str(real_models["blip_itm"]))
    inputs = processor(images=[Image.fromarray(x) for x in images], text=captions, padding="longest", truncation=True,
                       max_length=35, return_tensors="pt")
    with torch.no_grad():
        itc = model(**inputs, use_itm_head=False).itm_score  # (images, captions) cosine similarities
        itm = model(**inputs, use_itm_head=True).itm_score  # (pairs i, i) logits
    assert torch.equal(f.emb @ t.emb.T, itc)
    method = bundle.methods[0]["itm_head"]
    out = method.pair_forward(gather(method.prepare_images(f), torch.arange(4)),
                              gather(method.prepare_texts(t), torch.arange(4)[:, None]), PairSignals(itc.diag()[:, None]))
    assert torch.equal(out.itm_logits[:, 0], itm)
    # BLIP's ranking score: the ITM match logit plus the ITC similarity
    assert torch.equal(method.score(out, itc.diag()[:, None]), itm[:, 1:] + itc.diag()[:, None])
    # grouped pairs (two captions per image) give the same logits as one pair at a time
    grouped = method.pair_forward(gather(method.prepare_images(f), torch.tensor([1, 3])),
                                  gather(method.prepare_texts(t), torch.tensor([[1, 0], [3, 2]])), PairSignals(torch.zeros(2, 2)))
    assert torch.allclose(grouped.itm_logits[:, 0], itm[[1, 3]], atol=1e-6)


# --- where weights come from, and what a missing piece says -------------------------------------

def test_open_clip_sources_hf_hub_and_checkpoint_equal_local_dir(real_models: dict[str, Path], coco_folder: Path,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip

    images, captions = _images_and_captions(coco_folder, 2)
    local = create_backend("open_clip", model=f"local-dir:{real_models['open_clip']}").build(None, ["clip"], CPU, _quiet, [0])
    realdata.fake_hub_cache(tmp_path / "hub", "tiny-org/tiny-clip", real_models["open_clip"])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    hub = create_backend("open_clip", model="hf-hub:tiny-org/tiny-clip")
    assert hub.preflight(["clip"]) == []
    via_hub = hub.build(None, ["clip"], CPU, _quiet, [0])
    (tmp_path / "mafs-test-tiny-vit.json").write_text(json.dumps(realdata.TINY_OPEN_CLIP))
    open_clip.add_model_config(tmp_path / "mafs-test-tiny-vit.json")  # an architecture by name, as ViT-B-32 is
    arch = create_backend("open_clip", model="mafs-test-tiny-vit", pretrained=None,
                          checkpoint=str(real_models["open_clip"] / "open_clip_model.safetensors"))
    via_checkpoint = arch.build(None, ["clip"], CPU, _quiet, [0])
    for other in (via_hub, via_checkpoint):
        assert torch.equal(other.encoder.encode_images(images).emb, local.encoder.encode_images(images).emb)
        assert torch.equal(other.encoder.encode_texts(captions).tokens, local.encoder.encode_texts(captions).tokens)
    # the same weights file: the same identity in head cache keys
    assert via_hub.info["encoder_key"] == local.info["encoder_key"]


def test_open_clip_tag_is_resolved_from_the_local_cache_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mafs_bench.models.backends.open_clip_hub import resolve_source

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsMissingError) as err:
        resolve_source("ViT-B-32", "openai", None)
    assert "ViT-B-32/openai are not on this machine" in str(err.value) and str(tmp_path / "hub") in str(err.value)
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "open_clip_model.safetensors").write_bytes(b"not read here")
    realdata.fake_hub_cache(tmp_path / "hub", "timm/vit_base_patch32_clip_224.openai", weights)
    source = resolve_source("ViT-B-32", "openai", None)
    assert source.weights.endswith("open_clip_model.safetensors") and str(tmp_path / "hub") in source.weights
    assert source.create_kwargs["force_quick_gelu"] is True  # the tag's QuickGELU, as open_clip sets it
    assert source.create_kwargs["image_interpolation"] == "bicubic"


def test_open_clip_local_dir_missing_pieces(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    problems = create_backend("open_clip", model=f"local-dir:{folder}").preflight(["clip"])
    assert len(problems) == 1 and "open_clip_config.json not found" in problems[0] and str(folder) in problems[0]
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": realdata.TINY_OPEN_CLIP}))
    problems = create_backend("open_clip", model=f"local-dir:{folder}").preflight(["clip"])
    assert len(problems) == 1 and f"no weights file in {folder}" in problems[0]
    (folder / "open_clip_config.json").write_text("{}")
    problems = create_backend("open_clip", model=f"local-dir:{folder}").preflight(["clip"])
    assert "is not an open_clip config" in problems[0]


def test_hf_missing_pieces_and_unsupported_models(real_models: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    problems = create_backend("hf", model="Salesforce/blip-itm-base-coco").preflight(["itm_head"])
    assert len(problems) == 1 and "'Salesforce/blip-itm-base-coco' is not in the local Hugging Face cache" in problems[0]
    assert str(tmp_path / "hub") in problems[0] and "huggingface-cli download" in problems[0]
    problems = create_backend("hf", model=str(tmp_path / "nope")).preflight(["clip"])
    assert len(problems) == 1 and "folder not found" in problems[0]
    problems = create_backend("hf", model=str(real_models["hf_clip"])).preflight(["clip", "mafs", "itm_head"])
    assert len(problems) == 1 and "'itm_head'" in problems[0] and "has none" in problems[0]
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    (other / "model.safetensors").write_bytes(b"")
    problems = create_backend("hf", model=str(other)).preflight(["clip"])
    assert len(problems) == 1 and "is a BertModel" in problems[0] and "BlipForImageTextRetrieval" in problems[0]
    with pytest.raises(ValueError, match="needs option model"):
        create_backend("hf")
    for method in ("embedded", "open_clip"):  # only a model with its own ITM head runs itm_head
        assert any("'itm_head'" in p for p in create_backend(method).preflight(["itm_head"]))


def test_hf_hub_id_resolves_from_the_local_cache(real_models: dict[str, Path], coco_folder: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    realdata.fake_hub_cache(tmp_path / "hub", "tiny-org/blip-itm", real_models["blip_itm"])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    backend = create_backend("hf", model="tiny-org/blip-itm")
    assert backend.preflight(["clip", "itm_head"]) == []
    images, captions = _images_and_captions(coco_folder, 2)
    via_hub = backend.build(None, ["clip"], CPU, _quiet, [0]).encoder
    local = create_backend("hf", model=str(real_models["blip_itm"])).build(None, ["clip"], CPU, _quiet, [0]).encoder
    assert torch.equal(via_hub.encode_images(images).emb, local.encode_images(images).emb)


# --- the Karpathy training split -----------------------------------------------------------------

def test_karpathy_training_split_is_train_plus_restval_in_a_fixed_shuffled_order(coco_folder: Path) -> None:
    dataset = create_dataset("coco_karpathy", root=str(coco_folder), split="test")
    images, captions, vocab = dataset.training_data()
    assert vocab is None and len(images) == 48 + 16 and all(len(c) == 5 for c in captions)
    folders = {p.parent.name for p in images.paths}
    assert folders == {"train2014", "val2014"}  # train and restval (restval images live in val2014/)
    again = create_dataset("coco_karpathy", root=str(coco_folder), split="test").training_data()
    assert again[0].paths == images.paths and again[1] == captions
    other = create_dataset("coco_karpathy", root=str(coco_folder), split="test", train_order_seed=1).training_data()
    assert other[0].paths != images.paths and sorted(other[0].paths) == sorted(images.paths)
    # a caption list stays with its image through the shuffle
    records = {r["filename"]: [s["raw"] for s in r["sentences"]]
               for r in json.loads((coco_folder / "dataset_coco.json").read_text())["images"]}
    assert all(records[p.name] == c for p, c in zip(images.paths, captions))
    assert dataset.recipe()["split_file"] == cache.file_digest(coco_folder / "dataset_coco.json")
    with pytest.raises(ValueError, match="would train on what is evaluated"):
        create_dataset("coco_karpathy", root=str(coco_folder), split="restval").training_data()


def test_karpathy_image_size_gives_one_array_of_centre_crops(coco_folder: Path) -> None:
    data = create_dataset("coco_karpathy", root=str(coco_folder), image_size=24).load("coco")
    assert isinstance(data.images, np.ndarray) and data.images.shape == (12, 24, 24, 3) and data.images.dtype == np.uint8
    lazy = create_dataset("coco_karpathy", root=str(coco_folder)).load("coco")
    assert lazy.images[0].shape == (48, 56, 3)  # the files' own size without image_size
    with pytest.raises(ValueError, match="image_size"):
        create_dataset("coco_karpathy", root=str(coco_folder), image_size=0)


# --- fusion heads on a frozen pretrained encoder, resumable ------------------------------------

HEADS = {"fusion_train": {"steps": 12, "batch_size": 8, "warmup": 2}, "fusion_pool": 40, "reference_size": 8,
         "checkpoint_every": 5, "methods": {"mafs": {"width": 16, "heads": 2}}}


class Interrupt(Exception):
    """Stands for Ctrl-C / a lost machine part way through a training."""


def test_heads_train_on_open_clip_features_cache_and_resume(real_models: dict[str, Path], coco_folder: Path,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = create_dataset("coco_karpathy", root=str(coco_folder))
    options = {"model": f"local-dir:{real_models['open_clip']}", **HEADS}

    def interrupting(description: str, total: int):
        def update(done: int, total_: int, loss: float) -> None:
            if description.startswith("train") and done == 7:
                raise Interrupt
        return update

    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "interrupted"))
    with pytest.raises(Interrupt):
        create_backend("open_clip", **options).build(dataset, ["mafs"], CPU, interrupting, [0])
    assert len(list((tmp_path / "interrupted" / "checkpoints" / "head").glob("*.safetensors"))) == 1
    labels: list[str] = []
    resumed = create_backend("open_clip", **options).build(dataset, ["clip", "mafs"], CPU,
                                                         lambda d, t: labels.append(d) or _quiet(d, t), [0])
    assert resumed.info["resumed"] == {"mafs@0": 5} and any("resumed at step 5" in label for label in labels)
    assert not list((tmp_path / "interrupted" / "checkpoints" / "head").glob("*.safetensors"))  # dropped when done
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "straight"))
    straight = create_backend("open_clip", **options).build(dataset, ["clip", "mafs"], CPU, _quiet, [0])
    assert "resumed" not in straight.info
    a, b = resumed.methods[0]["mafs"].state_dict(), straight.methods[0]["mafs"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed training ends where an uninterrupted one does
    assert resumed.training["fusion"]["steps"] == 12 and resumed.training["encoder"] == "pretrained, frozen"
    # cached: a second build trains nothing
    labels.clear()
    create_backend("open_clip", **options).build(dataset, ["mafs"], CPU, lambda d, t: labels.append(d) or _quiet(d, t), [0])
    assert not any(label.startswith("train") for label in labels)


def test_head_cache_key_covers_encoder_data_and_recipe(real_models: dict[str, Path], coco_folder: Path,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path))
    dataset = create_dataset("coco_karpathy", root=str(coco_folder))
    base = {"model": f"local-dir:{real_models['open_clip']}", **HEADS,
            "fusion_train": {"steps": 1, "batch_size": 4, "warmup": 1}}

    def key(options: dict, data=dataset) -> str:
        bundle = create_backend("open_clip", **options).build(data, ["mafs"], CPU, _quiet, [0])
        return bundle.info["fusion_keys"]["mafs"]["0"]

    first = key(base)
    assert key(base) == first
    assert key({**base, "fusion_train": {**base["fusion_train"], "steps": 2}}) != first  # recipe
    assert key(base, create_dataset("coco_karpathy", root=str(coco_folder), train_order_seed=3)) != first  # data
    assert key({**base, "precision": "bf16"}) != first  # the features the heads train on
    other = tmp_path / "other_weights"
    realdata.open_clip_local_dir(other, seed=1)
    assert key({**base, "model": f"local-dir:{other}"}) != first  # the encoder's weights


def test_checkpoint_that_does_not_fit_is_ignored_with_a_warning(real_models: dict[str, Path], coco_folder: Path,
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mafs_bench.models.heads import HeadTrainer

    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path))
    dataset = create_dataset("coco_karpathy", root=str(coco_folder))
    options = {"model": f"local-dir:{real_models['open_clip']}", **HEADS,
               "fusion_train": {"steps": 1, "batch_size": 4, "warmup": 1}}
    bundle = create_backend("open_clip", **options).build(dataset, ["mafs"], CPU, _quiet, [0])
    weights = next((tmp_path / "weights" / "head").glob("*.json"))
    key = json.loads(weights.read_text())["config"]
    cache.save_checkpoint("head", key, {"method.nope": torch.zeros(2), "generator": torch.zeros(2, dtype=torch.uint8)},
                          {"step": 3, "losses": [1.0, 1.0, 1.0], "optimizer": {"param_groups": [], "scalars": {}}})
    trainer = HeadTrainer.__new__(HeadTrainer)
    trainer.kind = "head"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert trainer._resume_state(key, bundle.methods[0]["mafs"]) is None
    assert any("ignoring checkpoint" in str(w.message) for w in caught)


def test_head_cache_sources_cover_the_feature_and_training_code() -> None:
    import mafs_bench.data.coco as coco
    import mafs_bench.models.backends.hf as hf
    import mafs_bench.models.backends.open_clip_hub as open_clip_hub
    import mafs_bench.models.backends.pretrained as pretrained
    import mafs_bench.models.fusion_training as fusion_training
    import mafs_bench.models.heads as heads

    for pattern in cache.HEAD_SOURCES:
        assert cache.source_files([pattern]), f"HEAD_SOURCES entry {pattern!r} matches nothing: renamed?"
    covered = {path.resolve() for _, path in cache.source_files(cache.HEAD_SOURCES)}
    for module in (coco, hf, open_clip_hub, pretrained, fusion_training, heads):
        assert Path(module.__file__).resolve() in covered, module.__name__
    # the embedded world does not key heads on pretrained encoders (its edits do not retrain them)
    assert not any(rel.endswith("data/world.py") for rel, _ in cache.source_files(cache.HEAD_SOURCES))
