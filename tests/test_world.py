"""Tests for the procedurally generated world (mafs_bench.data.world): determinism, splits,
domains, captions, questions and vocabulary. Small splits only; the whole file runs in seconds."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mafs_bench.data.world import (
    CAPTION_TEMPLATES,
    DEFAULT_TEST_SIZE,
    DOMAINS,
    NUMBER_WORDS,
    QA_TYPES,
    SPLITS,
    Scene,
    SceneObject,
    WorldConfig,
    answer_vocabulary,
    build_scenes,
    build_split,
    caption_ambiguity,
    caption_from_template,
    captions_for,
    describe_objects,
    position_name,
    qa_for,
    question_type,
    render,
    render_scenes,
    sample_scene,
    scene_key,
    split_of_scene,
    vocabulary,
    with_domain,
    world_rng,
)

CFG = WorldConfig()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def test_split():
    """The default test split (n=1000, seed=0) in the plain domain."""
    return build_split(CFG, "test", "plain", DEFAULT_TEST_SIZE, seed=0)


@pytest.fixture(scope="module")
def small_splits():
    """40 items of the val split in every domain."""
    return {d: build_split(CFG, "val", d, 40, seed=3) for d in DOMAINS}


def _digest(images: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Determinism


def test_build_is_deterministic(small_splits):
    for domain, first in small_splits.items():
        again = build_split(CFG, "val", domain, 40, seed=3)
        assert again.images.dtype == np.uint8 and again.images.shape == (40, 64, 64, 3)
        assert again.images.tobytes() == first.images.tobytes()
        assert again.captions == first.captions and again.qa == first.qa and again.scenes == first.scenes


def test_byte_identical_across_processes(small_splits):
    code = (
        "import hashlib; from mafs_bench.data.world import *\n"
        "for d in DOMAINS:\n"
        "    print(hashlib.sha256(build_split(WorldConfig(), 'val', d, 40, seed=3).images.tobytes()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123", "NO_ALBUMENTATIONS_UPDATE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [_digest(small_splits[d].images) for d in DOMAINS]


def test_smaller_build_is_a_prefix():
    big = build_split(CFG, "train", "textured", 30, seed=1)
    small = build_split(CFG, "train", "textured", 10, seed=1)
    assert small.scenes == big.scenes[:10] and small.captions == big.captions[:10]
    assert np.array_equal(small.images, big.images[:10])


def test_seed_changes_the_data():
    a, b = build_scenes(CFG, "test", 20, seed=0), build_scenes(CFG, "test", 20, seed=1)
    assert [scene_key(s) for s in a] != [scene_key(s) for s in b]


def test_render_uses_the_documented_stream(small_splits):
    for domain, world in small_splits.items():
        for i in (0, 17):
            image = render(world.scenes[i], domain, world_rng(3, "val", i, f"render/{domain}"), CFG)
            assert np.array_equal(image, world.images[i])


# ---------------------------------------------------------------------------------------------
# Splits and domains


def test_splits_are_disjoint_in_scenes():
    keys = {split: {scene_key(s) for s in build_scenes(CFG, split, 300, seed=0)} for split in SPLITS}
    other_seed = {scene_key(s) for s in build_scenes(CFG, "train", 300, seed=7)}
    for a, b in itertools.combinations(SPLITS, 2):
        assert not keys[a] & keys[b], (a, b)
    assert not other_seed & (keys["val"] | keys["test"])
    for split in SPLITS:
        assert all(split_of_scene(s, CFG) == split for s in build_scenes(CFG, split, 50, seed=2))


def test_split_buckets_follow_weights():
    rng = np.random.default_rng(0)
    counts = {s: 0 for s in SPLITS}
    for _ in range(4000):
        counts[split_of_scene(sample_scene(rng, CFG), CFG)] += 1
    assert 0.75 < counts["train"] / 4000 < 0.85
    assert 0.07 < counts["test"] / 4000 < 0.13


def test_same_scene_in_every_domain(small_splits):
    base = small_splits["plain"]
    for domain, world in small_splits.items():
        assert world.domain == domain and world.split == "val"
        assert world.scenes == base.scenes and world.captions == base.captions and world.qa == base.qa
        assert np.array_equal(world.ids, np.arange(40))
        assert np.array_equal(with_domain(base, domain, CFG).images, world.images)


def test_domains_render_differently(small_splits):
    for a, b in itertools.combinations(DOMAINS, 2):
        diff = np.abs(small_splits[a].images.astype(int) - small_splits[b].images.astype(int)).mean()
        assert diff > 5, (a, b, diff)
    assert small_splits["low_light"].images.mean() < 0.6 * small_splits["plain"].images.mean()
    def busyness(images: np.ndarray) -> float:  # mean absolute difference of horizontal neighbours
        return float(np.abs(np.diff(images.astype(int), axis=2)).mean())

    assert busyness(small_splits["textured"].images) > 2 * busyness(small_splits["plain"].images)


def test_objects_are_drawn_in_their_colour():
    for shape in CFG.shapes:
        for colour in CFG.colour_names:
            scene = Scene((SceneObject(shape, colour, "small", 1, 1),))
            image = render(scene, "plain", world_rng(0, "test", 0, "render/plain"), CFG)
            assert np.array_equal(image[32, 32], np.array(CFG.rgb(colour), dtype=np.uint8)), (shape, colour)


def test_colours_stand_out_from_plain_backgrounds():
    brightest_background = CFG.plain_background_range[1] + CFG.background_tint
    for name, rgb in CFG.colours:
        assert max(rgb) > brightest_background + 100, name
    for (a, rgb_a), (b, rgb_b) in itertools.combinations(CFG.colours, 2):
        assert np.abs(np.subtract(rgb_a, rgb_b)).sum() > 100, (a, b)


# ---------------------------------------------------------------------------------------------
# Captions


def _caption_renderings(scene: Scene) -> set[str]:
    """Every caption any template can make of ``scene`` in any object order."""
    out = set()
    for template in CAPTION_TEMPLATES:
        for order in itertools.permutations(scene.objects):
            fixed = replace(template, order="reading")
            out.add(caption_from_template(Scene(tuple(order)), fixed, np.random.default_rng(0), CFG))
    return out


def test_every_caption_names_every_object(small_splits):
    for scene, captions in zip(small_splits["plain"].scenes, small_splits["plain"].captions):
        renderings = _caption_renderings(scene)
        for caption in captions:
            # Exactly one template rendering of all the objects: each object's size, colour, shape
            # and position are named, together, and nothing else is.
            assert caption in renderings, caption
            words = caption.split()
            for obj in scene.objects:
                assert {obj.size, obj.colour, obj.shape} <= set(words)
                assert position_name(obj, CFG) in caption


def test_captions_are_distinct_short_and_enough(test_split):
    for captions in test_split.captions:
        assert len(captions) == CFG.captions_per_image >= 5
        assert len(set(captions)) == len(captions)
        assert all(len(c.split()) <= 32 for c in captions)
        assert all(c == c.lower() and c == " ".join(c.split()) for c in captions)
    assert len(CAPTION_TEMPLATES) >= 5
    used = {c.split()[0] + " " + c.split()[1] for caps in test_split.captions for c in caps}
    assert len(used) >= 5


def test_captions_for_rejects_too_many():
    scene = sample_scene(np.random.default_rng(0), CFG)
    with pytest.raises(ValueError):
        captions_for(scene, np.random.default_rng(0), CFG, n=len(CAPTION_TEMPLATES) + 1)


def test_articles():
    scene = Scene((SceneObject("star", "orange", "small", 0, 0), SceneObject("cross", "red", "large", 2, 2)))
    that_is = next(t for t in CAPTION_TEMPLATES if t.name == "that_is")
    caption = caption_from_template(scene, replace(that_is, order="reading"), np.random.default_rng(0), CFG)
    assert caption.startswith("an orange star that is small in the top left and a red cross")


def test_flat_captions(test_split):
    texts, owner = test_split.flat_captions()
    assert len(texts) == len(owner) == 5 * len(test_split)
    assert owner.dtype == np.int64 and np.array_equal(owner[:10], [0] * 5 + [1] * 5)
    assert texts[7] == test_split.captions[1][2]


def test_caption_ambiguity(test_split):
    assert caption_ambiguity(test_split) == 0.0
    loose = build_split(replace(CFG, unique_scenes=False), "test", "plain", 1000, seed=0)
    assert caption_ambiguity(loose) < 0.03
    scenes = [sample_scene(np.random.default_rng(0), CFG)] * 2
    assert describe_objects(scenes[0]) == describe_objects(scenes[1])


# ---------------------------------------------------------------------------------------------
# Questions and vocabulary


def _expected_answer(question: str, scene: Scene) -> str:
    qtype = question_type(question)
    words = question.split()
    if qtype in ("colour", "size"):
        (obj,) = [o for o in scene.objects if o.shape == words[-1]]
        return obj.colour if qtype == "colour" else obj.size
    if qtype == "shape_at":
        (obj,) = [o for o in scene.objects if question.endswith("in the " + position_name(o, CFG))]
        return obj.shape
    if qtype == "count":
        return NUMBER_WORDS[len(scene.objects)]
    if qtype == "count_colour":
        return NUMBER_WORDS[sum(o.colour == words[2] for o in scene.objects)]
    colour, shape = words[-2], words[-1]
    return "yes" if any(o.colour == colour and o.shape == shape for o in scene.objects) else "no"


def test_qa_answers_are_correct_and_in_vocabulary(test_split):
    answers = set(answer_vocabulary(CFG))
    types = {t: 0 for t in QA_TYPES}
    yes = no = 0
    for scene, pairs in zip(test_split.scenes, test_split.qa):
        assert len(pairs) >= 4
        for question, answer in pairs:
            assert answer in answers and len(answer.split()) == 1
            assert answer == _expected_answer(question, scene), question
            types[question_type(question)] += 1
            yes += answer == "yes"
            no += answer == "no"
    assert all(n > 0 for n in types.values()), types
    assert 0.4 < yes / (yes + no) < 0.6


def test_qa_is_deterministic():
    scene = sample_scene(np.random.default_rng(5), CFG)
    assert qa_for(scene, np.random.default_rng(1), CFG) == qa_for(scene, np.random.default_rng(1), CFG)


def test_vocabulary_covers_all_text(test_split):
    vocab = vocabulary(CFG)
    assert vocab == sorted(set(vocab)) and all(w.isalpha() and w.islower() for w in vocab)
    words = set(vocab)
    questions, answers, owner = test_split.flat_qa()
    texts = test_split.flat_captions()[0] + questions + answers
    used = {w for t in texts for w in t.split()}
    assert used <= words, used - words
    assert set(answer_vocabulary(CFG)) <= words
    assert len(owner) == len(questions)


def test_config_validation():
    with pytest.raises(ValueError):
        WorldConfig(domains=("plain", "sketch"))
    with pytest.raises(ValueError):
        WorldConfig(shapes=("circle", "hexagon"))
    with pytest.raises(ValueError):
        WorldConfig(min_objects=3, max_objects=2)
    with pytest.raises(ValueError):
        build_split(CFG, "holdout", "plain", 2, seed=0)
    with pytest.raises(ValueError):
        build_split(CFG, "test", "sketch", 2, seed=0)
    # YAML-style overrides (lists, a colour mapping) are normalised to hashable tuples.
    cfg = replace(CFG, shapes=["circle", "star"], colours={"red": [230, 40, 40], "blue": [45, 85, 245]})
    world = build_split(cfg, "train", "outline", 5, seed=0)
    assert world.images.shape == (5, 64, 64, 3) and hash(cfg)


def test_image_size_scales():
    world = build_split(replace(CFG, image_size=32), "test", "textured", 4, seed=0)
    assert world.images.shape == (4, 32, 32, 3)


# ---------------------------------------------------------------------------------------------
# Style strength (domain-shift curves)


@pytest.mark.parametrize("domain", [d for d in DOMAINS if d != "plain"])
def test_strength_end_points_are_the_two_styles_pixels(small_splits, domain):
    """Strength 1 renders exactly today's shifted style and 0 exactly the base style (byte for byte),
    so adding strengths changed nothing that was evaluated before."""
    base = small_splits["plain"]
    assert with_domain(base, domain, CFG, strength=1.0).images.tobytes() == small_splits[domain].images.tobytes()
    assert with_domain(base, domain, CFG, strength=0.0).images.tobytes() == base.images.tobytes()
    assert render_scenes(base.scenes, CFG, "val", domain, 3).tobytes() == small_splits[domain].images.tobytes()


@pytest.mark.parametrize("strength", [0.25, 0.5, 0.75])
def test_strength_blends_the_two_renderings(small_splits, strength):
    base, shifted = small_splits["plain"], small_splits["outline"]
    mixed = with_domain(base, "outline", CFG, strength=strength)
    expected = np.rint((1 - strength) * base.images.astype(np.float64) + strength * shifted.images.astype(np.float64))
    assert mixed.images.dtype == np.uint8 and mixed.images.shape == base.images.shape
    assert np.abs(mixed.images.astype(int) - expected.astype(int)).max() <= 1  # float32 rounding at .5
    assert mixed.domain == "outline" and mixed.captions == base.captions and "strength 0.5" in with_domain(
        base, "outline", CFG, 0.5).name


def test_strength_moves_monotonically_towards_the_shifted_style(small_splits):
    base, shifted = small_splits["plain"].images.astype(int), small_splits["low_light"].images.astype(int)
    distances = [np.abs(with_domain(small_splits["plain"], "low_light", CFG, s).images.astype(int) - base).mean()
                 for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert distances[0] == 0 and all(a < b for a, b in itertools.pairwise(distances))
    assert distances[-1] == pytest.approx(np.abs(shifted - base).mean())


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "half"])
def test_bad_strength_is_refused(small_splits, strength):
    with pytest.raises(ValueError, match="style strength must be a number in \\[0, 1\\]"):
        with_domain(small_splits["plain"], "outline", CFG, strength=strength)
