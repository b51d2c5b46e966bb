"""Tests for the image corruptions: contract, determinism, batch path, degradation, odd inputs, torch path.

Parametrised over the registry itself (``corruptions.names("image")``): a newly registered image
corruption fails ``test_every_image_corruption_has_test_parameters`` until it gets an entry in
``CASES``. Inputs are small synthetic images (smooth gradients, discs, soft texture) made here
with a seeded generator, except the degradation checks, which use three of scikit-image's bundled
photos at 96 px (see :func:`photos`); the whole file runs in seconds.
"""

from __future__ import annotations

import colorsys
import random
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest

import corruptions
from corruptions.image import blur, noise, occlusion, weather


class Case:
    """Test parameters of one image corruption.

    Args:
        random: whether the output depends on the sample's generator.
        monotone: check that 1 - SSIM grows with severity (False: checked elsewhere).
    """

    def __init__(self, random: bool, monotone: bool = True) -> None:
        self.random = random
        self.monotone = monotone


CASES: dict[str, Case] = {
    "gaussian_noise": Case(random=True),
    "shot_noise": Case(random=True),
    "impulse_noise": Case(random=True),
    "speckle_noise": Case(random=True),
    "gaussian_blur": Case(random=False),
    "defocus_blur": Case(random=False),
    "motion_blur": Case(random=True),
    # zoom_blur, glass_blur, frost, snow and spatter depart from the reference's tables where the
    # reference is not monotone (see their modules and test_departures_from_reference below).
    "zoom_blur": Case(random=False),
    "glass_blur": Case(random=True),
    "fog": Case(random=True),
    "frost": Case(random=True),
    "snow": Case(random=True),
    "spatter": Case(random=True),
    "brightness": Case(random=False),
    "contrast": Case(random=False),
    "saturate": Case(random=False),  # parameter not monotone (1-2 desaturate), degradation is
    "jpeg_compression": Case(random=False),
    "pixelate": Case(random=False),
    "low_resolution": Case(random=False),
    "elastic_transform": Case(random=True),
    "occlusion": Case(random=True),
    "missing_image": Case(random=False),  # the same at every severity: equal degradation is fine
    # Registered by corruptions/qmf.py (tested in tests/test_presets.py): a per-sample coin
    # decides whether an image is noised at all, so degradation grows only in expectation.
    "qmf_image_noise": Case(random=True, monotone=False),
}

IMAGENET_C = [
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "gaussian_blur", "snow", "frost", "fog", "brightness", "spatter",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate",
]
IMAGE_NAMES = corruptions.names("image")


