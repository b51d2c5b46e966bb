"""The folder (imagefolder) and VQAv2 datasets on tiny fixtures the tests write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mafs_bench.data import DataMissingError, create_dataset
from mafs_bench.data.folder import FolderFormatError, default_question_type
from mafs_bench.models.encoder import image_array


def write_image(path: Path, size: tuple[int, int] = (10, 8), mode: str = "RGB", value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode in ("L", "P") else (value,) * len(mode)).save(path)


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def split_folders(root: Path) -> Path:
    """``train/`` and ``test/`` subfolders; images of several sizes and modes; two test domains."""
    write_image(root / "train" / "a.png", (10, 8))
    write_image(root / "train" / "b.png", (6, 6), "L", 40)
    write_image(root / "test" / "c.png", (12, 12), "RGBA")
    write_image(root / "test" / "d.png", (7, 9), "P", 3)
    write_rows(root / "train" / "metadata.jsonl", [
        {"file_name": "a.png", "captions": ["A red circle"], "qa": [{"question": "What colour is it?", "answers": "red"}]},
        {"file_name": "b.png", "qa": [{"question": "how many", "answers": ["2", "two", "2"], "type": "count"}]},
    ])
    write_rows(root / "test" / "metadata.jsonl", [
        {"file_name": "c.png", "captions": "a blue square", "domain": "photo"},
        {"file_name": "d.png", "qa": [{"question": "is it red", "answers": ["no"]}], "domain": "sketch"},
        {"file_name": "c.png", "qa": [{"question": "what colour", "answers": ["blue"]}], "domain": "photo"},
    ])
    return root


def test_folder_with_split_subfolders(tmp_path: Path) -> None:
    data = create_dataset("folder", root=str(split_folders(tmp_path / "mine")))
    assert data.domains == ("photo", "sketch")
    photo = data.load("photo")
    assert photo.name == "mine-test" and photo.captions == ["a blue square"] and photo.caption_image.tolist() == [0]
    assert photo.questions == ["what colour"] and photo.question_image.tolist() == [1] and photo.answers == [["blue"]]
    assert photo.question_types == ["what colour"]
    assert np.asarray(photo.images[0]).shape == (12, 12, 3)  # RGBA read as RGB
    sketch = data.load("sketch")
    assert np.asarray(sketch.images[0]).shape == (9, 7, 3)  # a palette image too
    train = data.train_split()
    assert train.question_types == ["what colour", "count"] and train.answers[1] == ["2", "two", "2"]
    images, texts, vocab = data.training_data()
    assert texts == [["A red circle"], ["how many 2"]]  # b.png has no caption: its question and answer stand in
    assert image_array(images, 4).shape == (2, 4, 4, 3)
    assert "circle" in vocab and "blue" not in vocab  # only training words
    assert data.describe()["splits"] == {"train": 2, "test": 3}
    with pytest.raises(ValueError, match="no domain 'cartoon'"):
        data.load("cartoon")


def test_folder_with_one_metadata_file_and_split_fields(tmp_path: Path) -> None:
    write_image(tmp_path / "img" / "x.png")
    write_rows(tmp_path / "metadata.jsonl", [
        {"file_name": "img/x.png", "captions": ["one"], "split": "test"},
        {"file_name": "img/x.png", "captions": ["two"]},  # no split: train
    ])
    data = create_dataset("folder", root=str(tmp_path))
    assert data.load("default").captions == ["one"] and data.train_split().captions == ["two"]
    recipe = data.recipe()
    os.utime(tmp_path / "img" / "x.png", ns=(1, 1))
    assert create_dataset("folder", root=str(tmp_path)).recipe() != recipe  # a rewritten image retrains
    with pytest.raises(DataMissingError, match=r"no rows in split 'val'.*splits present: \['test', 'train'\]"):
        create_dataset("folder", root=str(tmp_path), split="val")


@pytest.mark.parametrize("file_name", ["../outside.png", "img/../../outside.png", "/etc/hostname", "link.png"])
def test_a_file_name_escaping_the_folder_is_rejected(tmp_path: Path, file_name: str) -> None:
    root = tmp_path / "data"
    write_image(tmp_path / "outside.png")
    write_image(root / "img" / "in.png")
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    write_rows(root / "metadata.jsonl", [{"file_name": file_name, "captions": ["x"], "split": "test"}])
    with pytest.raises(FolderFormatError, match=r"metadata.jsonl:1: field file_name .*(leaves the dataset folder|absolute)"):
        create_dataset("folder", root=str(root))


@pytest.mark.parametrize("row, message", [
    ({"captions": ["x"]}, "field file_name is missing"),
    ({"file_name": "a.png"}, "neither captions nor qa"),
    ({"file_name": "a.png", "qa": [{"question": "q"}]}, r"field qa\[0\] must be an object with question and answers"),
    ({"file_name": "a.png", "qa": [{"question": "q", "answers": []}]}, r"field qa\[0\].answers must be"),
    ({"file_name": "a.png", "captions": [""]}, "field captions must be"),
    ({"file_name": "a.png", "captions": ["x"], "colour": 1}, r"unknown fields \['colour'\]"),
    ({"file_name": "missing.png", "captions": ["x"]}, "image not found"),
    ({"file_name": "a.png", "captions": ["x"], "split": "train"}, "contradicts the split folder 'test'"),
])
def test_bad_rows_name_file_line_field_and_value(tmp_path: Path, row: dict, message: str) -> None:
    write_image(tmp_path / "test" / "a.png")
    write_rows(tmp_path / "test" / "metadata.jsonl", [{"file_name": "a.png", "captions": ["ok"]}, row])
    with pytest.raises(DataMissingError, match=message) as err:
        create_dataset("folder", root=str(tmp_path))
    assert "metadata.jsonl:2" in str(err.value)


def test_folder_without_metadata_or_root(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError, match="no metadata.jsonl"):
        create_dataset("folder", root=str(tmp_path))
    with pytest.raises(DataMissingError, match="dataset.options.root"):
        create_dataset("folder")
    (tmp_path / "metadata.jsonl").write_text("{not json}\n")
    with pytest.raises(FolderFormatError, match="metadata.jsonl:1: not valid JSON"):
        create_dataset("folder", root=str(tmp_path))


def test_default_question_type_is_the_first_two_words() -> None:
    assert default_question_type("What colour is the star?") == "what colour"
    assert default_question_type("Is there a dog") == "is there"
    assert default_question_type("?") == "all"


def vqav2_fixture(root: Path, split: str, image_ids: list[int], first_qid: int = 1) -> None:
    questions, notes = [], []
    for k, image_id in enumerate(image_ids):
        write_image(root / f"{split}2014" / f"COCO_{split}2014_{image_id:012d}.jpg", (16 + k, 12))
        for j, (q, answers, qtype) in enumerate([("What color is the bus?", ["red"] * 7 + ["Red", "maroon", "red"],
                                                  "what color is the"),
                                                 ("How many dogs?", ["2", "two", "2", "3", "2", "2", "1", "2", "2", "2"],
                                                  "how many")]):
            qid = first_qid + 10 * k + j
            questions.append({"image_id": image_id, "question": q, "question_id": qid})
            notes.append({"question_id": qid, "image_id": image_id, "question_type": qtype, "answer_type": "other",
                          "multiple_choice_answer": answers[0], "answers": [{"answer": a, "answer_id": i + 1}
                                                                            for i, a in enumerate(answers)]})
    (root / f"v2_OpenEnded_mscoco_{split}2014_questions.json").write_text(json.dumps({"questions": questions}))
    (root / f"v2_mscoco_{split}2014_annotations.json").write_text(json.dumps({"annotations": notes}))


def test_vqav2_reads_questions_annotations_and_images(tmp_path: Path) -> None:
    vqav2_fixture(tmp_path, "val", [42, 7, 42 + 1])
    vqav2_fixture(tmp_path, "train", [5, 6], first_qid=1000)
    data = create_dataset("vqav2", root=str(tmp_path), limit=2)
    val = data.load("coco")
    assert len(val.images) == 2 and len(val.questions) == 4 and not val.has_captions
    assert val.question_image.tolist() == [0, 0, 1, 1] and val.question_ids.tolist() == [1, 2, 11, 12]
    assert len(val.answers[0]) == 10 and val.question_types[:2] == ["what color is the", "how many"]
    assert np.asarray(val.images[1]).shape == (12, 17, 3)
    train = data.train_split()
    assert len(train.images) == 2 and train.question_ids[0] == 1000
    assert {"bus?", "dogs?", "maroon", "2"} <= set(data.vocabulary())  # the tokenizer keeps "?" on its word


def test_vqav2_missing_pieces_say_what(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError, match="v2_OpenEnded_mscoco_val2014_questions.json"):
        create_dataset("vqav2", root=str(tmp_path))
    vqav2_fixture(tmp_path, "val", [1])
    notes = json.loads((tmp_path / "v2_mscoco_val2014_annotations.json").read_text())
    notes["annotations"] = notes["annotations"][:1]
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(notes))
    with pytest.raises(DataMissingError, match="no annotation for question_id 2"):
        create_dataset("vqav2", root=str(tmp_path))
    vqav2_fixture(tmp_path, "val", [1])
    (tmp_path / "val2014" / "COCO_val2014_000000000001.jpg").unlink()
    with pytest.raises(DataMissingError, match="1 of 1 val images are missing"):
        create_dataset("vqav2", root=str(tmp_path))


def world_folder(root: Path, n_train: int = 60, n_test: int = 16) -> Path:
    """A folder-format copy of a few embedded-world scenes (PNG files, metadata.jsonl per split)."""
    from mafs_bench.data.world import WorldConfig, build_split

    cfg = WorldConfig()
    for split, n in (("train", n_train), ("test", n_test)):
        world = build_split(cfg, split, "plain", n, seed=3)
        rows = []
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(world.images[i]).save(root / split / f"{i}.png")
            rows.append({"file_name": f"{i}.png", "captions": world.captions[i][:2],
                         "qa": [{"question": q, "answers": [a]} for q, a in world.qa[i]]})
        write_rows(root / split / "metadata.jsonl", rows)
    return root


def test_a_folder_vqa_dataset_trains_and_evaluates_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from typer.testing import CliRunner

    from mafs_bench.cli.main import app
    from mafs_bench.reporting.schema import ITEMS_FILE, read_items, read_metrics

    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path / "cache"))
    root = world_folder(tmp_path / "shapes")
    suite = {"name": "folder-vqa", "seeds": [0], "dataset": {"name": "folder", "options": {"root": str(root)}},
             "backend": {"name": "embedded", "options": {"encoder_train": {"steps": 4, "batch_size": 16},
                                                         "vqa_train": {"steps": 3, "batch_size": 16},
                                                         "fusion_pool": 40, "reference_size": 10}},
             "models": ["clip", "mafs", "qmf", "prior"], "tasks": [{"name": "vqa"}],
             "corruptions": ["gaussian_noise", "keyboard", "caption_shuffle"], "severities": [5]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = read_metrics(out / "metrics.csv")
    assert set(metrics["model"]) == {"clip", "mafs", "qmf", "prior"} and set(metrics["task"]) == {"vqa"}
    assert dict(zip(metrics["corruption"], metrics["corrupted"])) == {
        "none": "none", "gaussian_noise": "images", "keyboard": "questions", "caption_shuffle": "question_pairs"}
    prior = metrics[(metrics.model == "prior") & (metrics.metric == "accuracy")]["value"]
    assert prior.nunique() == 1  # the prior reads only the (clean) question type: no corruption moves it
    items = read_items(out / ITEMS_FILE)
    n_questions = sum(len(json.loads(line)["qa"]) for line in (root / "test" / "metadata.jsonl").read_text().splitlines())
    assert (items.groupby(["model", "corruption"]).size() == n_questions).all()
    run = json.loads((out / "run.json").read_text())
    assert run["items"]["vqa"] == {"accuracy": ["accuracy"]} and run["training"]["vqa"]["steps"] == 3
