"""The corruption gallery of a run: what one evaluated sample looked like in every cell.

Written once per run, after the evaluation, from the run's own data and draws (the same seed and
sample ids as the evaluation), so the report can show exactly what the models saw:

* ``gallery.png``: the first in-domain image, clean and under every image corruption of the suite
  at each severity (one row per corruption), then each shifted domain at each style strength;
* ``gallery.json``: the first caption, clean and under every text and pair corruption at each
  severity (:data:`GALLERY_JSON` layout below), read by :mod:`mafs_bench.reporting.html`.

``gallery.json``::

    {"image_id": 0, "caption_id": 0, "caption": "a small red circle ...",
     "image_rows": [{"label": "gaussian_noise", "kind": "corruption", "columns": ["clean", "1", "3", "5"]}, ...],
     "text": [{"corruption": "keyboard", "modality": "text", "family": "character",
               "severities": {"1": "a smal red circle ...", ...}}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import corruptions

from ..data import ImageTextData
from ..reporting.merge import GALLERY_JSON, GALLERY_PNG
from ..reporting.plots import plot_image_gallery
from ..reporting.schema import split_domain


def corruption_info(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{name: {"modality": ..., "family": ...}}`` from the corruption registry (for ``run.json``)."""
    return {n: {"modality": corruptions.get(n).modality, "family": corruptions.get(n).family} for n in names}


def write_gallery(out_dir: Path, home: ImageTextData, shifted: Mapping[str, ImageTextData],
                  corruption_names: Sequence[str], severities: Sequence[int], seed: int) -> list[Path]:
    """Write ``gallery.png`` and ``gallery.json`` into ``out_dir``.

    Args:
        home: the in-domain evaluation data (its first image and caption are shown).
        shifted: results-file domain label (``outline``, ``outline@0.5``) -> that cell's data.
        corruption_names: the suite's corruptions; image ones become image rows, text and pair ones
            text rows.
        severities: the suite's severities.
        seed: the suite's corruption seed (so the draws are the evaluation's).

    Returns:
        The paths written (none when the data has no image or caption).
    """
    if len(home.images) == 0 or len(home.captions) == 0:
        return []
    image = np.asarray(home.images[0])
    image_id = int(home.image_ids[0])
    rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    meta_rows: list[dict[str, Any]] = []
    for name in corruption_names:
        if corruptions.get(name).modality != "image":
            continue
        cells = [("clean", image)] + [
            (f"severity {s}", corruptions.apply(name, image, s, seed=seed, sample_id=image_id)) for s in severities
        ]
        rows.append((name, cells))
        meta_rows.append({"label": name, "kind": "corruption", "columns": [c for c, _ in cells]})
    by_domain: dict[str, list[tuple[float, str]]] = {}
    for label in shifted:
        name, strength = split_domain(label)
        by_domain.setdefault(name, []).append((strength, label))
    for name, points in by_domain.items():
        cells = [("strength 0 (in-domain)", image)] + [
            (f"strength {strength:g}", np.asarray(shifted[label].images[0])) for strength, label in sorted(points)
        ]
        rows.append((f"domain: {name}", cells))
        meta_rows.append({"label": name, "kind": "domain", "columns": [c for c, _ in cells]})
    written: list[Path] = []
    if rows:
        written.append(plot_image_gallery(rows, out_dir / GALLERY_PNG, title=f"image {image_id}, seed {seed}"))
    caption = home.captions[0]
    text_rows = []
    for name in corruption_names:
        spec = corruptions.get(name)
        if spec.modality == "image":
            continue
        by_severity = {}
        for s in severities:
            if spec.modality == "text":
                by_severity[str(s)] = corruptions.apply(name, caption, s, seed=seed, sample_id=int(home.caption_ids[0]))
            else:  # pair corruptions act on the whole caption set: show caption 0 of the evaluated set
                out = corruptions.apply_batch(name, home.captions, s, seed=seed, sample_ids=home.caption_ids,
                                              groups=home.caption_image.tolist())
                by_severity[str(s)] = out[0]
        text_rows.append({"corruption": name, "modality": spec.modality, "family": spec.family, "severities": by_severity})
    record = {"image_id": image_id, "caption_id": int(home.caption_ids[0]), "caption": caption, "seed": seed,
              "image_rows": meta_rows, "text": text_rows}
    path = out_dir / GALLERY_JSON
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    written.append(path)
    return written


__all__ = ["GALLERY_JSON", "GALLERY_PNG", "corruption_info", "write_gallery"]
