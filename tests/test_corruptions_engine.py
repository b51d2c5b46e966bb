"""Tests for the engine: the native-uint8 contract, float <-> uint8 conversion, lazy generators,
the exactness of the uint8 / table-driven rewrites against their float formulations (which
:mod:`corruptions.torch_ops` mirrors), default sample ids derived from content, and empty batches
of every modality.

Everything runs on small synthetic images and takes a few seconds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import corruptions
from corruptions.base import (
    CORRUPTIONS,
    U8_TO_FLOAT,
    Corruption,
    LazyGenerator,
    float_to_uint8,
    register_corruption,
    uint8_to_float,
)
from corruptions.image import blur, digital, noise, weather
from corruptions.rng import CONTENT_ID_SPACE, content_id, sample_rng

IMAGE_NAMES = corruptions.names("image")
UINT8_NAMES = [n for n in IMAGE_NAMES if corruptions.get(n).uint8]
RNG = np.random.default_rng(12)
PHOTO = cv2.GaussianBlur(RNG.integers(0, 256, (40, 52, 3), dtype=np.uint8), (5, 5), 1.5)
NOISY = RNG.integers(0, 256, (23, 31, 3), dtype=np.uint8)


def _numpy_to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(np.asarray(x, dtype=np.float32) * np.float32(255.0), 0.0, 255.0)).astype(np.uint8)


# --- conversions -----------------------------------------------------------------------------------


def test_float_to_uint8_matches_numpy_rounding() -> None:
    # Every rounding tie (k + 0.5) / 255 and the float32 neighbours around it, negatives, values > 1.
    ties = (np.arange(-3, 259, dtype=np.float64) + 0.5) / 255.0
    around = [np.nextafter(ties.astype(np.float32), np.float32(np.inf) * s) for s in (-1, 1)]
    values = np.concatenate(
        [ties.astype(np.float32), *around, RNG.uniform(-0.5, 1.5, 20000).astype(np.float32), np.float32([0.0, -0.0, 1.0, 1e9, -1e9])]
    )
    assert np.array_equal(float_to_uint8(values), _numpy_to_uint8(values))
    for shape in ((7, 5, 3), (2, 3, 4, 3), (1,), (0, 3)):
        x = RNG.uniform(-0.2, 1.2, shape).astype(np.float32)
        assert np.array_equal(float_to_uint8(x), _numpy_to_uint8(x))
    view = RNG.uniform(-0.2, 1.2, (9, 8, 3)).astype(np.float32)[::2, 1:]
    assert np.array_equal(float_to_uint8(view), _numpy_to_uint8(view))
    assert np.array_equal(float_to_uint8(U8_TO_FLOAT), np.arange(256))  # every level survives the round trip


def test_uint8_to_float_is_the_engine_conversion() -> None:
    assert np.array_equal(uint8_to_float(NOISY), NOISY.astype(np.float32) * np.float32(1.0 / 255.0))
    assert np.array_equal(U8_TO_FLOAT[NOISY], uint8_to_float(NOISY))


# --- native-uint8 contract ---------------------------------------------------------------------------


@pytest.fixture
def temp_corruptions(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Register throwaway image corruptions for one test (removed again afterwards)."""

    def add(name: str, fn, uint8: bool = True, batch_fn=None) -> None:  # type: ignore[no-untyped-def]
        spec = Corruption(name=name, modality="image", family="test", severities=(1, 2, 3, 4, 5), fn=fn,
                          reference="test", uint8=uint8, batch_fn=batch_fn)
        monkeypatch.setitem(CORRUPTIONS._entries, name, spec)

    return add


def test_uint8_registration_flag() -> None:
    assert "jpeg_compression" in UINT8_NAMES and "impulse_noise" in UINT8_NAMES
    assert not corruptions.get("gaussian_noise").uint8  # float formulation, mirrored by torch_ops
    with pytest.raises(ValueError, match="only for image"):
        Corruption(name="t", modality="text", family="x", severities=(1,) * 5, fn=lambda *a: a, uint8=True)
    decorator = register_corruption("never_added", modality="image", family="x", severities=(1,) * 5, uint8=True)
    assert callable(decorator)  # not applied: nothing is registered


