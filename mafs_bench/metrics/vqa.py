"""VQA accuracy as the VQAv2 evaluation defines it (REFERENCES.md s6 and s9).

Sources: Antol et al., "VQA: Visual Question Answering" (ICCV 2015) and Goyal et al., "Making
the V in VQA Matter" (CVPR 2017), with the official evaluation script (GT-Vision-Lab/VQA,
``vqaEval.py``; the same code runs on EvalAI). Implemented here from that definition:

1. **Answer normalisation** (:func:`normalize_vqa_answer`), in the official order:

   * newlines and tabs become spaces, then leading/trailing whitespace is stripped;
   * each of the 21 punctuation marks in :data:`PUNCTUATION` is *removed* when the answer has
     it next to a space, or when the answer contains a digit-comma-digit group ("1,000");
     otherwise it is *replaced by a space* ("t-shirt" -> "t shirt"). The choice is made per
     mark, on the answer as given. The apostrophe, colon and period are not in the list;
   * a period is removed unless a digit follows it ("3.5" and ".5" keep theirs, "yes." and
     "5." lose theirs). The official pattern was meant to keep periods *between* digits, but
     its look-behind is written as a look-ahead, so in effect only the following character
     counts; we keep that effect, and its limit of 32 removed periods per answer (the script
     passes ``re.UNICODE`` where ``re.sub`` expects ``count``), so that scores equal the
     published ones;
   * lower case, split on whitespace; number words ``none, zero .. ten`` become digits
     (``none`` -> ``0``); the articles ``a an the`` are dropped; words in the official
     contractions table (:data:`CONTRACTIONS`, e.g. ``dont`` -> ``don't``) get their
     apostrophe back; words are joined by single spaces.

2. **Accuracy of one question** with ``n`` reference answers and prediction ``p`` (all
   normalised): the mean over the ``n`` leave-one-annotator-out subsets (``n - 1`` answers
   each) of ``min(#answers in the subset equal to p / t, 1)`` with ``t = 3``. For VQAv2
   (``n = 10``) this is exactly the official formula. Our generalisation to other ``n``:

   * ``n >= 4``: the same formula over the ``n`` subsets (``t = 3``);
   * ``n = 2, 3``: ``t = n - 1`` (the size of a subset). With ``t = 3`` a prediction that
     every annotator gave would score only 1/3 (``n = 2``) or 2/3 (``n = 3``); with
     ``t = n - 1`` it scores 1, and one of two annotators agreeing scores 1/2;
   * ``n = 1`` (synthetic data): exact match after normalisation, 1.0 or 0.0; the
     leave-one-out formula is undefined there.

   With ``m`` references equal to ``p``, the ``m`` subsets that leave out a match hold
   ``m - 1`` matches and the other ``n - m`` hold ``m``, so the mean is
   ``(m * min((m - 1) / t, 1) + (n - m) * min(m / t, 1)) / n``: for ``n = 10``, 0, 0.3, 0.6,
   0.9 for ``m = 0..3`` and 1.0 from ``m = 4`` on.

One deliberate difference from the official script: it normalises the *prediction* fully
but the references only by step (punctuation) and only when the annotators disagree,
because the answers stored in the VQAv2 annotation files are already normalised. We
normalise every reference exactly as the prediction, so that references that are not (a
user's folder data set, say "Two" given by all annotators) still match the predictions
"two" and "2". On already-normalised references both give the same score, since
normalising a normalised answer changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ._checks import check_item

__all__ = [
    "ARTICLES",
    "CONTRACTIONS",
    "NUMBER_WORDS",
    "PUNCTUATION",
    "normalize_vqa_answer",
    "vqa_accuracy",
    "vqa_accuracy_per_item",
]

#: Marks removed or replaced by a space (official ``punct`` list); apostrophe, colon and
#: period are deliberately absent.
PUNCTUATION: str = ";/[]\"{}()=+\\_-><@`,?!"

#: Number words mapped to digits (official ``manualMap``).
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip

#: Words dropped after lower-casing.
ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

# The official contractions table, one "word restored" pair per line, kept as published:
# its four capitalised keys (Id've, I'dve, Im, Ive) can never match a lower-cased word, and
# "somebody'd" maps to "somebodyd"; changing either would change published scores.
_CONTRACTION_TABLE = """
aint ain't            arent aren't          cant can't            couldve could've
couldnt couldn't      couldn'tve couldn't've                      couldnt've couldn't've
didnt didn't          doesnt doesn't        dont don't            hadnt hadn't
hadnt've hadn't've    hadn'tve hadn't've    hasnt hasn't          havent haven't
hed he'd              hed've he'd've        he'dve he'd've        hes he's
howd how'd            howll how'll          hows how's            Id've I'd've
I'dve I'd've          Im I'm                Ive I've              isnt isn't
itd it'd              itd've it'd've        it'dve it'd've        itll it'll
let's let's           maam ma'am            mightnt mightn't      mightnt've mightn't've
mightn'tve mightn't've                      mightve might've      mustnt mustn't
mustve must've        neednt needn't        notve not've          oclock o'clock
oughtnt oughtn't      ow's'at 'ow's'at      'ows'at 'ow's'at      'ow'sat 'ow's'at
shant shan't          shed've she'd've      she'dve she'd've      she's she's
shouldve should've    shouldnt shouldn't    shouldnt've shouldn't've
shouldn'tve shouldn't've                    somebody'd somebodyd
somebodyd've somebody'd've                  somebody'dve somebody'd've
somebodyll somebody'll                      somebodys somebody's
someoned someone'd    someoned've someone'd've                    someone'dve someone'd've
someonell someone'll  someones someone's    somethingd something'd
somethingd've something'd've                something'dve something'd've
somethingll something'll                    thats that's          thered there'd
thered've there'd've  there'dve there'd've  therere there're      theres there's
theyd they'd          theyd've they'd've    they'dve they'd've    theyll they'll
theyre they're        theyve they've        twas 'twas            wasnt wasn't
wed've we'd've        we'dve we'd've        weve we've            werent weren't
whatll what'll        whatre what're        whats what's          whatve what've
whens when's          whered where'd        wheres where's        whereve where've
whod who'd            whod've who'd've      who'dve who'd've      wholl who'll
whos who's            whove who've          whyll why'll          whyre why're
whys why's            wont won't            wouldve would've      wouldnt wouldn't
wouldnt've wouldn't've                      wouldn'tve wouldn't've
yall y'all            yall'll y'all'll      y'allll y'all'll      yall'd've y'all'd've
y'alld've y'all'd've  y'all'dve y'all'd've  youd you'd            youd've you'd've
you'dve you'd've      youll you'll          youre you're          youve you've
"""
_tokens = _CONTRACTION_TABLE.split()
#: Word -> word with its apostrophe restored (official ``contractions``, 120 entries).
CONTRACTIONS: dict[str, str] = dict(zip(_tokens[0::2], _tokens[1::2], strict=True))
del _tokens

_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_OFFICIAL_MAX_PERIODS = 32  # = re.UNICODE, passed as re.sub's count by the official script
_HUMANS_FOR_FULL_CREDIT = 3  # "min(#humans that said the answer / 3, 1)"


def _process_punctuation(text: str) -> str:
    strip_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    table = {
        ord(mark): "" if strip_all or f"{mark} " in text or f" {mark}" in text else " "
        for mark in PUNCTUATION
    }
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", text.translate(table), count=_OFFICIAL_MAX_PERIODS)


def _process_words(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_vqa_answer(answer: str) -> str:
    """Normalise one answer as the official VQAv2 evaluation does (see the module docstring).

    Example: ``normalize_vqa_answer("The Two dogs!")`` is ``"2 dogs"``;
    ``normalize_vqa_answer("dont know")`` is ``"don't know"``.
    """
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    return _process_words(_process_punctuation(text))


def _check_items(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> None:
    if isinstance(predictions, str) or isinstance(answers, str):
        raise TypeError("predictions and answers must be lists (one entry per question), not str")
    if len(predictions) != len(answers):
        raise ValueError(
            f"{len(predictions)} predictions but {len(answers)} reference-answer lists; "
            "give one list of reference answers per prediction"
        )
    for index, (prediction, references) in enumerate(zip(predictions, answers, strict=True)):
        check_item(f"item {index}", prediction, references, "answers", "answers")


def _item_accuracy(prediction: str, references: list[str]) -> float:
    n = len(references)
    matches = sum(reference == prediction for reference in references)
    if n == 1:
        return float(matches)
    threshold = min(_HUMANS_FOR_FULL_CREDIT, n - 1)
    left_out_match = matches * min((matches - 1) / threshold, 1.0)
    left_out_other = (n - matches) * min(matches / threshold, 1.0)
    return (left_out_match + left_out_other) / n


def vqa_accuracy_per_item(
    predictions: Sequence[str], answers: Sequence[Sequence[str]]
) -> np.ndarray:
    """VQAv2 accuracy of each question, for bootstrap intervals and per-type breakdowns.

    Args:
        predictions: ``N`` predicted answers (str), raw: they are normalised here.
        answers: ``N`` lists of reference answers (str), one list per prediction, in the same
            order; 10 per question in VQAv2, 1 for synthetic data, any number >= 1 allowed.

    Returns:
        ``(N,)`` float64 array of accuracies in ``[0, 1]`` (the module docstring gives the
        definition, including the rule for ``n != 10`` references). ``N = 0`` gives an empty
        array.

    Raises:
        ValueError: ``len(predictions) != len(answers)``, or an item with no reference answer
            (the message names its index).
        TypeError: a prediction or reference that is not a str, or an item whose answers are a
            bare str instead of a list.
    """
    _check_items(predictions, answers)
    normalised: dict[str, str] = {}  # answers repeat a lot: normalise each distinct one once

    def norm(text: str) -> str:
        if text not in normalised:
            normalised[text] = normalize_vqa_answer(text)
        return normalised[text]

    scores = [
        _item_accuracy(norm(prediction), [norm(reference) for reference in references])
        for prediction, references in zip(predictions, answers, strict=True)
    ]
    return np.asarray(scores, dtype=np.float64).reshape(len(scores))


def vqa_accuracy(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean VQAv2 accuracy over questions, in ``[0, 1]`` (not a percentage).

    Args and Raises: as :func:`vqa_accuracy_per_item`, plus ValueError("no items") when both
    lists are empty: a mean over no questions is undefined, and a NaN would spread silently
    into leaderboards.

    Example:
        >>> vqa_accuracy(["Two"], [["2", "2", "two", "3", "3", "3", "3", "3", "3", "3"]])
        0.9
    """
    scores = vqa_accuracy_per_item(predictions, answers)
    if scores.size == 0:
        raise ValueError("no items: vqa_accuracy needs at least one prediction")
    return float(scores.mean())