def synthetic(seed: int, h: int = 48, w: int = 48) -> np.ndarray:
    """A photo-like uint8 HxWx3 image: structure mostly in luminance (as in photos), muted colours.

    Shaded gradients, a few soft-coloured discs and low-amplitude texture shared by the channels.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    luma = 0.3 + 0.3 * xx / w + 0.2 * yy / h + 0.1 * np.sin(xx / 5 + yy / 7 + seed)
    tint = 1.0 + 0.25 * (rng.random(3).astype(np.float32) - 0.5)
    img = luma[:, :, None] * tint
    for _ in range(4):
        colour = 0.2 + 0.6 * rng.random(1).astype(np.float32) + 0.15 * (rng.random(3).astype(np.float32) - 0.5)
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(4, max(5, h // 4))
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = colour
    img += cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.5)[:, :, None] * 0.08
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


IMAGES = [synthetic(s) for s in range(4)]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over 7x7 uniform windows (scikit-image's default), valid region, channels averaged."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def box(z: np.ndarray) -> np.ndarray:
        return cv2.blur(z, (7, 7), borderType=cv2.BORDER_REFLECT)

    ma, mb = box(a), box(b)
    va, vb, cov = box(a * a) - ma * ma, box(b * b) - mb * mb, box(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s[3:-3, 3:-3].mean())


# --- registry ------------------------------------------------------------------------------------


def test_every_image_corruption_has_test_parameters() -> None:
    missing = [n for n in IMAGE_NAMES if n not in CASES]
    assert not missing, f"add test parameters to CASES in {__file__} for: {missing}"
    stale = [n for n in CASES if n not in IMAGE_NAMES]
    assert not stale, f"CASES lists unregistered corruptions: {stale}"


def test_all_imagenet_c_corruptions_registered() -> None:
    assert set(IMAGENET_C) <= set(IMAGE_NAMES)
    for name in ("occlusion", "missing_image", "low_resolution"):
        assert name in IMAGE_NAMES
    assert corruptions.get("occlusion").family == "occlusion"
    assert corruptions.get("low_resolution").family == "digital"


def test_severity_tables_match_reference() -> None:
    """Spot checks of the reference tables against REFERENCES.md s4 (full tables in the decorators)."""
    table = {n: corruptions.get(n).reference_severities or corruptions.get(n).severities for n in IMAGENET_C}
    assert table["gaussian_noise"] == (0.08, 0.12, 0.18, 0.26, 0.38)
    assert table["shot_noise"] == (60, 25, 12, 5, 3)
    assert table["impulse_noise"] == (0.03, 0.06, 0.09, 0.17, 0.27)
    assert table["speckle_noise"] == (0.15, 0.20, 0.35, 0.45, 0.60)
    assert table["gaussian_blur"] == (1, 2, 3, 4, 6)
    assert table["glass_blur"] == ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
    assert table["defocus_blur"] == ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
    assert table["motion_blur"] == ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
    # np.arange(1, 1.11, .01) has 12 entries (float rounding keeps 1.11), in the reference too.
    assert [len(z) for z in table["zoom_blur"]] == [12, 16, 11, 13, 11]
    assert table["frost"] == ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
    assert table["fog"] == ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4))
    assert table["brightness"] == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert table["contrast"] == (0.4, 0.3, 0.2, 0.1, 0.05)
    assert table["saturate"] == ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))
    assert table["jpeg_compression"] == (25, 18, 15, 10, 7)
    assert table["pixelate"] == (0.6, 0.5, 0.4, 0.3, 0.25)
    assert table["elastic_transform"] == tuple(250 * a for a in (0.05, 0.065, 0.085, 0.1, 0.12))
    assert len(table["snow"][0]) == 7 and len(table["spatter"][0]) == 6


# Where our tables depart from the reference's on purpose (the reference is not monotone there);
# each module's docstring explains the departure under "Departures".
DEPARTURES = {"zoom_blur": (3, 5), "glass_blur": (3, 4, 5), "frost": (4,), "snow": (2, 3), "spatter": (3, 4)}


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_departures_from_reference(name: str) -> None:
    spec = corruptions.get(name)
    assert spec.departures() == DEPARTURES.get(name, ())
    if spec.departures():
        module_doc = sys.modules[spec.fn.__module__].__doc__ or ""
        assert "Departures" in module_doc and f"``{name}``" in module_doc
        # Same kind of parameters as the reference, so a reader can hold them side by side
        # (zoom_blur's entries are factor lists, whose length is what departs).
        for ours, ref in zip(spec.severities, spec.reference_severities):
            assert type(ours) is type(ref) and (name == "zoom_blur" or len(ours) == len(ref))


def test_zoom_blur_departure_keeps_zoom_ranges() -> None:
    spec = corruptions.get("zoom_blur")
    for ours, ref in zip(spec.severities, spec.reference_severities):
        assert ours[0] == ref[0] == 1.0 and ours[-1] == ref[-1]
    assert [len(z) for z in spec.severities] == [12, 16, 13, 13, 13]


def test_glass_partial_pass() -> None:
    """A fractional pass pulls at about that share of the visited pixels; a whole pass is unchanged."""
    h = w = 40
    full = blur._glass_sources(h, w, 2, np.random.default_rng(5))
    same = blur._glass_sources(h, w, 2, np.random.default_rng(5), share=1.0)
    assert np.array_equal(full, same)
    moved = lambda src: float(np.mean(src != np.arange(h * w)))  # noqa: E731
    partial = blur._glass_sources(h, w, 2, np.random.default_rng(5), share=0.25)
    none = blur._glass_sources(h, w, 2, np.random.default_rng(5), share=0.0)
    assert np.array_equal(none, np.arange(h * w))
    assert 0.15 * moved(full) < moved(partial) < 0.4 * moved(full)
    img = PHOTOS[0]
    losses = [1 - ssim(img, blur.glass_blur(img, (1.0, 2, it), np.random.default_rng(1))) for it in (2, 2.5, 3)]
    assert losses[0] < losses[1] < losses[2]
    with pytest.raises(ValueError, match="iterations"):
        blur.glass_blur(img, (1.0, 2, -1), np.random.default_rng(1))


@pytest.mark.parametrize("name", ["frost", "fog"])
def test_shared_draws_grow_per_sample(name: str) -> None:
    """frost and fog draw the same texture / field at every severity: each sample's loss grows."""
    spec = corruptions.get(name)
    assert spec.shared_draws and spec.draw_key(4) == 0
    for img in PHOTOS:
        for sample_id in range(4):
            loss = [1 - ssim(img, corruptions.apply(name, img, sev, seed=3, sample_id=sample_id)) for sev in range(1, 6)]
            assert all(b > a for a, b in zip(loss, loss[1:])), f"{name} sample {sample_id}: {loss}"


