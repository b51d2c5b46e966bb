"""Public metric functions: VQAv2 accuracy and the COCO caption metrics.

VQA cases are computed by hand from the definition (REFERENCES.md s6, s9) and checked against
an independent, literal implementation of it (one replace per punctuation mark, an explicit
loop over the leave-one-out subsets). Captioning is compared with pycocoevalcap called
directly; those tests start Java (about 10 s per METEOR start), so they share module fixtures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from mafs_bench.metrics import (
    CAPTION_METRICS,
    JavaNotFoundError,
    caption_metrics,
    caption_metrics_per_item,
    normalize_vqa_answer,
    vqa_accuracy,
    vqa_accuracy_per_item,
)
from mafs_bench.metrics import captioning
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


# ---------------------------------------------------------------- captioning: no Java needed


@pytest.mark.parametrize(
    ("preds", "refs", "error", "match"),
    [
        ({1: "a", 2: "b"}, {1: ["a"], 3: ["c"]}, ValueError,
         r"1 prediction id\(s\) have no references: 2; "
         r"1 reference id\(s\) have no prediction: 3"),
        ({i: "a" for i in range(8)}, {}, ValueError, r"8 prediction id\(s\).*0, 1, 2, 3, 4, \.\."),
        ({"1": "a"}, {1: ["a"]}, ValueError, "'1'"),
        ({1: "a"}, {1: []}, ValueError, "id 1 has no reference captions"),
        ({1: "a"}, {1: "a dog"}, TypeError, "references of id 1 is the str 'a dog'"),
        ({1: ["a"]}, {1: ["a"]}, TypeError, "prediction of id 1 is list"),
        ({1: "a"}, {1: ["a", None]}, TypeError, "hold a NoneType"),
        (["a"], [["a"]], TypeError, "dicts keyed by image id"),
        ({}, {}, ValueError, "no items"),
    ],
)
def test_caption_input_errors(preds, refs, error, match):
    with pytest.raises(error, match=match):
        caption_metrics(preds, refs)


def test_caption_per_item_of_no_items_is_empty():
    out = caption_metrics_per_item({}, {})
    assert list(out) == list(CAPTION_METRICS)
    assert all(v.shape == (0,) and v.dtype == np.float64 for v in out.values())


def test_missing_java_is_named(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(JavaNotFoundError, match=r"need Java .*default-jre-headless"):
        caption_metrics({1: "a dog"}, {1: ["a dog runs"]})
    assert issubclass(JavaNotFoundError, RuntimeError)


def test_closing_meteor_after_a_failure_releases_pycocoevalcap_lock():
    """Else pycocoevalcap's Meteor.__del__, which takes the lock, would hang at exit."""
    child = (
        "import sys, time; sys.stderr.write('boom'); sys.stderr.flush(); "
        "print('up', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", child],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout.readline().strip() == b"up"
    meteor = types.SimpleNamespace(meteor_p=process, lock=threading.Lock())
    meteor.lock.acquire()  # as compute_score leaves it when it raises
    assert captioning._close_meteor(meteor) == "boom"
    assert process.returncode is not None and not meteor.lock.locked()


def test_every_line_break_becomes_a_space():
    text = "a\nb\rc\r\nd\x0be\x0cf\x1cg\x1dh\x1ei\x85j\u2028k\u2029l"
    cleaned = text.translate(captioning._LINE_BREAKS)
    assert cleaned.splitlines() == [cleaned]
    assert cleaned.split() == list("abcdefghijkl")
    assert "a dog, running!".translate(captioning._LINE_BREAKS) == "a dog, running!"


# ---------------------------------------------------------------- captioning: against pycocoevalcap

needs_java = pytest.mark.skipif(
    shutil.which("java") is None, reason="needs Java (pycocoevalcap's tokenizer and METEOR)"
)

REFERENCES = {
    101: ["A man is riding a horse on the beach.", "A person rides a brown horse along the shore.",
          "a man on horseback near the ocean"],
    "img-b": ["Two cats are sleeping on a red sofa.", "A pair of cats asleep on a couch.",
              "two kittens nap on the sofa"],
    7: ["A plate of food with broccoli and rice.", "Rice, broccoli and chicken on a white plate."],
    "perfect": ["A red double-decker bus drives down the street.", "a bus on a city street"],
    "empty": ["A child flies a kite in a park.", "a kid with a kite on the grass"],
    "punct": ["A dog catches a frisbee.", "the dog jumps for a frisbee"],
    "cr": ["A woman holds an umbrella in the rain.", "a person with an umbrella on a rainy street"],
}  # fmt: skip
# Another order than REFERENCES: per-item results must follow the predictions.
PREDICTIONS = {
    "cr": "a woman with an\rumbrella in the rain",
    "perfect": "A red double-decker bus drives down the street.",
    101: "a man riding a horse on a beach",
    "empty": "",
    "img-b": "two cats sleeping on a couch",
    "punct": "...!",
    7: "a plate with rice and broccoli\nand chicken",
}


