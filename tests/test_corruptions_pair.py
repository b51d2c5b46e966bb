"""Pair (misalignment) corruptions: contract, determinism, donors from other groups, rates, attribute swaps."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import corruptions  # noqa: E402
from corruptions.pair.attributes import ATTRIBUTES, INFLECTED, kind_of, replacement_options  # noqa: E402
from corruptions.text.common import changed_word_share, split_core  # noqa: E402

# How each registered pair corruption is checked: "pairs": a share 0.1 * s of the captions
# changes; "words": a share 0.1 * s of each caption's words changes.
PAIR_PARAMS: dict[str, str] = {
    "caption_shuffle": "pairs",
    "partial_caption_swap": "words",
    "attribute_swap": "pairs",
}
RATES = (0.1, 0.2, 0.3, 0.4, 0.5)

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star", "cross", "diamond"]
POSITIONS = ["top left", "bottom right", "middle", "upper left", "lower right", "center"]


def world_batch(n_images: int = 120, per_image: int = 5, seed: int = 0) -> tuple[list[str], list[int]]:
    """Captions like the synthetic world's, ``per_image`` per image (some repeated across images)."""
    r = np.random.default_rng(seed)
    captions, groups = [], []
    for g in range(n_images):
        for _ in range(per_image):
            size = ["small", "large"][int(r.integers(2))]
            colour, shape = COLOURS[int(r.integers(8))], SHAPES[int(r.integers(6))]
            where = POSITIONS[int(r.integers(len(POSITIONS)))]
            number = ["one", "two", "three"][int(r.integers(3))]
            captions.append(f"{number} {size} {colour} {shape} at the {where} of image {g}")
            groups.append(g)
    return captions, groups


def test_every_pair_corruption_has_test_parameters():
    registered = set(corruptions.names("pair"))
    missing = registered - set(PAIR_PARAMS)
    assert not missing, f"pair corruptions without test parameters in {__file__}: {sorted(missing)}"
    assert set(PAIR_PARAMS) <= registered


@pytest.mark.parametrize("name", sorted(PAIR_PARAMS))
def test_contract(name):
    spec = corruptions.get(name)
    assert spec.modality == "pair" and spec.family == "misalignment" and spec.severities == RATES
    captions, groups = world_batch(10, 3)
    before = list(captions)
    for s in corruptions.SEVERITIES:
        out = corruptions.apply(name, captions, s, seed=0, groups=groups)
        assert isinstance(out, list) and len(out) == len(captions) and all(isinstance(c, str) for c in out)
    assert captions == before, "the input list must not be modified"
    assert corruptions.apply(name, [], 3, groups=[]) == []
    odd = ["", "un café très chaud 🚀", "   ", "a red circle", "日本語"]
    out = corruptions.apply(name, odd, 5, seed=0, groups=[0, 1, 2, 3, 4])
    assert len(out) == 5 and all(isinstance(c, str) for c in out)


@pytest.mark.parametrize("name", sorted(PAIR_PARAMS))
def test_degenerate_caption_lists(name):
    """Empty lists, one caption, one-word captions, punctuation-only and blank captions."""
    assert corruptions.apply(name, [], 5) == [] and corruptions.apply_batch(name, [], 5) == []
    assert corruptions.apply_batch(name, (), 5, sample_ids=[], groups=[]) == []
    single = corruptions.apply(name, ["a red circle"], 5, seed=1)
    assert len(single) == 1 and (single == ["a red circle"] or name == "attribute_swap")  # no donor item
    one_word = ["dog", "cat", "red", "Bus", "three"]
    for s in corruptions.SEVERITIES:
        for seed in range(6):
            out = corruptions.apply(name, one_word, s, seed=seed, groups=range(5))
            assert len(out) == 5 and all(len(o.split()) == 1 for o in out), out
    odd = ["!!! ...", "   ", "", "( )"]
    for seed in range(6):
        out = corruptions.apply(name, odd, 5, seed=seed, groups=range(4))
        if name == "caption_shuffle":
            assert all(o in odd for o in out), out  # captions move whole
        else:
            assert out == odd, out  # no word with a core: nothing to swap
    with pytest.raises(TypeError, match="not one str"):
        corruptions.apply(name, "a red circle", 3)


@pytest.mark.parametrize("name", sorted(PAIR_PARAMS))
def test_deterministic_and_order_independent(name):
    captions, groups = world_batch(40, 5)
    a = corruptions.apply(name, captions, 4, seed=3, sample_id=100, groups=groups)
    assert a == corruptions.apply(name, captions, 4, seed=3, sample_id=100, groups=groups)
    assert a != corruptions.apply(name, captions, 4, seed=4, sample_id=100, groups=groups)
    ids = list(range(100, 100 + len(captions)))
    assert corruptions.apply_batch(name, captions, 4, seed=3, sample_ids=ids, groups=groups) == a
    # Which captions are corrupted does not depend on batch order.
    perm = np.random.default_rng(0).permutation(len(captions))
    shuffled = corruptions.apply_batch(
        name, [captions[i] for i in perm], 4, seed=3, sample_ids=[ids[i] for i in perm], groups=[groups[i] for i in perm]
    )
    changed = {ids[i] for i in range(len(captions)) if a[i] != captions[i]}
    changed_shuffled = {ids[p] for k, p in enumerate(perm) if shuffled[k] != captions[p]}
    if name != "partial_caption_swap":  # its count is order independent, its word choice needs the donor
        assert changed == changed_shuffled


