"""Run a suite: build data and models, evaluate every cell, write results, then the report.

A cell is (domain, corruption, severity): the clean cell of the in-domain set, every
(corruption, severity) of it, and the clean cell of each shifted domain at each of the suite's
``dataset.shifted_strengths`` (named ``<domain>@<strength>`` below strength 1; see
:func:`mafs_bench.reporting.schema.domain_label`). Each side of a cell is corrupted once, and
encoded once per backend group and shared by every method and task of the group; an image
corruption reuses the clean text features and vice versa, so nothing is encoded twice within a
run.

Models are grouped by backend (:meth:`Suite.backend_groups`: a model's own ``backend``, else the
top-level one): each group gets its own backend instance, preflight and :class:`ModelBundle`,
and encodes every cell's (shared) corrupted images and captions with its own encoder, so one
leaderboard compares models on different encoders on exactly the same corrupted inputs.

Results (see :mod:`mafs_bench.reporting.schema`) are rewritten after every cell, so a run that
stops part way keeps everything computed so far:

* ``metrics.csv``: ``model,seed,task,dataset,domain,corruption,modality,corrupted,severity,metric,value``
  (``seed``: the fusion heads' training seed; ``corrupted``: what the corruption altered for the
  task, :meth:`mafs_bench.tasks.Task.corrupted_input`, e.g. ``images``, ``questions``);
* ``fusion_weights.csv``: per-sample ``alpha_v, alpha_t`` and the cues behind them, for methods
  that have them;
* ``fusion_cues.csv``: their per-cell means (one row per model, seed, task and cell);
* ``items.csv.gz``: per-item scores (retrieval: a hit or miss per query and K) of every model,
  seed, task and cell, the input of the bootstrap intervals
  (:data:`mafs_bench.reporting.schema.ITEMS_KEY`);
* ``run.json``: the resolved suite, seeds, versions, git commit, device, timings, the
  training recipe (``training``: steps, seeds, ``augmentations``, ``corruptions_seen``),
  ``items``: per task, how each metric decomposes into per-item score columns, and
  ``corruptions``: each evaluated corruption's modality and family (for the report's families).
  ``models``: per leaderboard row its method, class, options and ``backend`` (name, options,
  group index); ``backends``: per group its spec, models, build info (cache keys, parameter
  counts) and training recipe. ``training`` is the first group's recipe, with
  ``corruptions_seen`` the union over groups;
* ``gallery.png`` / ``gallery.json``: the first sample in every cell (:mod:`.gallery`).
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import corruptions

from .. import __version__
from ..data import DataMissingError, ImageTextData, create_dataset
from ..models.backends import Backend, ModelBundle, WeightsMissingError, create_backend
from ..models.backends.base import ProgressFactory
from ..models.encoder import ImageFeatures, TextFeatures
from ..models.methods import ModelSpec
from ..reporting import DEFAULT_PRIMARY, METRICS_COLUMNS, WEIGHTS_COLUMNS, write_report
from ..reporting.schema import ITEMS_FILE, ITEMS_KEY, WEIGHT_VALUES, domain_label
from ..tasks import EncodedCell, ItemScores, MethodKey, QuestionSet, Task, TaskResult, create_task
from .gallery import corruption_info, write_gallery
from .suite import BackendSpec, Suite

CLEAN = "none"


class PreflightError(RuntimeError):
    """What a suite needs is missing (data, weights); raised before any work."""


@dataclass(frozen=True)
class Cell:
    """One evaluation cell; ``strength`` < 1 only on a shifted domain's clean cell (style strength)."""

    domain: str
    corruption: str
    severity: int
    strength: float = 1.0

    @property
    def label(self) -> str:
        """The cell's ``domain`` in the results files (``outline``, ``outline@0.5``)."""
        return domain_label(self.domain, self.strength)

    @property
    def modality(self) -> str:
        return CLEAN if self.corruption == CLEAN else corruptions.get(self.corruption).modality