def test_uint8_function_gets_uint8_rgb_and_channel_rule_applies(temp_corruptions) -> None:  # type: ignore[no-untyped-def]
    seen = []

    def invert(img, param, rng):  # type: ignore[no-untyped-def]
        seen.append((img.dtype, img.shape, img.flags.c_contiguous))
        return 255 - img

    temp_corruptions("t_invert", invert)
    rgb = PHOTO
    out = corruptions.apply("t_invert", rgb, 1)
    assert out.dtype == np.uint8 and np.array_equal(out, 255 - rgb)
    assert seen[-1] == (np.uint8, rgb.shape, True)
    # RGBA: alpha kept, RGB corrupted (the function sees a contiguous RGB copy).
    alpha = RNG.integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    out = corruptions.apply("t_invert", rgba, 1)
    assert np.array_equal(out[:, :, 3], alpha[:, :, 0]) and np.array_equal(out[:, :, :3], 255 - rgb)
    assert seen[-1] == (np.uint8, rgb.shape, True)
    # Grayscale: replicated to RGB, converted back with BT.601 luma.
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for g in (gray, gray[:, :, None]):
        out = corruptions.apply("t_invert", g, 1)
        assert out.shape == g.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - (255 - g)).max() <= 1
    # Batch without batch_fn: per-sample loop; with a uint8 batch_fn: called on the uint8 stack.
    stack = np.stack([PHOTO, PHOTO[::-1]])
    assert np.array_equal(corruptions.apply_batch("t_invert", stack, 2), 255 - stack)
    calls = []

    def invert_batch(imgs, param, rngs):  # type: ignore[no-untyped-def]
        calls.append(imgs.dtype)
        return 255 - imgs

    temp_corruptions("t_invert_b", invert, batch_fn=invert_batch)
    assert np.array_equal(corruptions.apply_batch("t_invert_b", stack, 2), 255 - stack) and calls == [np.uint8]


def test_uint8_function_output_is_checked_and_never_aliases_input(temp_corruptions) -> None:  # type: ignore[no-untyped-def]
    temp_corruptions("t_identity", lambda img, p, rng: img)
    temp_corruptions("t_float", lambda img, p, rng: img.astype(np.float32))
    temp_corruptions("t_crop", lambda img, p, rng: img[1:])
    out = corruptions.apply("t_identity", PHOTO, 1)
    assert np.array_equal(out, PHOTO) and not np.shares_memory(out, PHOTO)
    with pytest.raises(RuntimeError, match="uint8"):
        corruptions.apply("t_float", PHOTO, 1)
    with pytest.raises(RuntimeError, match="shape"):
        corruptions.apply("t_crop", PHOTO, 1)
    stack = np.stack([PHOTO, PHOTO])
    temp_corruptions("t_identity_b", lambda img, p, rng: img, batch_fn=lambda imgs, p, rngs: imgs)
    out = corruptions.apply_batch("t_identity_b", stack, 1)
    assert np.array_equal(out, stack) and not np.shares_memory(out, stack)


@pytest.mark.parametrize("name", UINT8_NAMES)
def test_uint8_corruptions_contract(name: str) -> None:
    """Determinism, no input modification or aliasing, batch == single, for every native-uint8 corruption."""
    img = PHOTO.copy()
    for sev in (1, 5):
        out = corruptions.apply(name, img, sev, seed=3, sample_id=4)
        assert out.dtype == np.uint8 and out.shape == img.shape and not np.shares_memory(out, img)
        assert np.array_equal(out, corruptions.apply(name, img, sev, seed=3, sample_id=4))
        assert np.array_equal(img, PHOTO)
    stack = np.stack([PHOTO, PHOTO[::-1, ::-1, ::-1]])
    got = corruptions.apply_batch(name, stack, 3, seed=1, sample_ids=[9, 2])
    want = np.stack([corruptions.apply(name, im, 3, seed=1, sample_id=i) for im, i in zip(stack, [9, 2])])
    assert np.array_equal(got, want)


