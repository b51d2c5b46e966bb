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

import os
import shutil
import subprocess
import sys
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from ._checks import check_item

__all__ = [
    "CAPTION_METRICS",
    "JAVA_MISSING_MESSAGE",
    "CaptionScorer",
    "JavaNotFoundError",
    "MeteorProcess",
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

    tokenizer = _quiet(PTBTokenizer)()
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


K = TypeVar("K", bound=Hashable)


class CaptionScorer:
    """:func:`caption_metrics` of many prediction sets against one fixed reference set.

    A benchmark scores every method, seed and corruption cell against the same references;
    calling :func:`caption_metrics` for each would start Java two or three times per call
    (METEOR's start-up alone takes seconds) and redo the same per-caption work. This scorer
    gives the same numbers (a test holds it to :func:`caption_metrics` at 1e-9) by splitting
    pycocoevalcap's computation into its parts:

    * the references are PTB-tokenized once; the predictions of :meth:`score_many` in one
      tokenizer call (the tokenizer works line by line, ``-preserveLines``, so a caption's
      tokens do not depend on the others);
    * per (image, tokenized prediction), computed once and kept: BLEU's clipped n-gram
      counts (pycocoevalcap's ``cook_test``), METEOR's sufficient statistics (its ``SCORE``
      line), ROUGE-L and CIDEr-D (with the document frequencies of the whole reference set,
      as :func:`caption_metrics` uses them);
    * per prediction set: corpus BLEU from the pooled counts (``BleuScorer.compute_score``,
      ``option="closest"``, as ``Bleu.compute_score``), corpus and per-item METEOR from one
      ``EVAL`` line of the set's statistics (as ``Meteor.compute_score``), and the means of
      ROUGE-L and CIDEr-D.

    One METEOR process serves every set (and, given as ``meteor``, several scorers); :meth:`close`
    (or the ``with`` block) ends the scorer's own.

    Args:
        references: ``{image id: [reference captions]}``, as for :func:`caption_metrics`
            (at least one item).
        meteor: a :class:`MeteorProcess` to share (the caller closes it); default: the scorer's own.

    Raises:
        ValueError / TypeError: as :func:`caption_metrics` for the references.
        JavaNotFoundError: no ``java`` on PATH.
    """

    def __init__(self, references: Mapping[Hashable, Sequence[str]], meteor: MeteorProcess | None = None) -> None:
        if not isinstance(references, Mapping):
            raise TypeError("references must be a dict {image id: [reference captions]}")
        if not references:
            raise ValueError("no items: a CaptionScorer needs at least one reference item")
        self.ids = _check_items({i: "" for i in references}, references)
        _require_java()
        from pycocoevalcap.bleu.bleu_scorer import cook_refs as bleu_cook_refs

        self._refs = _tokenize({i: list(references[i]) for i in self.ids})
        self._bleu_refs = {i: bleu_cook_refs(self._refs[i]) for i in self.ids}
        self._cider = _CiderItems(self._refs)
        self._rouge = _RougeItems(self._refs)
        self._tokens: dict[str, str] = {}  # raw prediction -> PTB-tokenized
        self._items: dict[tuple[Hashable, str], dict[str, Any]] = {}  # (id, tokens) -> per-item parts
        self._owns_meteor = meteor is None
        self._meteor = MeteorProcess() if meteor is None else meteor

    # -- public ---------------------------------------------------------------------------

    def score(self, predictions: Mapping[Hashable, str]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Corpus metrics and per-item scores of one prediction set.

        Args:
            predictions: ``{image id: caption}`` with exactly the references' ids.

        Returns:
            ``(corpus, per_item)``: :func:`caption_metrics` and :func:`caption_metrics_per_item`
            of ``predictions`` (per-item arrays in the predictions' order).
        """
        return self.score_many({0: predictions})[0]

    def score_many(self, sets: Mapping[K, Mapping[Hashable, str]]) -> dict[K, tuple[dict[str, float], dict[str, np.ndarray]]]:
        """:meth:`score` of several prediction sets, tokenizing all their new captions at once.

        Raises:
            ValueError / TypeError: a set whose ids differ from the references', or a
                prediction that is not a str (the message names the set).
            RuntimeError: the tokenizer or METEOR failed.
        """
        for key, preds in sets.items():
            if not isinstance(preds, Mapping):
                raise TypeError(f"prediction set {key!r} must be a dict {{image id: caption}}")
            for i, p in preds.items():
                if not isinstance(p, str):
                    raise TypeError(f"prediction set {key!r}: prediction of id {i!r} is {type(p).__name__}, not str")
            missing = [i for i in self.ids if i not in preds]
            extra = [i for i in preds if i not in self._refs]
            if missing or extra:
                raise ValueError(f"prediction set {key!r}: ids differ from the references'; "
                                 f"{len(missing)} reference id(s) have no prediction: {_first(missing)}; "
                                 f"{len(extra)} prediction id(s) have no references: {_first(extra)}")
        new_raw = list(dict.fromkeys(p for preds in sets.values() for p in preds.values() if p not in self._tokens))
        if new_raw:
            tokenized = _tokenize({k: [p] for k, p in enumerate(new_raw)})
            self._tokens.update((p, tokenized[k][0]) for k, p in enumerate(new_raw))
        new_items = list(dict.fromkeys((i, self._tokens[p]) for preds in sets.values() for i, p in preds.items()
                                       if (i, self._tokens[p]) not in self._items))
        self._add_items(new_items)
        return {key: self._set_scores({i: self._tokens[p] for i, p in preds.items()}) for key, preds in sets.items()}

    def close(self) -> None:
        """End the scorer's own METEOR process (if it started one; a shared one is the caller's)."""
        if self._owns_meteor:
            self._meteor.close()

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown: nothing left to report to)
            pass

    # -- parts ----------------------------------------------------------------------------

    def _add_items(self, items: list[tuple[Hashable, str]]) -> None:
        """Per-item parts of new (id, tokenized prediction) pairs.

        METEOR's statistics are computed by its Java process while this one computes the others
        (a thread waits for Java's answers), so on two cores the two overlap."""
        if not items:
            return
        from pycocoevalcap.bleu.bleu_scorer import cook_test as bleu_cook_test

        with ThreadPoolExecutor(max_workers=1) as pool:
            meteor = pool.submit(self._meteor.stats, [(hyp, self._refs[i]) for i, hyp in items])
            parts = [{"bleu": bleu_cook_test(hyp, self._bleu_refs[i]), "ROUGE_L": self._rouge.score(i, hyp),
                      "CIDEr": self._cider.score(i, hyp)} for i, hyp in items]
            stats = meteor.result()
        for item, part, stat in zip(items, parts, stats):
            self._items[item] = {**part, "meteor": stat}

    def _set_scores(self, tokens: dict[Hashable, str]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        from pycocoevalcap.bleu.bleu_scorer import BleuScorer

        parts = [self._items[(i, hyp)] for i, hyp in tokens.items()]
        corpus: dict[str, float] = {}
        per_item: dict[str, np.ndarray] = {}
        bleu = BleuScorer(n=4)
        bleu.crefs = [self._bleu_refs[i] for i in tokens]
        bleu.ctest = [p["bleu"] for p in parts]
        scores, items = bleu.compute_score(option="closest", verbose=0)
        for n in range(4):
            corpus[f"Bleu_{n + 1}"] = float(scores[n])
            per_item[f"Bleu_{n + 1}"] = np.asarray(items[n], dtype=np.float64)
        corpus["METEOR"], per_item["METEOR"] = self._meteor.evaluate([p["meteor"] for p in parts])
        for name in ("ROUGE_L", "CIDEr"):
            values = np.array([p[name] for p in parts])
            corpus[name], per_item[name] = float(np.mean(values)), values.astype(np.float64)
        return corpus, per_item


class MeteorProcess:
    """METEOR 1.5 processes (pycocoevalcap's ``Meteor``, started on first use or by
    :meth:`start`), for many prediction sets: :meth:`stats` gives each caption's sufficient
    statistics and :meth:`evaluate` a set's per-caption and corpus scores, as
    ``Meteor.compute_score`` does.

    A caption's statistics depend on that caption and its references only, so :meth:`stats`
    splits a batch over ``workers`` JVMs (each single-threaded) and joins their lines in order:
    the same lines one process would give (a test holds the scores to ``Meteor.compute_score``).

    Args:
        workers: METEOR processes (default: the CPU count, at most 2; each JVM holds its
            paraphrase tables, about 1 GiB).
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = max(1, min(2, os.cpu_count() or 1))
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"METEOR workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self._meteors: list[Any] = []

    def start(self) -> None:
        """Start the JVMs now (they load their tables in the background while the caller
        works on); idempotent.

        Raises:
            RuntimeError: no ``java`` on PATH.
        """
        if not self._meteors:
            _require_java()
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteors = [Meteor() for _ in range(self.workers)]

    def stats(self, pairs: Sequence[tuple[str, Sequence[str]]], chunk: int = 64) -> list[str]:
        """Statistics of each (tokenized prediction, tokenized references): the ``SCORE`` lines of
        pycocoevalcap's ``Meteor._stat``, in the order of ``pairs``. Each process gets a
        contiguous share, sent ``chunk`` at a time and then read back (one round trip per chunk
        instead of per caption; a chunk stays far below a pipe's buffer, so neither side can
        block the other).

        Raises:
            RuntimeError: a METEOR process failed (its stderr is in the message).
        """
        self.start()
        share = -(-len(pairs) // len(self._meteors)) if pairs else 0
        parts = [pairs[k * share : (k + 1) * share] for k in range(len(self._meteors))]
        try:
            if len(pairs) <= share:  # one share: no thread
                out = [line for meteor, part in zip(self._meteors, parts) for line in _meteor_stats(meteor, part, chunk)]
            else:
                with ThreadPoolExecutor(max_workers=len(self._meteors) - 1) as pool:
                    rest = [pool.submit(_meteor_stats, m, part, chunk) for m, part in zip(self._meteors[1:], parts[1:])]
                    out = _meteor_stats(self._meteors[0], parts[0], chunk)
                    for future in rest:
                        out += future.result()
        except Exception as error:
            self._fail(error)
        if len(out) != len(pairs) or any(not line for line in out):
            self._fail(RuntimeError("no statistics returned"))
        return out

    def evaluate(self, stats: Sequence[str]) -> tuple[float, np.ndarray]:
        """Corpus and per-caption METEOR of a set from its captions' statistics (the ``EVAL``
        line of ``Meteor.compute_score``)."""
        self.start()
        meteor = self._meteors[0]
        try:
            with meteor.lock:
                meteor.meteor_p.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
                meteor.meteor_p.stdin.flush()
                items = [float(meteor.meteor_p.stdout.readline().strip()) for _ in stats]
                score = float(meteor.meteor_p.stdout.readline().strip())
        except Exception as error:
            self._fail(error)
        return score, np.asarray(items, dtype=np.float64)

    def _fail(self, error: Exception) -> None:
        stderr = "".join(_close_meteor(m)[-2000:] for m in self._meteors)
        self._meteors = []
        raise RuntimeError(f"METEOR (java -jar meteor-1.5.jar) failed: {error!r}\n{stderr}") from error

    def close(self) -> None:
        """End the processes (if any were started)."""
        for meteor in self._meteors:
            _close_meteor(meteor)
        self._meteors = []


def _meteor_stats(meteor: Any, pairs: Sequence[tuple[str, Sequence[str]]], chunk: int) -> list[str]:
    """The ``SCORE`` lines of one METEOR process for ``pairs`` (see :meth:`MeteorProcess.stats`)."""
    out: list[str] = []
    with meteor.lock:
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            lines = "".join(" ||| ".join(("SCORE", " ||| ".join(refs), hyp.replace("|||", "").replace("  ", " ")))
                            + "\n" for hyp, refs in part)
            meteor.meteor_p.stdin.write(lines.encode())
            meteor.meteor_p.stdin.flush()
            out += [meteor.meteor_p.stdout.readline().decode().strip() for _ in part]
    return out


class _RougeItems:
    """ROUGE-L of single predictions against fixed references, as pycocoevalcap's ``Rouge.calc_score``.

    The definition (Lin 2004; pycocoevalcap): captions split on single spaces; per reference the
    length of the longest common subsequence (LCS) with the prediction, ``P = LCS / len(pred)``,
    ``R = LCS / len(ref)``; with the largest P and the largest R over the references,
    ``(1 + b^2) P R / (R + b^2 P)`` for ``b = 1.2`` (0 when either is 0). pycocoevalcap computes
    the LCS by dynamic programming over a table in pure Python; here each reference's token
    positions are kept as bit masks and the LCS length comes from the bit-parallel recurrence of
    Allison and Dix (1986) (one integer operation per prediction token), exactly the same
    number. A test holds it to pycocoevalcap's ``Rouge`` at 1e-12.
    """

    beta = 1.2

    def __init__(self, refs: Mapping[Hashable, Sequence[str]]) -> None:
        self._refs: dict[Hashable, list[tuple[dict[str, int], int]]] = {}
        for i, rs in refs.items():
            masks = []
            for ref in rs:
                tokens = ref.split(" ")
                positions: dict[str, int] = {}
                for k, token in enumerate(tokens):
                    positions[token] = positions.get(token, 0) | (1 << k)
                masks.append((positions, len(tokens)))
            self._refs[i] = masks

    @staticmethod
    def _lcs(positions: dict[str, int], length: int, tokens: list[str]) -> int:
        """LCS length of a reference (its token bit masks, its length) and ``tokens``."""
        full = (1 << length) - 1
        v = full
        for token in tokens:
            u = v & positions.get(token, 0)
            v = ((v + u) | (v - u)) & full
        return length - bin(v).count("1")

    def score(self, i: Hashable, hyp: str) -> float:
        """ROUGE-L of prediction ``hyp`` (PTB-tokenized) for image ``i``."""
        tokens = hyp.split(" ")
        prec, rec = [], []
        for positions, length in self._refs[i]:
            lcs = self._lcs(positions, length, tokens)
            prec.append(lcs / float(len(tokens)))
            rec.append(lcs / float(length))
        p, r = max(prec), max(rec)
        if p != 0 and r != 0:
            return ((1 + self.beta**2) * p * r) / float(r + self.beta**2 * p)
        return 0.0


class _CiderItems:
    """CIDEr-D of single predictions against a fixed reference set, as pycocoevalcap's
    ``CiderScorer`` computes it for that set, with every reference's vector computed once.

    pycocoevalcap's ``compute_cider`` recomputes the references' tf-idf vectors for every
    prediction; here they are kept per image. The definition (Vedantam et al. 2015, CIDEr-D, as
    pycocoevalcap implements it): n-gram counts (its ``precook``, n = 1..4); document frequency
    ``df`` = the number of images whose references contain the n-gram (its
    ``compute_doc_freq``); a sentence's vector ``tf * (log(N) - log(max(1, df)))`` per n-gram
    order, its norm per order, and its "length" = its number of bigrams (pycocoevalcap counts
    the n-grams of index 1); per reference and order, the clipped product
    ``sum min(v_hyp, v_ref) * v_ref`` over the prediction's n-grams divided by both norms (when
    neither is 0), times ``exp(-(len_hyp - len_ref)^2 / (2 * 6^2))``; summed over references,
    averaged over the 4 orders, divided by the number of references, times 10. A test holds
    it to pycocoevalcap's ``Cider`` at 1e-9.
    """

    def __init__(self, refs: Mapping[Hashable, Sequence[str]], n: int = 4, sigma: float = 6.0) -> None:
        from pycocoevalcap.cider.cider_scorer import precook

        self._precook, self.n, self.sigma = precook, n, sigma
        counts = {i: [precook(r, n) for r in rs] for i, rs in refs.items()}
        df: dict[tuple[str, ...], float] = {}
        for rs in counts.values():
            for gram in {g for c in rs for g in c}:
                df[gram] = df.get(gram, 0.0) + 1.0
        self._log_n = np.log(float(len(refs)))
        self._idf = {g: self._log_n - np.log(max(1.0, f)) for g, f in df.items()}
        self._refs = {i: [self._vector(c) for c in rs] for i, rs in counts.items()}

    def _vector(self, counts: Mapping[tuple[str, ...], int]) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(self.n)]
        norm = [0.0] * self.n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            value = float(tf) * self._idf.get(gram, self._log_n)
            vec[k][gram] = value
            norm[k] += value**2
            if k == 1:
                length += tf
        return vec, [float(np.sqrt(x)) for x in norm], length

    def score(self, i: Hashable, hyp: str) -> float:
        """CIDEr-D of prediction ``hyp`` (PTB-tokenized) for image ``i``."""
        vec, norm, length = self._vector(self._precook(hyp, self.n))
        total = np.zeros(self.n)
        for ref_vec, ref_norm, ref_length in self._refs[i]:
            penalty = np.e ** (-(float(length - ref_length) ** 2) / (2 * self.sigma**2))
            val = np.zeros(self.n)
            for k in range(self.n):
                for gram, value in vec[k].items():
                    ref_value = ref_vec[k].get(gram, 0.0)
                    val[k] += min(value, ref_value) * ref_value
                if norm[k] != 0 and ref_norm[k] != 0:
                    val[k] /= norm[k] * ref_norm[k]
                val[k] *= penalty
            total += val
        return float(np.mean(total) / len(self._refs[i]) * 10.0)


class _QuietSubprocess:
    """``subprocess`` as pycocoevalcap's tokenizer module sees it (:func:`_quiet`): its Java
    process's stderr, one "PTBTokenizer tokenized N tokens at ..." line per call, is captured
    instead of reaching the terminal between the progress bars. Everything else is
    ``subprocess``'s own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:  # noqa: N802 - subprocess's name
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(*args, **kwargs)


def _quiet(tokenizer_class: type) -> type:
    """pycocoevalcap's ``PTBTokenizer`` class, its module made to run Java with stderr captured
    (the tokenization is the library's, unchanged)."""
    module = sys.modules[tokenizer_class.__module__]
    if not isinstance(module.subprocess, _QuietSubprocess):
        module.subprocess = _QuietSubprocess()
    return tokenizer_class


def _tokenize(texts: Mapping[Hashable, Iterable[str]]) -> dict[Hashable, list[str]]:
    """pycocoevalcap's PTB tokenizer on ``{id: [captions]}`` (line breaks made spaces), checked
    to return one line per caption, in order."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    given = {i: [c.translate(_LINE_BREAKS) for c in caps] for i, caps in texts.items()}
    out = _quiet(PTBTokenizer)().tokenize({i: [{"caption": c} for c in caps] for i, caps in given.items()})
    if list(out) != list(given) or any(len(out[i]) != len(given[i]) for i in given):
        raise RuntimeError("pycocoevalcap's PTB tokenizer did not return one line per caption")
    return out
