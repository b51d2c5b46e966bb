"""Captioning metrics exactly as the COCO caption evaluation computes them (REFERENCES.md s6).

Source: the COCO caption evaluation (Chen et al., "Microsoft COCO Captions: Data Collection and
Evaluation Server", 2015; tylin/coco-caption, packaged for Python 3 as ``pycocoevalcap`` on
PyPI). We call pycocoevalcap itself, in the order of its ``COCOEvalCap.evaluate``: the Stanford
PTB tokenizer (lower case, punctuation tokens dropped) on references and predictions, then its
scorers with their default settings:

* ``Bleu_1`` .. ``Bleu_4``: corpus BLEU (Papineni et al. 2002) with the reference length
  closest to each prediction, from ``Bleu(4)``;
* ``METEOR``: METEOR 1.5 (Denkowski and Lavie 2014; ``-l en -norm``), run by its Java jar;
* ``ROUGE_L``: LCS F-measure with beta = 1.2, best reference per image, mean over images;
* ``CIDEr``: CIDEr-D (Vedantam et al. 2015; n-grams 1-4, sigma = 6, clipped counts, x10),
  mean over images. Its document frequencies (the IDF weights) come from the references of
  the evaluated set itself, as pycocoevalcap does: a score depends on the whole set, and a
  set of one image scores 0 (every n-gram occurs in every "document").

SPICE, which needs Stanford CoreNLP models downloaded at first use, is not computed.

Java: the tokenizer and METEOR run ``java`` (pycocoevalcap asks for 1.8 or newer). Each call
starts the JVM twice for the tokenizer and once for METEOR, whose paraphrase table takes about
ten seconds to load; score a whole split in one call, not one image at a time.

One input change: pycocoevalcap replaces ``"\\n"`` by a space before tokenizing, but the other
line breaks (``"\\r"``, ``"\\v"``, ``"\\f"``, U+2028, U+2029) make the tokenizer emit extra
lines, which silently moves every later caption onto the wrong image. We replace every
character that Python's ``str.splitlines`` breaks on by a space; text without them is passed
unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from ._checks import check_item

__all__ = [
    "CAPTION_METRICS",
    "JAVA_MISSING_MESSAGE",
    "JavaNotFoundError",
    "caption_metrics",
    "caption_metrics_per_item",
]

#: Metric names, in the order pycocoevalcap reports them.
CAPTION_METRICS: tuple[str, ...] = (
    "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr",
)  # fmt: skip

JAVA_MISSING_MESSAGE = (
    "captioning metrics need Java (pycocoevalcap's PTB tokenizer and METEOR); no `java` "
    "executable is on PATH. Install a JRE, e.g. apt-get install default-jre-headless"
)

# Characters on which str.splitlines breaks a line.
_LINE_BREAKS = str.maketrans({ch: " " for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})
_MAX_IDS_IN_MESSAGE = 5


class JavaNotFoundError(RuntimeError):
    """No ``java`` executable: the captioning metrics cannot be computed on this machine."""


def _require_java() -> None:
    if shutil.which("java") is None:
        raise JavaNotFoundError(JAVA_MISSING_MESSAGE)


def _first(ids: list[Hashable]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_MAX_IDS_IN_MESSAGE])
    return shown + (", ..." if len(ids) > _MAX_IDS_IN_MESSAGE else "")


def _check_items(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> list[Hashable]:
    """Validate the inputs and return the ids in the predictions' order."""
    if not isinstance(predictions, Mapping) or not isinstance(references, Mapping):
        raise TypeError(
            "predictions and references must be dicts keyed by image id "
            "({id: caption} and {id: [reference captions]})"
        )
    ids = list(predictions)
    no_references = [i for i in ids if i not in references]
    no_prediction = [i for i in references if i not in predictions]
    if no_references or no_prediction:
        problems = []
        if no_references:
            problems.append(
                f"{len(no_references)} prediction id(s) have no references: "
                f"{_first(no_references)}"
            )
        if no_prediction:
            problems.append(
                f"{len(no_prediction)} reference id(s) have no prediction: "
                f"{_first(no_prediction)}"
            )
        raise ValueError("ids of predictions and references differ; " + "; ".join(problems))
    for i in ids:
        check_item(f"id {i!r}", predictions[i], references[i], "captions", "references")
    return ids


