"""Image-text retrieval with ITC ranking and ITM re-ranking (the ALBEF/BLIP protocol, REFERENCES.md s2).

1. Rank the whole gallery by ITC (cosine) similarity, both directions.
2. For methods with a fusion network, re-score only the top-k candidates with the method's score
   (ALBEF: ITM match logit; BLIP: ITM + ITC; MA-AFS: ITM); every other entry gets -100.
3. Recall@K: image->text is a hit when any of the image's ground-truth captions is in the top K
   (rank = best rank among them); text->image treats every caption as its own query with one
   ground-truth image (the CLIP_benchmark #7 pitfall).

Ties are counted against the method (a ground truth tied with another candidate ranks below
it), so a method that gives everything the same score cannot look good.

Non-finite scores (NaN, +inf, -inf) are not read as a ranking; each is put where it hurts the
method most, so a diverged head can never gain from its output:

* a ground-truth pair with a non-finite score is not retrieved: it is neither a hit nor a
  competitor. A query none of whose ground truths has a finite score gets rank = the number of
  candidates (M for image->text, N for text->image), a miss at every K, K >= the gallery size
  included;
* any other candidate with a non-finite score ranks above every ground truth of its query, as a
  tie does; -inf on a distractor too (it is a broken output, not "surely no match"). Ranking
  it below would reward a head that breaks on hard negatives; the price is that one NaN
  candidate (a NaN image embedding, say) costs every query that sees it one place.

So turning any finite score into NaN or inf can only lower R@K: an all-NaN matrix gives 0
everywhere. :func:`recall_at_k` also returns ``nonfinite_scores``, the number of
(image, caption) pairs with a non-finite score in either matrix, so that a run can say which
model produced them (the runner warns when it is non-zero).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..models.fusion import FusionMethod, PairOutput, PairSignals, gather
from ..models.fusion.base import CUE_NAMES
from .base import TASKS, EncodedCell, ItemScores, Task, TaskResult, check_gallery

FILL_SCORE = -100.0
RECALL_KS: tuple[int, ...] = (1, 5, 10)


def i2t_ranks(scores: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """For each image, the 0-based rank of its best-ranked ground-truth caption.

    Only ground-truth captions with a finite score count; captions ranked above them are the
    other captions scoring at least as high, or scoring NaN/inf (see the module docstring).

    Args:
        scores: (N_images, M_captions) float scores, higher is better; may hold NaN/inf.
        caption_image: (M,) integer ground-truth image of each caption, in ``[0, N)``.

    Returns:
        (N,) int64 ranks in ``[0, M]``; ``M`` means that no ground-truth caption of the image
        has a finite score (a miss at every K).

    Raises:
        ValueError: ``scores`` is empty or not 2-D, ``caption_image`` does not match it, or an
            image has no caption.
    """
    caption_image = np.asarray(caption_image)
    n, m = _check_scores(scores, caption_image)
    gt = np.zeros((n, m), dtype=bool)
    gt[caption_image, np.arange(m)] = True
    if not gt.any(1).all():
        missing = np.flatnonzero(~gt.any(1))[:5].tolist()
        raise ValueError(f"images without any caption (first ids: {missing})")
    finite = np.isfinite(scores)
    found = gt & finite
    best_gt = np.where(found, scores, -np.inf).max(1, keepdims=True)
    above = (scores >= best_gt) | ~finite
    return np.where(found.any(1), (above & ~gt).sum(1), m).astype(np.int64)


def t2i_ranks(scores: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """For each caption, the 0-based rank of its ground-truth image.

    Images ranked above it are the other images scoring at least as high, or scoring NaN/inf.

    Args:
        scores: (N_images, M_captions) float scores, higher is better; may hold NaN/inf.
        caption_image: (M,) integer ground-truth image of each caption, in ``[0, N)``.

    Returns:
        (M,) int64 ranks in ``[0, N]``; ``N`` means that the ground-truth score is not finite
        (a miss at every K).

    Raises:
        ValueError: ``scores`` is empty or not 2-D, or ``caption_image`` does not match it.
    """
    caption_image = np.asarray(caption_image)
    n, m = _check_scores(scores, caption_image)
    cols = np.arange(m)
    gt_score = scores[caption_image, cols]
    above = (scores >= gt_score[None, :]) | ~np.isfinite(scores)
    above[caption_image, cols] = False  # the ground truth itself
    return np.where(np.isfinite(gt_score), above.sum(0), n).astype(np.int64)


def recall_at_k(i2t_scores: np.ndarray, t2i_scores: np.ndarray, caption_image: np.ndarray,
                ks: tuple[int, ...] = RECALL_KS) -> dict[str, float]:
    """R@K both directions, their mean ``r_mean`` and the count ``nonfinite_scores``.

    Args:
        i2t_scores: (N_images, M_captions) scores ranked per image (rows).
        t2i_scores: (N_images, M_captions) scores ranked per caption (columns); may be the
            same array as ``i2t_scores``.
        caption_image: (M,) integer ground-truth image of each caption.
        ks: the K of R@K.

    Returns:
        ``{"i2t_r<K>": ..., "t2i_r<K>": ..., "r_mean": ..., "nonfinite_scores": ...}``: recalls
        in [0, 1] (a query whose ground truth is not found is a miss at every K, K >= the
        gallery size included), and the number of (image, caption) pairs whose score is NaN or
        inf in either matrix, as a float.

    Raises:
        ValueError: as :func:`i2t_ranks`; or the two matrices differ in shape.
    """
    return recall_with_items(i2t_scores, t2i_scores, caption_image, ks)[0]


def recall_with_items(i2t_scores: np.ndarray, t2i_scores: np.ndarray, caption_image: np.ndarray,
                      ks: tuple[int, ...] = RECALL_KS) -> tuple[dict[str, float], list[ItemScores]]:
    """:func:`recall_at_k` and the per-query hits behind it.

    Returns:
        ``(metrics, items)``: the metrics of :func:`recall_at_k`, and two :class:`ItemScores`:
        ``i2t`` (one item per image, ``side="image"``) with ``i2t_r<K>`` = 1.0 when the image's
        best ground-truth caption ranks in the top K, else 0.0; ``t2i`` (one item per caption,
        ``side="caption"``) with ``t2i_r<K>`` likewise. Each recall is the mean of its hits;
        ``r_mean`` is the mean of the ``2 * len(ks)`` recalls (see :attr:`Retrieval.item_metrics`).
    """
    if np.shape(i2t_scores) != np.shape(t2i_scores):
        raise ValueError(f"i2t and t2i scores differ in shape: {np.shape(i2t_scores)} vs {np.shape(t2i_scores)}")
    ri = i2t_ranks(i2t_scores, caption_image)
    rt = t2i_ranks(t2i_scores, caption_image)
    nonfinite = float((~np.isfinite(i2t_scores) | ~np.isfinite(t2i_scores)).sum())
    return recall_from_ranks(ri, rt, ks, nonfinite)


def recall_from_ranks(ri: np.ndarray, rt: np.ndarray, ks: tuple[int, ...],
                      nonfinite: float = 0.0) -> tuple[dict[str, float], list[ItemScores]]:
    """Metrics and per-query hits from the ranks of :func:`i2t_ranks` / :func:`t2i_ranks`
    (rank ``M`` resp. ``N`` = not found, a miss at every K)."""
    n, m = len(ri), len(rt)
    i2t = {f"i2t_r{k}": (ri < min(k, m)).astype(np.float64) for k in ks}
    t2i = {f"t2i_r{k}": (rt < min(k, n)).astype(np.float64) for k in ks}
    out = {name: float(hits.mean()) for name, hits in (*i2t.items(), *t2i.items())}
    out["r_mean"] = float(np.mean([out[f"i2t_r{k}"] for k in ks] + [out[f"t2i_r{k}"] for k in ks]))
    out["nonfinite_scores"] = nonfinite
    return out, [ItemScores("i2t", "image", i2t), ItemScores("t2i", "caption", t2i)]


def _check_scores(scores: np.ndarray, caption_image: np.ndarray) -> tuple[int, int]:
    """(N, M) of a score matrix, after checking it is non-empty and matches ``caption_image``.

    An empty gallery or caption set is an error rather than a NaN recall (the mean of nothing).
    """
    if np.ndim(scores) != 2:
        raise ValueError(f"retrieval scores must be 2-D (N_images, M_captions), got shape {np.shape(scores)}")
    n, m = scores.shape
    check_gallery(n, m, caption_image, f"retrieval (scores shape {scores.shape})")
    return n, m


def image_groups(img_idx: torch.Tensor, max_pairs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split pairs into chunks of image groups for :meth:`FusionMethod.pair_forward`.

    Returns, per chunk, ``(images (G,), positions (G, C))``: the distinct images of the chunk and,
    for each, the positions of its pairs in the input, padded with -1 to the chunk's largest
    group. Groups are sorted by size so that padding stays small; a chunk holds at most about
    ``max_pairs`` padded pairs.
    """
    order = torch.argsort(img_idx, stable=True)
    images, counts = torch.unique_consecutive(img_idx[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    by_size = torch.argsort(counts, stable=True)
    chunks: list[tuple[torch.Tensor, torch.Tensor]] = []
    begin = 0
    while begin < len(by_size):
        end = begin
        while end < len(by_size) and (end - begin + 1) * int(counts[by_size[end]]) <= max(max_pairs, int(counts[by_size[end]])):
            end += 1
        groups = by_size[begin:end]
        width = int(counts[groups].max())
        offsets = torch.arange(width)
        valid = offsets[None, :] < counts[groups, None]
        pos = torch.where(valid, order[(starts[groups, None] + offsets[None, :]).clamp_max(len(order) - 1)], -1)
        chunks.append((images[groups], pos))
        begin = end
    return chunks


@torch.no_grad()
def pair_outputs(method: FusionMethod, img_prep: dict, txt_prep: dict, img_idx: torch.Tensor,
                 txt_idx: torch.Tensor, sim: torch.Tensor, chunk: int = 4096) -> PairOutput:
    """The method's :class:`PairOutput` for the pairs ``(img_idx[b], txt_idx[b])``, flattened to (B, ...).

    Pairs are grouped by image so that every image's prepared tokens are used once per chunk
    rather than copied for each of its candidate captions.
    """
    logits = torch.empty((len(img_idx), 2), device=sim.device)
    alphas: torch.Tensor | None = None
    cues: torch.Tensor | None = None
    for images, pos in image_groups(img_idx.cpu(), chunk):
        images, pos = images.to(sim.device), pos.to(sim.device)
        valid = pos >= 0
        tt = txt_idx[pos.clamp_min(0)]  # (G, C)
        ii = images[:, None].expand_as(tt)
        out = method.pair_forward(gather(img_prep, images), gather(txt_prep, tt), PairSignals(sim[ii, tt]))
        logits[pos[valid]] = out.itm_logits[valid].float()
        if out.alpha is not None:
            if alphas is None:
                alphas = torch.empty((len(img_idx), 2), device=sim.device)
            alphas[pos[valid]] = out.alpha[valid].float()
        if out.cues is not None:
            if cues is None:
                cues = torch.empty((len(img_idx), out.cues.shape[-1]), device=sim.device)
            cues[pos[valid]] = out.cues[valid].float()
    return PairOutput(logits, alphas, cues)


def score_pairs(method: FusionMethod, img_prep: dict, txt_prep: dict, img_idx: torch.Tensor,
                txt_idx: torch.Tensor, sim: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Method scores (and fusion weights) of the pairs ``(img_idx[b], txt_idx[b])``."""
    out = pair_outputs(method, img_prep, txt_prep, img_idx, txt_idx, sim, chunk)
    return method.score(out, sim[img_idx, txt_idx]).float(), out.alpha


@TASKS.register("retrieval")
class Retrieval(Task):
    """Image<->text retrieval: R@1/5/10 both directions and their mean.

    Args:
        k: candidates re-ranked by the fusion network per query (ALBEF uses 256 on COCO 5k,
            128 on Flickr30k 1k; the embedded world's 1000-image gallery needs far fewer).
        ks: the K of the reported R@K. Every K must be below ``k``: re-ranking only reorders
            the ITC top k, so R@K for K >= k is the same for every re-ranking method and says
            nothing about fusion (REFERENCES.md s2).
        chunk: pairs scored per forward pass.

    Raises:
        ValueError: ``k < 1``, an empty ``ks``, a K < 1, or a K >= k.
    """

    name: ClassVar[str] = "retrieval"
    primary_metric: ClassVar[str] = "r_mean"
    metric_names: ClassVar[tuple[str, ...]] = (
        *(f"i2t_r{k}" for k in RECALL_KS), *(f"t2i_r{k}" for k in RECALL_KS), "r_mean", "nonfinite_scores")

    def __init__(self, k: int = 16, ks: tuple[int, ...] | list[int] = RECALL_KS, chunk: int = 4096) -> None:
        if k < 1:
            raise ValueError(f"retrieval k must be >= 1, got {k}")
        if any(isinstance(x, bool) or not float(x).is_integer() for x in ks):
            raise ValueError(f"retrieval ks must be whole numbers, got {list(ks)}")
        ks = tuple(sorted(set(int(x) for x in ks)))
        if not ks or ks[0] < 1:
            raise ValueError(f"retrieval ks must be a non-empty list of K >= 1, got {list(ks)}")
        if ks[-1] >= k:
            raise ValueError(f"retrieval: R@{ks[-1]} needs k > {ks[-1]} (re-ranking reorders only the ITC top k={k}, "
                             f"so R@K for K >= k is identical for every re-ranking method); raise k or drop K >= {k} from ks")
        self.k = k
        self.ks = ks
        self.metric_names = (*(f"i2t_r{x}" for x in ks), *(f"t2i_r{x}" for x in ks), "r_mean", "nonfinite_scores")
        self.chunk = chunk

    @property
    def item_metrics(self) -> dict[str, list[str]]:
        """Each recall is the mean of its per-query hits (``i2t_r<K>`` over images, ``t2i_r<K>``
        over captions); ``r_mean`` is the mean of the ``2 * len(ks)`` recalls, each over its own
        queries, so a bootstrap resample of images and captions recomputes every recall on the
        resample and averages them. ``nonfinite_scores`` (a count) has no per-item form."""
        recalls = [*(f"i2t_r{k}" for k in self.ks), *(f"t2i_r{k}" for k in self.ks)]
        return {**{r: [r] for r in recalls}, "r_mean": recalls}

    @torch.no_grad()
    def evaluate(self, cell: EncodedCell, method: FusionMethod) -> TaskResult:
        sim = self._memo(cell, "sim", lambda: cell.images.emb @ cell.texts.emb.T)  # (N, M)
        caption_image = np.asarray(cell.caption_image)
        if not method.has_fusion:  # the same for every method without fusion (and every seed)
            metrics, items = self._memo(cell, ("itc", self.ks), lambda: self._itc_metrics(sim, caption_image))
            return TaskResult(dict(metrics), extra={"items": items})
        n, m = sim.shape
        k_t, k_i = min(self.k, m), min(self.k, n)
        img_a, txt_a, img_b, txt_b, uniq_img, uniq_txt, where = self._memo(
            cell, ("candidates", k_t, k_i), lambda: self._candidates(sim, caption_image, k_t, k_i))
        memo_key = ("retrieval", method.weights_id, k_t, k_i)
        out = cell.memo.get(memo_key) if method.weights_id else None
        if out is None:
            img_prep, txt_prep = cell.prepared(method, "images"), cell.prepared(method, "texts")
            out = pair_outputs(method, img_prep, txt_prep, uniq_img, uniq_txt, sim, self.chunk)
            if method.weights_id:
                cell.memo[memo_key] = out
        scores = method.score(out, sim[uniq_img, uniq_txt]).float()[where]
        alpha = None if out.alpha is None else out.alpha[where]
        cues = None if out.cues is None else out.cues[where]
        na, nb = len(img_a), len(img_b)
        i2t = torch.full((n, m), FILL_SCORE)
        i2t[img_a.cpu(), txt_a.cpu()] = scores[:na].cpu()
        t2i = torch.full((n, m), FILL_SCORE)
        t2i[img_b.cpu(), txt_b.cpu()] = scores[na : na + nb].cpu()
        metrics, items = recall_with_items(i2t.numpy(), t2i.numpy(), caption_image, self.ks)
        weights = None
        if alpha is not None:  # the ground-truth pair of every caption
            gt_alpha = alpha[na + nb :].cpu().numpy()
            weights = {"sample_id": np.arange(m), "alpha_v": gt_alpha[:, 0], "alpha_t": gt_alpha[:, 1]}
            if cues is not None:
                gt_cues = cues[na + nb :].cpu().numpy()
                weights.update({name: gt_cues[:, i] for i, name in enumerate(CUE_NAMES)})
        return TaskResult(metrics, weights, extra={"items": items})

    @staticmethod
    def _memo(cell: EncodedCell, key: object, compute: Any) -> Any:
        """``compute()`` once per cell (shared by every method and seed evaluated on it)."""
        full = ("retrieval", key)
        if full not in cell.memo:
            cell.memo[full] = compute()
        return cell.memo[full]

    def _itc_metrics(self, sim: torch.Tensor, caption_image: np.ndarray) -> tuple[dict[str, float], list[ItemScores]]:
        s = sim.float().cpu().numpy()
        return recall_with_items(s, s, caption_image, self.ks)

    @staticmethod
    def _candidates(sim: torch.Tensor, caption_image: np.ndarray, k_t: int, k_i: int) -> tuple[torch.Tensor, ...]:
        """Re-ranking candidates: each image's ITC top-k captions (``img_a, txt_a``), each
        caption's top-k images (``img_b, txt_b``), then every distinct pair among them and the
        ground truths (``uniq_img, uniq_txt``) with ``where``, the position in those of each
        listed pair (image->text, text->image, then the ground truth of every caption)."""
        n, m = sim.shape
        top_t = sim.topk(k_t, dim=1).indices  # (N, k) captions per image
        top_i = sim.topk(k_i, dim=0).indices  # (k, M) images per caption
        img_a = torch.arange(n, device=sim.device).repeat_interleave(k_t)
        txt_a = top_t.reshape(-1)
        txt_b = torch.arange(m, device=sim.device).repeat(k_i)
        img_b = top_i.reshape(-1)
        gt_img = torch.as_tensor(caption_image, device=sim.device)
        gt_txt = torch.arange(m, device=sim.device)
        # a pair in both directions' candidates (or a ground truth) is scored once
        pair_id, where = torch.unique(torch.cat([img_a, img_b, gt_img]) * m + torch.cat([txt_a, txt_b, gt_txt]),
                                      return_inverse=True)
        return img_a, txt_a, img_b, txt_b, pair_id // m, pair_id % m, where