@pytest.mark.parametrize("name", ["caption_shuffle", "attribute_swap"])
def test_share_of_changed_pairs(name):
    captions, groups = world_batch(200, 5)
    for s, rate in zip(corruptions.SEVERITIES, RATES):
        out = corruptions.apply(name, captions, s, seed=1, groups=groups)
        share = np.mean([o != c for o, c in zip(out, captions)])
        tolerance = 4 * np.sqrt(rate * (1 - rate) / len(captions))  # 4 standard errors of a binomial share
        assert abs(share - rate) < tolerance, (name, s, share)


def test_caption_shuffle_takes_captions_from_other_groups():
    captions, groups = world_batch(50, 5)
    owner: dict[str, set[int]] = {}
    for c, g in zip(captions, groups):
        owner.setdefault(c, set()).add(g)
    for seed in range(5):
        out = corruptions.apply("caption_shuffle", captions, 5, seed=seed, groups=groups)
        for o, c, g in zip(out, captions, groups):
            if o != c:
                assert owner[o] - {g}, "replacement must come from another group"


def test_caption_shuffle_prefers_different_text_and_handles_one_group():
    captions = ["a red circle"] * 6 + ["a blue square"] * 2
    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    out = corruptions.apply("caption_shuffle", captions, 5, seed=0, groups=groups)
    replaced = [i for i in range(8) if out[i] != captions[i]]
    assert all(captions[i] == "a red circle" and out[i] == "a blue square" or captions[i] == "a blue square" for i in replaced)
    same = ["x", "y", "z"]
    assert corruptions.apply("caption_shuffle", same, 5, groups=[7, 7, 7]) == same
    assert corruptions.apply("partial_caption_swap", same, 5, groups=[7, 7, 7]) == same


def test_partial_caption_swap_word_share_and_donors():
    captions, groups = world_batch(100, 5)
    vocab_by_group: dict[int, set[str]] = {}
    for c, g in zip(captions, groups):
        vocab_by_group.setdefault(g, set()).update(w.lower() for w in c.split())
    for s, rate in zip(corruptions.SEVERITIES, RATES):
        out = corruptions.apply("partial_caption_swap", captions, s, seed=2, groups=groups)
        shares = [changed_word_share(c, o) for c, o in zip(captions, out)]
        assert abs(np.mean(shares) - rate) < 0.05, (s, np.mean(shares))
        for c, o, g in zip(captions, out, groups):
            assert len(o.split()) == len(c.split())
            for old, new in zip(c.split(), o.split()):
                if old != new:
                    assert any(new.lower() in v for h, v in vocab_by_group.items() if h != g)


def test_attribute_swap_changes_only_attribute_words():
    captions, groups = world_batch(100, 5)
    captions += ["A man riding a wave on top of a surfboard.", "Three dogs and two cats on a grey sofa."]
    groups += [1000, 1001]
    for seed in range(4):
        out = corruptions.apply("attribute_swap", captions, 5, seed=seed, groups=groups)
        for c, o in zip(captions, out):
            diffs = [(a, b) for a, b in zip(c.split(), o.split()) if a != b]
            assert len(o.split()) == len(c.split()) and len(diffs) <= 1
            for a, b in diffs:
                (pa, ca, qa), (pb, cb, qb) = split_core(a), split_core(b)
                assert (pa, qa) == (pb, qb)
                assert kind_of(ca) is not None and kind_of(ca) == kind_of(cb), (a, b)
                assert cb.lower() in replacement_options(ca)
                assert ca[:1].isupper() == cb[:1].isupper()
    no_attr = ["the quick fox jumps over the lazy hound", "nothing to see here"]
    assert corruptions.apply("attribute_swap", no_attr, 5, seed=0, groups=[0, 1]) == no_attr


def test_attribute_word_lists():
    world = COLOURS + SHAPES + ["small", "large", "top", "bottom", "left", "right", "middle", "center",
                                "upper", "lower", "one", "two", "three"]
    assert all(kind_of(w) for w in world), [w for w in world if not kind_of(w)]
    assert kind_of("orange") == "colour" and kind_of("Circle") == "shape"
    assert "squares" in replacement_options("circles") and "square" not in replacement_options("circles")
    assert "large" in replacement_options("small") and "tiny" not in replacement_options("small")
    assert "center" not in replacement_options("middle")
    for kind, entries in ATTRIBUTES.items():
        forms = [f for e in entries for f in e]
        assert all(f == f.lower() and f.isalpha() for f in forms), kind
        if kind in INFLECTED:
            assert all(len(e) in (2, 4) for e in entries), kind


def test_no_global_rng_touched():
    random.seed(5)
    state = random.getstate()
    captions, groups = world_batch(10, 2)
    for name in PAIR_PARAMS:
        corruptions.apply(name, captions, 5, groups=groups)
    assert random.getstate() == state


def test_large_gallery_is_fast():
    import time

    captions, groups = world_batch(2000, 5)  # 10,000 captions
    start = time.perf_counter()
    corruptions.apply("caption_shuffle", captions, 5, groups=groups)
    assert time.perf_counter() - start < 5.0
