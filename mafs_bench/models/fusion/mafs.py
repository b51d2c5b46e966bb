"""MA-AFS: Modality-Aware Adaptive Fusion Scheduling (arXiv 2506.12733), our specification.

Only the paper's abstract is public; REFERENCES.md s1 holds the specification implemented here:

* cues per pair: visual entropy ``H_v`` (the image against a text bank), textual entropy ``H_t``
  (the caption against an image bank), both divided by log K, and agreement ``a = cos(v, t)``;
* scheduler: MLP (cues -> 32 -> 2, ReLU), ``softmax(logits / T)`` = ``(alpha_v, alpha_t)``;
* fusion inside cross-attention fusion layers: ``h = LN(alpha_t * h_text + alpha_v * CrossAttn(h_text, V))``
  then ``LN(h + FFN(h))`` (:class:`FusionStack`), masked mean over the query states and an ITM
  head ``Linear(d, 2)``;
* loss: ITM cross-entropy + ``kl_weight * KL(alpha || uniform)`` (default 0.01), plus the
  optional consistency term of the sibling paper DMS (arXiv 2506.12724),
  ``consistency_weight * sum_m alpha_m * ||z - z_m||^2`` with ``z`` the fused state, ``z_t``
  the text query state and ``z_v`` the attended image context (mean squared difference per
  channel; default weight 0, see below).

Where we depart from REFERENCES.md s1, and why. Measured with ``python
benchmarks/mafs_variants.py`` at commit 7eb00e5 (the quickstart's encoder of then, ITC only, its
training pool and recipe, training seed 0; retrieval on 1000 test images x 5 captions, k 16; Spearman between severity 0/1/3/5 and the
per-sample weight of the corrupted modality; the issue "An honest fusion comparison" asks for
< -0.3; the README's "MA-AFS variants" table lists every variant's numbers):

* **Fixed reference banks** (option ``bank_size``, default 1000). The specification takes the
  banks from the task's candidate set (the retrieval gallery). In training that set was the
  clean training pool; at test it is the cell's gallery, which an image corruption corrupts as a
  whole, so the same caption got a different ``H_t`` at test than in training. Here both banks
  are clean embeddings of training-split items that the head never trains on (``fit_reference``),
  stored with the weights, and used unchanged in training and at test, for every task. With them
  ``H_v`` rises only under image corruptions and ``H_t`` only under text ones.
* **Bank agreement instead of pair agreement** (option ``cues``; default
  ``[h_v, h_t, a_v, a_t]``). The specification's agreement ``a = cos(v, t)`` is the ITC match
  score itself, the one cue that tells a positive from a hard negative. Trained on the ITM loss
  with it, the scheduler learns a discriminative function of it: retrieval improves (clean
  r_mean 0.847 against fixed-sum's 0.817) while alpha_v *rises* as the image degrades (Spearman
  +0.49 gaussian_noise, +0.63 motion_blur, +0.76 occlusion). We keep the cross-modal agreement
  idea per item instead: ``a_v`` is the image's largest cosine with the text bank (does it look
  like the image of *some* known caption?), ``a_t`` the caption's largest cosine with the image
  bank. Neither depends on the pair, so neither hands the ITM head the answer. The pair
  agreement stays available as a cue (``cues: [h_v, h_t, agreement]`` is the specification's
  input) for ablations.
* **A reliability target for the scheduler** (``reliability_weight``, default 1, and
  ``detach_alpha``, default true). With only the ITM loss (and the KL term), the scheduler has
  no reason to trust a degraded side less: image-text matching needs both sides, and the loss
  is lowest when alpha carries whatever separates positives from negatives. With the item-level
  cues and the ITM loss alone: Spearman +0.11 / +0.27 / +0.45 on the three image corruptions.
  The training degradations' strengths are known, so the scheduler is trained to predict each
  side's reliability, ``(1 - s_v, 1 - s_t)`` normalised (:func:`reliability_target`), by
  cross-entropy; with ``detach_alpha`` the fusion uses alpha but the ITM loss does not train
  the scheduler, so alpha stays a reliability estimate.
* **Standardised cues**: the scheduler reads ``(cue - mean) / std`` with the statistics of the
  clean training pool (buffers ``cue_mean``, ``cue_std``).
* **Scheduler learning rate** ``scheduler_lr_scale`` (default 10) times the head's: its last
  layer starts at zero (= the fixed-sum weights) and must move within a short recipe.
* The DMS consistency term is implemented (``consistency_weight``) and off by default (see the
  README's table for its effect).

What the default reaches: Spearman -0.52 gaussian_noise, -0.31 motion_blur, -0.56 occlusion,
-0.23 keyboard, -0.08 word_delete. The text corruptions stay above the target: on templated
captions a typo or a deleted word leaves the caption looking like a valid caption, so no
per-item cue sees it (measured on the quickstart's fusion_cues.csv: under word_delete at
severity 5 the mean ``a_t`` falls only from 0.956 to 0.944); only the pair agreement does, and
that cue is the ITC score. The price of adaptation: clean r_mean 0.791 against fixed-sum's 0.817
on the same seed, since the ITM head must cope with weights that move.

On VQA (:meth:`ScheduledFusion.setup_answers`) the text bank is the answer prototypes, as the
specification says, and the same reliability target trains the scheduler. It barely adapts
there: Spearman -0.11 gaussian_noise, +0.14 motion_blur, -0.20 occlusion, +0.02 keyboard, -0.04
word_delete (3 seeds, the ITC-only encoder before 6a536ac; README, "VQA", has the current
quickstart's), because an image degraded by blur looks more like a single
answer word (higher bank agreement), not less; with held-out captions as the text bank the
image corruptions reach -0.27 / -0.15 / -0.31 (``python benchmarks/mafs_vqa_bank.py``).

Which text states are the queries ``h_text`` (option ``queries``) is our choice, not the paper's:

* ``"cls"`` (default): the caption's pooled state (the text tower's end token, where it pools),
  as ALBEF's ITM reads its [CLS]. One query per pair.
* ``"tokens"``: every caption token. Measured on this project's 2-core CPU, this scores about
  6,000 pairs/s against about 400,000 for ``"cls"``; too slow for the embedded default; kept for GPUs.

With ``alpha`` fixed at (0.5, 0.5) the same network is the ``fixed_sum`` baseline, which makes
the ablation exact (see ``fixed_sum.py``). Also our choice: the ranking score is the ITM match
logit alone, as for ALBEF, so that the only difference to ``fixed_sum`` is the scheduling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..encoder import ImageFeatures, TextFeatures
from .base import CUE_NAMES, FUSIONS, AnswerOutput, AnswerSpace, FusionMethod, PairOutput, PairSignals, Prepared, ReferencePool
from .blocks import FusionStack, Scheduler, end_token, kl_to_uniform, masked_mean, normalised_entropy
from .caption_blocks import IMAGE_CUES, ScheduledConditioner

DEFAULT_CUES: tuple[str, ...] = ("h_v", "h_t", "a_v", "a_t")


class ScheduledFusion(FusionMethod):
    """The MA-AFS network; ``fixed_alpha_v`` set gives the fixed-weight variant (no scheduler).

    Args:
        image_width, text_width: token widths of the encoder's towers.
        width, heads, layers, ffn_ratio: fusion stack size.
        scheduler_hidden, temperature: scheduler MLP width and softmax temperature.
        kl_weight: weight of KL(alpha || uniform).
        consistency_weight: weight of the DMS consistency term (0 = off).
        reliability_weight: weight of the reliability target's cross-entropy (0 = off).
        detach_alpha: the fusion uses alpha without passing the task loss's gradient to the
            scheduler (it then learns from the reliability target and the regularisers only).
        reliability_pairs: ``"all"`` training pairs or only ``"matched"`` ones for the target.
        cues: scheduler inputs, a non-empty subset of :data:`CUE_NAMES`
            (``h_v, h_t, agreement, a_v, a_t``).
        bank_size: rows of each reference bank (taken by :meth:`fit_reference`).
        scheduler_lr_scale: the scheduler's learning rate relative to the head's.
        fixed_alpha_v: constant image weight (the ``fixed_sum`` ablation); None = scheduled.
        queries: ``"cls"`` or ``"tokens"`` (module docstring).

    Raises:
        ValueError: unknown ``queries``, ``reliability_pairs`` or cue names, empty ``cues``,
            ``bank_size < 2``.
    """

    network = "scheduled_fusion"
    tasks = frozenset({"retrieval", "vqa", "captioning"})

    def __init__(self, image_width: int, text_width: int, width: int = 128, heads: int = 8, layers: int = 2,
                 ffn_ratio: int = 2, scheduler_hidden: int = 32, temperature: float = 1.0, kl_weight: float = 0.01,
                 consistency_weight: float = 0.0, reliability_weight: float = 1.0, detach_alpha: bool = True,
                 reliability_pairs: str = "all",
                 cues: Sequence[str] = DEFAULT_CUES,
                 bank_size: int = 1000,
                 scheduler_lr_scale: float = 10.0, fixed_alpha_v: float | None = None, queries: str = "cls",
                 **options: Any) -> None:
        cues = tuple(cues)
        super().__init__(image_width, text_width, width=width, heads=heads, layers=layers, ffn_ratio=ffn_ratio,
                         scheduler_hidden=scheduler_hidden, temperature=temperature, kl_weight=kl_weight,
                         consistency_weight=consistency_weight, reliability_weight=reliability_weight,
                         detach_alpha=detach_alpha, reliability_pairs=reliability_pairs,
                         cues=list(cues), bank_size=bank_size,
                         scheduler_lr_scale=scheduler_lr_scale, fixed_alpha_v=fixed_alpha_v, queries=queries,
                         **options)
        if queries not in ("cls", "tokens"):
            raise ValueError(f"fusion option queries must be 'cls' or 'tokens', got {queries!r}")
        unknown = [c for c in cues if c not in CUE_NAMES]
        if unknown or not cues:
            raise ValueError(f"fusion option cues must be a non-empty subset of {list(CUE_NAMES)}, got {list(cues)}")
        if bank_size < 2:
            raise ValueError(f"fusion option bank_size must be >= 2, got {bank_size}")
        self.queries = queries
        self.text_in = nn.Linear(text_width, width)
        self.stack = FusionStack(image_width, width, heads, layers, ffn_ratio)
        self.head = nn.Linear(width, 2)
        self.kl_weight = kl_weight
        self.consistency_weight = consistency_weight
        self.reliability_weight = reliability_weight
        self.detach_alpha = detach_alpha
        if reliability_pairs not in ("all", "matched"):
            raise ValueError(f"fusion option reliability_pairs must be 'all' or 'matched', got {reliability_pairs!r}")
        self.reliability_pairs = reliability_pairs
        self.fixed_alpha_v = fixed_alpha_v
        self.bank_size = bank_size
        self.scheduler_lr_scale = scheduler_lr_scale
        self.cue_index = [CUE_NAMES.index(c) for c in cues]
        self.scheduler = Scheduler(scheduler_hidden, temperature, len(cues)) if fixed_alpha_v is None else None
        # reference banks and cue statistics: set by fit_reference, stored with the weights
        self.register_buffer("bank_images", torch.zeros(0, 1))
        self.register_buffer("bank_texts", torch.zeros(0, 1))
        self.register_buffer("cue_scale", torch.ones(()))
        self.register_buffer("cue_mean", torch.zeros(len(CUE_NAMES)))
        self.register_buffer("cue_std", torch.ones(len(CUE_NAMES)))

    # --- reference banks and cues -------------------------------------------------------------

    def fit_reference(self, pool: ReferencePool) -> None:
        """Keep ``bank_size`` held-out training items as banks and the pool's cue statistics.

        Statistics (clean features): H_v and a_v over the pool's images, H_t and a_t over its
        captions, the agreement over matched pairs and as many shuffled pairs (so that it spans
        positives and negatives).
        """
        k = min(self.bank_size, len(pool.bank_images), len(pool.bank_texts))
        if k < 2:
            raise ValueError(f"MA-AFS needs at least 2 reference items per bank, got {k}")
        self.bank_images = pool.bank_images[:k].float().clone()
        self.bank_texts = pool.bank_texts[:k].float().clone()
        self.cue_scale = torch.tensor(float(pool.logit_scale))
        h_v, a_v = self.image_cues(pool.images)
        h_t, a_t = self.text_cues(pool.texts)
        matched = (pool.images[pool.caption_image] * pool.texts).sum(-1)
        shuffled = (pool.images[pool.caption_image.roll(1)] * pool.texts).sum(-1)
        agreement = torch.cat([matched, shuffled])
        by_name = {"h_v": h_v, "h_t": h_t, "agreement": agreement, "a_v": a_v, "a_t": a_t}
        self.cue_mean = torch.stack([by_name[c].mean() for c in CUE_NAMES]).float()
        self.cue_std = torch.stack([by_name[c].std() for c in CUE_NAMES]).float().clamp_min(1e-4)

    def image_cues(self, image_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) image embeddings -> (H_v, a_v), each (N,): normalised entropy against the text
        bank and the largest cosine with it."""
        return self._bank_cues(image_emb, self.bank_texts)

    def text_cues(self, text_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, D) caption embeddings -> (H_t, a_t), each (M,), against the image bank."""
        return self._bank_cues(text_emb, self.bank_images)

    def _bank_cues(self, emb: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(bank) < 2:
            raise RuntimeError("MA-AFS has no reference banks: train it (fit_reference) or load trained weights")
        cos = emb @ bank.T
        return normalised_entropy(cos * self.cue_scale, dim=-1), cos.max(-1).values

    # --- the fusion-method hooks --------------------------------------------------------------

    def prepare_images(self, feats: ImageFeatures) -> Prepared:
        out = self.stack.prepare_images(feats.tokens)
        if self.scheduler is not None:
            out["h_v"], out["a_v"] = self.image_cues(feats.emb)
        return out

    def prepare_texts(self, feats: TextFeatures) -> Prepared:
        tokens, mask = feats.tokens, feats.mask
        if self.queries == "cls":
            tokens = end_token(tokens, mask)
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        t = self.text_in(tokens)
        out = {"t": t, "q0": self.stack.prepare_texts(t), "mask": mask}
        if self.scheduler is not None:
            out["h_t"], out["a_t"] = self.text_cues(feats.emb)
        return out

    def cues(self, img: Prepared, txt: Prepared, signals: PairSignals) -> torch.Tensor:
        """(G, C, 5) raw cues of grouped pairs, in :data:`CUE_NAMES` order."""
        shape = signals.itc.shape
        return torch.stack([img["h_v"][:, None].expand(shape), txt["h_t"], signals.itc,
                            img["a_v"][:, None].expand(shape), txt["a_t"]], dim=-1)

    def weights(self, cues: torch.Tensor) -> torch.Tensor:
        """(G, C, 5) raw cues -> (G, C, 2) fusion weights (alpha_v, alpha_t)."""
        if self.scheduler is None:
            a = torch.full(cues.shape[:-1], float(self.fixed_alpha_v), device=cues.device, dtype=cues.dtype)
            return torch.stack([a, 1.0 - a], dim=-1)
        z = (cues - self.cue_mean) / self.cue_std
        return self.scheduler(z[..., self.cue_index])

    def fuse(self, img: Prepared, txt: Prepared,
             signals: PairSignals) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, dict[str, torch.Tensor]]:
        """The scheduled fusion of grouped pairs: pooled fused state (G, C, W), the weights
        (None for fixed weights: constant weights carry no per-sample information), the cues
        and the training-only tensors of :meth:`regulariser`."""
        cues = None if self.scheduler is None else self.cues(img, txt, signals)
        alpha = self.weights(signals.itc[..., None] if cues is None else cues)
        h, attended = self.stack.forward_with_context(txt["t"], img, alpha.detach() if self.detach_alpha else alpha,
                                                      txt.get("q0"))
        pooled = masked_mean(h, txt["mask"])
        aux: dict[str, torch.Tensor] = {}
        if self.training and self.scheduler is not None:
            if self.consistency_weight > 0:
                aux.update(z=pooled, z_v=masked_mean(attended, txt["mask"]), z_t=masked_mean(txt["t"], txt["mask"]))
            if self.reliability_weight > 0 and signals.strength is not None:
                aux["reliability"] = reliability_target(signals.strength)
                if self.reliability_pairs == "matched" and signals.matched is not None:
                    aux["reliability_mask"] = signals.matched.float()
        return pooled, alpha if self.scheduler is not None else None, cues, aux

    def pair_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> PairOutput:
        pooled, alpha, cues, aux = self.fuse(img, txt, signals)
        return PairOutput(self.head(pooled), alpha, cues, aux or None)

    def setup_answers(self, space: AnswerSpace, embed_dim: int) -> None:
        """VQA: the head classifies the fused state over the answers. The reference banks of
        :meth:`fit_reference` are then held-out training images and the answer prototypes
        (the answers' text embeddings), so ``H_v`` is the image's entropy over the answers."""
        self.head = nn.Linear(self.head.in_features, len(space.answers))
        self.answer_space = space

    def answer_forward(self, img: Prepared, txt: Prepared, signals: PairSignals) -> AnswerOutput:
        pooled, alpha, cues, aux = self.fuse(img, txt, signals)
        return AnswerOutput(self.head(pooled), alpha, cues, aux or None)

    def regulariser(self, out: PairOutput | AnswerOutput) -> torch.Tensor:
        if self.scheduler is None or out.alpha is None:
            return super().regulariser(out)
        loss = self.kl_weight * kl_to_uniform(out.alpha)
        aux = out.aux or {}
        if "reliability" in aux:  # cross-entropy of alpha against the reliability target
            ce = -(aux["reliability"] * out.alpha.clamp_min(1e-8).log()).sum(-1)
            mask = aux.get("reliability_mask")
            ce = ce.mean() if mask is None else (ce * mask).sum() / mask.sum().clamp_min(1.0)
            loss = loss + self.reliability_weight * ce
        if "z" in aux:
            z = out.aux["z"]
            per_mod = torch.stack([(z - out.aux["z_v"]).pow(2).mean(-1), (z - out.aux["z_t"]).pow(2).mean(-1)], dim=-1)
            loss = loss + self.consistency_weight * (out.alpha * per_mod).sum(-1).mean()
        return loss

    def caption_conditioner(self, image_width: int, embed_dim: int, width: int, heads: int,
                            layers: int) -> ScheduledConditioner:
        """Scheduled fusion of the image into the decoder's language stream in every layer
        (:class:`~.caption_blocks.ScheduledConditioner`), with this method's scheduler options;
        the scheduler reads the image cues among ``cues`` (``h_v``, ``a_v``) against a fixed
        caption bank. ``fixed_sum``: weights pinned at ``fixed_alpha_v``.

        Raises:
            ValueError: ``cues`` names no image cue.
        """
        o = self.options
        cues = [c for c in o["cues"] if c in IMAGE_CUES]
        if self.fixed_alpha_v is None and not cues:
            raise ValueError(f"captioning: the MA-AFS scheduler reads image cues {list(IMAGE_CUES)}, "
                             f"and fusion option cues {o['cues']} has none")
        return ScheduledConditioner(image_width, width, heads, layers, cues=cues or IMAGE_CUES, bank_size=o["bank_size"],
                                    scheduler_hidden=o["scheduler_hidden"], temperature=o["temperature"],
                                    kl_weight=o["kl_weight"], reliability_weight=o["reliability_weight"],
                                    detach_alpha=o["detach_alpha"], scheduler_lr_scale=o["scheduler_lr_scale"],
                                    fixed_alpha_v=self.fixed_alpha_v)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        if self.scheduler is None:
            return super().param_groups(lr)
        sched = list(self.scheduler.parameters())
        ids = {id(p) for p in sched}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest, "lr": lr, "lr_scale": 1.0},
                {"params": sched, "lr": lr * self.scheduler_lr_scale, "lr_scale": self.scheduler_lr_scale}]


#: reliability of a fully degraded side, so that the target weight stays inside (0, 1)
RELIABILITY_FLOOR = 0.05


def reliability_target(strength: torch.Tensor) -> torch.Tensor:
    """(..., 2) degradation strengths (image, caption) in [0, 1] -> (..., 2) target weights.

    Each side's reliability is ``1 - s`` (floored at :data:`RELIABILITY_FLOOR`); the target
    weights are the reliabilities normalised to sum to one: (0.5, 0.5) for two clean sides,
    about (0.05, 0.95) for a destroyed image and a clean caption.
    """
    r = (1.0 - strength).clamp_min(RELIABILITY_FLOOR)
    return r / r.sum(-1, keepdim=True)


@FUSIONS.register("mafs")
class MAAFS(ScheduledFusion):
    """MA-AFS with the learned scheduler (see module docstring)."""
