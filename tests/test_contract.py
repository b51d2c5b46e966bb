"""The data contract (captions and question-answer pairs) and the tasks a fusion method supports."""

from __future__ import annotations

import numpy as np
import pytest

from mafs_bench.data import DEFAULT_QUESTION_TYPE, Dataset, ImageTextData, create_dataset, qa_answer
from mafs_bench.models.fusion import FUSIONS
from mafs_bench.models.fusion.albef import ALBEFStyle
from mafs_bench.runner import SuiteError, suite_from_dict

IMAGES = np.zeros((3, 8, 8, 3), np.uint8)


def qa_data(**over: object) -> ImageTextData:
    args = dict(name="d", domain="x", images=IMAGES, captions=["a", "b"], caption_image=[0, 2],
                questions=["q0", "q1", "q2"], answers=[["yes"], ["2", "two"], ["red"]], question_image=[1, 1, 0])
    args.update(over)
    return ImageTextData(**args)


def test_question_fields_default_ids_and_types() -> None:
    data = qa_data()
    assert data.has_captions and data.has_qa
    assert data.question_ids.tolist() == [0, 1, 2] and data.question_image.dtype == np.int64
    assert data.question_types == [DEFAULT_QUESTION_TYPE] * 3
    only_qa = qa_data(captions=[], caption_image=[])
    assert not only_qa.has_captions
    with pytest.raises(ValueError, match="no captions"):
        only_qa.check_for("captions")
    only_captions = qa_data(questions=[], answers=[], question_image=[])
    with pytest.raises(ValueError, match="no question-answer pairs"):
        only_captions.check_for("qa")


@pytest.mark.parametrize("change, message", [
    ({"question_image": [0, 3, 0]}, r"question_image must index the 3 images, got \[3\]"),
    ({"question_image": [0, 1]}, "3 questions but 2 question_image"),
    ({"answers": [["yes"], [], ["red"]]}, r"without reference answers \(positions \[1\]\)"),
    ({"answers": [["yes"]]}, "3 questions but 1 answer lists"),
    ({"question_types": ["a"]}, "3 questions but 1 question_types"),
    ({"question_ids": [1, 2]}, "question_ids must have 3 entries"),
    ({"caption_image": [0, 5]}, r"caption_image must index the 3 images, got \[5\]"),
])
def test_bad_question_fields_are_named(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        qa_data(**change)


def test_qa_answer_is_the_most_frequent_reference_first_on_ties() -> None:
    assert qa_answer(["two", "2", "two"]) == "two"
    assert qa_answer(["b", "a", "a", "b"]) == "b"


def test_training_data_derives_from_the_train_split_with_qa_texts_for_uncaptioned_images() -> None:
    class Tiny(Dataset):
        def train_split(self) -> ImageTextData:
            return qa_data()

        def vocabulary(self) -> list[str]:
            return ["a", "b"]

    images, texts, vocab = Tiny().training_data()
    # image 1 has no caption: its questions with their answers become its texts
    assert texts == [["a"], ["q0 yes", "q1 2"], ["b"]] and len(images) == 3 and vocab == ["a", "b"]


def test_embedded_world_gives_typed_single_answer_questions_with_stable_ids() -> None:
    world = create_dataset("embedded_world", size=12, train_size=20)
    data = world.load("plain")
    assert data.has_qa and all(len(a) == 1 for a in data.answers)
    assert {"colour", "count", "exists"} <= set(data.question_types)
    # a question's id depends on its image only, so a prefix of the split keeps its ids
    small = create_dataset("embedded_world", size=5, train_size=20).load("plain")
    assert data.question_ids[: len(small.question_ids)].tolist() == small.question_ids.tolist()
    shifted = world.load("outline")
    assert shifted.questions == data.questions and shifted.question_ids.tolist() == data.question_ids.tolist()
    train = world.train_split()
    assert len(train.images) == 20 and train.has_qa and train.has_captions


BASE = {"name": "t", "dataset": {"name": "embedded_world"}, "models": ["clip", "albef"],
        "tasks": [{"name": "retrieval", "k": 4, "ks": [1, 3]}]}


def test_every_fusion_method_declares_registered_task_names() -> None:
    for name in FUSIONS.names():
        tasks = FUSIONS.get(name).tasks
        assert isinstance(tasks, frozenset) and tasks, name


def test_a_task_runs_the_suite_models_that_support_it_and_skips_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ALBEFStyle, "tasks", frozenset({"vqa"}))
    suite = suite_from_dict(BASE)
    assert suite.models_for("retrieval") == ["clip"]
    assert suite.skipped() == [{"model": "albef", "task": "retrieval",
                                "reason": "albef does not support task retrieval (it supports vqa)"}]