def test_stratified_choice_deals_each_option_once() -> None:
    from corruptions.base import LazyGenerator, stratified_choice

    for seed in (0, 1, 7):
        for start in (0, 3, 1000):
            dealt = [stratified_choice(LazyGenerator(seed, i, "frost", 2), 5) for i in range(start, start + 5)]
            assert sorted(dealt) == [0, 1, 2, 3, 4]
    offsets = {stratified_choice(LazyGenerator(seed, 0, "frost", 1), 5) for seed in range(20)}
    assert len(offsets) > 1, "the deal should depend on the seed"
    drawn = stratified_choice(np.random.default_rng(0), 5)  # a plain generator: drawn
    assert 0 <= drawn < 5


def test_frost_texture_dealt_by_sample_id() -> None:
    """Five consecutive samples of one clean image get five different frost textures."""
    flat = np.full((48, 48, 3), 128, dtype=np.uint8)
    means = {round(float(corruptions.apply("frost", flat, 3, seed=0, sample_id=i).mean()), 1) for i in range(5)}
    assert len(means) >= 4  # textures differ in brightness (two share their statistics)


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_docstring_and_reference(name: str) -> None:
    spec = corruptions.get(name)
    assert spec.fn.__doc__ and spec.fn.__doc__.strip(), f"{name} needs a docstring"
    assert spec.reference, f"{name} needs a reference"


# --- contract and determinism ---------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_contract_and_determinism(name: str) -> None:
    img = IMAGES[0]
    for sev in (1, 3, 5):
        out = corruptions.apply(name, img, sev, seed=0, sample_id=7)
        assert out.shape == img.shape and out.dtype == np.uint8
        again = corruptions.apply(name, img, sev, seed=0, sample_id=7)
        assert np.array_equal(out, again), "same (seed, sample_id) must give the same bytes"
        assert np.array_equal(img, IMAGES[0]), "the input must not be modified"
    others = [corruptions.apply(name, img, 5, seed=0, sample_id=i) for i in range(8, 12)]
    first = corruptions.apply(name, img, 5, seed=0, sample_id=7)
    differs = any(not np.array_equal(first, o) for o in others)
    assert differs == CASES[name].random, f"{name}: sample id {'should' if CASES[name].random else 'should not'} matter"


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_batch_path_equals_per_sample(name: str) -> None:
    batch = np.stack(IMAGES[:3])
    ids = [3, 11, 40]
    got = corruptions.apply_batch(name, batch, 4, seed=5, sample_ids=ids)
    want = np.stack([corruptions.apply(name, im, 4, seed=5, sample_id=i) for im, i in zip(batch, ids)])
    assert got.dtype == np.uint8 and np.array_equal(got, want)


