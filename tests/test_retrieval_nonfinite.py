"""Non-finite scores (NaN, +inf, -inf) never help a method in retrieval, and the run says who made them.

The rules are in the docstring of :mod:`mafs_bench.tasks.retrieval`: a ground truth with a
non-finite score is not found (rank = number of candidates, a miss at every K); any other
candidate with a non-finite score ranks above the ground truth. Empty inputs are errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mafs_bench.models.encoder import ImageFeatures, TextFeatures
from mafs_bench.models.fusion import PairOutput, ReferencePool, create_fusion
from mafs_bench.runner.run import Cell, warn_nonfinite
from mafs_bench.tasks import EncodedCell, TaskResult, create_task
from mafs_bench.models.fusion.blocks import normalised_entropy
from mafs_bench.tasks.retrieval import RECALL_KS, i2t_ranks, recall_at_k, t2i_ranks

# 3 images, 2 captions each: captions 0,1 -> image 0; 2,3 -> image 1; 4,5 -> image 2.
OWNER = np.array([0, 0, 1, 1, 2, 2])
PERFECT = (OWNER[None, :] == np.arange(3)[:, None]).astype(float)  # ground truths 1, the rest 0
RECALLS = [f"{d}_r{k}" for d in ("i2t", "t2i") for k in RECALL_KS] + ["r_mean"]
NONFINITE = pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "+inf", "-inf"])


def _recalls(metrics: dict[str, float]) -> dict[str, float]:
    return {name: metrics[name] for name in RECALLS}


def test_all_nan_scores_miss_at_every_k() -> None:
    nan = np.full((3, 6), np.nan)
    r = recall_at_k(nan, nan, OWNER)  # K = 5, 10 reach past the 3-image gallery: still misses
    assert _recalls(r) == dict.fromkeys(RECALLS, 0.0)
    assert r["nonfinite_scores"] == 18
    assert i2t_ranks(nan, OWNER).tolist() == [6, 6, 6]  # rank = number of candidates: not found
    assert t2i_ranks(nan, OWNER).tolist() == [3] * 6


@NONFINITE
def test_nonfinite_ground_truth_is_a_miss(bad: float) -> None:
    scores = np.where(PERFECT == 1, bad, PERFECT)  # only the ground-truth pairs are non-finite
    r = recall_at_k(scores, scores, OWNER)
    assert _recalls(r) == dict.fromkeys(RECALLS, 0.0)
    assert r["nonfinite_scores"] == 6


def test_the_other_ground_truth_caption_still_counts() -> None:
    scores = PERFECT.copy()
    scores[0, 0] = np.nan  # image 0's caption c0 is broken; its caption c1 still scores 1
    assert i2t_ranks(scores, OWNER).tolist() == [0, 0, 0]
    assert t2i_ranks(scores, OWNER).tolist() == [3, 0, 0, 0, 0, 0]


@NONFINITE
def test_nonfinite_distractor_ranks_above_the_ground_truth(bad: float) -> None:
    scores = PERFECT.copy()
    scores[1, 0] = bad  # image 1 x caption 0 (which describes image 0)
    assert i2t_ranks(scores, OWNER).tolist() == [0, 1, 0]  # image 1 sees c0 above its captions
    assert t2i_ranks(scores, OWNER).tolist() == [1, 0, 0, 0, 0, 0]  # c0 sees image 1 above image 0
    r = recall_at_k(scores, scores, OWNER, ks=(1, 2))
    assert r["i2t_r1"] == pytest.approx(2 / 3) and r["t2i_r1"] == pytest.approx(5 / 6)
    assert r["i2t_r2"] == 1.0 and r["t2i_r2"] == 1.0
    assert r["nonfinite_scores"] == 1


@pytest.mark.parametrize("seed", range(10))
def test_nonfinite_scores_never_raise_a_rank_or_a_recall(seed: int) -> None:
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(5), 3)
    scores = rng.integers(0, 4, (5, 15)).astype(float)  # small integers: many ties
    broken = scores.copy()
    mask = rng.random(scores.shape) < 0.3
    broken[mask] = rng.choice([np.nan, np.inf, -np.inf], int(mask.sum()))
    assert (i2t_ranks(broken, owner) >= i2t_ranks(scores, owner)).all()
    assert (t2i_ranks(broken, owner) >= t2i_ranks(scores, owner)).all()
    ks = (1, 2, 5, 20)  # 20 > both gallery sizes
    before, after = recall_at_k(scores, scores, owner, ks), recall_at_k(broken, broken, owner, ks)
    assert all(after[name] <= before[name] for name in before if name != "nonfinite_scores")
    assert after["nonfinite_scores"] == mask.sum() and before["nonfinite_scores"] == 0


def test_nonfinite_count_is_per_pair_across_both_directions() -> None:
    i2t, t2i = PERFECT.copy(), PERFECT.copy()
    i2t[0, 2] = np.nan
    t2i[0, 2] = np.inf  # the same pair: counted once
    t2i[2, 5] = np.nan
    assert recall_at_k(i2t, t2i, OWNER)["nonfinite_scores"] == 2


def _cell(n: int = 12, per: int = 2, seed: int = 0) -> EncodedCell:
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=-1)
    owner = np.repeat(np.arange(n), per)
    t_emb = torch.nn.functional.normalize(emb[owner] + 0.3 * torch.randn(n * per, 16, generator=g), dim=-1)
    mask = torch.ones(n * per, 5, dtype=torch.bool)
    return EncodedCell(ImageFeatures(emb, torch.randn(n, 4, 16, generator=g)),
                       TextFeatures(t_emb, torch.randn(n * per, 5, 16, generator=g), mask), owner, 10.0)


def test_a_diverged_fusion_head_scores_zero_and_is_counted() -> None:
    torch.manual_seed(0)
    cell = _cell()
    method = create_fusion("mafs", 16, 16, width=16, heads=2)
    method.fit_reference(ReferencePool(cell.images.emb, cell.texts.emb[::2], cell.images.emb, cell.texts.emb,
                                       torch.as_tensor(cell.caption_image), 10.0))
    method.eval()
    forward = method.pair_forward

    def diverged(img, txt, signals):  # every ITM logit NaN, fusion weights as usual
        out = forward(img, txt, signals)
        return PairOutput(torch.full_like(out.itm_logits, math.nan), out.alpha)

    method.pair_forward = diverged
    k = 11
    result = create_task("retrieval", k=k).evaluate(cell, method)
    assert _recalls(result.metrics) == dict.fromkeys(RECALLS, 0.0)
    sim = cell.images.emb @ cell.texts.emb.T
    reranked = {(i, int(t)) for i, row in enumerate(sim.topk(k, dim=1).indices) for t in row}
    reranked |= {(int(i), j) for j, col in enumerate(sim.topk(k, dim=0).indices.T) for i in col}
    assert result.metrics["nonfinite_scores"] == len(reranked)


def test_a_nan_image_embedding_costs_clip_its_queries_and_every_caption_one_place() -> None:
    cell = _cell()
    cell.images.emb[0] = math.nan
    r = create_task("retrieval").evaluate(cell, create_fusion("clip", 16, 16)).metrics
    assert r["nonfinite_scores"] == len(cell.texts)  # image 0's row
    assert r["t2i_r1"] == 0.0  # every caption sees the NaN image above its own
    clean = create_task("retrieval").evaluate(_cell(), create_fusion("clip", 16, 16)).metrics
    assert all(r[name] <= clean[name] for name in RECALLS)


def test_normalised_entropy_with_nonfinite_logits() -> None:
    logits = torch.tensor([
        [0.0, 0.0, -math.inf, -math.inf],  # two masked entries: entropy of 2 equal odds, log 2 / log 4
        [0.0, 0.0, 0.0, math.nan],
        [math.inf, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ])
    h = normalised_entropy(logits, dim=1)
    assert h[0].item() == pytest.approx(0.5)
    assert math.isnan(h[1].item()) and math.isnan(h[2].item())  # undefined cue: NaN flows on, never a value
    assert h[3].item() == pytest.approx(1.0)


@pytest.mark.parametrize(("shape", "what"), [((0, 6), "no images"), ((3, 0), "no captions"),
                                             ((0, 0), "no images and captions")])
def test_empty_scores_are_an_error(shape: tuple[int, int], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        recall_at_k(np.zeros(shape), np.zeros(shape), np.zeros(shape[1], dtype=np.int64))


@pytest.mark.parametrize(("n", "m", "what"), [(0, 4, "no images"), (3, 0, "no captions")])
def test_empty_cell_is_an_error(n: int, m: int, what: str) -> None:
    images = ImageFeatures(torch.zeros(n, 16), torch.zeros(n, 4, 16))
    texts = TextFeatures(torch.zeros(m, 16), torch.zeros(m, 5, 16), torch.ones(m, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=what):
        EncodedCell(images, texts, np.zeros(m, dtype=np.int64), 10.0)


def test_caption_image_must_index_the_images() -> None:
    with pytest.raises(ValueError, match="must index the 3 images"):
        t2i_ranks(PERFECT, np.array([0, 0, 1, 1, 2, -1]))  # -1 would silently mean image 2
    with pytest.raises(ValueError, match="6 integer image indices"):
        i2t_ranks(PERFECT, OWNER[:5])
    cell = _cell(n=3)
    with pytest.raises(ValueError, match="must index the 3 images"):
        EncodedCell(cell.images, cell.texts, np.array([0, 0, 1, 1, 2, 3]), 10.0)


def test_runner_warns_naming_model_task_and_cell() -> None:
    logged: list[str] = []
    warn_nonfinite(logged.append, TaskResult({"r_mean": 0.0, "nonfinite_scores": 5000.0}), "mafs", "retrieval",
                   Cell("plain", "gaussian_noise", 5))
    assert logged == ["[warning] model mafs, task retrieval, cell gaussian_noise@5 (domain plain): "
                      "5000 scores are NaN/inf; they count as misses"]
    warn_nonfinite(logged.append, TaskResult({}, extra={"nonfinite_scores": 3}), "albef", "retrieval",
                   Cell("outline", "none", 0))
    assert logged[1].startswith("[warning] model albef, task retrieval, cell clean (domain outline): 3 scores")
    warn_nonfinite(logged.append, TaskResult({"r_mean": 1.0, "nonfinite_scores": 0.0}), "clip", "retrieval",
                   Cell("plain", "none", 0))
    assert len(logged) == 2  # nothing to say
