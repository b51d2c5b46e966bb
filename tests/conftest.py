"""Session-wide fixtures: the tiny pretrained-model folders and Karpathy folder of
:mod:`realdata`, built once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import realdata  # noqa: E402


@pytest.fixture(scope="session")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a tiny open_clip ``local-dir:`` model, a ``save_pretrained`` CLIPModel and a
    ``save_pretrained`` BlipForImageTextRetrieval (random weights)."""
    root = tmp_path_factory.mktemp("real_models")
    return {"open_clip": realdata.open_clip_local_dir(root / "open_clip"),
            "hf_clip": realdata.hf_clip_folder(root / "hf_clip"),
            "blip_itm": realdata.hf_blip_itm_folder(root / "blip_itm")}


@pytest.fixture(scope="session")
def coco_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny COCO-style Karpathy folder (train 48, restval 16, val 4, test 12 images)."""
    return realdata.karpathy_folder(tmp_path_factory.mktemp("coco_karpathy"))
