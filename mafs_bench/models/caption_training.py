"""Training the caption decoders on frozen encoder features (the same recipe for every method).

Teacher forcing: each step takes ``batch_size`` training images and one of each image's captions
(drawn uniformly), and the decoder (:class:`~mafs_bench.models.caption_decoder.CaptionDecoder`)
learns to predict every next word (cross-entropy, pad positions ignored), plus its conditioner's
regulariser (MA-AFS: KL to uniform and the reliability target). As for the fusion heads
(:mod:`mafs_bench.models.fusion_training`), each image is, with probability ``augment_prob``,
degraded by one of the *feature-level* image augmentations of :mod:`mafs_bench.models.augment`
at a strength drawn from U(0, 1); these are never evaluation corruptions, and the draws come
from a seed namespace of their own (:func:`caption_generator`). Every method sees the same
images, captions and degradations in the same order: no draw depends on the method.

Training runs under torch's deterministic algorithms, so a decoder is bit-reproducible for a
given seed, data and thread count, and its weights can be cached by recipe.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.base import subset
from . import cache
from .augment import AUGMENTATIONS, FeatureStats, check_augmentations
from .backends.embedded import load_into
from .caption_decoder import CaptionDecoder, DecoderShape, ffn_hidden_for_budget
from .encoder import ImageFeatures
from .fusion import FusionMethod, ReferencePool
from .fusion.caption_blocks import CrossAttentionConditioner
from .fusion_training import _degraded_batch, deterministic_algorithms
from .tokenizer import PAD, WordTokenizer, split_words
from .training import Progress, lr_at

#: progress(description, total) -> update(done, total, loss)
ProgressFactory = Callable[[str, int], Progress]

#: the image-side training degradations of the default recipe
DEFAULT_CAPTION_AUGMENTATIONS: tuple[str, ...] = ("image_feature_noise", "image_token_dropout")


@dataclass(frozen=True)
class CaptionTrainConfig:
    """Teacher-forced training of a caption decoder (the same for every method).

    Attributes:
        steps, batch_size, lr, weight_decay, warmup: AdamW with linear warm-up then cosine decay.
        augment_prob: probability that an image is degraded.
        augmentations: image-side training degradations (:data:`~mafs_bench.models.augment.AUGMENTATIONS`).
        seed: training seed: initialisation, batches, captions and degradations.
    """

    steps: int = 250
    batch_size: int = 64
    lr: float = 8e-3
    weight_decay: float = 0.01
    warmup: int = 20
    augment_prob: float = 0.5
    augmentations: tuple[str, ...] = DEFAULT_CAPTION_AUGMENTATIONS
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "augmentations", tuple(self.augmentations))
        check_augmentations(self.augmentations)
        text = [a for a in self.augmentations if AUGMENTATIONS.get(a).modality != "image"]
        if text:
            raise ValueError(f"captioning train.augmentations: {text} degrade text; a caption decoder's only "
                             "input is the image (its captions are the targets)")
        for name, low in (("steps", 1), ("batch_size", 1), ("warmup", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"captioning train.{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= self.augment_prob <= 1.0:
            raise ValueError(f"captioning train.augment_prob must be in [0, 1], got {self.augment_prob}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["augmentations"] = list(self.augmentations)
        return d


@dataclass
class CaptionTrainData:
    """Frozen features and tokenized captions of the captioning training pool.

    Attributes:
        images: the pool's clean image features (N, ...).
        ids: (M, L) int64 token ids of every caption (``<start> .. <end>``, pad 0), L = the longest.
        caption_image: (M,) int64 image of each caption.
        image_stats: statistics of the clean image features (for the augmentations).
        reference: clean features for :meth:`CaptionConditioner.fit_reference`: the caption
            bank (``bank_texts``, held-out training captions), the bank's images, and the pool's
            image embeddings (cue statistics); ``texts`` and ``caption_image`` are empty.
    """

    images: ImageFeatures
    ids: torch.Tensor
    caption_image: torch.Tensor
    image_stats: FeatureStats
    reference: ReferencePool

    @property
    def max_length(self) -> int:
        """Longest caption in ids, ``<start>`` and ``<end>`` included."""
        return int((self.ids != PAD).sum(1).max())


@torch.no_grad()
def build_caption_data(encoder: object, tokenizer: WordTokenizer, images: Sequence[np.ndarray] | np.ndarray,
                       captions: Sequence[Sequence[str]], bank_images: Sequence[np.ndarray] | np.ndarray,
                       bank_captions: Sequence[str]) -> CaptionTrainData:
    """Encode the pool's images and the caption bank, and tokenize the pool's captions.

    Args:
        encoder: anything with ``encode_images``, ``encode_texts`` and ``logit_scale`` (the run's encoder).
        tokenizer: the decoder's word tokenizer.
        images: N training images; captions: a non-empty list of captions per image.
        bank_images / bank_captions: held-out training images and one caption each (never trained on).

    Raises:
        ValueError: an image without captions, or fewer than 2 bank items.
    """
    if any(len(c) == 0 for c in captions):
        raise ValueError("every captioning training image needs at least one caption")
    if len(bank_captions) < 2:
        raise ValueError(f"the caption bank needs at least 2 held-out training captions, got {len(bank_captions)}")
    feats = encoder.encode_images(images)
    flat = [c for caps in captions for c in caps]
    caption_image = torch.tensor([i for i, caps in enumerate(captions) for _ in caps], dtype=torch.long)
    ids = tokenizer(flat)
    ids = ids[:, : int((ids != PAD).sum(1).max())]
    bank_t = encoder.encode_texts(list(bank_captions)).emb
    bank_i = encoder.encode_images(bank_images).emb
    empty = feats.emb[:0]
    reference = ReferencePool(bank_i, bank_t, feats.emb, empty, caption_image[:0], float(encoder.logit_scale))
    return CaptionTrainData(feats, ids, caption_image, FeatureStats.of(feats.emb, feats.tokens), reference)


def caption_generator(seed: int) -> torch.Generator:
    """The generator of a caption decoder's training draws, seeded from
    ``("mafs-bench/caption-train", seed)`` through SHA-256 (no corruption draw uses it)."""
    digest = hashlib.sha256(f"mafs-bench/caption-train/{int(seed)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def train_captioner(decoder: CaptionDecoder, data: CaptionTrainData, cfg: CaptionTrainConfig,
                    progress: Progress | None = None) -> list[float]:
    """Fit the conditioner's references, then train ``decoder`` with teacher forcing; returns the loss per step.

    Bit-reproducible for a given seed, data and thread count (deterministic algorithms).
    """
    decoder.conditioner.fit_reference(data.reference)
    with deterministic_algorithms():
        return _train_steps(decoder, data, cfg, progress)


def _train_steps(decoder: CaptionDecoder, data: CaptionTrainData, cfg: CaptionTrainConfig,
                 progress: Progress | None) -> list[float]:
    gen = caption_generator(cfg.seed)
    n = len(data.images)
    counts = torch.bincount(data.caption_image, minlength=n)
    offsets = torch.cumsum(counts, 0) - counts
    order = torch.argsort(data.caption_image, stable=True)  # caption rows grouped by image
    opt = torch.optim.AdamW(decoder.param_groups(cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
    augs = list(cfg.augmentations)
    decoder.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr) * group.get("lr_scale", 1.0)
        img_idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
        pick = (torch.rand(len(img_idx), generator=gen) * counts[img_idx]).long()
        rows = order[offsets[img_idx] + pick]
        imgs, strength = _degraded_batch([data.images], img_idx, augs, cfg.augment_prob, data.image_stats, None, gen)
        ids = data.ids[rows]
        ids = ids[:, : int((ids != PAD).sum(1).max())]
        prep = decoder.prepare(imgs)
        logits = decoder(ids[:, :-1], prep)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=PAD)
        loss = loss + decoder.regulariser(prep, strength)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1, cfg.steps, losses[-1])
    decoder.eval()
    return losses


# --------------------------------------------------------------------------------------------
# Which data, tokenizer and sizes reach training; the weights cache


@dataclass(frozen=True)
class CaptionTrainingSplit:
    """The training images and their captions that caption decoders learn from.

    Attributes:
        images: N training images (uint8 HxWx3).
        captions: N lists of captions (images without one are left out before).
        vocabulary: the dataset's closed vocabulary, or None (then the pool's words).
    """

    images: Sequence[np.ndarray] | np.ndarray
    captions: list[list[str]]
    vocabulary: list[str] | None


def training_split(dataset: Any) -> CaptionTrainingSplit:
    """The captioned images of the dataset's training split (:meth:`Dataset.train_split`, or
    :meth:`Dataset.training_data` for a dataset that gives only that), in split order.

    Raises:
        ValueError: the dataset has no training split, or none of its images has a caption.
    """
    split = dataset.train_split() if hasattr(dataset, "train_split") else None
    if split is not None:
        per_image: list[list[str]] = [[] for _ in range(len(split.images))]
        for caption, owner in zip(split.captions, np.asarray(split.caption_image).tolist()):
            per_image[owner].append(caption)
        images, captions, vocab = split.images, per_image, dataset.vocabulary()
    else:
        got = dataset.training_data() if hasattr(dataset, "training_data") else None
        if got is None:
            raise ValueError(f"captioning trains its decoders on the dataset's training split, but dataset "
                             f"{type(dataset).__name__} provides none")
        images, captions, vocab = got
    keep = [i for i, caps in enumerate(captions) if len(caps) > 0]
    if not keep:
        raise ValueError(f"captioning: the training split of {type(dataset).__name__} has no captions")
    if len(keep) != len(captions):
        images, captions = subset(images, keep), [captions[i] for i in keep]
    return CaptionTrainingSplit(images, [list(c) for c in captions], list(vocab) if vocab else None)


def split_pool(n_train: int, pool: int, bank: int) -> tuple[slice, slice]:
    """Rows of the decoders' training pool and of the caption bank (disjoint; the bank follows
    the pool and takes at most a fifth of a small training split).

    Raises:
        ValueError: fewer than 4 training images.
    """
    n_bank = min(bank, max(2, n_train // 5))
    n_pool = min(pool, n_train - n_bank)
    if n_pool < 2:
        raise ValueError(f"the training split has {n_train} captioned images: too few for a captioning pool and a caption bank")
    return slice(0, n_pool), slice(n_pool, n_pool + n_bank)


def pool_vocabulary(captions: Sequence[Sequence[str]]) -> list[str]:
    """The words of ``captions`` (the tokenizer's split), in order of first occurrence."""
    return list(dict.fromkeys(w for caps in captions for c in caps for w in split_words(c)))


def most_frequent_caption(captions: Sequence[Sequence[str]]) -> str:
    """The most frequent caption (exact string) of the pool; on a tie the first to occur.

    The ``prior`` row of captioning: what a model that ignores the image would say.
    """
    counts: dict[str, int] = {}
    for caps in captions:
        for c in caps:
            counts[c] = counts.get(c, 0) + 1
    if not counts:
        raise ValueError("no training captions: the captioning prior needs at least one")
    return max(counts, key=lambda c: counts[c])


@dataclass
class FittedCaptioners:
    """The outcome of :func:`fit_captioners`.

    Attributes:
        decoders: ``(seed, model) -> CaptionDecoder`` (eval mode, on the device).
        tokenizer: the decoders' word tokenizer.
        prior: the pool's most frequent caption (:func:`most_frequent_caption`).
        info: what ``run.json`` records: recipe, cache keys, parameter counts, what was trained.
    """

    decoders: dict[tuple[int, str], CaptionDecoder]
    tokenizer: WordTokenizer
    prior: str
    info: dict[str, Any] = field(default_factory=dict)


class _Pool:
    """The captioning pool of a training split, encoded on first use (only when something trains)."""

    def __init__(self, encoder: Any, tokenizer: WordTokenizer, split: CaptionTrainingSplit, rows: slice,
                 bank_rows: slice) -> None:
        self.encoder, self.tokenizer, self.split, self.rows, self.bank_rows = encoder, tokenizer, split, rows, bank_rows
        self._data: CaptionTrainData | None = None

    def _images(self, rows: slice) -> Sequence[np.ndarray] | np.ndarray:
        return subset(self.split.images, rows)

    def data(self) -> CaptionTrainData:
        if self._data is None:
            bank_captions = [caps[0] for caps in self.split.captions[self.bank_rows]]
            self._data = build_caption_data(self.encoder, self.tokenizer, self._images(self.rows),
                                            self.split.captions[self.rows], self._images(self.bank_rows), bank_captions)
        return self._data


def fit_captioners(encoder: Any, encoder_key: str, split: CaptionTrainingSplit,
                   methods: dict[tuple[int, str], FusionMethod], shape: DecoderShape, cfg: CaptionTrainConfig,
                   pool: int, bank: int, data_recipe: dict[str, Any], device: torch.device,
                   progress: ProgressFactory | None = None) -> FittedCaptioners:
    """Load from the cache, or train, one caption decoder per (training seed, method).

    Every decoder trains on the same pool (the first ``pool`` captioned training images; the
    next ``bank`` give the caption bank) with the same recipe and seed; its conditioner comes
    from the method (:meth:`FusionMethod.caption_conditioner`) and its FFN width from the
    parameter budget of the reference decoder (BLIP-style cross-attention in every layer, FFN
    ``ffn_ratio * width``). Methods that predict the prior (``predicts_prior``) get no decoder.
    Weights are cached under kind ``"caption"``, keyed by the method, its options, the encoder,
    the decoder shape, the recipe and seed, the pool, the vocabulary and the data recipe (and,
    through :func:`~mafs_bench.models.cache.config_key`, the training code).

    Args:
        encoder: the run's encoder (``encode_images`` / ``encode_texts`` / ``logit_scale``).
        encoder_key: what identifies its weights (part of every key).
        split: the training images and captions.
        methods: ``(seed, name) -> FusionMethod``.
        progress: ``progress(description, total) -> update(done, total, loss)``, or None.

    Raises:
        ValueError: too few training images, or a method whose conditioner does not fit the budget.
    """
    rows, bank_rows = split_pool(len(split.captions), pool, bank)
    captions = split.captions[rows]
    vocab = list(split.vocabulary) if split.vocabulary else pool_vocabulary(captions)
    max_length = max(len(split_words(c)) for caps in captions for c in caps) + 2
    tokenizer = WordTokenizer(vocab, max_length)
    probe = encoder.encode_images(np.zeros((1, 8, 8, 3), np.uint8))
    image_width, embed_dim = int(probe.tokens.shape[-1]), int(probe.emb.shape[-1])
    reference = CaptionDecoder(tokenizer.vocab_size, max_length,
                               CrossAttentionConditioner(image_width, shape.width, shape.heads, shape.layers),
                               shape.width, shape.heads, shape.layers, shape.ffn_ratio * shape.width)
    budget = sum(p.numel() for p in reference.parameters())
    prior = most_frequent_caption(captions)
    pool_data = _Pool(encoder, tokenizer, split, rows, bank_rows)
    info: dict[str, Any] = {"recipe": {k: v for k, v in cfg.as_dict().items() if k != "seed"},
                            "decoder": asdict(shape), "pool": rows.stop, "bank": bank_rows.stop - bank_rows.start,
                            "vocabulary_size": tokenizer.vocab_size, "max_length": max_length,
                            "parameter_budget": budget, "prior_caption": prior,
                            "augmentations": list(cfg.augmentations), "params": {}, "keys": {}, "trained": []}
    decoders: dict[tuple[int, str], CaptionDecoder] = {}
    for (seed, name), method in methods.items():
        if getattr(method, "predicts_prior", False):
            continue
        run_cfg = CaptionTrainConfig(**(cfg.as_dict() | {"seed": seed}))
        key = {"method": type(method).__name__, "network": method.network, "options": method.options,
               "encoder": encoder_key, "decoder": asdict(shape), "train": run_cfg.as_dict(), "pool": rows.stop,
               "bank": [bank_rows.start, bank_rows.stop], "vocabulary": vocab, "max_length": max_length,
               "data": data_recipe}
        torch.manual_seed(seed)  # nn.Module initialisers draw from torch's default generator
        conditioner = method.caption_conditioner(image_width, embed_dim, shape.width, shape.heads, shape.layers)
        try:
            hidden = ffn_hidden_for_budget(budget, conditioner, tokenizer.vocab_size,
                                           max_length + conditioner.prefix_length, shape.width, shape.layers)
        except ValueError as err:
            raise ValueError(f"captioning decoder of {name}: {err} (raise decoder.ffn_ratio, the budget's FFN width, "
                             f"now {shape.ffn_ratio})") from None
        decoder = CaptionDecoder(tokenizer.vocab_size, max_length, conditioner, shape.width, shape.heads,
                                 shape.layers, hidden, shape.image_grid)
        cached = cache.load_weights("caption", key)
        if cached is None or not load_into(decoder, cached["state_dict"], f"caption decoder {name}"):
            start = time.time()
            update = progress(f"train caption decoder ({name}) seed {seed}", run_cfg.steps) if progress else None
            losses = train_captioner(decoder, pool_data.data(), run_cfg, update)
            cache.save_weights("caption", key, decoder.state_dict(),
                               {"final_loss": losses[-1], "method": name, "seconds": round(time.time() - start, 2)})
            info["trained"].append(f"{name}/{seed}")
        decoders[(seed, name)] = decoder.eval().to(device)
        info["params"][name] = sum(p.numel() for p in decoder.parameters())
        info["keys"][f"{name}/{seed}"] = cache.config_key(key, "caption")
    return FittedCaptioners(decoders, tokenizer, prior, info)