def _identically_changed_share(outs: list[np.ndarray], imgs: list[np.ndarray]) -> float:
    """Mean over image pairs: share of the pixels changed in either image that changed identically
    (the same difference to the clean image, or the same output value)."""
    shares = []
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            di, dj = outs[i].astype(int) - imgs[i], outs[j].astype(int) - imgs[j]
            changed = (di != 0) | (dj != 0)
            same = changed & ((di == dj) | (outs[i] == outs[j]))
            shares.append(same.sum() / max(int(changed.sum()), 1))
    return float(np.mean(shares))


RANDOM_NAMES = [n for n in IMAGE_NAMES if CASES[n].random]


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_omitted_sample_id_gives_different_images_independent_draws(name: str) -> None:
    """Images that differ only by a brightness shift: with one shared draw (the old default id 0)
    95-100% of the changed pixels changed identically; with content ids, as many as with distinct
    explicit ids (chance agreement)."""
    base = np.clip(IMAGES[0], 20, 230)
    imgs = [base + np.uint8(3 * k) for k in range(6)]
    default = _identically_changed_share([corruptions.apply(name, im, 3) for im in imgs], imgs)
    distinct = _identically_changed_share([corruptions.apply(name, im, 3, sample_id=k) for k, im in enumerate(imgs)], imgs)
    assert default < 0.3 and default < distinct + 0.1, (name, default, distinct)
    assert np.array_equal(corruptions.apply(name, imgs[2], 3), corruptions.apply(name, imgs[2].copy(), 3))


def test_no_global_rng_is_touched() -> None:
    np_state = np.random.get_state()[1].copy()
    py_state = random.getstate()
    for name in IMAGE_NAMES:
        corruptions.apply(name, IMAGES[1], 3, seed=1, sample_id=2)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert random.getstate() == py_state


def test_corruptions_does_not_import_torch() -> None:
    code = "import sys, corruptions; corruptions.apply('motion_blur', __import__('numpy').zeros((32, 32, 3), 'uint8'), 1); print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


# --- degradation ---------------------------------------------------------------------------------


def photos(size: int = 96) -> list[np.ndarray]:
    """Three of scikit-image's bundled photos (no download), resized to ``size`` x ``size``.

    Degradation is checked on photos, not on :func:`synthetic` images: what a corruption does to
    SSIM depends on image content (glass blur's severity 1 and 2 swap places on smooth shading),
    and photos are what ImageNet-C's severities are calibrated on. ``benchmarks/imagenet_c_ssim.py``
    checks the same at 224 px on these and on held-out photos.
    """
    from skimage import data

    return [
        cv2.resize(np.ascontiguousarray(getattr(data, n)()[:, :, :3]), (size, size), interpolation=cv2.INTER_AREA)
        for n in ("astronaut", "coffee", "rocket")
    ]


PHOTOS = photos()


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_degradation_grows_with_severity(name: str) -> None:
    case = CASES[name]
    if not case.monotone:
        pytest.skip(f"{name}: degradation only grows in expectation (see CASES)")
    # Random corruptions: 3 draws per photo, as their severities differ by draws as well.
    draws = [(img, k + 4 * j) for j in range(3 if case.random else 1) for k, img in enumerate(PHOTOS)]
    loss = [
        np.mean([1.0 - ssim(img, corruptions.apply(name, img, sev, seed=0, sample_id=i)) for img, i in draws])
        for sev in range(1, 6)
    ]
    assert loss[0] > 0.01 or name == "missing_image" or loss[0] > 0, f"{name} sev 1 does nothing: {loss}"
    for sev in range(2, 6):
        step = loss[sev - 1] - loss[sev - 2]
        if name == "missing_image":
            assert abs(step) < 1e-12, f"{name}: not the same at every severity: {loss}"
        else:
            assert step > 0, f"{name}: 1-SSIM does not grow from severity {sev - 1} to {sev}: {loss}"