# --- lazy generators ------------------------------------------------------------------------------------


def test_lazy_generator_draws_like_sample_rng() -> None:
    lazy = LazyGenerator(4, 7, "fog", 2)
    real = sample_rng(4, 7, "fog", 2)
    assert lazy._gen is None
    assert lazy.integers(0, 1000, 5).tolist() == real.integers(0, 1000, 5).tolist()
    assert np.array_equal(lazy.bit_generator.random_raw(3), real.bit_generator.random_raw(3))
    assert lazy.generator is lazy.generator
    with pytest.raises(ValueError, match="non-negative"):
        corruptions.apply("contrast", PHOTO, 1, seed=-1)  # checked even though contrast never draws


# --- draws ------------------------------------------------------------------------------------------------


def test_uniform32_and_scaled_normals() -> None:
    for n in (1, 6, 7, 1001):
        assert np.array_equal(noise.uniform32(np.random.default_rng(n), (n,)), np.random.default_rng(n).random(n, dtype=np.float32))
    a = noise.standard_normal32(np.random.default_rng(5), (33, 7), 0.26)
    b = noise.standard_normal32(np.random.default_rng(5), (33, 7)) * np.float32(0.26)
    assert np.array_equal(a, b)
    table = noise.normal_quantiles16()
    assert np.array_equal(table, -table[::-1]) and np.all(np.diff(table) > 0)
    idx = RNG.integers(0, 65536, (17, 9)).astype(np.uint16)
    assert np.array_equal(noise.lookup16(table, idx), table[idx])


# --- exactness of the uint8 rewrites ------------------------------------------------------------------


def _images() -> list[np.ndarray]:
    dark = PHOTO.copy()
    dark[:5] = 0  # black pixels (brightness's special case)
    gray = np.repeat(PHOTO[:, :, :1], 3, axis=2)  # gray pixels (saturation 0)
    return [PHOTO, NOISY, dark, gray, np.full((6, 9, 3), 255, np.uint8)]