def test_a_task_models_list_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = suite_from_dict({**BASE, "tasks": [{"name": "retrieval", "k": 4, "ks": [1, 3], "models": ["albef"]}]})
    assert suite.models_for("retrieval") == ["albef"] and suite.tasks[0].options == {"k": 4, "ks": [1, 3]}
    assert suite.skipped()[0]["reason"] == "not in tasks.retrieval.models"
    with pytest.raises(SuiteError, match=r"models \['mafs'\] are not in the suite's models"):
        suite_from_dict({**BASE, "tasks": [{"name": "retrieval", "models": ["mafs"]}]})
    monkeypatch.setattr(ALBEFStyle, "tasks", frozenset({"vqa"}))
    with pytest.raises(SuiteError, match=r"models \['albef'\] do not support task 'retrieval' \(albef: \['vqa'\]\)"):
        suite_from_dict({**BASE, "tasks": [{"name": "retrieval", "models": ["albef"]}]})
    with pytest.raises(SuiteError, match="none of the models"):
        suite_from_dict({**BASE, "models": ["albef"]})
    with pytest.raises(SuiteError, match="tasks listed twice"):
        suite_from_dict({**BASE, "tasks": ["retrieval", "retrieval"]})


def test_results_written_before_the_corrupted_column_read_with_it_filled(tmp_path) -> None:
    from pathlib import Path

    from mafs_bench.reporting.schema import ITEMS_KEY, METRICS_COLUMNS, read_items, read_metrics

    root = Path(__file__).resolve().parents[1] / "results" / "quickstart"
    metrics = read_metrics(root / "metrics.csv")
    assert list(metrics.columns) == list(METRICS_COLUMNS)
    by_task = {key: sorted(values) for key, values in
               metrics.groupby(["task", "modality"])["corrupted"].unique().map(list).to_dict().items()}
    expected = {("retrieval", "none"): ["none"], ("retrieval", "image"): ["images"], ("retrieval", "text"): ["captions"],
                ("retrieval", "pair"): ["caption_pairs"], ("vqa", "none"): ["none"], ("vqa", "image"): ["images"],
                ("vqa", "text"): ["questions"], ("vqa", "pair"): ["question_pairs"],
                ("captioning", "none"): ["none"], ("captioning", "image"): ["images"]}
    assert by_task == {key: value for key, value in expected.items() if key[0] in set(metrics["task"])}
    old = metrics.drop(columns="corrupted").head(40)
    old.to_csv(tmp_path / "m.csv", index=False)
    assert read_metrics(tmp_path / "m.csv")["corrupted"].tolist() == metrics["corrupted"].head(40).tolist()
    from synthetic_runs import make_items

    items = make_items(models=("clip",), seeds=(0,), n_images=4).drop(columns="corrupted")
    items.to_csv(tmp_path / "items.csv.gz", index=False)
    read = read_items(tmp_path / "items.csv.gz")
    assert list(read.columns[: len(ITEMS_KEY)]) == list(ITEMS_KEY)
    assert set(zip(read["modality"], read["corrupted"])) <= {("none", "none"), ("image", "images"), ("text", "captions"),
                                                             ("pair", "caption_pairs")}