# --- odd inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_odd_inputs(name: str) -> None:
    small = synthetic(9, 32, 32)
    wide = synthetic(10, 33, 57)  # odd, non-square
    for img in (small, wide):
        out = corruptions.apply(name, img, 5, seed=0, sample_id=1)
        assert out.shape == img.shape and out.dtype == np.uint8
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    for g in (gray, gray[:, :, None]):
        out = corruptions.apply(name, g, 3, seed=0, sample_id=1)
        assert out.shape == g.shape and out.dtype == np.uint8
    alpha = np.random.default_rng(3).integers(0, 256, (32, 32, 1), dtype=np.uint8)
    rgba = np.concatenate([small, alpha], axis=2)
    out = corruptions.apply(name, rgba, 3, seed=0, sample_id=1)
    assert out.shape == rgba.shape and np.array_equal(out[:, :, 3], alpha[:, :, 0])
    assert np.array_equal(out[:, :, :3], corruptions.apply(name, small, 3, seed=0, sample_id=1))


DEGENERATE_SHAPES = [(1, 1, 3), (1, 7, 3), (7, 1, 3), (2, 2, 3), (1, 1), (1, 1, 1), (1, 1, 4), (3, 2, 4)]
EMPTY_SHAPES = [(0, 5, 3), (5, 0, 3), (0, 0, 3), (0, 0), (0, 4, 1), (4, 0, 4)]


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_tiny_and_empty_images(name: str) -> None:
    """1-pixel and 2-pixel sides work (shape, dtype, alpha kept, no NaN warnings: fog's plasma map
    is at least 2x2); an image with no pixels comes back as an unchanged copy (OpenCV's
    reflect border loops forever on an empty image)."""
    rng = np.random.default_rng(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for shape in DEGENERATE_SHAPES:
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            for sev in (1, 5):
                out = corruptions.apply(name, img, sev, seed=0, sample_id=3)
                assert out.shape == img.shape and out.dtype == np.uint8, (shape, sev)
                if len(shape) == 3 and shape[2] == 4:
                    assert np.array_equal(out[:, :, 3], img[:, :, 3])
                assert np.array_equal(out, corruptions.apply(name, img, sev, seed=0, sample_id=3))
    for shape in EMPTY_SHAPES:
        img = np.zeros(shape, np.uint8)
        out = corruptions.apply(name, img, 5)
        assert out.shape == shape and out.dtype == np.uint8 and not np.shares_memory(out, img)
    stack = np.zeros((2, 0, 5, 3), np.uint8)
    assert corruptions.apply_batch(name, stack, 3).shape == stack.shape
    assert corruptions.apply_batch(name, rng.integers(0, 256, (2, 1, 1, 3), dtype=np.uint8), 3).shape == (2, 1, 1, 3)


def test_large_image_scale_rules() -> None:
    """Frost textures are enlarged to cover big images; fog maps grow to the next power of two."""
    big = cv2.resize(IMAGES[0], (1100, 700), interpolation=cv2.INTER_LINEAR)
    for name in ("frost", "fog"):
        out = corruptions.apply(name, big, 2, seed=0, sample_id=0)
        assert out.shape == big.shape
    tex = weather.frost_texture_for(0, 700, 1100)
    assert tex.shape[0] >= 700 and tex.shape[1] >= 1100


# --- semantics against the reference definitions ----------------------------------------------------


def test_glass_blur_shuffle_matches_sequential_reference_semantics() -> None:
    """The vectorised pull-chains equal the reference's sequential numpy 'swap' loop, draw for draw."""
    for h, w, delta in ((12, 15, 2), (20, 17, 3), (10, 10, 1), (32, 32, 4)):
        src = blur._glass_sources(h, w, delta, np.random.default_rng(h + delta))
        rng = np.random.default_rng(h + delta)
        hs, ws = np.arange(h - delta, delta, -1), np.arange(w - delta, delta, -1)
        draws = rng.integers(-delta, delta, size=(hs.size * ws.size, 2))
        x = np.arange(h * w * 3).reshape(h, w, 3)
        k = 0
        for hh in hs:
            for ww in ws:
                dx, dy = draws[k]
                k += 1
                x[hh, ww], x[hh + dy, ww + dx] = x[hh + dy, ww + dx], x[hh, ww]  # numpy views: a pull
        assert np.array_equal(np.arange(h * w * 3).reshape(h * w, 3)[src].reshape(h, w, 3), x)


def test_motion_kernel_equals_shifted_copies() -> None:
    """One filter2D with the line kernel == the reference's sum of edge-clamped shifted copies."""
    img = IMAGES[2].astype(np.float32) / 255.0
    h, w = img.shape[:2]
    for radius, sigma, angle in ((10, 3, 30.0), (15, 8, -44.0), (12, 8, -100.0)):
        taps = np.exp(-np.arange(2 * radius + 1) ** 2 / (2 * sigma**2))
        taps /= taps.sum()
        want = np.zeros_like(img)
        for i, t in enumerate(taps):
            dy = int(np.ceil(i * np.sin(np.radians(angle)) - 0.5))
            dx = int(np.ceil(i * np.cos(np.radians(angle)) - 0.5))
            rows = np.clip(np.arange(h) + dy, 0, h - 1)
            cols = np.clip(np.arange(w) + dx, 0, w - 1)
            want += np.float32(t) * img[rows][:, cols]
        np.testing.assert_allclose(blur.motion(img, radius, sigma, angle), want, atol=2e-5)


def test_zoom_crop_matches_scipy_zoom() -> None:
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    img = IMAGES[1].astype(np.float32) / 255.0
    h, w = img.shape[:2]
    for factor in (1.06, 1.2, 1.3):
        ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
        top, left = (h - ch) // 2, (w - cw) // 2
        want = scipy_ndimage.zoom(img[top : top + ch, left : left + cw], (factor, factor, 1), order=1)[:h, :w]
        # warpAffine interpolates with 1/32-pixel weights: agreement to ~1/64 of the local gradient.
        assert np.abs(blur.zoom_crop(img, factor) - want).max() < 0.02


def test_brightness_and_saturate_equal_hsv_round_trip() -> None:
    rng = np.random.default_rng(0)
    px = rng.random((200, 1, 3)).astype(np.float32)
    px[:5] = px[:5, :, :1]  # some grays (S = 0)
    px[5] = 0.0  # black (V = 0)
    for shift in corruptions.get("brightness").severities:
        got = weather.brightness_float(px, shift)[:, 0]
        for p, g in zip(px[:, 0], got):
            h, s, v = colorsys.rgb_to_hsv(*map(float, p))
            np.testing.assert_allclose(g, colorsys.hsv_to_rgb(h, s, min(v + shift, 1.0)), atol=2e-6)
    for scale, shift in corruptions.get("saturate").severities:
        got = corruptions.get("saturate").fn(px, (scale, shift), rng)[:, 0]
        for p, g in zip(px[:, 0], got):
            h, s, v = colorsys.rgb_to_hsv(*map(float, p))
            np.testing.assert_allclose(g, colorsys.hsv_to_rgb(h, min(max(s * scale + shift, 0.0), 1.0), v), atol=2e-6)


def test_shot_noise_tables_are_poisson() -> None:
    rng = np.random.default_rng(1)
    for scale in (60, 12, 3):
        for level in (0, 1, 77, 255):
            counts = noise.poisson_from_uniform(np.full(40000, level), rng.random(40000), scale)
            lam = level / 255 * scale
            assert abs(counts.mean() - lam) < 4 * np.sqrt(max(lam, 1e-3) / 40000) + 1e-9
            assert abs(counts.var() - lam) < 0.05 * lam + 1e-9
    pmf = np.bincount(noise.poisson_from_uniform(np.full(200000, 128), rng.random(200000), 5).astype(int)) / 2e5
    ref = np.bincount(rng.poisson(128 / 255 * 5, 200000)) / 2e5
    n = min(len(pmf), len(ref))
    assert np.abs(pmf[:n] - ref[:n]).max() < 0.006


def test_standard_normals() -> None:
    z = noise.standard_normal32(np.random.default_rng(0), (301, 333))
    assert z.dtype == np.float32 and z.shape == (301, 333)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 0.004


def test_impulse_noise_amounts() -> None:
    img = np.full((64, 64, 3), 128, np.uint8)
    out = corruptions.apply("impulse_noise", img, 5, seed=0, sample_id=0)
    assert abs(np.mean(out == 255) - 0.135) < 0.02 and abs(np.mean(out == 0) - 0.135) < 0.02


def test_occlusion_share_and_missing_image() -> None:
    for share in corruptions.get("occlusion").severities:
        for k in range(5):
            index, colours = occlusion.occlusion_mask_and_fill(48, 64, share, np.random.default_rng(k))
            covered = np.mean(index >= 0)
            assert share - 0.01 <= covered <= share + 0.03, (share, covered)
            assert colours.shape[1] == 3
    out = corruptions.apply("missing_image", IMAGES[0], 1)
    assert np.all(out == np.rint(np.array(occlusion.IMAGENET_MEAN) * 255).astype(np.uint8))
    assert np.array_equal(out, corruptions.apply("missing_image", IMAGES[1], 5, sample_id=9))


def test_fog_plasma_is_periodic_and_normalised() -> None:
    field = weather.plasma_fractal(64, 2.0, np.random.default_rng(0))
    assert field.min() == 0.0 and field.max() == 1.0
    # Periodic: the wrap-around seam is as smooth as any interior seam.
    seam = np.abs(field[0] - field[-1]).mean()
    inner = np.abs(np.diff(field, axis=0)).mean()
    assert seam < 3 * inner


# --- torch path ----------------------------------------------------------------------------------


def _torch_batch(torch, imgs: list[np.ndarray]):  # type: ignore[no-untyped-def]
    x = np.stack(imgs).astype(np.float32) * np.float32(1.0 / 255.0)  # as the engine converts
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def _to_uint8(t) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.rint(np.clip(t.permute(0, 2, 3, 1).numpy() * np.float32(255.0), 0, 255)).astype(np.uint8)


def test_torch_ops_match_numpy_path() -> None:
    torch = pytest.importorskip("torch")
    from corruptions import torch_ops

    required = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "brightness", "contrast",
                "saturate", "gaussian_blur", "defocus_blur", "motion_blur"}
    assert required <= set(torch_ops.supported())
    batch = IMAGES[:3]
    x = _torch_batch(torch, batch)
    ids = [4, 9, 30]
    pointwise = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "brightness", "contrast", "saturate"}
    for name in torch_ops.supported():
        for sev in (1, 3, 5):
            got = _to_uint8(torch_ops.apply_torch(name, x, sev, seed=2, sample_ids=ids))
            want = corruptions.apply_batch(name, np.stack(batch), sev, seed=2, sample_ids=ids)
            diff = np.abs(got.astype(int) - want)
            if name in pointwise:
                assert diff.max() == 0, f"{name} sev {sev}: torch path not byte-identical"
            else:
                assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, f"{name} sev {sev}: max diff {diff.max()}"


