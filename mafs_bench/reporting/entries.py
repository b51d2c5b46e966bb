"""One JSON file per leaderboard entry, in the manner of RobustBench's model entries.

RobustBench keeps one JSON per leaderboard entry (model name, architecture, clean and robust
accuracy, venue...) and the unaggregated per-(corruption, severity) results beside it
(REFERENCES.md s7). Ours, ``entries/<task>__<model>.json`` (names made file-safe), hold:

* ``entry``: ``{"task", "model", "run", "metric", "rank", "not_significantly_different_from_rank1"}``;
* ``scores``: every leaderboard score ``{column: {"value", "sd", "ci_low", "ci_high"}}``;
* ``robustness``: per family and ``all``, every aggregate of :mod:`.robustness` with its interval;
* ``unaggregated``: one record per cell: domain, corruption, modality, severity, the mean over seeds
  and each seed's value;
* ``configuration``: the suite's model entry (a name, or the plugin's mapping), the run's model
  facts (``run.json`` ``models``: parameter counts, cache keys), the training recipe, the dataset,
  the backend, the suite (name, file, corruptions, severities);
* ``provenance``: git commit, training seeds, data/corruption seed, package versions, device, start
  time of the run.

Everything comes from the run's results files (``run.json`` for configuration and provenance).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from mafs_bench.reporting.leaderboard import CI_HIGH, CI_LOW, NOT_SIGNIFICANT_MARK, P_VS_RANK1, SD_SUFFIX, score_columns
from mafs_bench.reporting.bootstrap import ALPHA
from mafs_bench.reporting.merge import Merged
from mafs_bench.reporting.robustness import MEASURES

ENTRIES_DIR: Final[str] = "entries"
ENTRY_VERSION: Final[int] = 1


def entry_name(task: str, model: str) -> str:
    """File name of an entry: ``<task>__<model>.json`` with anything but ``[A-Za-z0-9_.-]`` as ``_``."""
    return f"{_slug(task)}__{_slug(model)}.json"


def build_entries(board: pd.DataFrame, robustness: pd.DataFrame, merged: Merged) -> dict[str, dict[str, Any]]:
    """Entry file name -> entry (see the module docstring) for every leaderboard row."""
    shifted = [c for c in board.columns if c.startswith("domain:") and not c.endswith((SD_SUFFIX, CI_LOW, CI_HIGH))]
    out: dict[str, dict[str, Any]] = {}
    for row in board.to_dict("records"):
        task, model = str(row["task"]), str(row["model"])
        run, orig_task, orig_model = merged.original(task, model)
        p = row.get(P_VS_RANK1)
        scores = {c: {"value": _num(row.get(c)), "sd": _num(row.get(c + SD_SUFFIX)),
                      "ci_low": _num(row.get(c + CI_LOW)), "ci_high": _num(row.get(c + CI_HIGH))}
                  for c in score_columns(shifted) if not _missing(row.get(c))}
        of_model = robustness[(robustness["task"] == task) & (robustness["model"] == model)
                              & (robustness["level"] != "corruption")]
        aggregates = {str(r["name"]): {m: {"value": _num(r[m]), "ci_low": _num(r[m + "_ci_low"]),
                                           "ci_high": _num(r[m + "_ci_high"])} for m in MEASURES}
                      for r in of_model.to_dict("records")}
        cells = merged.metrics[(merged.metrics["task"] == task) & (merged.metrics["model"] == model)
                               & (merged.metrics["metric"] == row["metric"])]
        unaggregated = []
        for key, group in cells.groupby(["domain", "corruption", "modality", "severity"], sort=False):
            values = group["value"].astype(float)
            unaggregated.append({"domain": key[0], "corruption": key[1], "modality": key[2], "severity": int(key[3]),
                                 "value": _num(values.mean() if values.notna().all() else math.nan),
                                 "per_seed": {str(int(s)): _num(v) for s, v in zip(group["seed"], values, strict=True)}})
        meta = run.meta
        suite = meta.get("suite") or {}
        listed = [m for m in suite.get("models") or []
                  if (m if isinstance(m, str) else (m or {}).get("name")) == orig_model]
        facts = {k: v for k, v in (meta.get("models") or {}).items()
                 if k.startswith(f"{orig_model}_") or k.startswith("encoder")}
        name = entry_name(task, model)
        for n in range(2, len(board) + 2):  # two names that slug alike: number the later one
            if name not in out:
                break
            name = entry_name(task, model).removesuffix(".json") + f"-{n}.json"
        out[name] = {
            "version": ENTRY_VERSION,
            "entry": {"task": task, "model": model, "run": run.label, "run_dir": str(run.path),
                      "original_task": orig_task, "original_model": orig_model, "metric": row["metric"],
                      "rank": int(row["rank"]),
                      "not_significantly_different_from_rank1": None if _missing(p) else bool(p >= ALPHA),
                      "p_vs_rank1": _num(p), "mark": NOT_SIGNIFICANT_MARK if not _missing(p) and p >= ALPHA else ""},
            "scores": scores,
            "robustness": aggregates,
            "unaggregated": unaggregated,
            "configuration": {"model": listed[0] if listed else orig_model, "model_facts": facts,
                              "training": meta.get("training"), "dataset": meta.get("dataset"),
                              "backend": suite.get("backend"), "suite": {
                                  "name": suite.get("name"), "file": meta.get("suite_file"),
                                  "corruptions": suite.get("corruptions"), "severities": suite.get("severities"),
                                  "tasks": suite.get("tasks"), "report": suite.get("report")}},
            "provenance": {"commit": meta.get("git_commit"), "seeds": meta.get("seeds"), "seed": meta.get("seed"),
                           "versions": meta.get("versions"), "device": meta.get("device"),
                           "started": meta.get("started")},
        }
    return out


def write_entries(entries: Mapping[str, Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """Write each entry as ``out_dir/entries/<name>``; returns the paths."""
    folder = Path(out_dir) / ENTRIES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in entries.items():
        path = folder / name
        path.write_text(json.dumps(entry, indent=2, default=str, allow_nan=False), encoding="utf-8")
        written.append(path)
    return written


def _num(value: Any) -> float | None:
    """A JSON-safe number: NaN / inf / missing -> None."""
    if _missing(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "_"
