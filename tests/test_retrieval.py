"""Recall@K on hand-computed cases, including several captions per image, and the re-ranking path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mafs_bench.models.encoder import ImageFeatures, TextFeatures
from mafs_bench.models.fusion import FUSIONS, ReferencePool, create_fusion
from mafs_bench.tasks import EncodedCell, create_task
from mafs_bench.models.fusion.blocks import normalised_entropy
from mafs_bench.tasks.retrieval import i2t_ranks, image_groups, recall_at_k, recall_with_items, score_pairs, t2i_ranks

# 3 images, 2 captions each: captions 0,1 -> image 0; 2,3 -> image 1; 4,5 -> image 2.
OWNER = np.array([0, 0, 1, 1, 2, 2])
SCORES = np.array([
    # c0   c1   c2   c3   c4   c5
    [0.1, 0.9, 0.8, 0.0, 0.2, 0.3],  # image 0: its best caption c1 ranks first -> rank 0
    [0.7, 0.1, 0.2, 0.3, 0.9, 0.8],  # image 1: c3 (0.3) beats its c2; above it c0, c4, c5 -> rank 3
    [0.5, 0.6, 0.1, 0.0, 0.4, 0.2],  # image 2: c4 (0.4) best; above it c0, c1 -> rank 2
])


def test_i2t_rank_is_best_ranked_ground_truth_caption() -> None:
    assert i2t_ranks(SCORES, OWNER).tolist() == [0, 3, 2]


def test_t2i_treats_every_caption_as_its_own_query() -> None:
    # caption columns: c0 -> image 0 scores (0.1, 0.7, 0.5) -> rank 2; c1 -> (0.9,0.1,0.6) -> 0;
    # c2 -> image 1 (0.8, 0.2, 0.1) -> 1; c3 -> (0.0, 0.3, 0.0) -> 0; c4 -> image 2 (0.2,0.9,0.4) -> 1;
    # c5 -> (0.3, 0.8, 0.2) -> 2
    assert t2i_ranks(SCORES, OWNER).tolist() == [2, 0, 1, 0, 1, 2]


def test_recall_values_by_hand() -> None:
    r = recall_at_k(SCORES, SCORES, OWNER, ks=(1, 2, 3))
    assert r["i2t_r1"] == pytest.approx(1 / 3)
    assert r["i2t_r2"] == pytest.approx(1 / 3)
    assert r["i2t_r3"] == pytest.approx(2 / 3)
    assert r["t2i_r1"] == pytest.approx(2 / 6)
    assert r["t2i_r2"] == pytest.approx(4 / 6)
    assert r["t2i_r3"] == pytest.approx(1.0)
    assert r["r_mean"] == pytest.approx(np.mean([1 / 3, 1 / 3, 2 / 3, 2 / 6, 4 / 6, 1.0]))


def test_per_item_hits_by_hand_and_their_means_are_the_recalls() -> None:
    metrics, items = recall_with_items(SCORES, SCORES, OWNER, ks=(1, 2, 3))
    i2t, t2i = items
    assert (i2t.query, i2t.side, t2i.query, t2i.side) == ("i2t", "image", "t2i", "caption")
    # ranks: images [0, 3, 2]; captions [2, 0, 1, 0, 1, 2]
    assert i2t.scores["i2t_r1"].tolist() == [1, 0, 0] and i2t.scores["i2t_r3"].tolist() == [1, 0, 1]
    assert t2i.scores["t2i_r1"].tolist() == [0, 1, 0, 1, 0, 0] and t2i.scores["t2i_r2"].tolist() == [0, 1, 1, 1, 1, 0]
    for part in items:
        for name, hits in part.scores.items():
            assert metrics[name] == hits.mean()
    task = create_task("retrieval", k=4, ks=[1, 2, 3])
    assert task.item_metrics["r_mean"] == ["i2t_r1", "i2t_r2", "i2t_r3", "t2i_r1", "t2i_r2", "t2i_r3"]
    assert metrics["r_mean"] == pytest.approx(np.mean([metrics[c] for c in task.item_metrics["r_mean"]]))


def test_ties_count_against_the_method() -> None:
    flat = np.zeros((3, 6))
    r = recall_at_k(flat, flat, OWNER, ks=(1,))
    assert r["i2t_r1"] == 0.0 and r["t2i_r1"] == 0.0


def test_perfect_scores_give_full_recall() -> None:
    perfect = (OWNER[None, :] == np.arange(3)[:, None]).astype(float)
    r = recall_at_k(perfect, perfect, OWNER)
    assert r.pop("nonfinite_scores") == 0
    assert all(v == 1.0 for v in r.values())


def test_image_without_caption_is_an_error() -> None:
    with pytest.raises(ValueError, match="without any caption"):
        i2t_ranks(np.zeros((4, 6)), OWNER)


def test_normalised_entropy_bounds() -> None:
    uniform = torch.zeros(2, 10)
    peaked = torch.tensor([[100.0] + [0.0] * 9])
    assert normalised_entropy(uniform, 1).tolist() == pytest.approx([1.0, 1.0])
    assert normalised_entropy(peaked, 1).item() == pytest.approx(0.0, abs=1e-6)


def test_image_groups_cover_every_pair_once() -> None:
    img = torch.tensor([3, 1, 3, 0, 1, 3, 2])
    seen = []
    for images, pos in image_groups(img, max_pairs=4):
        for g, row in zip(images.tolist(), pos.tolist()):
            for p in row:
                if p >= 0:
                    assert img[p].item() == g
                    seen.append(p)
    assert sorted(seen) == list(range(len(img)))


def _cell(n: int = 12, per: int = 2, seed: int = 0) -> EncodedCell:
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=-1)
    owner = np.repeat(np.arange(n), per)
    t_emb = torch.nn.functional.normalize(emb[owner] + 0.3 * torch.randn(n * per, 16, generator=g), dim=-1)
    length = 5
    mask = torch.ones(n * per, length, dtype=torch.bool)
    mask[::3, 3:] = False
    return EncodedCell(ImageFeatures(emb, torch.randn(n, 4, 16, generator=g)),
                       TextFeatures(t_emb, torch.randn(n * per, length, 16, generator=g), mask), owner, 10.0)


class _ToyITMHead(torch.nn.Module):
    """Stands for a pretrained ITM head: logits from the pair's image tokens and caption ids."""

    def forward(self, tokens: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        match = tokens.mean((1, 2)) * (ids * mask).float().sum(1) / mask.sum(1).clamp_min(1)
        return torch.stack([-match, match], dim=-1)


@pytest.mark.parametrize("name", [n for n in FUSIONS.names() if FUSIONS.get(n).has_fusion])
def test_grouped_scoring_equals_pair_by_pair(name: str) -> None:
    torch.manual_seed(0)
    if FUSIONS.get(name).pretrained_head:
        method = create_fusion(name, 16, 16, max_pairs=2).attach(_ToyITMHead()).eval()
    else:
        method = create_fusion(name, 16, 16, width=16, heads=2).eval()
    cell = _cell()
    cell.texts.ids = torch.randint(0, 50, cell.texts.mask.shape)
    method.fit_reference(ReferencePool(cell.images.emb, cell.texts.emb[::2], cell.images.emb, cell.texts.emb,
                                       torch.as_tensor(cell.caption_image), 10.0))
    sim = cell.images.emb @ cell.texts.emb.T
    img_idx = torch.tensor([0, 5, 5, 2, 0, 11, 5])
    txt_idx = torch.tensor([1, 3, 7, 0, 23, 2, 10])
    with torch.no_grad():
        ip, tp = method.prepare_images(cell.images), method.prepare_texts(cell.texts)
        grouped, _ = score_pairs(method, ip, tp, img_idx, txt_idx, sim, chunk=3)
        single = torch.cat([score_pairs(method, ip, tp, img_idx[i : i + 1], txt_idx[i : i + 1], sim)[0]
                            for i in range(len(img_idx))])
    assert torch.allclose(grouped, single, atol=1e-5)


def _mafs(cell: EncodedCell) -> object:
    torch.manual_seed(0)
    method = create_fusion("mafs", 16, 16, width=16, heads=2)
    method.fit_reference(ReferencePool(cell.images.emb, cell.texts.emb[::2], cell.images.emb, cell.texts.emb,
                                       torch.as_tensor(cell.caption_image), 10.0))
    return method.eval()


def test_clip_ranks_by_itc_and_fusion_reranks_only_top_k() -> None:
    cell = _cell()
    task = create_task("retrieval", k=3, ks=[1, 2])
    clip = task.evaluate(cell, create_fusion("clip", 16, 16))
    sim = (cell.images.emb @ cell.texts.emb.T).numpy()
    assert clip.metrics == recall_at_k(sim, sim, cell.caption_image, (1, 2))
    mafs = task.evaluate(cell, _mafs(cell))
    assert set(mafs.metrics) == set(task.metric_names) == {"i2t_r1", "i2t_r2", "t2i_r1", "t2i_r2", "r_mean", "nonfinite_scores"}
    assert mafs.weights is not None and len(mafs.weights["alpha_v"]) == len(cell.texts)
    np.testing.assert_allclose(mafs.weights["alpha_v"] + mafs.weights["alpha_t"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(mafs.weights["agreement"], sim[cell.caption_image, np.arange(len(cell.texts))], rtol=1e-5)
    assert ((mafs.weights["h_v"] >= 0) & (mafs.weights["h_v"] <= 1)).all()


@pytest.mark.parametrize("k, ks", [(10, [1, 5, 10]), (5, [5]), (1, [1]), (16, []), (16, [0, 1])])
def test_recall_at_k_needs_k_below_the_reranking_depth(k: int, ks: list[int]) -> None:
    """R@K for K >= k is identical for every re-ranking method: refused, not reported."""
    with pytest.raises(ValueError, match="k"):
        create_task("retrieval", k=k, ks=ks)


def test_default_retrieval_reports_r1_r5_r10_with_k_16() -> None:
    assert create_task("retrieval").metric_names == ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "r_mean",
                                                     "nonfinite_scores")


def test_methods_sharing_weights_share_pair_outputs_per_cell() -> None:
    torch.manual_seed(0)
    albef = create_fusion("albef", 16, 16, width=16, heads=2).eval()
    blip = create_fusion("blip", 16, 16, width=16, heads=2).eval()
    blip.load_state_dict(albef.state_dict())
    task = create_task("retrieval", k=4, ks=[1, 2])
    fresh = task.evaluate(_cell(), blip).metrics
    albef.weights_id = blip.weights_id = "same"
    cell = _cell()
    task.evaluate(cell, albef)
    pair_outputs = [k for k in cell.memo if k[0] == "retrieval" and k[1] == "same"]
    assert len(pair_outputs) == 1
    assert task.evaluate(cell, blip).metrics == fresh
    assert [k for k in cell.memo if k[0] == "retrieval" and k[1] == "same"] == pair_outputs


def test_recurring_features_are_prepared_once_per_run() -> None:
    first = _cell()
    method = _mafs(first)
    method.weights_id = "w"
    shared: dict = {}
    a = EncodedCell(first.images, first.texts, first.caption_image, 10.0, shared=shared, images_recur=True, texts_recur=False)
    b = EncodedCell(first.images, _cell(seed=1).texts, first.caption_image, 10.0, shared=shared, images_recur=True, texts_recur=False)
    assert a.prepared(method, "images") is b.prepared(method, "images")
    assert a.prepared(method, "texts") is not a.prepared(method, "texts")
    other = EncodedCell(_cell(seed=2).images, first.texts, first.caption_image, 10.0, shared=shared, images_recur=True)
    assert other.prepared(method, "images") is not a.prepared(method, "images")  # new features, recomputed