def test_torch_ops_determinism_and_inputs() -> None:
    torch = pytest.importorskip("torch")
    from corruptions import torch_ops

    x = _torch_batch(torch, IMAGES[:2])
    a = torch_ops.apply_torch("gaussian_noise", x, 3, seed=1, sample_ids=[5, 6])
    b = torch_ops.apply_torch("gaussian_noise", x, 3, seed=1, sample_ids=[5, 6])
    c = torch_ops.apply_torch("gaussian_noise", x, 3, seed=1, sample_ids=[7, 6])
    assert torch.equal(a, b) and not torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])
    assert a.shape == x.shape and a.dtype == x.dtype and float(a.min()) >= 0 and float(a.max()) <= 1
    # Noise statistics equal the numpy path's (same draws, so the same MSE to the clean image).
    mse_torch = float(((a - x) ** 2).mean())
    ours = corruptions.apply_batch("gaussian_noise", np.stack(IMAGES[:2]), 3, seed=1, sample_ids=[5, 6])
    mse_numpy = float(((ours / 255.0 - np.stack(IMAGES[:2]) / 255.0) ** 2).mean())
    assert abs(mse_torch - mse_numpy) < 1e-4
    # Grayscale N x 1 x H x W and float64 inputs keep their shape and dtype.
    g = x[:, :1].double()
    out = torch_ops.apply_torch("contrast", g, 2)
    assert out.shape == g.shape and out.dtype == torch.float64
    with pytest.raises(ValueError, match="no torch implementation"):
        torch_ops.apply_torch("frost", x, 1)
    with pytest.raises(KeyError, match="Did you mean"):
        torch_ops.apply_torch("gausian_noise", x, 1)
    with pytest.raises(ValueError):
        torch_ops.apply_torch("contrast", x, 6)


