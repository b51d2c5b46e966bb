"""Training-time degradations: never an evaluation corruption, deterministic, strength-controlled."""

from __future__ import annotations

import pytest
import torch

import corruptions
from mafs_bench.models.augment import (
    AUGMENTATIONS,
    DEFAULT_AUGMENTATIONS,
    FeatureStats,
    augmentation_generator,
)
from mafs_bench.models.fusion_training import FusionTrainConfig, training_corruption_seed

NAMES = AUGMENTATIONS.names()


def _features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, FeatureStats]:
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1)
    tokens = torch.randn(8, 5, 12, generator=g) * 3 + 1
    return emb, tokens, FeatureStats.of(emb, tokens)


def test_no_augmentation_is_a_registered_corruption() -> None:
    assert NAMES, "no training augmentation registered"
    assert not set(NAMES) & set(corruptions.names())
    assert set(DEFAULT_AUGMENTATIONS) <= set(NAMES)
    assert {AUGMENTATIONS.get(n).modality for n in DEFAULT_AUGMENTATIONS} == {"image", "text"}


@pytest.mark.parametrize("name", NAMES)
def test_strength_zero_keeps_and_one_destroys(name: str) -> None:
    emb, tokens, stats = _features()
    fn = AUGMENTATIONS.get(name).fn
    same_e, same_t = fn(emb, tokens, torch.zeros(8), stats, augmentation_generator(0))
    assert torch.allclose(same_e, emb, atol=1e-6) and torch.allclose(same_t, tokens, atol=1e-6)
    hit_e, hit_t = fn(emb, tokens, torch.ones(8), stats, augmentation_generator(0))
    assert torch.allclose(hit_e.norm(dim=-1), torch.ones(8), atol=1e-5)  # embeddings stay unit-norm
    # at full strength the embedding keeps little of its direction, and tokens change
    assert (hit_e * emb).sum(-1).mean() < 0.7
    assert not torch.allclose(hit_t, tokens)


@pytest.mark.parametrize("name", NAMES)
def test_stronger_means_further_from_the_clean_features(name: str) -> None:
    emb, tokens, stats = _features()
    fn = AUGMENTATIONS.get(name).fn
    cos = []
    for s in (0.2, 0.5, 0.9):
        out, _ = fn(emb, tokens, torch.full((8,), s), stats, augmentation_generator(3))
        cos.append(float((out * emb).sum(-1).mean()))
    assert cos[0] > cos[1] > cos[2]


@pytest.mark.parametrize("name", NAMES)
def test_draws_come_from_the_generator_only(name: str) -> None:
    emb, tokens, stats = _features()
    fn = AUGMENTATIONS.get(name).fn
    s = torch.full((8,), 0.6)
    a = fn(emb, tokens, s, stats, augmentation_generator(5))
    torch.manual_seed(123)  # the global generator has no say
    b = fn(emb, tokens, s, stats, augmentation_generator(5))
    c = fn(emb, tokens, s, stats, augmentation_generator(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("name", ["image_token_dropout", "text_token_dropout"])
def test_token_dropout_at_full_strength_leaves_only_the_pool_means(name: str) -> None:
    emb, tokens, stats = _features()
    out_e, out_t = AUGMENTATIONS.get(name).fn(emb, tokens, torch.ones(8), stats, augmentation_generator(0))
    assert torch.allclose(out_t, stats.tok_mean.expand_as(tokens))  # every token replaced by the mean token
    mean_dir = torch.nn.functional.normalize(stats.emb_mean, dim=-1)
    assert torch.allclose(out_e, mean_dir.expand_as(emb), atol=1e-6)  # the embedding says nothing either
    half_e, half_t = AUGMENTATIONS.get(name).fn(emb, tokens, torch.full((8,), 0.5), stats, augmentation_generator(0))
    replaced = (half_t == stats.tok_mean).all(-1).float().mean()
    assert 0.25 < replaced < 0.75  # about half of the 40 tokens at strength 0.5


@pytest.mark.parametrize("name", ["image_feature_noise", "text_feature_noise"])
def test_feature_noise_keeps_the_tokens_mean(name: str) -> None:
    emb, tokens, stats = _features()
    _, out_t = AUGMENTATIONS.get(name).fn(emb, tokens, torch.ones(8), stats, augmentation_generator(0))
    assert (out_t - tokens).abs().mean() > 0.5 * float(stats.tok_std.mean())  # noise of about 2 std, not a replacement
    assert not torch.allclose(out_t, stats.tok_mean.expand_as(tokens))


def test_training_seed_namespaces_differ_from_the_evaluation_seed() -> None:
    assert training_corruption_seed(0) != 0
    assert training_corruption_seed(0) != training_corruption_seed(1)
    assert augmentation_generator(0).initial_seed() != 0


def test_recipe_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="fusion_train.augmentations.*gaussian_noise"):
        FusionTrainConfig(augmentations=("gaussian_noise",))
    with pytest.raises(ValueError, match="fusion_train.corruptions"):
        FusionTrainConfig(corruptions=("not_a_corruption",))
    assert FusionTrainConfig(corruptions=("gaussian_noise",)).as_dict()["corruptions"] == ["gaussian_noise"]