@pytest.fixture(scope="module")
def pycocoevalcap_scores():
    """pycocoevalcap called directly, as its COCOEvalCap.evaluate does (minus SPICE)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # "\r" would shift pycocoevalcap's lines (see test_every_line_break_becomes_a_space)
    preds = {i: PREDICTIONS[i].replace("\r", " ") for i in REFERENCES}
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in caps] for i, caps in REFERENCES.items()})
    res = tokenizer.tokenize({i: [{"caption": preds[i]}] for i in REFERENCES})
    corpus, items = {}, {}
    bleu, bleu_items = Bleu(4).compute_score(gts, res)
    for n in range(4):
        corpus[f"Bleu_{n + 1}"] = bleu[n]
        items[f"Bleu_{n + 1}"] = dict(zip(gts, bleu_items[n]))
    for name, scorer in (("METEOR", Meteor()), ("ROUGE_L", Rouge()), ("CIDEr", Cider())):
        score, per_image = scorer.compute_score(gts, res)
        corpus[name], items[name] = score, dict(zip(gts, per_image))
    return corpus, items


@pytest.fixture(scope="module")
def ours_corpus():
    return caption_metrics(PREDICTIONS, REFERENCES)


@pytest.fixture(scope="module")
def ours_per_item():
    return caption_metrics_per_item(PREDICTIONS, REFERENCES)


@needs_java
def test_caption_metrics_equal_pycocoevalcap(ours_corpus, pycocoevalcap_scores):
    expected, _ = pycocoevalcap_scores
    assert list(ours_corpus) == list(CAPTION_METRICS)
    assert all(type(v) is float for v in ours_corpus.values())
    for name in CAPTION_METRICS:
        assert ours_corpus[name] == pytest.approx(expected[name], abs=1e-6), name
    assert 0 < ours_corpus["Bleu_4"] < ours_corpus["Bleu_1"] < 1 and ours_corpus["CIDEr"] > 0


@needs_java
def test_caption_metrics_per_item_equal_pycocoevalcap_in_prediction_order(
    ours_per_item, pycocoevalcap_scores
):
    _, expected = pycocoevalcap_scores
    assert list(ours_per_item) == list(CAPTION_METRICS)
    for name in CAPTION_METRICS:
        got = ours_per_item[name]
        assert got.dtype == np.float64 and got.shape == (len(PREDICTIONS),)
        want = [expected[name][i] for i in PREDICTIONS]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=name)


@needs_java
def test_perfect_and_empty_predictions(ours_per_item, ours_corpus):
    row = {i: k for k, i in enumerate(PREDICTIONS)}
    for name in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L"):
        assert ours_per_item[name][row["perfect"]] == pytest.approx(1.0, abs=1e-6), name
    assert ours_per_item["CIDEr"][row["perfect"]] == max(ours_per_item["CIDEr"])
    for empty in ("empty", "punct"):  # "...!" is nothing but punctuation tokens
        for name in CAPTION_METRICS:
            assert ours_per_item[name][row[empty]] == 0.0, (empty, name)
    for name in ("ROUGE_L", "CIDEr"):  # the corpus value is the mean of the per-image ones
        assert ours_corpus[name] == pytest.approx(ours_per_item[name].mean(), abs=1e-9)


@needs_java
def test_the_ptb_tokenizer_prints_nothing_to_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    """Its Java process reports each call's speed on stderr; a run would print one line per cell."""
    from mafs_bench.metrics.captioning import CaptionScorer

    corpus = caption_metrics({1: "a red bus"}, {1: ["a red bus on a road", "the bus"]})
    with CaptionScorer({1: ["a red bus on a road"]}) as scorer:
        scorer.score({1: "a bus"})
    assert corpus["Bleu_1"] == pytest.approx(1.0)
    assert "PTBTokenizer" not in capfd.readouterr().err