def test_torch_default_ids_are_content_ids() -> None:
    """apply_torch without ids == apply_batch without ids on the uint8 pixels (pointwise: byte for byte);
    two different batches are not noised alike position by position."""
    torch = pytest.importorskip("torch")
    from corruptions import torch_ops
    from corruptions.rng import CONTENT_ID_SPACE, content_id

    batch = IMAGES[:3]
    x = _torch_batch(torch, batch)
    assert torch_ops.content_ids(x) == [content_id(im) for im in batch]
    gray = np.stack([im[:, :, 0] for im in batch])[:, :, :, None]
    assert torch_ops.content_ids(torch.from_numpy(gray).permute(0, 3, 1, 2) / 255.0) == [content_id(g) for g in gray]
    for name in ("gaussian_noise", "impulse_noise", "shot_noise", "speckle_noise"):
        got = _to_uint8(torch_ops.apply_torch(name, x, 3))
        assert np.array_equal(got, corruptions.apply_batch(name, np.stack(batch), 3)), name
    y = _torch_batch(torch, [np.clip(im.astype(int) + 5, 0, 255).astype(np.uint8) for im in batch])
    noise_x = torch_ops.apply_torch("gaussian_noise", x, 3) - x
    noise_y = torch_ops.apply_torch("gaussian_noise", y, 3) - y
    assert float(torch.isclose(noise_x, noise_y, atol=1e-6).float().mean()) < 0.3
    big = [CONTENT_ID_SPACE - 1, 0, 5]  # 63-bit ids are valid explicit ids too
    assert np.array_equal(_to_uint8(torch_ops.apply_torch("gaussian_noise", x, 2, sample_ids=big)),
                          corruptions.apply_batch("gaussian_noise", np.stack(batch), 2, sample_ids=big))


def test_torch_empty_and_tiny_images() -> None:
    """Empty batches and images with no pixels come back unchanged; images smaller than the kernel
    use OpenCV's reflect-101 border like the numpy path (torch's 'reflect' pad refuses them)."""
    torch = pytest.importorskip("torch")
    from corruptions import torch_ops

    for name in torch_ops.supported():
        for shape in ((0, 3, 8, 8), (2, 3, 0, 5), (1, 1, 4, 0)):
            empty = torch.zeros(shape)
            out = torch_ops.apply_torch(name, empty, 3)
            assert out.shape == empty.shape and out.dtype == empty.dtype
        for h, w in ((1, 1), (1, 7), (7, 1), (2, 2), (8, 8)):
            imgs = [np.random.default_rng(h * 10 + w + k).integers(0, 256, (h, w, 3), dtype=np.uint8) for k in range(2)]
            got = _to_uint8(torch_ops.apply_torch(name, _torch_batch(torch, imgs), 5, sample_ids=[1, 2]))
            want = corruptions.apply_batch(name, np.stack(imgs), 5, sample_ids=[1, 2])
            assert np.abs(got.astype(int) - want).max() <= 1, (name, h, w)