def _old_impulse(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(x.shape, dtype=np.float32)
    half = np.float32(amount / 2.0)
    out = x.copy()
    np.copyto(out, np.float32(1.0), where=u < half)
    np.copyto(out, np.float32(0.0), where=(u >= half) & (u < np.float32(amount)))
    return out


def _old_shot(x: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    levels = np.rint(np.clip(x, 0.0, 1.0) * np.float32(255.0)).astype(np.int32)
    return noise.poisson_from_uniform(levels, rng.random(x.shape, dtype=np.float64), scale) * np.float32(1.0 / scale)


@pytest.mark.parametrize(
    ("name", "float_fn"),
    [
        ("impulse_noise", _old_impulse),
        ("shot_noise", _old_shot),
        ("contrast", lambda x, p, rng: digital.contrast_float(x, p)),
        ("brightness", lambda x, p, rng: weather.brightness_float(x, p)),
    ],
)
def test_uint8_rewrites_equal_float_formulation(name: str, float_fn) -> None:  # type: ignore[no-untyped-def]
    """These pointwise corruptions are byte-identical to their float32 formulation (and so to torch_ops)."""
    for sev in range(1, 6):
        param = corruptions.get(name).param(sev)
        for k, img in enumerate(_images()):
            want = float_to_uint8(float_fn(uint8_to_float(img), param, sample_rng(2, k, name, sev)))
            assert np.array_equal(corruptions.apply(name, img, sev, seed=2, sample_id=k), want), (name, sev, k)


def test_shot_tables_resolve_every_bin_exactly() -> None:
    """Bins marked unambiguous give the count of every uniform inside them (spot-checked at both ends)."""
    for scale in (60.0, 3.0):
        table, marker, _ = noise._shot_tables(scale)
        cdf, _, k_max = noise.poisson_tables(scale)
        rows = cdf.reshape(256, k_max)
        grid = table.reshape(1 << noise._FINE_BITS, 256)
        for level in (0, 1, 128, 255):
            for b in range(0, 1 << noise._FINE_BITS, 37):
                if grid[b, level] == marker:
                    continue
                for u in (b / 4096.0, (b + 1) / 4096.0 - 2.0**-53):
                    assert grid[b, level] == np.searchsorted(rows[level], u, side="right")


def test_defocus_equals_filter_with_disk_kernel() -> None:
    for radius, alias in corruptions.get("defocus_blur").severities:
        kernel = blur.disk_kernel(radius, alias)
        assert abs(float(kernel.sum()) - 1.0) < 1e-5 and np.array_equal(kernel, kernel.T)
        for img in (PHOTO, NOISY):
            want = _numpy_to_uint8(cv2.filter2D(uint8_to_float(img), -1, kernel, borderType=cv2.BORDER_REFLECT_101))
            diff = np.abs(blur.defocus_uint8(img, radius, alias).astype(int) - want)
            assert diff.max() <= 1 and np.mean(diff > 0) < 0.002


@pytest.mark.parametrize("shape", [(16, 27), (31, 6), (1, 41), (13, 14), (3, 3), (12, 200)])
def test_correlate_equals_filter2d(shape: tuple[int, int]) -> None:
    """The strip-wise direct correlation equals cv2.filter2D for any kernel, anchor and border."""
    kernel = np.where(RNG.random(shape) < 0.3, RNG.standard_normal(shape), 0.0).astype(np.float32)
    kernel[0, 0] = kernel[-1, -1] = 0.5
    img = RNG.random((37, 45, 3)).astype(np.float32)
    for anchor in ((0, 0), (shape[1] // 2, shape[0] // 2), (shape[1] - 1, shape[0] - 1)):
        for border in (cv2.BORDER_REPLICATE, cv2.BORDER_REFLECT_101):
            want = cv2.filter2D(img, -1, kernel, anchor=anchor, borderType=border)
            got = blur.correlate(img, kernel, anchor, border)
            np.testing.assert_allclose(got, want, atol=2e-5 * max(1.0, float(np.abs(kernel).sum())))
    for strip in blur._strips(kernel):
        r0, r1, c0, c1 = strip
        assert (r1 - r0) * (c1 - c0) <= blur._DIRECT_CELLS


def test_pixelate_matches_pillow_box_then_nearest() -> None:
    from PIL import Image

    for img in (PHOTO, NOISY):
        h, w = img.shape[:2]
        for factor in corruptions.get("pixelate").severities:
            small = Image.fromarray(img).resize((max(1, int(w * factor)), max(1, int(h * factor))), Image.BOX)
            want = np.asarray(small.resize((w, h), Image.NEAREST))
            got = corruptions.apply("pixelate", img, corruptions.get("pixelate").severities.index(factor) + 1)
            assert np.abs(got.astype(int) - want).max() <= 1  # Pillow rounds after each axis, we once


def test_fog_plasma_u8_equals_rounded_float_crop() -> None:
    """Fog's uint8 haze takes the same draws and crop as :func:`weather.random_plasma` (all 8 symmetries)."""
    syms = set()
    for h, w in ((24, 40), (33, 17)):
        for seed in range(24):
            rng = np.random.default_rng(seed)
            syms.add(int(np.random.default_rng(seed).integers(0, [8, 8, 64, 64])[1]))
            want = cv2.convertScaleAbs(np.ascontiguousarray(weather.random_plasma(h, w, 2.0, np.random.default_rng(seed))), alpha=200.0)
            assert np.array_equal(weather.random_plasma_u8(h, w, 2.0, rng, 200.0), want)
    assert len(syms) == 8


# --- default sample ids: derived from content ------------------------------------------------------

ALL_NAMES = corruptions.names()
GOLDEN_IMAGE = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
CAPTION_LIST = ["a red circle", "a blue square", "two green stars"]


def _sample_for(name: str, k: int = 0):  # type: ignore[no-untyped-def]
    """A small input of ``name``'s modality; ``k`` makes different inputs."""
    modality = corruptions.get(name).modality
    if modality == "image":
        return np.roll(PHOTO, 3 * k, axis=1)
    if modality == "text":
        return f"A man rides {k + 2} large waves on a white surfboard near the rocks."
    return [f"{c} number {k}" for c in CAPTION_LIST]


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def test_content_id_golden_values() -> None:
    """The documented recipe, pinned: a change of hashing scheme changes every default draw."""
    def recipe(payload: bytes) -> int:
        return int.from_bytes(hashlib.sha256(payload).digest()[:8], "little") >> 1

    assert content_id("a red circle") == recipe(b"text\0a red circle") == 923376595923643322
    header = b"image\x00|u1\x004,5,3\x00"  # type tag, dtype.str, shape, NUL-separated
    assert content_id(GOLDEN_IMAGE) == recipe(header + GOLDEN_IMAGE.tobytes()) == 2211796411867609399
    pair = b"captions\0" + b"".join(len(c).to_bytes(8, "little") + c.encode() for c in CAPTION_LIST[:2])
    assert content_id(CAPTION_LIST[:2]) == recipe(pair) % (CONTENT_ID_SPACE - 1) == 5639093137648489969
    assert content_id("") == 5983087741086354864 and content_id([]) == 961854195587746237
    # and the draws they give, end to end
    out = corruptions.apply("gaussian_noise", GOLDEN_IMAGE, 3)
    assert hashlib.sha256(out.tobytes()).hexdigest() == "9320913ebcf0b7ac8e7684422aace5ac93c3372099308b67a5dfe0534eeb4d66"
    assert corruptions.apply("keyboard", "a small red circle next to a large blue square", 5) == \
        "a small red ci3Xle next to a larv3 blue square"


def test_content_id_is_typed_and_in_range() -> None:
    flat = GOLDEN_IMAGE.reshape(-1)
    ids = {content_id(GOLDEN_IMAGE), content_id(flat), content_id(GOLDEN_IMAGE.reshape(5, 4, 3)),
           content_id(GOLDEN_IMAGE.astype(np.int8)), content_id(GOLDEN_IMAGE.tobytes().decode("latin-1"))}
    assert len(ids) == 5, "same bytes in another shape, dtype or type is another sample"
    assert content_id(GOLDEN_IMAGE[:, ::-1]) == content_id(np.ascontiguousarray(GOLDEN_IMAGE[:, ::-1]))
    assert content_id(["ab", "c"]) != content_id(["a", "bc"])  # captions are length-prefixed
    for x in ("", "\ud800 lone surrogate", GOLDEN_IMAGE, np.zeros((0, 4, 3), np.uint8), [], ["x"] * 1000):
        assert 0 <= content_id(x) < CONTENT_ID_SPACE
        if isinstance(x, list):
            assert content_id(x) + len(x) - 1 < CONTENT_ID_SPACE  # every caption id fits an int64
    with pytest.raises(TypeError, match="content_id"):
        content_id(3)  # type: ignore[arg-type]


def test_content_id_is_stable_across_processes() -> None:
    """Never Python's salted ``hash``: other hash seeds give the same ids."""
    code = "from corruptions.rng import content_id; print(content_id('a red circle'), content_id(['a', 'b']))"
    root = Path(__file__).resolve().parents[1]
    outs = {
        subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout
        for h in (1, 2)
    }
    assert outs == {f"{content_id('a red circle')} {content_id(['a', 'b'])}\n"}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_omitted_sample_id_is_the_content_id(name: str) -> None:
    """Without an id: apply == apply with ``content_id(x)``; equal inputs equal, different inputs other draws."""
    x = _sample_for(name)
    out = corruptions.apply(name, x, 4, seed=1)
    assert _same(out, corruptions.apply(name, x, 4, seed=1, sample_id=content_id(x)))
    copy = x.copy() if isinstance(x, np.ndarray) else list(x) if isinstance(x, list) else "".join(x)
    assert _same(out, corruptions.apply(name, copy, 4, seed=1))
    batch = [_sample_for(name, k) for k in range(3)]
    if corruptions.get(name).modality == "pair":
        return  # a pair batch is one caption list: test_apply_batch_default_ids_for_pairs
    if isinstance(x, np.ndarray):
        batch = np.stack(batch)
    got = corruptions.apply_batch(name, batch, 4, seed=1)
    want = [corruptions.apply(name, b, 4, seed=1) for b in batch]
    assert _same(got, np.stack(want) if isinstance(batch, np.ndarray) else want)
    explicit = [content_id(b) for b in batch]
    assert _same(got, corruptions.apply_batch(name, batch, 4, seed=1, sample_ids=explicit))


def test_apply_batch_default_ids_for_pairs() -> None:
    """A pair batch is one caption list: caption k gets content_id(captions) + k, as apply without an id."""
    captions = [f"a {c} circle at the top" for c in ("red", "blue", "green", "white", "black", "pink")] * 3
    groups = [i % 6 for i in range(len(captions))]
    for name in corruptions.names("pair"):
        got = corruptions.apply_batch(name, captions, 5, seed=2, groups=groups)
        assert got == corruptions.apply(name, captions, 5, seed=2, groups=groups)
        ids = list(range(content_id(captions), content_id(captions) + len(captions)))
        assert got == corruptions.apply_batch(name, captions, 5, seed=2, sample_ids=ids, groups=groups)
    with pytest.raises(TypeError, match="not one str"):
        corruptions.apply("caption_shuffle", "a red circle", 3)


def test_explicit_sample_ids_keep_their_draws() -> None:
    """An explicit id draws exactly from sample_rng(seed, id, ...), as before content ids existed."""
    img = PHOTO
    noise_field = sample_rng(3, 17, "gaussian_noise", 2)
    want = float_to_uint8(uint8_to_float(img) + noise.standard_normal32(noise_field, img.shape, 0.12))
    assert np.array_equal(corruptions.apply("gaussian_noise", img, 2, seed=3, sample_id=17), want)
    big = CONTENT_ID_SPACE - 1  # the largest content id is a valid explicit id, here and in batches
    assert np.array_equal(corruptions.apply_batch("gaussian_noise", img[None], 2, seed=3, sample_ids=[big])[0],
                          corruptions.apply("gaussian_noise", img, 2, seed=3, sample_id=big))


def test_two_batches_are_not_correlated_by_position() -> None:
    """Different batches without ids: position k of one batch is not noised like position k of the other."""
    a = np.stack([np.roll(PHOTO, k, axis=0) for k in range(4)])
    b = np.clip(a.astype(np.int16) + 7, 0, 255).astype(np.uint8)  # other images, same structure
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "elastic_transform"):
        oa, ob = (corruptions.apply_batch(name, x, 3).astype(int) - x for x in (a, b))
        changed = (oa != 0) | (ob != 0)
        same = changed & (oa == ob)
        assert same.sum() / changed.sum() < 0.3, name


# --- empty batches and degenerate inputs ------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_empty_batch_returns_empty_result_of_its_kind(name: str) -> None:
    modality = corruptions.get(name).modality
    assert corruptions.apply_batch(name, [], 3) == []
    assert corruptions.apply_batch(name, [], 3, sample_ids=[], groups=[] if modality == "pair" else None) == []
    if modality == "image":
        for shape in ((0, 8, 8, 3), (0, 8, 8), (0, 8, 8, 1), (0, 8, 8, 4)):
            empty = np.zeros(shape, np.uint8)
            out = corruptions.apply_batch(name, empty, 3)
            assert isinstance(out, np.ndarray) and out.shape == shape and out.dtype == np.uint8
            assert not np.shares_memory(out, empty)
        with pytest.raises(TypeError, match="uint8"):
            corruptions.apply_batch(name, np.zeros((0, 8, 8, 3), np.float32), 3)
    elif modality == "text":
        assert corruptions.apply(name, "", 3) == ""
    else:
        assert corruptions.apply(name, [], 3) == []
    with pytest.raises(ValueError, match="sample_ids"):
        corruptions.apply_batch(name, [], 3, sample_ids=[1])
