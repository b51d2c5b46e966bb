"""Training the fusion heads on frozen encoder features (the same recipe for every method).

Every fusion method is trained with the same data, steps, augmentation and seed (REFERENCES.md
s1 asks for an exact MA-AFS vs fixed-sum ablation). Training recipe, ours:

* Fusion heads: image-text matching (ITM) with ALBEF's hard negatives (for each image a caption
  and for each caption an image, sampled from the in-batch ITC similarities), on frozen encoder
  features. So that a scheduler can learn when to trust which modality, each pair's image is,
  with probability ``augment_prob``, degraded by a *feature-level* training augmentation
  (:mod:`mafs_bench.models.augment`: feature noise, token dropout) at a strength drawn from
  U(0, 1), and independently its caption. These are never evaluation corruptions (ImageNet-C's
  rule; REFERENCES.md s9) and draw from their own seed namespace. All methods see exactly the
  same pairs, negatives and degradations, and ``run.json`` records the recipe. A recipe may opt
  in to registered corruptions (``corruptions``); their cells are then marked "seen in training".
* Reference banks: held-out training items (never trained on) given to each method's
  ``fit_reference`` (MA-AFS's fixed cue banks, the same in training and at test).

Randomness comes from ``torch.Generator`` / ``numpy.random.Generator`` objects seeded from the
config's seed (:func:`mafs_bench.models.augment.augmentation_generator`); nothing touches a global
RNG. Fusion heads train under torch's deterministic
algorithms (:func:`deterministic_algorithms`): with the default CPU kernels, two trainings of the
same head from the same seed differ in the low bits of every weight (an accumulation in the
backward pass sums in a thread-dependent order), and after 300 steps in the third decimal of
retrieval scores, so a fresh run could not reproduce a stored result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

import corruptions

from .augment import AUGMENTATIONS, DEFAULT_AUGMENTATIONS, FeatureStats, augmentation_generator, check_augmentations
from .encoder import ImageFeatures, TextFeatures
from .fusion import FusionMethod, PairSignals, ReferencePool, gather
from .training import Progress, lr_at


@dataclass(frozen=True)
class FusionTrainConfig:
    """ITM training of a fusion head on frozen encoder features (the same for every method).

    Attributes:
        augment_prob: probability that a pair's image (independently: its caption) is degraded.
        augmentations: training-time degradations (:data:`mafs_bench.models.augment.AUGMENTATIONS`),
            feature-level, never an evaluation corruption.
        corruptions: registered corruptions to *also* train on (pixel / word level; default none).
            Allowed, but every cell of such a corruption is marked "seen in training".
        seed: training seed: initialisation, batches, negatives and degradations.
    """

    steps: int = 300
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 30
    augment_prob: float = 0.5
    augmentations: tuple[str, ...] = DEFAULT_AUGMENTATIONS
    corruptions: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        check_augmentations(self.augmentations)
        for field, names in (("augmentations", self.augmentations), ("corruptions", self.corruptions)):
            if len(set(names)) != len(names):
                raise ValueError(f"fusion_train.{field} lists a name twice: {list(names)}")
        for name in self.corruptions:
            if name not in corruptions.CORRUPTIONS:
                raise ValueError(f"fusion_train.corruptions: {corruptions.CORRUPTIONS.unknown_message(name)}")
            if corruptions.get(name).modality not in ("image", "text"):
                raise ValueError(f"fusion_train.corruptions: {name!r} is a {corruptions.get(name).modality} corruption; "
                                 "training views take image or text corruptions only")
        for field, low in (("steps", 1), ("batch_size", 2)):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < low:
                raise ValueError(f"fusion_train.{field} must be an integer >= {low}, got {getattr(self, field)!r}")
        if not 0.0 <= self.augment_prob <= 1.0:
            raise ValueError(f"fusion_train.augment_prob must be in [0, 1], got {self.augment_prob}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["augmentations"], d["corruptions"] = list(self.augmentations), list(self.corruptions)
        return d


@dataclass
class FusionTrainData:
    """Frozen features of the fusion training pool.

    ``images`` / ``texts`` hold the clean view first, then (only when the recipe names
    registered corruptions) a corrupted view of every item.
    """

    images: list[ImageFeatures]  # views, each (N, ...)
    texts: list[TextFeatures]  # views, each (M, ...)
    caption_image: torch.Tensor  # (M,)
    image_captions: list[torch.Tensor]  # captions of each image
    image_stats: FeatureStats
    text_stats: FeatureStats
    reference: ReferencePool
    logit_scale: float
    #: severity / 5 of each item's corrupted view (opt-in corruptions; 0 where it stayed clean)
    image_view_strength: torch.Tensor | None = None
    text_view_strength: torch.Tensor | None = None


def training_corruption_seed(seed: int) -> int:
    """Seed of opt-in training corruptions: a namespace apart from the evaluation's ``seed``
    (so training image *i* never gets evaluation image *i*'s draw)."""
    digest = hashlib.sha256(f"mafs-bench/train-corruptions/{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def corrupt_views(images: Any, captions: list[str], names: Sequence[str],
                  seed: int) -> tuple[Any, list[str], np.ndarray, np.ndarray]:
    """One corrupted copy of every image and caption for opt-in training ``names``: a corruption
    of the item's modality and a severity 1..5, drawn per item (items of a modality with no
    listed corruption stay clean). Also returns each image's and caption's severity / 5.

    ``images``: an (N, H, W, 3) uint8 array (corrupted as an array) or a sequence of HxWx3
    arrays of any sizes (real data; corrupted one by one into a list)."""
    if not isinstance(images, np.ndarray):
        return _corrupt_views_list(images, captions, names, seed)
    rng = np.random.default_rng([training_corruption_seed(seed), 7])
    seed_c = training_corruption_seed(seed)
    image_names = [n for n in names if corruptions.get(n).modality == "image"]
    text_names = [n for n in names if corruptions.get(n).modality == "text"]
    out_images = images.copy()
    image_sev, text_sev = np.zeros(len(images)), np.zeros(len(captions))
    if image_names:
        pick, sev = rng.integers(0, len(image_names), len(images)), rng.integers(1, 6, len(images))
        image_sev = sev / 5.0
        for c, name in enumerate(image_names):
            for s in range(1, 6):
                sel = np.flatnonzero((pick == c) & (sev == s))
                if len(sel):
                    out_images[sel] = corruptions.apply_batch(name, images[sel], s, seed=seed_c, sample_ids=sel)
    out_caps = list(captions)
    if text_names:
        pick, sev = rng.integers(0, len(text_names), len(captions)), rng.integers(1, 6, len(captions))
        text_sev = sev / 5.0
        for j, cap in enumerate(captions):
            out_caps[j] = corruptions.apply(text_names[pick[j]], cap, int(sev[j]), seed=seed_c, sample_id=j)
    return out_images, out_caps, image_sev, text_sev


def _corrupt_views_list(images: Sequence[np.ndarray], captions: list[str], names: Sequence[str],
                        seed: int) -> tuple[list[np.ndarray], list[str], np.ndarray, np.ndarray]:
    """:func:`corrupt_views` for a sequence of images of any sizes: the same draws (the same
    generator, consumed in the same order), applied per image."""
    n = len(images)
    rng = np.random.default_rng([training_corruption_seed(seed), 7])
    seed_c = training_corruption_seed(seed)
    image_names = [c for c in names if corruptions.get(c).modality == "image"]
    text_names = [c for c in names if corruptions.get(c).modality == "text"]
    out_images = [np.asarray(images[i]) for i in range(n)]
    image_sev, text_sev = np.zeros(n), np.zeros(len(captions))
    if image_names:
        pick, sev = rng.integers(0, len(image_names), n), rng.integers(1, 6, n)
        image_sev = sev / 5.0
        for i in range(n):
            out_images[i] = corruptions.apply(image_names[pick[i]], out_images[i], int(sev[i]), seed=seed_c, sample_id=i)
    out_caps = list(captions)
    if text_names:
        pick, sev = rng.integers(0, len(text_names), len(captions)), rng.integers(1, 6, len(captions))
        text_sev = sev / 5.0
        for j, cap in enumerate(captions):
            out_caps[j] = corruptions.apply(text_names[pick[j]], cap, int(sev[j]), seed=seed_c, sample_id=j)
    return out_images, out_caps, image_sev, text_sev


class FeatureEncoder(Protocol):
    """What fusion training needs from a frozen encoder (the embedded :class:`DualEncoder`, the
    open_clip and Hugging Face wrappers of :mod:`mafs_bench.models.backends`)."""

    def encode_images(self, images: Any) -> ImageFeatures: ...

    def encode_texts(self, texts: list[str], length: int | None = None) -> TextFeatures: ...

    def text_length(self, texts: list[str]) -> int: ...

    @property
    def logit_scale(self) -> torch.Tensor: ...


@torch.no_grad()
def build_fusion_data(model: FeatureEncoder, images: Any, captions: Sequence[Sequence[str]],
                      bank_images: Any, bank_captions: Sequence[str], cfg: FusionTrainConfig) -> FusionTrainData:
    """Encode the training pool (and the reference items, which are never trained on).

    Args:
        model: the frozen encoder; features come back on its device.
        images: N uint8 HxWx3 training images (an (N, H, W, 3) array or a sequence of arrays);
            captions: their caption lists.
        bank_images: K held-out training images, likewise; bank_captions: one caption each.
    """
    flat = [c for caps in captions for c in caps]
    caption_image = torch.tensor([i for i, caps in enumerate(captions) for _ in caps])
    img_views = [model.encode_images(images)]
    cap_views = [flat]
    strengths: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
    if cfg.corruptions:
        noisy_images, noisy_caps, image_sev, text_sev = corrupt_views(images, flat, cfg.corruptions, cfg.seed)
        img_views.append(model.encode_images(noisy_images))
        cap_views.append(noisy_caps)
        strengths = (torch.as_tensor(image_sev, dtype=torch.float32), torch.as_tensor(text_sev, dtype=torch.float32))
    length = model.text_length([c for caps in cap_views for c in caps])
    txt_views = [model.encode_texts(caps, length=length) for caps in cap_views]
    scale = float(model.logit_scale.detach())
    reference = ReferencePool(model.encode_images(bank_images).emb, model.encode_texts(list(bank_captions)).emb,
                              img_views[0].emb, txt_views[0].emb, caption_image, scale)
    image_captions = [torch.nonzero(caption_image == i).flatten() for i in range(len(images))]
    clean_i, clean_t = img_views[0], txt_views[0]
    return FusionTrainData(img_views, txt_views, caption_image, image_captions,
                           _on_cpu(FeatureStats.of(clean_i.emb, clean_i.tokens)),
                           _on_cpu(FeatureStats.of(clean_t.emb, clean_t.tokens, clean_t.mask)),
                           reference, scale, *strengths)


def _on_cpu(stats: FeatureStats) -> FeatureStats:
    """``stats`` on the CPU, where the training draws are made (a no-op for CPU features)."""
    return FeatureStats(stats.emb_mean.cpu(), stats.tok_mean.cpu(), stats.tok_std.cpu())


def _select_view(views: list, view: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows ``idx`` of every field of the features, each row from view ``view[b]``."""
    fields = [f for f in ("emb", "tokens", "mask") if hasattr(views[0], f)]
    device = views[0].emb.device
    idx, view = idx.to(device), view.to(device)
    out = []
    for f in fields:
        rows = getattr(views[0], f)[idx]
        for v in range(1, len(views)):
            sel = view == v
            if sel.any():
                rows[sel] = getattr(views[v], f)[idx[sel]]
        out.append(rows)
    return tuple(out)


def _hard_negatives(sim: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For each row, a column sampled with probability softmax(sim) excluding the diagonal.

    Drawn on the CPU from the CPU generator ``gen`` (so the draws do not depend on the device
    the head trains on); returns CPU indices."""
    weights = torch.softmax(sim.float().cpu(), dim=1).clone()
    weights.fill_diagonal_(0.0)
    weights = weights + 1e-8 * (1 - torch.eye(len(sim)))
    return torch.multinomial(weights, 1, generator=gen).flatten()


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Run the block with ``torch.use_deterministic_algorithms(True)``, then restore the caller's setting.

    ``warn_only``: an op without a deterministic kernel warns instead of failing the run.
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@dataclass
class TrainState:
    """A training run part way: what :func:`train_fusion` needs to go on exactly where it stopped.

    Attributes:
        step: steps done.
        losses: the loss of each step done.
        method: the head's ``state_dict`` after ``step`` steps.
        optimizer: the AdamW ``state_dict`` (moments and step counts).
        generator: ``torch.Generator.get_state()`` of the training draws (uint8 tensor).
    """

    step: int
    losses: list[float]
    method: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor = field(repr=False)


def train_fusion(method: FusionMethod, data: FusionTrainData, cfg: FusionTrainConfig,
                 progress: Progress | None = None, resume: TrainState | None = None,
                 checkpoint: Callable[[TrainState], None] | None = None, checkpoint_every: int = 0) -> list[float]:
    """Train ``method`` with ITM + hard negatives (+ its regulariser). Returns loss per step.

    Bit-reproducible for a given seed, data and thread count (see :func:`deterministic_algorithms`).
    Every method draws the same batches, negatives and degradations from the same seed: the
    draws never depend on the method, nor on the device (they come from a CPU generator);
    the head trains on the device of ``data``'s features.

    Args:
        progress: called after every step with (steps done, steps, loss).
        resume: a :class:`TrainState` of this very training (same method, data and config) to
            continue from; the result equals that of an uninterrupted run.
        checkpoint: called with the :class:`TrainState` every ``checkpoint_every`` steps (not
            after the last one), before ``progress``.
    """
    method.fit_reference(data.reference)
    with deterministic_algorithms():
        return _train_fusion_steps(method, data, cfg, progress, resume, checkpoint, checkpoint_every)


def _train_fusion_steps(method: FusionMethod, data: FusionTrainData, cfg: FusionTrainConfig,
                        progress: Progress | None, resume: TrainState | None = None,
                        checkpoint: Callable[[TrainState], None] | None = None, checkpoint_every: int = 0) -> list[float]:
    """The training loop of :func:`train_fusion`."""
    gen = augmentation_generator(cfg.seed)
    n = len(data.images[0])
    device = data.images[0].emb.device
    groups = method.param_groups(cfg.lr)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    image_augs = [a for a in cfg.augmentations if AUGMENTATIONS.get(a).modality == "image"]
    text_augs = [a for a in cfg.augmentations if AUGMENTATIONS.get(a).modality == "text"]
    if len(data.images) > 1:  # opt-in corruptions: their view is one more choice of degradation
        image_augs, text_augs = [*image_augs, CORRUPTED_VIEW], [*text_augs, CORRUPTED_VIEW]
    losses: list[float] = []
    first = 0
    if resume is not None:
        if not 0 <= resume.step <= cfg.steps:
            raise ValueError(f"cannot resume at step {resume.step} of a {cfg.steps}-step training")
        method.load_state_dict(resume.method)
        opt.load_state_dict(resume.optimizer)
        gen.set_state(resume.generator)
        losses, first = list(resume.losses), resume.step
    method.train()
    for step in range(first, cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr) * group.get("lr_scale", 1.0)
        img_idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
        cap_idx = torch.stack([c[torch.randint(len(c), (1,), generator=gen)] for c in
                               (data.image_captions[i] for i in img_idx.tolist())]).flatten()
        imgs, s_img = _degraded_batch(data.images, img_idx, image_augs, cfg.augment_prob, data.image_stats,
                                      data.image_view_strength, gen)
        txts, s_txt = _degraded_batch(data.texts, cap_idx, text_augs, cfg.augment_prob, data.text_stats,
                                      data.text_view_strength, gen)
        with torch.no_grad():
            sim = imgs.emb @ txts.emb.T
            neg_txt = _hard_negatives(sim * data.logit_scale, gen)
            neg_img = _hard_negatives(sim.T * data.logit_scale, gen)
        b = torch.arange(len(img_idx))
        pair_img = torch.cat([b, b, neg_img])
        pair_txt = torch.cat([b, neg_txt, b])
        # one caption per image group: G = 3B pairs, C = 1
        img_prep, txt_prep = method.prepare_images(imgs), method.prepare_texts(txts)
        strength = torch.stack([s_img[pair_img], s_txt[pair_txt]], dim=-1)[:, None].to(device)
        labels = torch.cat([torch.ones(len(b)), torch.zeros(2 * len(b))]).long().to(device)
        pi, pt = pair_img.to(device), pair_txt.to(device)
        out = method.pair_forward(gather(img_prep, pi), gather(txt_prep, pt[:, None]),
                                  PairSignals(sim[pi, pt, None], strength, labels.bool()[:, None]))
        loss = method.task_loss(out.itm_logits[:, 0].float(), labels, out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if checkpoint is not None and checkpoint_every > 0 and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.steps:
            checkpoint(TrainState(step + 1, list(losses), method.state_dict(), opt.state_dict(), gen.get_state()))
        if progress:
            progress(step + 1, cfg.steps, losses[-1])
    method.eval()
    return losses


#: the name of the opt-in corrupted view among a batch's degradation choices
CORRUPTED_VIEW = "corrupted_view"


def _degraded_batch(views: list, idx: torch.Tensor, names: list[str], prob: float, stats: FeatureStats,
                    view_strength: torch.Tensor | None,
                    gen: torch.Generator) -> tuple[ImageFeatures | TextFeatures, torch.Tensor]:
    """Rows ``idx`` of the clean view, each degraded with probability ``prob`` by one of ``names``
    (uniform choice) at a strength drawn from U(0, 1); returns the features and each row's
    strength (0 = untouched; the corrupted view's severity / 5). The choices are drawn for every
    row; the augmentations then draw for the rows they degrade. No draw depends on the method."""
    fields = _select_view(views, torch.zeros(len(idx), dtype=torch.long), idx)
    feature_augs = [n for n in names if n != CORRUPTED_VIEW]
    b = len(idx)
    hit = torch.rand(b, generator=gen) < prob
    pick = torch.randint(max(1, len(names)), (b,), generator=gen)
    strength = torch.rand(b, generator=gen)
    emb, tokens = fields[0].clone(), fields[1].clone()
    rest = list(fields[2:])
    applied = torch.zeros(b)
    if CORRUPTED_VIEW in names:
        sel = hit & (pick == names.index(CORRUPTED_VIEW))
        if sel.any():
            applied[sel] = view_strength[idx[sel]] if view_strength is not None else 0.5
            view_fields = _select_view(views, torch.ones(int(sel.sum()), dtype=torch.long), idx[sel])
            on = sel.to(emb.device)
            emb[on], tokens[on] = view_fields[0], view_fields[1]
            for r, f in zip(rest, view_fields[2:]):
                r[on] = f
    for name in feature_augs:
        sel = hit & (pick == names.index(name))
        if sel.any():
            on = sel.to(emb.device)
            emb[on], tokens[on] = AUGMENTATIONS.get(name).fn(emb[on], tokens[on], strength[sel].to(emb.device), stats, gen)
            applied[sel] = strength[sel]
    feats = ImageFeatures(emb, tokens) if not rest else TextFeatures(emb, tokens, rest[0])
    return feats, applied
