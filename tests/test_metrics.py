"""Public metric functions: VQAv2 accuracy.

VQA cases are computed by hand from the definition (REFERENCES.md s6, s9) and checked against
an independent, literal implementation of it (one replace per punctuation mark, an explicit
loop over the leave-one-out subsets).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mafs_bench.metrics import normalize_vqa_answer, vqa_accuracy, vqa_accuracy_per_item
from mafs_bench.metrics.vqa import CONTRACTIONS, NUMBER_WORDS

REPO = Path(__file__).resolve().parents[1]


def test_importing_metrics_loads_neither_torch_nor_pycocoevalcap():
    code = (
        "import sys, mafs_bench.metrics; "
        "print(sorted(m for m in ('torch', 'pycocoevalcap') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- VQA: normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # case
        ("Yes", "yes"),
        ("RED", "red"),
        # number words -> digits (whole words only; "none" counts as zero)
        ("two", "2"),
        ("Ten", "10"),
        ("none", "0"),
        ("eleven", "eleven"),
        ("someone", "someone"),
        # articles dropped, whole words only
        ("a dog", "dog"),
        ("an apple", "apple"),
        ("The red one", "red 1"),
        ("theater", "theater"),
        # contractions restored
        ("dont", "don't"),
        ("isnt it", "isn't it"),
        ("don't", "don't"),
        ("Im", "im"),  # the official table's capitalised keys never match a lower-cased word
        # punctuation replaced by a space when glued to words ...
        ("x-ray", "x ray"),
        ("(red)", "red"),
        ("yes!", "yes"),
        ("black/white", "black white"),
        # ... removed when the answer has it next to a space, decided per mark
        ("x-ray -", "xray"),
        ("black/white, grey", "black white grey"),
        # ... and every mark removed when a digit-comma-digit group is present
        ("1,000", "1000"),
        ("1,000 red-white", "1000 redwhite"),
        # apostrophe and colon are not punctuation here
        ("dog's", "dog's"),
        ("10:30", "10:30"),
        # periods: kept when a digit follows, removed otherwise
        ("3.5", "3.5"),
        ("yes.", "yes"),
        ("e.g.", "eg"),
        ("5.", "5"),
        (".5", ".5"),  # the official pattern looks only at the next character
        # whitespace
        ("  yes\n", "yes"),
        ("\tno", "no"),
        ("hot   dog", "hot dog"),
        ("", ""),
    ],
)
def test_normalize_vqa_answer_rules(raw, expected):
    assert normalize_vqa_answer(raw) == expected


def test_normalisation_limits_period_removal_to_32_like_the_official_script():
    assert normalize_vqa_answer("." * 40) == "." * 8


def test_official_tables():
    assert len(CONTRACTIONS) == 120
    assert CONTRACTIONS["dont"] == "don't" and CONTRACTIONS["twas"] == "'twas"
    assert CONTRACTIONS["somebody'd"] == "somebodyd"  # kept as published
    assert NUMBER_WORDS == {w: str(i) for i, w in enumerate(
        "zero one two three four five six seven eight nine ten".split())} | {"none": "0"}


def test_normalisation_is_idempotent():
    for raw in ["The Two dogs!", "x-ray -", "1,000 red-white", "dont", "e.g. 3.5", "(a) b/c"]:
        once = normalize_vqa_answer(raw)
        assert normalize_vqa_answer(once) == once


# ---------------------------------------------------------------- VQA: accuracy


@pytest.mark.parametrize(
    ("agree", "expected"),
    [
        (0, 0.0),
        (1, 0.3),  # (1 * 0/3 + 9 * 1/3) / 10
        (2, 0.6),  # (2 * 1/3 + 8 * 2/3) / 10
        (3, 0.9),  # (3 * 2/3 + 7 * 1) / 10
        (4, 1.0),  # (4 * 1 + 6 * 1) / 10
        (10, 1.0),
    ],
)
def test_leave_one_out_over_ten_annotators(agree, expected):
    answers = ["dog"] * agree + ["cat"] * (10 - agree)
    assert vqa_accuracy(["dog"], [answers]) == pytest.approx(expected, abs=1e-12)


def test_prediction_and_references_are_normalised_before_matching():
    refs = ["two", "2", "Two.", "2 ", "3", "3", "4", "4", "5", "5"]
    assert vqa_accuracy(["TWO!"], [refs]) == pytest.approx(1.0)  # 4 match after normalising
    # unanimous, unnormalised references still match (the official script would give 0)
    assert vqa_accuracy(["2"], [["Two"] * 10]) == 1.0
    assert vqa_accuracy(["the dont"], [["don't"] * 3 + ["no"] * 7]) == pytest.approx(0.9)


def test_single_reference_is_exact_match_after_normalisation():
    scores = vqa_accuracy_per_item(
        ["The Dog.", "dogs", "two", "yes"], [["dog"], ["dog"], ["2"], ["no"]]
    )
    np.testing.assert_array_equal(scores, [1.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        (["dog", "dog"], 1.0),  # n = 2: threshold 1
        (["dog", "cat"], 0.5),
        (["dog", "dog", "dog"], 1.0),  # n = 3: threshold 2
        (["dog", "dog", "cat"], 2 / 3),  # (2 * 1/2 + 1 * 1) / 3
        (["dog", "cat", "cat"], 1 / 3),  # (1 * 0 + 2 * 1/2) / 3
        (["dog", "dog", "dog", "cat"], 0.75),  # n = 4: official threshold 3
        (["dog"] * 5, 1.0),
    ],
)
def test_other_reference_counts(refs, expected):
    assert vqa_accuracy(["dog"], [refs]) == pytest.approx(expected, abs=1e-12)


def test_per_item_shape_dtype_and_mean():
    preds = ["yes", "2", "red"]
    answers = [["yes"] * 10, ["2", "2"] + ["3"] * 8, ["blue"]]
    scores = vqa_accuracy_per_item(preds, answers)
    assert scores.dtype == np.float64 and scores.shape == (3,)
    np.testing.assert_allclose(scores, [1.0, 0.6, 0.0], atol=1e-12)
    assert vqa_accuracy(preds, answers) == pytest.approx(1.6 / 3, abs=1e-12)
    assert vqa_accuracy(tuple(preds), tuple(tuple(a) for a in answers)) == pytest.approx(1.6 / 3)


def test_vqa_empty_input():
    assert vqa_accuracy_per_item([], []).shape == (0,)
    assert vqa_accuracy_per_item([], []).dtype == np.float64
    with pytest.raises(ValueError, match="no items"):
        vqa_accuracy([], [])


@pytest.mark.parametrize(
    ("preds", "answers", "error", "match"),
    [
        (["a", "b"], [["a"]], ValueError, "2 predictions but 1"),
        (["a", "b"], [["a"], []], ValueError, "item 1 has no reference answers"),
        (["a"], ["a"], TypeError, "item 0 is the str 'a'"),
        ([None], [["a"]], TypeError, "prediction of item 0 is NoneType"),
        (["a", "b"], [["a"], ["b", 3]], TypeError, "item 1 hold a int"),
        ("ab", [["a"], ["b"]], TypeError, "not str"),
    ],
)
def test_vqa_input_errors(preds, answers, error, match):
    with pytest.raises(error, match=match):
        vqa_accuracy(preds, answers)


# A literal implementation of the definition, written independently of mafs_bench.metrics.vqa.
_OFFICIAL_MARKS = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">",
                   "<", "@", "`", ",", "?", "!"]  # fmt: skip


def _definition_normalise(text: str) -> str:
    text = text.replace("\n", " ").replace("\t", " ").strip()
    digit_comma_digit = re.search(r"[0-9],[0-9]", text) is not None
    out = text
    for mark in _OFFICIAL_MARKS:
        next_to_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if next_to_space or digit_comma_digit else " ")
    kept, removed = [], 0
    for k, ch in enumerate(out):
        digit_follows = k + 1 < len(out) and out[k + 1] in "0123456789"
        if ch == "." and not digit_follows and removed < 32:
            removed += 1
        else:
            kept.append(ch)
    words = [NUMBER_WORDS.get(w, w) for w in "".join(kept).lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ("a", "an", "the"))


def _definition_accuracy(prediction: str, references: list[str]) -> float:
    p = _definition_normalise(prediction)
    refs = [_definition_normalise(r) for r in references]
    if len(refs) == 1:
        return float(p == refs[0])
    threshold = min(3, len(refs) - 1)
    subsets = [refs[:k] + refs[k + 1 :] for k in range(len(refs))]
    return sum(min(s.count(p) / threshold, 1.0) for s in subsets) / len(subsets)


def test_matches_a_literal_implementation_of_the_definition_on_random_answers():
    rng = np.random.default_rng(0)
    pieces = ["two", "2", "Two", "the", "a", "dog", "Dogs", "dont", "don't", "x-ray", "x ray",
              "1,000", "1000", "3.5", "yes", "yes.", "Yes!", "no", "(red)", "red", ".5", "none",
              "0", "-", " , ", "/", "black/white", "e.g.", "\t", "an"]  # fmt: skip

    def answer() -> str:
        k = int(rng.integers(1, 4))
        return (" " if rng.random() < 0.8 else "").join(rng.choice(pieces, size=k).tolist())

    preds, answers = [], []
    for _ in range(400):
        n = int(rng.choice([1, 2, 3, 4, 10, 10]))
        pool = [answer() for _ in range(3)]  # few distinct answers, so that some match
        answers.append([pool[int(rng.integers(0, 3))] for _ in range(n)])
        preds.append(pool[0] if rng.random() < 0.7 else answer())
    expected = np.array([_definition_accuracy(p, a) for p, a in zip(preds, answers)])
    got = vqa_accuracy_per_item(preds, answers)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert 0.2 < expected.mean() < 0.9  # the draw exercises both matches and misses
    assert vqa_accuracy(preds, answers) == pytest.approx(expected.mean(), abs=1e-12)
