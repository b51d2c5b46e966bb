"""Corruption presets (imagenet-c, mmrobustness, qmf) and the QMF protocol corruptions."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import corruptions  # noqa: E402
from corruptions import presets  # noqa: E402
from corruptions.presets import Preset  # noqa: E402
from corruptions.qmf import qmf_image_noise  # noqa: E402

IMAGENET_C_19 = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
]


def test_names_and_lookup():
    assert presets.names() == ["imagenet-c", "mmrobustness", "qmf"]
    assert presets.get("qmf").name == "qmf"
    with pytest.raises(corruptions.UnknownNameError, match="Did you mean 'imagenet-c'"):
        presets.get("imagenet_c")


def test_imagenet_c():
    p = presets.get("imagenet-c")
    assert list(p.corruptions) == IMAGENET_C_19
    assert list(p.common) == IMAGENET_C_19[:15]
    assert p.severities == (1, 2, 3, 4, 5)
    assert len(p.pairs()) == 95
    for name in p.corruptions:
        if name in corruptions.CORRUPTIONS:  # image corruptions are registered by corruptions.image
            assert corruptions.get(name).modality == "image"


def test_mmrobustness():
    p = presets.get("mmrobustness")
    image = [c for c in p.corruptions if c in IMAGENET_C_19]
    text = [c for c in p.corruptions if c not in IMAGENET_C_19]
    assert image == IMAGENET_C_19[:15]
    assert text == ["keyboard", "ocr", "char_insert", "char_substitute", "char_swap", "char_delete",
                    "synonym_replace", "word_insert", "word_swap", "word_delete", "insert_punctuation"]
    families = [corruptions.get(c).family for c in text]
    assert families == ["character"] * 6 + ["word"] * 5
    assert all(corruptions.get(c).modality == "text" for c in text)
    assert p.severities == (1, 2, 3, 4, 5)
    assert "stylize" in p.notes and "sentence-level" in p.notes


def test_qmf_preset_and_tables():
    p = presets.get("qmf")
    assert p.corruptions == ("qmf_image_noise", "qmf_text_mask")
    assert p.missing() == []
    p.check()
    image, text = corruptions.get("qmf_image_noise"), corruptions.get("qmf_text_mask")
    assert (image.modality, image.family) == ("image", "noise")
    assert text.modality == "text"
    assert image.severities == text.severities == (2, 4, 6, 8, 10)  # eps = 2 * severity
    assert "qmf_image_noise" in corruptions.names("image")


@pytest.mark.parametrize("name", ["imagenet-c", "mmrobustness", "qmf"])
def test_describe(name):
    p = presets.get(name)
    text = p.describe()
    assert text.startswith(name) and all(c in text for c in p.corruptions)
    assert "severities: 1, 2, 3, 4, 5" in text


def test_preset_validation():
    with pytest.raises(ValueError, match="twice"):
        Preset("x", ("a", "a"))
    with pytest.raises(ValueError, match="severities"):
        Preset("x", ("a",), severities=(0, 1))
    with pytest.raises(ValueError, match="common"):
        Preset("x", ("a",), common=("b",))
    bogus = Preset("x", ("keyboard", "no_such_corruption"), severities=(2, 4))
    assert bogus.missing() == ["no_such_corruption"]
    assert bogus.pairs() == [("keyboard", 2), ("keyboard", 4), ("no_such_corruption", 2), ("no_such_corruption", 4)]
    with pytest.raises(LookupError, match="no_such_corruption"):
        bogus.check()
    assert "not registered: no_such_corruption" in bogus.describe()
    with pytest.raises(ValueError, match="already registered"):
        presets.register_preset(Preset("qmf", ("keyboard",)))


def test_qmf_image_noise_protocol():
    gray = np.full((32, 32, 3), 128, np.uint8)
    outs = [corruptions.apply("qmf_image_noise", gray, 1, seed=0, sample_id=i) for i in range(300)]
    noisy = [o for o in outs if not np.array_equal(o, gray)]
    assert 0.4 < len(noisy) / len(outs) < 0.6  # half of the images, decided per sample
    std = np.std(np.stack(noisy).astype(np.float64) - 128)
    assert abs(std - 20.0) < 1.0  # eps = 2 -> std 10 * eps = 20 on 0..255
    assert len({o.tobytes() for o in noisy}) == len(noisy)  # every image its own noise (the repos' bug)
    # clipped at both ends (the repositories clip only above 255)
    on = next(i for i in range(100) if corruptions.sample_rng(0, i, "qmf_image_noise", 5).random() < 0.5)
    for fill in (0.0, 1.0):
        img = np.full((16, 16, 3), fill, np.float32)
        out = qmf_image_noise(img, 10, corruptions.sample_rng(0, on, "qmf_image_noise", 5))
        assert out.min() >= 0.0 and out.max() <= 1.0 and not np.array_equal(out, img)
    # deterministic and the same sample by sample or as a batch
    batch = np.stack([gray] * 6)
    assert np.array_equal(
        corruptions.apply_batch("qmf_image_noise", batch, 3, seed=2, sample_ids=range(6)),
        np.stack([corruptions.apply("qmf_image_noise", gray, 3, seed=2, sample_id=i) for i in range(6)]),
    )