@dataclass
class RunResult:
    """Where a run's outputs are, and its tables."""

    out_dir: Path
    metrics: pd.DataFrame
    weights: pd.DataFrame
    report_files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    #: every file the run wrote: results files, ``run.json``, the gallery, then ``report_files``
    files: list[Path] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PreflightError(f"suite field device: {name!r} requested but no CUDA device is available")
    return torch.device(name)


def plan_cells(suite: Suite, in_domain: str) -> list[Cell]:
    """Clean in-domain cell, every (corruption, severity), then each shifted domain's clean cell at
    each strength (weakest first)."""
    cells = [Cell(in_domain, CLEAN, 0)]
    cells += [Cell(in_domain, c, s) for c in suite.corruptions for s in suite.severities]
    cells += [Cell(d, CLEAN, 0, strength) for d in suite.dataset.shifted_domains if d != in_domain
              for strength in suite.dataset.shifted_strengths]
    return cells


def use_torch_corruptions(backend: str, device: torch.device, corruption: str) -> bool:
    """Whether an image corruption runs on the torch path (``auto``: on CUDA when supported)."""
    if backend == "numpy":
        return False
    from corruptions import torch_ops

    supported = corruption in torch_ops.supported()
    if backend == "torch":
        return supported
    return supported and device.type == "cuda"


