"""The VQA task, the VQA heads of every fusion method, their training, and the peers' fusion rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mafs_bench.data import ImageTextData
from mafs_bench.metrics import vqa_accuracy_per_item
from mafs_bench.models.augment import FeatureStats
from mafs_bench.models.encoder import ImageFeatures, TextFeatures
from mafs_bench.models.fusion import (FUSIONS, AnswerOutput, AnswerSpace, FusionMethod, PairSignals, ReferencePool,
                                      create_fusion)
from mafs_bench.models.fusion.pdf import co_belief_weights, relative_calibration
from mafs_bench.models.fusion.qmf import rank_loss
from mafs_bench.models.fusion_training import FusionTrainConfig
from mafs_bench.models.vqa_training import (VQATrainData, answer_scores, build_answer_space, dense_targets, soft_targets,
                                            train_vqa)
from mafs_bench.tasks import EncodedCell, QuestionSet, create_task
from mafs_bench.tasks.vqa import type_metric

VQA_METHODS = [n for n in FUSIONS.names() if "vqa" in FUSIONS.get(n).tasks]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread avoids the cost of waking a second one for every small op
    (30x on a loaded 2-core machine); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
SMALL = {"width": 16, "heads": 2}
SPACE = AnswerSpace(("yes", "no", "red", "2"), ("colour", "count", "exists"))


def small(name: str) -> FusionMethod:
    """A tiny instance of ``name`` set up for VQA over :data:`SPACE`."""
    torch.manual_seed(0)
    cls = FUSIONS.get(name)
    options = {} if cls.network in ("none", "prior") else dict(SMALL)
    if cls.network in ("concat_mlp", "gmu", "qmf", "pdf"):
        options["hidden"] = 24
    method = create_fusion(name, 12, 12, **options)
    method.setup_answers(SPACE, 8)
    return method


def features(n: int, length: int, seed: int, text: bool) -> ImageFeatures | TextFeatures:
    gen = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(n, 8, generator=gen), dim=-1)
    tokens = torch.randn(n, length, 12, generator=gen)
    if text:
        mask = torch.ones(n, length, dtype=torch.bool)
        mask[:, length - 1] = False
        return TextFeatures(emb, tokens, mask)
    return ImageFeatures(emb, tokens)


def reference(n_images: int = 10, n_questions: int = 30) -> ReferencePool:
    img, txt = features(n_images, 5, 1, False), features(n_questions, 4, 2, True)
    owner = torch.arange(n_questions) % n_images
    answers = torch.tensor([0, 0, 1, 2, 3, -1] * (n_questions // 6))
    types = torch.tensor([2, 2, 2, 0, 1, 0] * (n_questions // 6))
    return ReferencePool(features(6, 5, 3, False).emb, features(4, 4, 4, True).emb, img.emb, txt.emb, owner, 10.0,
                         answers=answers, question_types=types)


def cell(n_images: int = 6) -> EncodedCell:
    owner = np.array([0, 0, 1, 2, 3, 4, 5, 5, 5], dtype=np.int64)
    answers = [["yes"], ["red"], ["2", "two", "2"], ["no"], ["blue"], ["yes"], ["red"], ["2"], ["no"]]
    types = ["exists", "colour", "count", "exists", "colour", "exists", "colour", "count", "unseen"]
    qs = QuestionSet(features(len(owner), 4, 5, True), owner, answers, types)
    empty = TextFeatures(torch.zeros(0, 8), torch.zeros(0, 4, 12), torch.zeros(0, 4, dtype=torch.bool))
    return EncodedCell(features(n_images, 5, 6, False), empty, np.zeros(0, np.int64), 10.0, questions=qs)


class FixedAnswers(FusionMethod):
    """A stub whose answer for question ``q`` is ``ANSWERS[q]`` (NaN logits for -1)."""

    ANSWERS = [0, 2, 3, 1, 2, -1, 2, 3, 0]

    def prepare_images(self, feats: ImageFeatures) -> dict:
        return {"i": torch.arange(len(feats))}

    def prepare_texts(self, feats: TextFeatures) -> dict:
        return {"q": torch.arange(len(feats))}

    def answer_forward(self, img: dict, txt: dict, signals: PairSignals) -> AnswerOutput:
        picks = torch.tensor(self.ANSWERS)[txt["q"]]
        logits = torch.nn.functional.one_hot(picks.clamp_min(0), 4).float()
        logits[picks < 0] = math.nan
        return AnswerOutput(logits, torch.full((*picks.shape, 2), 0.5))


def test_vqa_accuracy_per_type_items_and_nonfinite_on_known_answers() -> None:
    method = FixedAnswers(12, 12)
    method.answer_space = SPACE
    result = create_task("vqa").evaluate(cell(), method)
    # predictions: yes, red, 2, no, red, (NaN), red, 2, yes
    expected = vqa_accuracy_per_item(["yes", "red", "2", "no", "red", "", "red", "2", "yes"],
                                     [["yes"], ["red"], ["2", "two", "2"], ["no"], ["blue"], ["yes"], ["red"], ["2"], ["no"]])
    assert expected.tolist() == [1, 1, 1, 1, 0, 0, 1, 1, 0]
    m = result.metrics
    assert m["accuracy"] == pytest.approx(6 / 9) and m["nonfinite_scores"] == 1.0
    assert m["accuracy_exists"] == pytest.approx(2 / 3) and m["accuracy_colour"] == pytest.approx(2 / 3)
    assert m["accuracy_count"] == 1.0 and m["accuracy_unseen"] == 0.0
    (items,) = result.extra["items"]
    assert items.side == "question" and items.scores["accuracy"].tolist() == expected.tolist()
    assert result.weights["alpha_v"].tolist() == [0.5] * 9


def test_type_metric_names_are_safe() -> None:
    assert type_metric("what color is the") == "accuracy_what_color_is_the"
    assert type_metric("is this a/an") == "accuracy_is_this_a_an"


def test_vqa_task_corrupts_questions_and_question_pairs() -> None:
    task = create_task("vqa")
    assert [task.corrupted_input(m) for m in ("none", "image", "text", "pair")] == [
        "none", "images", "questions", "question_pairs"]
    assert task.primary_metric == "accuracy" and task.needs == "qa"
    with pytest.raises(ValueError, match="chunk"):
        create_task("vqa", chunk=0)


@pytest.mark.parametrize("name", VQA_METHODS)
def test_every_vqa_method_scores_every_question_over_the_answer_space(name: str) -> None:
    method = small(name)
    method.fit_reference(reference())
    method.eval()
    result = create_task("vqa", chunk=4).evaluate(cell(), method)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0 and result.metrics["nonfinite_scores"] == 0
    assert len(result.extra["items"][0].scores["accuracy"]) == 9
    if result.weights is not None:  # adaptive methods report per-question weights summing to 1
        a = result.weights["alpha_v"] + result.weights["alpha_t"]
        assert np.allclose(a, 1.0, atol=1e-5)


def test_the_registry_has_the_vqa_methods_the_issue_names() -> None:
    assert {"mafs", "fixed_sum", "albef", "blip", "clip", "concat_mlp", "gmu", "qmf", "pdf", "prior"} <= set(VQA_METHODS)
    assert "vqa" not in FUSIONS.get("prior").tasks or "retrieval" not in FUSIONS.get("prior").tasks


def test_prior_answers_the_most_frequent_training_answer_of_the_type() -> None:
    prior = small("prior")
    prior.fit_reference(reference())
    # type 2 (exists): answers 0, 0, 1 -> 0 ("yes"); type 0 (colour): 2 and -1 -> 2 ("red"); type 1 (count): 3 ("2")
    assert prior.type_answer.tolist()[:3] == [2, 3, 0]
    out = prior.answer_forward({}, {}, PairSignals(torch.zeros(1, 4), qtype=torch.tensor([[2, 0, 1, -1]])))
    overall = prior.type_answer[-1].item()
    assert out.logits.argmax(-1).tolist() == [[0, 2, 3, overall]]
    assert overall == 0  # answer 0 is the most frequent over all types


def test_answer_scores_follow_the_vqav2_definition() -> None:
    refs = ["2", "2", "two", "3", "3", "3", "3", "3", "3", "3"]
    scores = answer_scores(refs)
    assert scores == {"2": pytest.approx(0.9), "3": pytest.approx(1.0)}
    assert answer_scores(["Yes"]) == {"yes": 1.0}
    space = build_answer_space([refs, ["red"], ["red"], ["yes", "yes"]], ["count", "colour", "colour", "exists"], 10)
    assert space.answers == ("red", "3", "yes") and space.types == ("colour", "count", "exists")
    index, weight = soft_targets([refs, ["blue"]], space)
    dense = dense_targets(index, weight, len(space.answers))
    assert dense[0].tolist() == pytest.approx([0.0, 1.0, 0.0]) and dense[1].sum() == 0
    with pytest.raises(ValueError, match="at least 2 distinct answers"):
        build_answer_space([["a"], ["a"]], ["t", "t"], 10)


def vqa_data(n_images: int = 12, n_questions: int = 48) -> VQATrainData:
    """Questions whose answer is the image's first token's sign (a learnable toy task)."""
    img, txt = features(n_images, 5, 11, False), features(n_questions, 4, 12, True)
    owner = torch.arange(n_questions) % n_images
    label = (img.tokens[owner, 0, 0] > 0).long()
    index = torch.stack([label, torch.full_like(label, -1)], dim=1)
    weight = torch.stack([torch.ones(n_questions), torch.zeros(n_questions)], dim=1)
    qtype = torch.zeros(n_questions, dtype=torch.long)
    ref = ReferencePool(features(6, 5, 13, False).emb, features(4, 4, 14, True).emb, img.emb, txt.emb, owner, 10.0,
                        answers=label, question_types=qtype)
    return VQATrainData(img, txt, owner, index, weight, qtype, torch.arange(n_questions),
                        FeatureStats.of(img.emb, img.tokens), FeatureStats.of(txt.emb, txt.tokens, txt.mask), ref, SPACE)


@pytest.mark.parametrize("name", VQA_METHODS)
def test_vqa_training_is_deterministic_and_fits(name: str) -> None:
    cfg = FusionTrainConfig(steps=12, batch_size=16, warmup=2, lr=1e-2)
    data = vqa_data()
    first, second = small(name), small(name)
    losses = train_vqa(first, data, cfg)
    train_vqa(second, data, cfg)
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name}: {key} differs between two trainings with the same seed"
    if any(p.requires_grad for p in first.parameters()):
        assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
        assert np.mean(losses[-3:]) < np.mean(losses[:3]), f"{name}: loss did not fall {losses}"
    else:
        assert losses == []


def test_qmf_rank_loss_orders_confidence_by_loss_history() -> None:
    # row 0 has the lower history, so it should be the more confident one by at least 1.0
    history = torch.tensor([0.5, 1.5])
    assert rank_loss(torch.tensor([2.0, 0.5]), history).item() == pytest.approx(0.0)  # 1.5 >= 1.0 both ways
    assert rank_loss(torch.tensor([1.0, 0.5]), history).item() == pytest.approx(0.5)  # margins 1 - 0.5, twice, mean
    assert rank_loss(torch.tensor([0.3, 0.3]), torch.tensor([1.0, 1.0])).item() == 0.0


def test_pdf_co_belief_and_relative_calibration() -> None:
    w = co_belief_weights(torch.tensor([0.9]), torch.tensor([0.5]))
    cb_v = 0.9 + math.log(0.5) / math.log(0.45)
    cb_t = 0.5 + math.log(0.9) / math.log(0.45)
    expected_v = math.exp(cb_v) / (math.exp(cb_v) + math.exp(cb_t))
    assert w[0, 0].item() == pytest.approx(expected_v) and w.sum().item() == pytest.approx(1.0)
    f_v = torch.tensor([[4.0, 0.0, 0.0]])  # confident
    f_t = torch.tensor([[0.0, 0.0, 0.0]])  # uniform: distance 0, its weight goes to 0
    out = relative_calibration(torch.tensor([[0.5, 0.5]]), f_v, f_t)
    assert out[0].tolist() == pytest.approx([1.0, 0.0])


def test_gmu_reports_its_gate_as_the_fusion_weight() -> None:
    gmu = small("gmu").eval()
    img, txt = features(2, 5, 21, False), features(2, 4, 22, True)
    out = gmu.answer_forward(gmu.prepare_images(img), {k: v[:, None] for k, v in gmu.prepare_texts(txt).items()},
                             PairSignals(torch.zeros(2, 1)))
    assert out.alpha.shape == (2, 1, 2) and torch.allclose(out.alpha.sum(-1), torch.ones(2, 1))


def test_a_cell_needs_matching_questions() -> None:
    with pytest.raises(ValueError, match="one image, one answer list and one type per question"):
        QuestionSet(features(3, 4, 0, True), np.array([0, 1]), [["a"]] * 3, ["t"] * 3)
    qs = QuestionSet(features(2, 4, 0, True), np.array([0, 7]), [["a"]] * 2, ["t"] * 2)
    empty = TextFeatures(torch.zeros(0, 8), torch.zeros(0, 4, 12), torch.zeros(0, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"question_image must index the 3 images, got \[7\]"):
        EncodedCell(features(3, 5, 0, False), empty, np.zeros(0, np.int64), 1.0, questions=qs)


def test_data_without_questions_stops_a_vqa_suite_naming_the_task() -> None:
    from mafs_bench.runner.run import PreflightError, check_data

    captions_only = ImageTextData("caps", "x", np.zeros((2, 4, 4, 3), np.uint8), ["a", "b"], [0, 1])
    with pytest.raises(PreflightError, match="task vqa cannot run on this data: caps .x.: no question-answer pairs"):
        check_data(captions_only, {"vqa": create_task("vqa")})


def test_max_questions_keeps_an_evenly_spaced_subset_with_its_ids() -> None:
    data = ImageTextData("d", "x", np.zeros((3, 4, 4, 3), np.uint8), ["c"], [0], questions=[f"q{i}" for i in range(10)],
                         answers=[[str(i)] for i in range(10)], question_image=np.arange(10) % 3,
                         question_ids=np.arange(100, 110))
    picked = create_task("vqa", max_questions=4).select(data)
    assert picked.questions == ["q0", "q3", "q6", "q9"] and picked.question_ids.tolist() == [100, 103, 106, 109]
    assert picked.answers == [["0"], ["3"], ["6"], ["9"]] and picked.question_image.tolist() == [0, 0, 0, 0]
    assert picked.captions == ["c"] and create_task("vqa").select(data) is data
    with pytest.raises(ValueError, match="max_questions"):
        create_task("vqa", max_questions=0)