def _close_meteor(meteor) -> str:
    """End METEOR's JVM now instead of at garbage collection; return what it wrote to stderr.

    If ``compute_score`` raised, pycocoevalcap still holds its lock, and its ``__del__``
    (which takes the lock again) would hang the interpreter: release it.
    """
    process = meteor.meteor_p
    process.kill()
    process.wait()
    stderr = process.stderr.read().decode(errors="replace")
    for stream in (process.stdin, process.stdout, process.stderr):
        stream.close()
    if meteor.lock.locked():
        meteor.lock.release()
    return stderr


def _score(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    ids = _check_items(predictions, references)
    if not ids:
        return {}, {name: np.zeros(0, dtype=np.float64) for name in CAPTION_METRICS}
    _require_java()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    def entry(text: str) -> dict[str, str]:
        return {"caption": text.translate(_LINE_BREAKS)}

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [entry(c) for c in references[i]] for i in ids})
    res = tokenizer.tokenize({i: [entry(predictions[i])] for i in ids})
    aligned = (
        list(gts) == ids
        and list(res) == ids
        and all(len(gts[i]) == len(references[i]) and len(res[i]) == 1 for i in ids)
    )
    if not aligned:
        raise RuntimeError("pycocoevalcap's PTB tokenizer did not return one line per caption")

    corpus: dict[str, float] = {}
    per_item: dict[str, np.ndarray] = {}

    bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        corpus[f"Bleu_{n + 1}"] = float(bleu[n])
        per_item[f"Bleu_{n + 1}"] = np.asarray(bleu_items[n], dtype=np.float64)

    meteor = Meteor()
    try:
        score, items = meteor.compute_score(gts, res)
    except Exception as error:
        stderr = _close_meteor(meteor)[-2000:]
        message = f"METEOR (java -jar meteor-1.5.jar) failed: {error!r}\n{stderr}"
        raise RuntimeError(message) from error
    _close_meteor(meteor)
    corpus["METEOR"], per_item["METEOR"] = float(score), np.asarray(items, dtype=np.float64)

    for name, scorer in (("ROUGE_L", Rouge()), ("CIDEr", Cider())):
        score, items = scorer.compute_score(gts, res)
        corpus[name], per_item[name] = float(score), np.asarray(items, dtype=np.float64)
    return corpus, per_item


def caption_metrics(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of captions, as pycocoevalcap computes them.

    Args:
        predictions: ``{image id: predicted caption}``, one raw str per image (any hashable
            ids, e.g. COCO image ids).
        references: ``{image id: [reference captions]}`` with exactly the same ids, at least
            one caption each (5 for COCO); raw text, tokenized here. CIDEr's document
            frequencies come from these references (see the module docstring).

    Returns:
        ``{"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}`` -> float,
        in that order; corpus-level values, on pycocoevalcap's scale (BLEU, METEOR, ROUGE-L in
        ``[0, 1]``; CIDEr-D in ``[0, 10]``).

    Raises:
        ValueError: the ids differ (the message counts and lists the first missing ones on each
            side), an id has no reference caption, or there are no items at all.
        TypeError: not dicts, a prediction that is not one str, or references of an id that
            are a bare str or hold a non-str.
        JavaNotFoundError: no ``java`` on PATH (checked after the inputs, before any scoring).
        RuntimeError: the tokenizer or METEOR's Java process failed.

    Example::

        caption_metrics({1: "a dog runs"}, {1: ["a dog is running", "a brown dog runs"]})
    """
    corpus, _ = _score(predictions, references)
    if not corpus:
        raise ValueError("no items: caption_metrics needs at least one prediction")
    return corpus


def caption_metrics_per_item(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> dict[str, np.ndarray]:
    """Per-image scores of the same metrics, for bootstrap intervals.

    All seven metrics have per-image scores in pycocoevalcap (the second value of each
    scorer's ``compute_score``), returned here as they are:

    * ``ROUGE_L`` and ``CIDEr``: the corpus value is the mean of the per-image ones;
    * ``Bleu_n``: sentence BLEU of each prediction (pycocoevalcap's tiny smoothing constants
      included); the corpus BLEU pools n-gram counts over images, so it is *not* the mean;
    * ``METEOR``: sentence METEOR; the corpus value pools METEOR's statistics, so it is not
      the mean either.

    Per-image CIDEr-D uses the document frequencies of the whole set given, so a bootstrap
    over these scores keeps the IDF weights of the full evaluation set.

    Args:
        predictions, references: as :func:`caption_metrics`.

    Returns:
        metric name -> ``(N,)`` float64 array, ``N = len(predictions)``, in the order of
        ``predictions``' ids. No items gives empty arrays (and starts no Java).

    Raises:
        As :func:`caption_metrics`, except that no items is not an error.
    """
    _, per_item = _score(predictions, references)
    return per_item