def corrupt_images(data: ImageTextData, cell: Cell, seed: int, device: torch.device = torch.device("cpu"),
                   backend: str = "auto") -> Any:
    """The cell's images (a new array; the clean ones when the corruption is not visual).

    Pointwise and blur corruptions run on ``corruptions.torch_ops`` on the run's device when
    ``backend`` says so (same per-sample draws as the numpy engine; noise byte-identical, blurs
    within one grey level); everything else on the numpy engine.
    """
    if cell.modality != "image":
        return data.images
    if isinstance(data.images, np.ndarray) and use_torch_corruptions(backend, device, cell.corruption):
        from corruptions import torch_ops

        x = torch.from_numpy(data.images).to(device).permute(0, 3, 1, 2).float() * torch.tensor(1.0 / 255.0, dtype=torch.float32)
        out = torch_ops.apply_torch(cell.corruption, x, cell.severity, seed=seed, sample_ids=data.image_ids.tolist())
        return torch.round(out.clamp(0, 1) * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    if isinstance(data.images, np.ndarray):
        return corruptions.apply_batch(cell.corruption, data.images, cell.severity, seed=seed, sample_ids=data.image_ids)
    return [corruptions.apply(cell.corruption, data.images[i], cell.severity, seed=seed, sample_id=int(data.image_ids[i]))
            for i in range(len(data.images))]


def corrupt_captions(data: ImageTextData, cell: Cell, seed: int) -> list[str]:
    """The cell's captions (text corruptions per caption; pair corruptions across the set)."""
    return corrupt_texts(data.captions, data.caption_ids, data.caption_image, cell, seed)


def corrupt_questions(data: ImageTextData, cell: Cell, seed: int) -> list[str]:
    """The cell's questions: text corruptions per question (seeded by ``question_ids``); pair
    corruptions across the set, grouped by image, so a question is paired with another image's."""
    return corrupt_texts(data.questions, data.question_ids, data.question_image, cell, seed)


def corrupt_texts(texts: list[str], ids: np.ndarray, owner: np.ndarray, cell: Cell, seed: int) -> list[str]:
    """Texts of a cell: corrupted per text (text cells) or across the set grouped by ``owner``
    image (pair cells); the texts themselves otherwise."""
    if cell.modality == "text":
        return corruptions.apply_batch(cell.corruption, texts, cell.severity, seed=seed, sample_ids=ids)
    if cell.modality == "pair":
        return corruptions.apply_batch(cell.corruption, texts, cell.severity, seed=seed, sample_ids=ids,
                                       groups=owner.tolist())
    return texts


def check_data(data: ImageTextData, tasks: dict[str, Task]) -> ImageTextData:
    """``data``, checked to hold what every task of the suite reads.

    Raises:
        PreflightError: a task needs captions or question-answer pairs the data lacks; the
            message names the task, the data set and the domain.
    """
    for name, task in tasks.items():
        try:
            data.check_for(task.needs)
        except ValueError as err:
            raise PreflightError(f"task {name} cannot run on this data: {err}") from None
    return data


def encode_cell(state: "_GroupState", data: ImageTextData, cell: Cell, images: Any, captions: list[str] | None,
                questions: list[str] | None = None, needs: frozenset[str] | set[str] = frozenset({"captions"})) -> EncodedCell:
    """One group's features of a cell: the corrupted side (``images``, ``captions`` or
    ``questions``, made once per cell for every group) encoded by the group's encoder, the clean
    sides from its caches. ``needs``: what the suite's tasks read (``"captions"``, ``"qa"``)."""
    encoder = state.bundle.encoder
    if cell.label not in state.clean_images:
        state.clean_images[cell.label] = encoder.encode_images(data.images)
    img_f = encoder.encode_images(images) if images is not None else state.clean_images[cell.label]
    if "captions" in needs:
        text_key = hash(tuple(data.captions))  # shifted domains share their captions
        if text_key not in state.clean_texts:
            state.clean_texts[text_key] = encoder.encode_texts(data.captions)
        txt_f = encoder.encode_texts(captions) if captions is not None else state.clean_texts[text_key]
        caption_image = data.caption_image
    else:  # no task reads captions: an empty caption set
        txt_f, caption_image = encoder.encode_texts([]), np.zeros(0, np.int64)
    question_set = None
    if "qa" in needs:
        q_key = hash(tuple(data.questions))
        if q_key not in state.clean_questions:
            state.clean_questions[q_key] = encoder.encode_texts(data.questions)
        q_f = encoder.encode_texts(questions) if questions is not None else state.clean_questions[q_key]
        question_set = QuestionSet(q_f, data.question_image, data.answers, data.question_types, recur=questions is None)
    return EncodedCell(img_f, txt_f, caption_image, state.scale, shared=state.shared,
                       images_recur=images is None, texts_recur=captions is None, questions=question_set, data=data)


def git_commit() -> str | None:
    """The commit of the mafs-bench checkout, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Library versions recorded with every run."""
    import open_clip

    return {"mafs_bench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "open_clip": open_clip.__version__, "numpy": np.__version__, "pandas": pd.__version__}


#: gzip level of the items file: 1 is several times faster than the default 9 and within ~20% of its size
ITEMS_GZIP: dict[str, Any] = {"method": "gzip", "compresslevel": 1}


class ResultsWriter:
    """Writes ``metrics.csv``, ``fusion_weights.csv``, ``fusion_cues.csv`` and the items file
    cell by cell.

    Every file gets its header at once and each finished cell's rows are appended and flushed
    (the items file as one more gzip member), so a run that stops keeps every finished cell, and
    writing stays linear in the rows.
    """

    def __init__(self, out_dir: Path, item_columns: tuple[str, ...] = ()) -> None:
        self.metrics_path = out_dir / "metrics.csv"
        self.weights_path = out_dir / "fusion_weights.csv"
        self.cues_path = out_dir / "fusion_cues.csv"
        self.items_path = out_dir / ITEMS_FILE
        self.items_columns = (*ITEMS_KEY, *item_columns)
        self._metrics: list[pd.DataFrame] = []
        self._weights: list[pd.DataFrame] = []
        pd.DataFrame(columns=list(METRICS_COLUMNS)).to_csv(self.metrics_path, index=False)
        pd.DataFrame(columns=list(WEIGHTS_COLUMNS)).to_csv(self.weights_path, index=False)
        pd.DataFrame(columns=list(CUES_COLUMNS)).to_csv(self.cues_path, index=False)
        pd.DataFrame(columns=list(self.items_columns)).to_csv(self.items_path, index=False, compression=ITEMS_GZIP)

    def add(self, metric_rows: list[dict[str, Any]], weight_frames: list[pd.DataFrame],
            item_frames: list[pd.DataFrame] = ()) -> None:
        """Append one cell's metric rows, per-sample weight frames (and their means) and
        per-item score frames (:func:`items_frame`)."""
        if item_frames:
            items = pd.concat(item_frames, ignore_index=True).reindex(columns=list(self.items_columns))
            items.to_csv(self.items_path, mode="a", header=False, index=False, compression=ITEMS_GZIP, float_format="%.6g")
        metrics = pd.DataFrame(metric_rows, columns=list(METRICS_COLUMNS))
        metrics.to_csv(self.metrics_path, mode="a", header=False, index=False, float_format="%.6g")
        self._metrics.append(metrics)
        for frame in weight_frames:
            frame.to_csv(self.weights_path, mode="a", header=False, index=False, float_format="%.4g")
            self._weights.append(frame)
            cell_means(frame).to_csv(self.cues_path, mode="a", header=False, index=False, float_format="%.5g")

    @property
    def paths(self) -> list[Path]:
        """The files this writer writes."""
        return [self.metrics_path, self.items_path, self.weights_path, self.cues_path]

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Everything written so far, as two frames."""
        empty_w = pd.DataFrame(columns=list(WEIGHTS_COLUMNS))
        return (pd.concat(self._metrics, ignore_index=True) if self._metrics else pd.DataFrame(columns=list(METRICS_COLUMNS)),
                pd.concat(self._weights, ignore_index=True) if self._weights else empty_w)


def weights_frame(common: dict[str, Any], weights: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-sample fusion weights (and cues) of one (model, seed, task, cell) as rows of
    ``fusion_weights.csv``; a cue the method does not report is NaN."""
    n = len(weights["sample_id"])
    frame = pd.DataFrame({"sample_id": np.asarray(weights["sample_id"], dtype=np.int64)})
    for col in WEIGHT_VALUES:
        frame[col] = np.asarray(weights[col], dtype=np.float64) if col in weights else np.full(n, np.nan)
    for col in ("model", "seed", "task", "domain", "corruption", "modality", "severity"):
        frame[col] = common[col]
    return frame[list(WEIGHTS_COLUMNS)]


def items_frame(common: dict[str, Any], items: list[ItemScores], data: ImageTextData) -> pd.DataFrame:
    """Rows of the items file for one (model, seed, task, cell): one per query of each
    :class:`ItemScores`, its ``item`` the dataset id of the query's image or caption."""
    ids = {"image": np.asarray(data.image_ids, dtype=np.int64), "caption": np.asarray(data.caption_ids, dtype=np.int64),
           "question": np.asarray(data.question_ids, dtype=np.int64)}
    frames = []
    for part in items:
        side = ids[part.side] if part.positions is None else ids[part.side][np.asarray(part.positions, dtype=np.int64)]
        frame = pd.DataFrame({"query": part.query, "item": side})
        for name, values in part.scores.items():
            frame[name] = np.asarray(values, dtype=np.float64)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    for col in reversed(ITEMS_KEY[:-2]):
        out.insert(0, col, common[col])
    return out


def fit_tasks(tasks: dict[str, Task], bundle: ModelBundle, dataset: Any, task_models: dict[str, list[str]],
              device: torch.device, progress: ProgressFactory) -> tuple[dict[str, dict[MethodKey, Any]], dict[str, float]]:
    """Each task's methods as ``{(seed, model): method}`` (the bundle's, for the task's models),
    after :meth:`Task.fit` trained or loaded what the task needs beyond the bundle (captioning:
    its decoders). What a task's fit reports goes to ``bundle.training[task]``.

    Returns:
        ``(methods per task, seconds per task whose fit did something)``.
    """
    methods: dict[str, dict[MethodKey, Any]] = {}
    seconds: dict[str, float] = {}
    for name, task in tasks.items():
        methods[name] = {(seed, m): method for seed, by_name in bundle.methods_for(name).items()
                         for m, method in by_name.items() if m in task_models[name]}
        tick = time.time()
        fitted = task.fit(bundle, dataset, methods[name], device, progress)
        if fitted:
            bundle.training[name] = fitted
            seconds[name] = round(time.time() - tick, 1)
    return methods, seconds


def skipped_modalities(tasks: dict[str, Any], cells: list[Cell]) -> dict[str, dict[str, str]]:
    """``{task: {modality: why}}`` for the planned cells' modalities a task does not evaluate."""
    out: dict[str, dict[str, str]] = {}
    for name, task in tasks.items():
        for modality in dict.fromkeys(c.modality for c in cells):
            reason = task.skip_reason(modality)
            if reason is not None:
                out.setdefault(name, {})[modality] = reason
    return out


def warn_nonfinite(log: Callable[[str], None], result: TaskResult, model: str, task: str, cell: Cell) -> None:
    """Log a warning naming the model, task and cell when a task saw NaN/inf scores.

    Reads the count ``nonfinite_scores`` from ``result.extra``, else from ``result.metrics``
    (retrieval reports it there); such scores count as misses, so the metrics stay honest, and
    this says which model produced them.
    """
    count = result.extra.get("nonfinite_scores", result.metrics.get("nonfinite_scores", 0))
    if count:
        where = "clean" if cell.corruption == CLEAN else f"{cell.corruption}@{cell.severity}"
        log(f"[warning] model {model}, task {task}, cell {where} (domain {cell.label}): "
            f"{int(count)} scores are NaN/inf; they count as misses")


#: columns of ``fusion_cues.csv``: per-cell means of the per-sample weights and cues
CUES_COLUMNS: tuple[str, ...] = (*WEIGHTS_COLUMNS[: WEIGHTS_COLUMNS.index("sample_id")], "samples", *WEIGHT_VALUES)


def cell_means(frame: pd.DataFrame) -> pd.DataFrame:
    """One ``fusion_cues.csv`` row: the means of a :func:`weights_frame` (a single cell)."""
    row = {c: frame[c].iloc[0] for c in CUES_COLUMNS if c in frame.columns and c not in WEIGHT_VALUES}
    row["samples"] = len(frame)
    row.update({c: float(frame[c].mean()) for c in WEIGHT_VALUES})
    return pd.DataFrame([row], columns=list(CUES_COLUMNS))


@dataclass
class BackendGroup:
    """The models of a suite that share one backend spec, and that backend.

    Attributes:
        index: position among the suite's groups (first appearance order).
        spec: the backend's name and options.
        field: the suite field the spec comes from (``backend`` or ``models[i].backend``), for
            error messages.
        backend: the backend instance (None only inside :func:`preflight`, when creating it
            failed).
        models: the group's models, in suite order.
    """

    index: int
    spec: BackendSpec
    field: str
    backend: Backend | None
    models: list[ModelSpec]

    @property
    def label(self) -> str:
        """How logs name the group: the backend name, with its index when it is not the first."""
        return self.spec.name if self.index == 0 else f"{self.spec.name} (backend group {self.index + 1})"

    def describe(self) -> dict[str, Any]:
        """``{"name", "options"}`` of the group's backend (what ``run.json`` records per model)."""
        return {"name": self.spec.name, "options": self.spec.options, "group": self.index}


def backend_groups(suite: Suite) -> list[BackendGroup]:
    """The suite's backend groups (:meth:`Suite.backend_groups`), backends not yet created."""
    out = []
    for index, (spec, models) in enumerate(suite.backend_groups()):
        first = next(i for i, m in enumerate(suite.models) if m.name == models[0].name)
        field_name = "backend" if suite.models[first].backend is None else f"models[{first}].backend"
        out.append(BackendGroup(index, spec, field_name, None, models))
    return out


def preflight(suite: Suite) -> tuple[Any, list[BackendGroup]]:
    """Create the dataset and every backend group's backend and collect everything missing
    (from every backend), before any work.

    Returns:
        The dataset and the backend groups (each with its backend).

    Raises:
        PreflightError: one line per problem, naming the suite field.
    """
    problems: list[str] = []
    dataset = None
    try:
        dataset = create_dataset(suite.dataset.name, **suite.dataset.options)
    except DataMissingError as err:
        problems.append(str(err))
    except (TypeError, ValueError) as err:
        problems.append(f"suite field dataset.options: {err}")
    groups = backend_groups(suite)
    for group in groups:
        prefix = "" if len(groups) == 1 else f"{group.field} ({group.spec.name}, models {', '.join(m.name for m in group.models)}): "
        try:
            group.backend = create_backend(group.spec.name, **{"seed": suite.seed, **group.spec.options})
            problems += [prefix + p for p in group.backend.preflight(group.models)]
        except (TypeError, ValueError) as err:
            problems.append(f"suite field {group.field}.options: {err}")
    if dataset is not None:
        wanted = [suite.dataset.domain] if suite.dataset.domain else []
        for d in wanted + suite.dataset.shifted_domains:
            if d not in dataset.domains:
                problems.append(f"suite field dataset domain {d!r}: dataset {suite.dataset.name} has domains {list(dataset.domains)}")
        if suite.dataset.shifted_strengths != [1.0] and not dataset.continuous_shift:
            problems.append(f"suite field dataset.shifted_strengths {suite.dataset.shifted_strengths}: dataset "
                            f"{suite.dataset.name} has no continuous shift strength; use [1.0] (the default)")
    if problems:
        raise PreflightError("\n".join(f"- {p}" for p in problems))
    return dataset, groups


@dataclass
class _GroupState:
    """A built backend group during evaluation: its bundle and its own feature caches."""

    group: BackendGroup
    bundle: ModelBundle
    clean_images: dict[str, ImageFeatures] = field(default_factory=dict)
    clean_texts: dict[int, TextFeatures] = field(default_factory=dict)  # by caption list
    clean_questions: dict[int, TextFeatures] = field(default_factory=dict)  # by question list
    shared: dict[Any, Any] = field(default_factory=dict)  # the EncodedCell run-level memo
    #: each task's methods of this group, ``{task: {(seed, row): method}}`` (:func:`fit_tasks`)
    task_methods: dict[str, dict[MethodKey, Any]] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        return float(self.bundle.encoder.logit_scale.detach())


def group_task_models(group: BackendGroup, task_models: dict[str, list[str]]) -> dict[str, list[str]]:
    """``task_models`` restricted to the group's rows (task -> rows evaluated on it)."""
    names = {m.name for m in group.models}
    return {task: [row for row in rows if row in names] for task, rows in task_models.items()}


def build_groups(groups: list[BackendGroup], dataset: Any, device: torch.device, progress: ProgressFactory,
                 seeds: list[int], log: Callable[[str], None] = print,
                 task_models: dict[str, list[str]] | None = None) -> list[ModelBundle]:
    """Build every group's bundle (train or load its models for the tasks that evaluate them), in order.

    ``task_models``: task -> rows evaluated on it (default: every model on retrieval).
    """
    bundles = []
    for group in groups:
        log(f"[models] backend {group.label} on {device}: {', '.join(m.name for m in group.models)}")
        assert group.backend is not None, "preflight creates every backend"
        tasks = group_task_models(group, task_models or {"retrieval": [m.name for m in group.models]})
        bundle = group.backend.build(dataset, group.models, device, progress, seeds, tasks)
        for task, rows in tasks.items():
            built = bundle.methods_for(task)
            missing = [r for r in rows if any(r not in built.get(s, {}) for s in seeds)]
            if missing and task in ("retrieval", "vqa"):  # other tasks build theirs in Task.fit
                raise RuntimeError(f"backend {group.label} built no {task} model for {missing} (bundle rows: "
                                   f"{sorted(next(iter(built.values()), {}))})")
        bundles.append(bundle)
    return bundles


def run_metadata(suite: Suite, groups: list[BackendGroup], bundles: list[ModelBundle]) -> dict[str, Any]:
    """``models``, ``backends`` and ``training`` of ``run.json`` (see the module docstring)."""
    models: dict[str, Any] = {}
    backends = []
    for group, bundle in zip(groups, bundles):
        for spec in group.models:
            models[spec.name] = {**spec.describe(), "backend": group.describe()}
        backends.append({"name": group.spec.name, "options": group.spec.options, "field": group.field,
                         "models": [m.name for m in group.models], "info": bundle.info, "training": bundle.training})
    models = {name: models[name] for name in suite.model_names}
    training = dict(bundles[0].training)
    seen = [c for b in bundles for c in (b.training.get("corruptions_seen") or [])]
    training["corruptions_seen"] = list(dict.fromkeys(seen))
    return {"models": models, "backends": backends, "training": training}


def run_suite(suite: Suite, out_dir: Path, progress: ProgressFactory, log: Callable[[str], None] = print,
              suite_source: str = "") -> RunResult:
    """Evaluate ``suite`` and write its results and report into ``out_dir``."""
    start = time.time()
    dataset, groups = preflight(suite)
    device = resolve_device(suite.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    in_domain = suite.dataset.domain or dataset.domains[0]
    tasks = {t.name: create_task(t.name, **t.options) for t in suite.tasks}
    needs = {t.needs for t in tasks.values()}
    task_models = {name: suite.models_for(name) for name in tasks}

    skipped = suite.skipped()
    for note in skipped:
        log(f"[models] skipping {note['model']} on task {note['task']}: {note['reason']}")
    timings: dict[str, float] = {}
    tick = time.time()
    seeds = suite.training_seeds
    bundles = build_groups(groups, dataset, device, progress, seeds, log, task_models)
    states = [_GroupState(g, b) for g, b in zip(groups, bundles)]
    timings["models"] = round(time.time() - tick, 1)
    for state in states:
        state.task_methods, fit_seconds = fit_tasks(tasks, state.bundle, dataset,
                                                    group_task_models(state.group, task_models), device, progress)
        for name, seconds in fit_seconds.items():
            timings[f"models_{name}"] = round(timings.get(f"models_{name}", 0.0) + seconds, 1)
    cells = plan_cells(suite, in_domain)
    skipped_cells = skipped_modalities(tasks, cells)
    for name, reasons in skipped_cells.items():
        for modality, reason in reasons.items():
            log(f"[{name}] skipping {modality} cells: {reason}")
    log(f"[models] ready in {sum(v for k, v in timings.items() if k.startswith('models')):.0f} s; "
        f"evaluating {len(cells)} cells")
    tick = time.time()
    meta = {"suite": suite.model_dump(), "suite_file": suite_source, "seed": suite.seed, "seeds": seeds,
            "device": str(device), "versions": versions(), "git_commit": git_commit(),
            **run_metadata(suite, groups, bundles),
            "dataset": {"name": suite.dataset.name, **dataset.describe()},
            "primary_metric": {name: t.primary_metric for name, t in tasks.items()},
            "items": {name: t.item_metrics for name, t in tasks.items()},
            "task_models": task_models, "skipped": skipped, "skipped_cells": skipped_cells,
            "corruptions": corruption_info(suite.corruptions),
            "cells": len(cells), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out_dir / "run.json").write_text(json.dumps(meta, indent=2, default=str))

    writer = ResultsWriter(out_dir, tuple(dict.fromkeys(c for t in tasks.values() for c in t.item_columns)))
    data_by_domain: dict[str, ImageTextData] = {}
    update = progress("evaluate cells", len(cells))
    task_seconds = dict.fromkeys(tasks, 0.0)  # evaluation time per task (encoding the cells excluded)
    try:
        for done, cell in enumerate(cells):
            if cell.label not in data_by_domain:
                data = check_data(
                    dataset.load(cell.domain) if cell.strength == 1.0 else dataset.load_shifted(cell.domain, cell.strength, in_domain),
                    tasks)
                for task in tasks.values():  # e.g. VQA's max_questions (tasks read disjoint parts of the data)
                    data = task.select(data)
                data_by_domain[cell.label] = data
            data = data_by_domain[cell.label]
            # the cell's corrupted side, made once and encoded by every group's own encoder
            images = corrupt_images(data, cell, suite.seed, device, suite.image_corruption_backend) \
                if cell.modality == "image" else None
            text_cell = cell.modality in ("text", "pair")
            captions = corrupt_captions(data, cell, suite.seed) if text_cell and "captions" in needs else None
            questions = corrupt_questions(data, cell, suite.seed) if text_cell and "qa" in needs else None
            results: dict[str, dict[MethodKey, TaskResult]] = {name: {} for name in tasks}
            corrupted_by_task = {name: task.corrupted_input(cell.modality) for name, task in tasks.items()}
            for state in states:
                encoded = encode_cell(state, data, cell, images, captions, questions, needs)
                for task_name, task in tasks.items():
                    if corrupted_by_task[task_name] is None:  # e.g. a text cell for captioning (skipped_cells)
                        continue
                    task_tick = time.time()
                    results[task_name].update(task.evaluate_methods(encoded, state.task_methods[task_name]))
                    task_seconds[task_name] += time.time() - task_tick
            metric_rows: list[dict[str, Any]] = []
            weight_rows: list[pd.DataFrame] = []
            item_rows: list[pd.DataFrame] = []
            for task_name in tasks:  # rows in suite order: task, seed, model
                corrupted = corrupted_by_task[task_name]
                for seed in seeds:
                    for model_name in suite.model_names:
                        result = results[task_name].get((seed, model_name))
                        if result is None:  # the model is not evaluated on this task
                            continue
                        warn_nonfinite(log, result, f"{model_name} (seed {seed})", task_name, cell)
                        common = {"model": model_name, "seed": seed, "task": task_name, "dataset": data.name,
                                  "domain": cell.label, "corruption": cell.corruption, "modality": cell.modality,
                                  "corrupted": corrupted, "severity": cell.severity}
                        metric_rows += [{**common, "metric": m, "value": v} for m, v in result.metrics.items()]
                        if result.weights is not None:
                            weight_rows.append(weights_frame(common, result.weights))
                        if result.extra.get("items"):
                            item_rows.append(items_frame(common, result.extra["items"], data))
            writer.add(metric_rows, weight_rows, item_rows)
            update(done + 1, len(cells), float("nan"))
    finally:  # e.g. captioning's METEOR process
        for task in tasks.values():
            task.close()

    timings["evaluate"] = round(time.time() - tick, 1)
    timings.update({f"evaluate_{name}": round(seconds, 1) for name, seconds in task_seconds.items()})
    tick = time.time()
    shifted = {label: data for label, data in data_by_domain.items() if label != in_domain}
    gallery: list[Path] = []
    if in_domain in data_by_domain:
        gallery = write_gallery(out_dir, data_by_domain[in_domain], shifted, suite.corruptions, suite.severities, suite.seed)
    primary = {**DEFAULT_PRIMARY, **meta["primary_metric"]}
    files = write_report(out_dir, {t: primary[t] for t in tasks}, domain=in_domain)
    timings["report"] = round(time.time() - tick, 1)
    meta["timings_s"] = timings
    meta["seconds"] = round(time.time() - start, 1)
    (out_dir / "run.json").write_text(json.dumps(meta, indent=2, default=str))
    metrics, weights = writer.tables()
    return RunResult(out_dir, metrics, weights, files, time.time() - start,
                     [*writer.paths, out_dir / "run.json", *gallery, *files])
