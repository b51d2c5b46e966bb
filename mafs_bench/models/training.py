"""Training the embedded models: the contrastive dual encoder, then fusion heads on frozen features.

Every fusion method is trained with the same data, steps, augmentation and seed (REFERENCES.md
s1 asks for an exact MA-AFS vs fixed-sum ablation). Training recipe, ours:

* Dual encoder: open_clip's ``ClipLoss`` on (image, one random caption of it) pairs from a fixed
  pool of training images, AdamW with warm-up and cosine decay.
* Fusion heads: image-text matching (ITM) with ALBEF's hard negatives (for each image a caption
  and for each caption an image, sampled from the in-batch ITC similarities), on frozen encoder
  features. So that a scheduler can learn when to trust which modality, each pair's image is,
  with probability ``augment_prob``, a corrupted copy (an ``augment_image`` corruption at a random
  severity), and likewise its caption; all methods see exactly the same pairs.

Randomness comes from ``torch.Generator`` / ``numpy.random.Generator`` objects seeded from the
config's seed; nothing touches a global RNG. Fusion heads train under torch's deterministic
algorithms (:func:`deterministic_algorithms`): with the default CPU kernels, two trainings of the
same head from the same seed differ in the low bits of every weight (an accumulation in the
backward pass sums in a thread-dependent order), and after 300 steps in the third decimal of
retrieval scores, so a fresh run could not reproduce a stored result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

import corruptions

from .encoder import DualEncoder, ImageFeatures, TextFeatures
from .fusion import FusionMethod, PairSignals, gather

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Contrastive training of the dual encoder."""

    steps: int = 340
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 40
    #: "bf16" runs forward passes under bfloat16 autocast (about 1.3x faster on CPUs with AMX/AVX512-BF16)
    precision: str = "bf16"
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FusionTrainConfig:
    """ITM training of a fusion head on frozen encoder features."""

    steps: int = 300
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 30
    augment_prob: float = 0.3
    augment_image: tuple[str, ...] = ("gaussian_noise", "motion_blur", "occlusion")
    augment_text: tuple[str, ...] = ("word_delete", "keyboard")
    seed: int = 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["augment_image"], d["augment_text"] = list(self.augment_image), list(self.augment_text)
        return d


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_encoder(model: DualEncoder, images: np.ndarray, captions: Sequence[Sequence[str]],
                  cfg: EncoderTrainConfig, progress: Progress | None = None) -> list[float]:
    """Train ``model`` contrastively on ``images`` (N,H,W,3 uint8) and their caption lists.

    Returns the loss per step.
    """
    if cfg.precision not in ("fp32", "bf16"):
        raise ValueError(f"encoder_train.precision must be 'fp32' or 'bf16', got {cfg.precision!r}")
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(images)
    per_image = torch.tensor([len(c) for c in captions])
    token_ids = [model.tokenizer(list(c)) for c in captions]
    loss_fn = ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr)
        idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
        pick = (torch.rand(len(idx), generator=gen) * per_image[idx]).long()
        ids = torch.stack([token_ids[i][j] for i, j in zip(idx.tolist(), pick.tolist())])
        with torch.autocast(model.mean.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            v, _ = model.forward_images(model.preprocess(images[idx.numpy()]))
            t, _ = model.forward_texts(ids.to(model.mean.device))
        loss = loss_fn(F.normalize(v.float(), dim=-1), F.normalize(t.float(), dim=-1), model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.clip.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if progress:
            progress(step + 1, cfg.steps, losses[-1])
    model.eval()
    return losses


@dataclass
class FusionTrainData:
    """Frozen features of the fusion training pool: two views (clean, corrupted) of each side."""

    images: list[ImageFeatures]  # [clean, corrupted], each (N, ...)
    texts: list[TextFeatures]  # [clean, corrupted], each (M, ...)
    caption_image: torch.Tensor  # (M,)
    image_captions: list[torch.Tensor]  # captions of each image
    h_v: list[torch.Tensor]  # per view, (N,)
    h_t: list[torch.Tensor]  # per view, (M,)
    logit_scale: float


def corrupt_views(images: np.ndarray, captions: list[str], cfg: FusionTrainConfig,
                  seed: int) -> tuple[np.ndarray, list[str]]:
    """One corrupted copy of every image and caption: a corruption from the config's lists and a
    severity 1..5, both drawn per sample from a generator seeded by ``seed``."""
    rng = np.random.default_rng([seed, 7])
    out_images = images.copy()
    names_i = rng.integers(0, len(cfg.augment_image), len(images))
    sev_i = rng.integers(1, 6, len(images))
    for c, name in enumerate(cfg.augment_image):
        for s in range(1, 6):
            sel = np.flatnonzero((names_i == c) & (sev_i == s))
            if len(sel):
                out_images[sel] = corruptions.apply_batch(name, images[sel], s, seed=seed, sample_ids=sel)
    out_caps = list(captions)
    names_t = rng.integers(0, len(cfg.augment_text), len(captions))
    sev_t = rng.integers(1, 6, len(captions))
    for j, cap in enumerate(captions):
        out_caps[j] = corruptions.apply(cfg.augment_text[names_t[j]], cap, int(sev_t[j]), seed=seed, sample_id=j)
    return out_images, out_caps


@torch.no_grad()
def build_fusion_data(model: DualEncoder, images: np.ndarray, captions: Sequence[Sequence[str]],
                      cfg: FusionTrainConfig) -> FusionTrainData:
    """Encode the pool in both views and compute the scheduler cues against clean banks."""
    flat = [c for caps in captions for c in caps]
    caption_image = torch.tensor([i for i, caps in enumerate(captions) for _ in caps])
    noisy_images, noisy_caps = corrupt_views(images, flat, cfg, cfg.seed)
    img_views = [model.encode_images(images), model.encode_images(noisy_images)]
    length = max(len(model.tokenizer.encode(c)) for c in [*flat, *noisy_caps])
    txt_views = [model.encode_texts(flat, length=length), model.encode_texts(noisy_caps, length=length)]
    scale = float(model.logit_scale.detach())
    from ..tasks.retrieval import normalised_entropy  # the same cue definition as at test time

    text_bank, image_bank = txt_views[0].emb, img_views[0].emb
    h_v = [normalised_entropy(v.emb @ text_bank.T * scale, dim=1) for v in img_views]
    h_t = [normalised_entropy(t.emb @ image_bank.T * scale, dim=1) for t in txt_views]
    image_captions = [torch.nonzero(caption_image == i).flatten() for i in range(len(images))]
    return FusionTrainData(img_views, txt_views, caption_image, image_captions, h_v, h_t, scale)


def _select_images(views: list[ImageFeatures], view: torch.Tensor, idx: torch.Tensor) -> ImageFeatures:
    emb = torch.where(view[:, None].bool(), views[1].emb[idx], views[0].emb[idx])
    tok = torch.where(view[:, None, None].bool(), views[1].tokens[idx], views[0].tokens[idx])
    return ImageFeatures(emb, tok)


def _select_texts(views: list[TextFeatures], view: torch.Tensor, idx: torch.Tensor) -> TextFeatures:
    emb = torch.where(view[:, None].bool(), views[1].emb[idx], views[0].emb[idx])
    tok = torch.where(view[:, None, None].bool(), views[1].tokens[idx], views[0].tokens[idx])
    mask = torch.where(view[:, None].bool(), views[1].mask[idx], views[0].mask[idx])
    return TextFeatures(emb, tok, mask)


def _hard_negatives(sim: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For each row, a column sampled with probability softmax(sim) excluding the diagonal."""
    weights = torch.softmax(sim, dim=1).clone()
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


def train_fusion(method: FusionMethod, data: FusionTrainData, cfg: FusionTrainConfig,
                 progress: Progress | None = None) -> list[float]:
    """Train ``method`` with ITM + hard negatives (+ its regulariser). Returns loss per step.

    Bit-reproducible for a given seed, data and thread count (see :func:`deterministic_algorithms`).
    """
    with deterministic_algorithms():
        return _train_fusion_steps(method, data, cfg, progress)


def _train_fusion_steps(method: FusionMethod, data: FusionTrainData, cfg: FusionTrainConfig,
                        progress: Progress | None) -> list[float]:
    """The training loop of :func:`train_fusion`."""
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(data.images[0])
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    method.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr)
        img_idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
        cap_idx = torch.stack([c[torch.randint(len(c), (1,), generator=gen)] for c in
                               (data.image_captions[i] for i in img_idx.tolist())]).flatten()
        img_view = (torch.rand(len(img_idx), generator=gen) < cfg.augment_prob).long()
        txt_view = (torch.rand(len(cap_idx), generator=gen) < cfg.augment_prob).long()
        imgs = _select_images(data.images, img_view, img_idx)
        txts = _select_texts(data.texts, txt_view, cap_idx)
        h_v = torch.where(img_view.bool(), data.h_v[1][img_idx], data.h_v[0][img_idx])
        h_t = torch.where(txt_view.bool(), data.h_t[1][cap_idx], data.h_t[0][cap_idx])
        with torch.no_grad():
            sim = imgs.emb @ txts.emb.T
            neg_txt = _hard_negatives(sim * data.logit_scale, gen)
            neg_img = _hard_negatives(sim.T * data.logit_scale, gen)
        b = torch.arange(len(img_idx))
        pair_img = torch.cat([b, b, neg_img])
        pair_txt = torch.cat([b, neg_txt, b])
        # one caption per image group: G = 3B pairs, C = 1
        signals = PairSignals(h_v[pair_img, None], h_t[pair_txt, None], sim[pair_img, pair_txt, None])
        img_prep, txt_prep = method.prepare_images(imgs), method.prepare_texts(txts)
        out = method.pair_forward(gather(img_prep, pair_img), gather(txt_prep, pair_txt[:, None]), signals)
        labels = torch.cat([torch.ones(len(b)), torch.zeros(2 * len(b))]).long()
        loss = F.cross_entropy(out.itm_logits[:, 0], labels) + method.regulariser(out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1, cfg.steps, losses[-1])
    method.eval()
    return losses
