"""Image captioning: a caption decoder per fusion method, scored with the COCO caption metrics.

Each fusion method conditions a small caption decoder on the image
(:meth:`~mafs_bench.models.fusion.FusionMethod.caption_conditioner`; the decoder and its training
are the same for every method: :mod:`mafs_bench.models.caption_decoder`,
:mod:`mafs_bench.models.caption_training`). The decoders learn by teacher forcing on the
dataset's training split in :meth:`Captioning.fit`, once per training seed, and are cached.

Evaluation: the decoder captions the first ``images`` images of the cell that have reference
captions (greedy, or beam search with ``beam > 1``), and the captions are scored against the
image's *clean* reference captions with ``Bleu_1`` .. ``Bleu_4``, ``METEOR``, ``ROUGE_L`` and
``CIDEr`` exactly as pycocoevalcap computes them (:class:`~mafs_bench.metrics.CaptionScorer`,
equal to :func:`~mafs_bench.metrics.caption_metrics`; CIDEr-D's document frequencies come from
the evaluated images' references). Primary metric: ``CIDEr``. The ``prior`` row captions every
image with the most frequent training caption.

Captioning reads only the image: it is evaluated on clean cells and under image corruptions;
text and pair corruptions would corrupt the references, which stay clean, so those cells are
skipped (the runner records why in ``run.json``).

Per-item scores (the bootstrap's unit): CIDEr-D and ROUGE-L of each image (their corpus values
are the means over images). Corpus BLEU and METEOR pool statistics over images and are not
means of per-image scores, so they get no bootstrap interval.

Costs: all captions of one cell (every method and seed) go through one PTB tokenizer call, and
one METEOR process serves the whole run (its start-up takes seconds); per-image parts are
computed once per distinct (image, caption).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from ..metrics.captioning import CAPTION_METRICS, CaptionScorer, MeteorProcess
from ..models.caption_decoder import DecoderShape
from ..models.caption_training import CaptionTrainConfig, FittedCaptioners, fit_captioners, training_split
from ..models.encoder import ImageFeatures
from ..models.fusion import CUE_NAMES, FusionMethod
from ..models.tokenizer import SPECIAL_TOKENS
from .base import TASKS, EncodedCell, ItemScores, MethodKey, Task, TaskResult

#: images decoded per forward pass
DECODE_CHUNK = 256


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"captioning {name} must be a positive integer, got {value!r}")
    return value


@TASKS.register("captioning")
class Captioning(Task):
    """Image captioning with a caption decoder per fusion method (module docstring).

    Args:
        beam: beam size of decoding; 1 = greedy.
        images: evaluated images per cell: the first ``images`` images of the evaluation set
            that have reference captions.
        length_penalty: exponent of beam search's length normalisation.
        max_length: longest generated caption in tokens, start and end included (default: the
            longest training caption's).
        pool: training images the decoders learn from (the first captioned images of the
            training split).
        bank: held-out training captions after the pool: MA-AFS's fixed caption bank.
        decoder: decoder size, :class:`~mafs_bench.models.caption_decoder.DecoderShape` fields
            (``width``, ``heads``, ``layers``, ``ffn_ratio``).
        train: overrides of :class:`~mafs_bench.models.caption_training.CaptionTrainConfig`
            (``steps``, ``batch_size``, ``lr``, ...; not ``seed``: the suite's ``seeds`` are).

    Raises:
        ValueError: a bad option (the message names it and its value).
    """

    name: ClassVar[str] = "captioning"
    primary_metric: ClassVar[str] = "CIDEr"
    metric_names: ClassVar[tuple[str, ...]] = CAPTION_METRICS
    needs: ClassVar[str] = "captions"
    #: the decoder reads only the image; the references stay clean (no text or pair cells)
    corrupts: ClassVar[dict[str, str]] = {"none": "none", "image": "images"}

    def __init__(self, beam: int = 1, images: int = 200, length_penalty: float = 1.0, max_length: int | None = None,
                 pool: int = 4000, bank: int = 1000, decoder: dict[str, Any] | None = None,
                 train: dict[str, Any] | None = None) -> None:
        self.beam = _positive_int(beam, "beam")
        self.images = _positive_int(images, "images")
        self.pool = _positive_int(pool, "pool")
        self.bank = _positive_int(bank, "bank")
        if bank < 2:
            raise ValueError(f"captioning bank must be >= 2 (MA-AFS's caption bank), got {bank}")
        if max_length is not None and (_positive_int(max_length, "max_length") < 2):
            raise ValueError(f"captioning max_length must be >= 2 (start and end tokens), got {max_length}")
        self.max_length = max_length
        self.length_penalty = float(length_penalty)
        try:
            self.shape = DecoderShape(**(decoder or {}))
        except TypeError as err:
            raise ValueError(f"captioning decoder: {err}") from None
        train = dict(train or {})
        if "seed" in train:
            raise ValueError("captioning train.seed: training seeds are the suite field `seeds`")
        try:
            self.train = CaptionTrainConfig(**train)
        except TypeError as err:
            raise ValueError(f"captioning train: {err}") from None
        self.fitted: FittedCaptioners | None = None
        self._scorers: dict[tuple, CaptionScorer] = {}  # per reference set (domain)
        self._meteor = MeteorProcess()  # METEOR's JVMs for the run (fit starts them: their start-up takes seconds)

    @property
    def item_metrics(self) -> dict[str, list[str]]:
        """CIDEr-D and ROUGE-L are means of per-image scores; BLEU and METEOR pool statistics
        over images (no per-item decomposition, no interval)."""
        return {"CIDEr": ["CIDEr"], "ROUGE_L": ["ROUGE_L"]}

    def skip_reason(self, modality: str) -> str | None:
        if self.corrupted_input(modality) is not None:
            return None
        return (f"captioning reads only the image and its references stay clean, so a {modality} corruption "
                f"has nothing to corrupt")

    # -- training ---------------------------------------------------------------------------

    def fit(self, bundle: Any, dataset: Any, methods: Mapping[MethodKey, FusionMethod], device: torch.device,
            progress: Callable[[str, int], Callable[[int, int, float], None]]) -> dict[str, Any]:
        """Train (or load) a caption decoder per (seed, method) on the dataset's training split,
        on ``bundle``'s encoder (called once per backend group; the decoders accumulate).

        Raises:
            ValueError: the dataset has no training split with captions, or a method has no
                caption decoder.
        """
        for (_, name), method in methods.items():
            if not method.predicts_prior and type(method).caption_conditioner is FusionMethod.caption_conditioner:
                raise ValueError(f"model {name!r} has no caption decoder; it cannot be evaluated on captioning")
        self._meteor.start()  # loads its tables while the decoders train and the other tasks evaluate
        split = training_split(dataset)
        key = (bundle.info or {}).get("encoder_key") or repr(sorted((bundle.info or {}).items()))
        fitted = fit_captioners(bundle.encoder, key, split, dict(methods), self.shape, self.train, self.pool,
                                self.bank, dataset.recipe(), device, progress)
        if self.fitted is None:
            self.fitted = fitted
        else:  # another backend group (its own encoder): its rows' decoders join the others
            self.fitted.decoders.update(fitted.decoders)
        return fitted.info

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, cell: EncodedCell, method: FusionMethod) -> TaskResult:
        raise TypeError("captioning evaluates (seed, model) pairs: call evaluate_methods")

    @torch.no_grad()
    def evaluate_methods(self, cell: EncodedCell, methods: Mapping[MethodKey, FusionMethod]) -> dict[MethodKey, TaskResult]:
        """Caption the cell's first ``images`` captioned images with every method and score them.

        Raises:
            ValueError: the cell carries no data set (``cell.data``) or it has no captions.
            RuntimeError: :meth:`fit` has not run.
        """
        if self.fitted is None:
            raise RuntimeError("captioning: fit() must run before evaluation (it trains the caption decoders)")
        data = cell.data
        if data is None or len(data.captions) == 0:
            raise ValueError("captioning needs the cell's data set with reference captions (EncodedCell.data)")
        positions, references = self._references(data)
        feats = ImageFeatures(cell.images.emb[positions], cell.images.tokens[positions])
        predictions: dict[MethodKey, dict[int, str]] = {}
        weights: dict[MethodKey, dict[str, np.ndarray]] = {}
        for key, method in methods.items():
            if method.predicts_prior:
                predictions[key] = {i: self.fitted.prior for i in references}
                continue
            captions, w = self._caption(self.fitted.decoders[key], feats)
            predictions[key] = dict(zip(references, captions))
            if w is not None:
                weights[key] = {"sample_id": np.asarray(data.image_ids)[positions], **w}
        scored = self._scorer_for(references).score_many(predictions)
        out: dict[MethodKey, TaskResult] = {}
        for key in methods:
            corpus, per_item = scored[key]
            items = [ItemScores("image", "image", {m: per_item[m] for m in self.item_metrics}, positions=positions)]
            out[key] = TaskResult(dict(corpus), weights.get(key), extra={"items": items, "captions": predictions[key]})
        return out

    def _references(self, data: Any) -> tuple[np.ndarray, dict[int, list[str]]]:
        """Positions of the evaluated images and ``{position: [reference captions]}``."""
        owner = np.asarray(data.caption_image)
        has = np.zeros(len(data.images), dtype=bool)
        has[owner] = True
        positions = np.flatnonzero(has)[: self.images]
        chosen = set(positions.tolist())
        refs: dict[int, list[str]] = {int(i): [] for i in positions}
        for caption, i in zip(data.captions, owner.tolist()):
            if i in chosen:
                refs[i].append(caption)
        return positions, refs

    def _caption(self, decoder: Any, feats: ImageFeatures) -> tuple[list[str], dict[str, np.ndarray] | None]:
        """Captions of every image (and the decoder's per-image fusion weights and cues, if any)."""
        device = decoder.positions.device
        words = {i: w for w, i in self.fitted.tokenizer.vocab.items()}
        captions: list[str] = []
        alphas, cues = [], []
        for start in range(0, len(feats), DECODE_CHUNK):
            chunk = ImageFeatures(feats.emb[start : start + DECODE_CHUNK].to(device),
                                  feats.tokens[start : start + DECODE_CHUNK].to(device))
            prep = decoder.prepare(chunk)
            ids = decoder.generate(prep, beam=self.beam, max_length=self.max_length, length_penalty=self.length_penalty)
            captions += [" ".join(words.get(t, SPECIAL_TOKENS[3]) for t in row) for row in ids]
            w = decoder.conditioner.weights(prep)
            if w is not None:
                alphas.append(w[0].float().cpu())
                cues.append(w[1].float().cpu())
        if not alphas:
            return captions, None
        alpha, cue = torch.cat(alphas).numpy(), torch.cat(cues).numpy()
        out = {"alpha_v": alpha[:, 0], "alpha_t": alpha[:, 1]}
        out.update({name: cue[:, j] for j, name in enumerate(CUE_NAMES)})
        return captions, out

    def _scorer_for(self, references: dict[int, list[str]]) -> CaptionScorer:
        """The scorer of this reference set (one per domain; they share the METEOR process)."""
        key = tuple((i, tuple(r)) for i, r in references.items())
        if key not in self._scorers:
            self._scorers[key] = CaptionScorer(references, meteor=self._meteor)
        return self._scorers[key]

    def close(self) -> None:
        """End the METEOR process (a later evaluation starts a new one)."""
        self._meteor.close()
