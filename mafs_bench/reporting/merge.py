"""Read one or several run directories and merge them into one set of results for a report.

Merging rules (what the report's reader must know):

* Every run gets a label: its directory name, made unique by its parent's name (then a number)
  when two runs share a name.
* A model name evaluated on the same task and dataset by several runs is renamed in each of them to
  ``"<model> [<run label>]"``, so two runs of one suite (a baseline and a candidate) sit side by
  side in one leaderboard; names found in one run only are kept.
* A task evaluated on different datasets by different runs is renamed in each to
  ``"<task> [<dataset>]"`` (a leaderboard row never mixes datasets).
* The runs' items files are concatenated under the same renames, so intervals and paired tests
  work across runs of the same dataset (items are paired by their ids).

Reads only results files (``metrics.csv``, ``items.csv.gz``, ``run.json``, ``fusion_cues.csv`` or
``fusion_weights.csv``, ``gallery.png`` / ``gallery.json``), never the runner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from mafs_bench.reporting.report import DEFAULT_PRIMARY, METRICS_FILE, WEIGHTS_FILE, read_run_meta
from mafs_bench.reporting.schema import ITEMS_FILE, SchemaError, read_cues, read_items, read_metrics, read_weights

CUES_FILE: Final[str] = "fusion_cues.csv"
GALLERY_PNG: Final[str] = "gallery.png"
GALLERY_JSON: Final[str] = "gallery.json"


@dataclass
class Run:
    """One run directory's results.

    Attributes:
        label: unique short name of the run in a report.
        path: the directory.
        metrics: validated ``metrics.csv``.
        items: validated items frame, or None (older runs).
        meta: ``run.json`` (empty when absent).
        weights: fusion weights in the ``fusion_weights.csv`` layout (from ``fusion_cues.csv``, one
            ``sample_id`` "mean" per cell and seed, when present; else from ``fusion_weights.csv``),
            or None.
        renames: model renames applied, ``{(task, original): new}``.
        task_renames: task renames applied, ``{original: new}``.
    """

    label: str
    path: Path
    metrics: pd.DataFrame
    items: pd.DataFrame | None
    meta: dict[str, Any]
    weights: pd.DataFrame | None
    renames: dict[tuple[str, str], str] = field(default_factory=dict)
    task_renames: dict[str, str] = field(default_factory=dict)

    @property
    def gallery_png(self) -> Path | None:
        path = self.path / GALLERY_PNG
        return path if path.is_file() else None

    @property
    def gallery(self) -> dict[str, Any] | None:
        """``gallery.json`` (None when absent or unreadable)."""
        path = self.path / GALLERY_JSON
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SchemaError(f"{path}: not valid JSON: {err}") from err

    def model_name(self, task: str, model: str) -> str:
        """The merged name of this run's ``model`` on its (original) ``task``."""
        return self.renames.get((task, model), model)

    def task_name(self, task: str) -> str:
        return self.task_renames.get(task, task)

    def primary(self) -> dict[str, str]:
        """Task (original name) -> primary metric: ``run.json``'s, else :data:`DEFAULT_PRIMARY`."""
        return {**DEFAULT_PRIMARY, **(self.meta.get("primary_metric") or {})}

    def suite_models(self) -> list[str]:
        """Model names in the suite's order (``run.json`` suite), else sorted from the metrics."""
        listed = (self.meta.get("suite") or {}).get("models") or []
        names = [m if isinstance(m, str) else str((m or {}).get("name")) for m in listed]
        return names or sorted(self.metrics["model"].unique())

    def report_models(self) -> tuple[str | None, str | None]:
        """The suite's ``report.reference_model`` and ``report.baseline_model`` (default: the
        suite's first model for both)."""
        spec = (self.meta.get("suite") or {}).get("report") or {}
        first = (self.suite_models() or [None])[0]
        return spec.get("reference_model") or first, spec.get("baseline_model") or first

    def in_domain(self) -> str | None:
        return ((self.meta.get("suite") or {}).get("dataset") or {}).get("domain")

    def shifted_order(self) -> list[str]:
        return list(((self.meta.get("suite") or {}).get("dataset") or {}).get("shifted_domains") or [])


def read_run(path: str | Path, label: str | None = None) -> Run:
    """Read a run directory.

    Raises:
        FileNotFoundError: no ``metrics.csv`` in ``path``.
        SchemaError: a results file breaks its contract (message names the file).
    """
    path = Path(path)
    if not (path / METRICS_FILE).is_file():
        raise FileNotFoundError(f"{path}: not a run directory (no {METRICS_FILE})")
    metrics = read_metrics(path / METRICS_FILE)
    items_path = path / ITEMS_FILE
    items = read_items(items_path) if items_path.is_file() else None
    meta = read_run_meta(path)
    return Run(label or path.resolve().name, path, metrics, items, meta, read_fusion(path))


def read_fusion(path: Path) -> pd.DataFrame | None:
    """The run's fusion weights in the weights layout: ``fusion_cues.csv`` (per-cell means, as one
    row per cell and seed with ``sample_id`` "mean") when present, else ``fusion_weights.csv``;
    None when neither exists or they hold no rows."""
    cues = Path(path) / CUES_FILE
    if cues.is_file():
        weights = read_cues(cues)
    elif (Path(path) / WEIGHTS_FILE).is_file():
        weights = read_weights(Path(path) / WEIGHTS_FILE)
    else:
        return None
    return weights if len(weights) else None


def label_runs(paths: Sequence[Path]) -> list[str]:
    """Unique labels: directory names, then ``parent/name``, then ``name-2``, ``name-3``..."""
    resolved = [Path(p).resolve() for p in paths]
    names = [p.name for p in resolved]
    labels = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in resolved]
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return out


@dataclass
class Merged:
    """Several runs as one set of results (see the module docstring for the renames).

    Attributes:
        runs: the runs, with their renames filled in.
        metrics: all runs' metrics, renamed.
        items: all runs' items, renamed (None when no run has items).
        weights: all runs' fusion weights, renamed (None when none has).
        primary: merged task -> primary metric.
        meta: a merged ``run.json`` view for the bootstrap (``items`` per merged task).
    """

    runs: list[Run]
    metrics: pd.DataFrame
    items: pd.DataFrame | None
    weights: pd.DataFrame | None
    primary: dict[str, str]
    meta: dict[str, Any]

    def original(self, task: str, model: str) -> tuple[Run, str, str]:
        """(run, original task, original model) of a merged (task, model)."""
        for run in self.runs:
            for (orig_task, orig_model) in run.metrics[["task", "model"]].drop_duplicates().itertuples(index=False):
                if run.task_name(orig_task) == task and run.model_name(orig_task, orig_model) == model:
                    return run, str(orig_task), str(orig_model)
        raise KeyError(f"no run has model {model!r} on task {task!r}")


def merge_runs(paths: Sequence[str | Path]) -> Merged:
    """Read and merge run directories (see the module docstring).

    Raises:
        ValueError: no path given.
        FileNotFoundError, SchemaError: as :func:`read_run`.
    """
    if not paths:
        raise ValueError("merge_runs needs at least one run directory")
    labels = label_runs([Path(p) for p in paths])
    runs = [read_run(p, label) for p, label in zip(paths, labels, strict=True)]
    _rename_tasks(runs)
    _rename_models(runs)
    metrics = pd.concat([_renamed(run, run.metrics) for run in runs], ignore_index=True)
    with_items = [_renamed(run, run.items) for run in runs if run.items is not None]
    items = pd.concat(with_items, ignore_index=True) if with_items else None
    with_weights = [_renamed(run, run.weights) for run in runs if run.weights is not None]
    weights = pd.concat(with_weights, ignore_index=True) if with_weights else None
    primary: dict[str, str] = {}
    decompose: dict[str, dict] = {}
    for run in runs:
        for task, metric in run.primary().items():
            primary.setdefault(run.task_name(task), metric)
        for task, parts in (run.meta.get("items") or {}).items():
            decompose.setdefault(run.task_name(task), parts)
    present = list(dict.fromkeys(metrics["task"]))
    missing = [t for t in present if t not in primary]
    if missing:
        raise SchemaError(f"no primary metric for task(s) {missing}: not in run.json primary_metric nor the defaults")
    return Merged(runs, metrics, items, weights, {t: primary[t] for t in present}, {"items": decompose})


def _rename_tasks(runs: Sequence[Run]) -> None:
    """Rename a task evaluated on several datasets across runs to ``task [dataset]``."""
    datasets: dict[str, set[str]] = {}
    for run in runs:
        for task, dataset in run.metrics[["task", "dataset"]].drop_duplicates().itertuples(index=False):
            datasets.setdefault(str(task), set()).add(str(dataset))
    for run in runs:
        for task, of_task in run.metrics.groupby("task"):
            if len(datasets[str(task)]) > 1:
                names = sorted(of_task["dataset"].unique())
                run.task_renames[str(task)] = f"{task} [{', '.join(names)}]"


def _rename_models(runs: Sequence[Run]) -> None:
    """Rename a (merged task, model) found in several runs to ``model [run label]`` in each."""
    owners: dict[tuple[str, str], list[int]] = {}
    for i, run in enumerate(runs):
        for task, model in run.metrics[["task", "model"]].drop_duplicates().itertuples(index=False):
            owners.setdefault((run.task_name(str(task)), str(model)), []).append(i)
    for (task, model), who in owners.items():
        if len(who) > 1:
            for i in who:
                original = next(t for t in runs[i].metrics["task"].unique() if runs[i].task_name(str(t)) == task)
                runs[i].renames[(str(original), model)] = f"{model} [{runs[i].label}]"


def _renamed(run: Run, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the run's task and model renames applied."""
    if not run.renames and not run.task_renames:
        return frame
    out = frame.copy()
    out["model"] = [run.model_name(t, m) for t, m in zip(out["task"], out["model"], strict=True)]
    out["task"] = out["task"].map(run.task_name)
    return out
