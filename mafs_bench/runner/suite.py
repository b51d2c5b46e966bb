"""Suite files: what to evaluate, as YAML, validated strictly before any work starts.

A suite names a dataset, a model backend, the fusion methods (models), the tasks, the
corruptions and severities, the seed of data and corruption draws (``seed``) and the training
seeds of the fusion heads (``seeds``). ``include: other.yaml`` (a path relative to the file,
or a list of them) brings in shared settings; keys of the including file win, nested mappings
merge. Errors name the file, the field and the offending value.

Models and tasks: each fusion method declares the tasks it supports
(:attr:`mafs_bench.models.fusion.FusionMethod.tasks`). A task entry may list its own ``models``
(a subset of the suite's); each of them must support the task, or the suite is rejected. Without
such a list, a task runs every suite model that supports it, and the others are *skipped* for that
task with a note (printed, and recorded in ``run.json`` as ``skipped``): one model list serves a
suite of several tasks. A task that no model supports is rejected.

Example::

    name: quickstart
    seed: 0
    seeds: [0, 1, 2]
    dataset: {name: embedded_world, domain: plain, shifted_domains: [textured], options: {size: 1000}}
    backend: {name: embedded}
    models: [clip, fixed_sum, mafs, albef, blip]
    tasks: [{name: retrieval, k: 16}]
    corruptions: [gaussian_noise, keyboard, caption_shuffle]
    severities: [1, 3, 5]

A ``models:`` entry is a name (a registered fusion method, evaluated under that name) or a
mapping (:class:`ModelEntry`)::

    models:
      - clip
      - {name: my_fusion, method: "my_package.fusion:MyFusion", options: {width: 64}}
      - {name: mafs_small, method: mafs, options: {width: 64}, backend: {name: embedded, options: {...}}}

``name`` is the leaderboard row; ``method`` a registered name, ``"package.module:Class"`` (imported
here, at validation), ``"path/to/file.py:Class"`` (a path relative to the suite file that
writes it) or a name of the entry-point group ``mafs_bench.fusion_methods``
(:mod:`mafs_bench.models.methods`); ``options`` the method's options; ``backend`` (a name or
``{name, options}``) the model's own backend, the top-level ``backend`` being the default.
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

import corruptions

from ..data import DATASETS
from ..models.backends import BACKENDS
from ..models.methods import ModelSpec, is_file_reference, resolve_method
from ..tasks import TASKS

SUITE_VERSION = 1


class SuiteError(ValueError):
    """A suite file that cannot be run; the message names file, field and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """``dataset:`` block."""

    name: str
    domain: str | None = None
    shifted_domains: list[str] = Field(default_factory=list)
    #: style strengths at which each shifted domain is evaluated, in (0, 1]: 1 is the shifted
    #: domain itself, 0 the clean in-domain cell (always evaluated; a 0 here is dropped). Cells
    #: below 1 are named ``<domain>@<strength>`` in metrics.csv; datasets without a continuous
    #: shift (``Dataset.continuous_shift``) take only [1.0].
    shifted_strengths: list[float] = Field(default_factory=lambda: [1.0])
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(DATASETS.unknown_message(v))
        return v

    @field_validator("shifted_strengths")
    @classmethod
    def _strengths(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0.0 <= x <= 1.0]
        if bad:
            raise ValueError(f"shifted_strengths must lie in [0, 1] (0 = in-domain, 1 = the shifted domain); out of range: {bad}")
        kept = sorted({float(x) for x in v if x > 0.0})
        if not kept:
            raise ValueError(f"shifted_strengths needs at least one strength above 0, got {v}")
        return kept


class ReportSpec(_Strict):
    """``report:`` block: the models the robustness aggregates are measured against
    (:mod:`mafs_bench.reporting.robustness`)."""

    #: reference of CE / mCE / relative mCE (ImageNet-C used AlexNet); default: the suite's first model
    reference_model: str | None = None
    #: baseline of effective robustness; default: the suite's first model
    baseline_model: str | None = None


class BackendSpec(_Strict):
    """``backend:`` block (also a model's own ``backend``; a plain name means no options)."""

    name: str = "embedded"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in BACKENDS:
            raise ValueError(BACKENDS.unknown_message(v))
        return v

    def key(self) -> str:
        """Canonical text of the spec: models whose backends have equal keys share one backend."""
        return json.dumps({"name": self.name, "options": self.options}, sort_keys=True, default=str)


class ModelEntry(_Strict):
    """One entry of ``models:``: a leaderboard row and the fusion method behind it.

    A plain string ``m`` is ``{name: m}``. ``method`` defaults to ``name``; it is resolved (and a
    ``"module:Class"`` imported) at validation, so a bad reference stops before any work.
    """

    name: str = Field(min_length=1)
    method: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    #: this model's backend; None: the suite's top-level ``backend``
    backend: BackendSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data, "method": data}
        if isinstance(data, dict) and not data.get("method") and isinstance(data.get("name"), str):
            return {**data, "method": data["name"]}
        return data

    @field_validator("method")
    @classmethod
    def _resolve(cls, v: str) -> str:
        try:
            resolve_method(v)
        except (ValueError, KeyError) as err:  # MethodReferenceError, UnknownNameError
            raise ValueError(str(err)) from None
        return v

    def spec(self) -> ModelSpec:
        """The :class:`~mafs_bench.models.methods.ModelSpec` a backend builds."""
        return ModelSpec(self.name, self.method, dict(self.options))


class TaskSpec(_Strict):
    """One entry of ``tasks:``; keys besides ``name`` and ``models`` are the task's options.

    ``models`` (optional): the suite's models to evaluate on this task (default: every model of
    the suite that supports the task, see :meth:`Suite.models_for`).
    """

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    models: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and "options" not in data:
            out = {"name": data.get("name"), "options": {k: v for k, v in data.items() if k not in ("name", "models")}}
            if "models" in data:
                out["models"] = data["models"]
            return out
        return data

    @field_validator("models", mode="before")
    @classmethod
    def _names_only(cls, v: Any) -> Any:
        """A task's list names models; a model *entry* (a mapping) belongs in the suite's
        ``models:``, which defines each row once for every task."""
        for entry in v if isinstance(v, list) else ():
            if isinstance(entry, dict):
                name = entry.get("name", "<name>")
                raise ValueError(f"a task's models list takes names of the suite's models, got the entry {entry!r}; "
                                 f"define it in the suite's top-level `models:` and write {name!r} here")
        return v

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(TASKS.unknown_message(v))
        return v


class Suite(_Strict):
    """A validated suite."""

    name: str
    version: int = SUITE_VERSION
    description: str = ""
    #: seed of the data and of every corruption draw
    seed: int = Field(0, ge=0)
    #: training seeds of the fusion heads; each is trained and evaluated once per seed
    #: (default: ``[seed]``); metrics.csv has a ``seed`` column, the leaderboard mean and spread
    seeds: list[int] | None = None
    dataset: DatasetSpec
    backend: BackendSpec = Field(default_factory=BackendSpec)
    models: list[ModelEntry] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    corruptions: list[str] = Field(default_factory=list)
    severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    device: str = "auto"
    #: where image corruptions run: "auto" (torch path on CUDA for pointwise/blur ones), "numpy", "torch"
    image_corruption_backend: Literal["auto", "numpy", "torch"] = "auto"
    report: ReportSpec = Field(default_factory=ReportSpec)

    @field_validator("report")
    @classmethod
    def _report_models(cls, v: ReportSpec, info: ValidationInfo) -> ReportSpec:
        models = info.data.get("models")
        if models is None:  # models themselves invalid: that error is reported
            return v
        names = [m if isinstance(m, str) else getattr(m, "name", m) for m in models]
        for field_name in ("reference_model", "baseline_model"):
            value = getattr(v, field_name)
            if value is not None and value not in names:
                raise ValueError(f"{field_name} {value!r} is not one of the suite's models {names}")
        return v

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[ModelEntry]) -> list[ModelEntry]:
        names = [m.name for m in v]
        if len(set(names)) != len(names):
            raise ValueError(f"model names (leaderboard rows) listed twice: "
                             f"{sorted({n for n in names if names.count(n) > 1})}")
        return v

    @property
    def model_names(self) -> list[str]:
        """The leaderboard rows, in suite order."""
        return [m.name for m in self.models]

    def model_specs(self) -> list[ModelSpec]:
        """Every model as a :class:`~mafs_bench.models.methods.ModelSpec`, in suite order."""
        return [m.spec() for m in self.models]

    def backend_of(self, model: ModelEntry) -> BackendSpec:
        """``model``'s backend: its own, else the top-level ``backend``."""
        return model.backend if model.backend is not None else self.backend

    def backend_groups(self) -> list[tuple[BackendSpec, list[ModelSpec]]]:
        """Models grouped by backend spec (equal name and options: one group), in order of
        first appearance; each group is built once and encodes every cell with its own encoder."""
        groups: dict[str, tuple[BackendSpec, list[ModelSpec]]] = {}
        for entry in self.models:
            spec = self.backend_of(entry)
            groups.setdefault(spec.key(), (spec, []))[1].append(entry.spec())
        return list(groups.values())

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("seeds must list at least one training seed")
        bad = [x for x in v if x < 0]
        if bad:
            raise ValueError(f"seeds must be non-negative integers, got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds listed twice: {sorted({x for x in v if v.count(x) > 1})}")
        return v

    @property
    def training_seeds(self) -> list[int]:
        """``seeds``, or ``[seed]`` when the suite gives none."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    @field_validator("corruptions")
    @classmethod
    def _corruptions(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in corruptions.CORRUPTIONS:
                raise ValueError(corruptions.CORRUPTIONS.unknown_message(c))
        return v

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 1 <= s <= 5]
        if bad:
            raise ValueError(f"severities must be integers from 1 to 5, got {bad}")
        return sorted(set(v))

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu") and not v.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {v!r}")
        return v

    @field_validator("tasks")
    @classmethod
    def _task_options(cls, v: list[TaskSpec]) -> list[TaskSpec]:
        """Each task's options, checked by building the task (so a bad ``k`` stops before any work)."""
        from ..tasks import create_task

        for i, spec in enumerate(v):
            try:
                create_task(spec.name, **spec.options)
            except (TypeError, ValueError) as err:
                raise ValueError(f"tasks[{i}] ({spec.name}): {err}") from None
        return v

    @model_validator(mode="after")
    def _task_models(self) -> "Suite":
        """Every task gets at least one model that supports it; a task's own ``models`` list
        names models of the suite that support the task (else the suite is rejected)."""
        names = [spec.name for spec in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks listed twice: {sorted({n for n in names if names.count(n) > 1})}")
        for i, spec in enumerate(self.tasks):
            if spec.models is not None:
                if not spec.models:
                    raise ValueError(f"tasks[{i}] ({spec.name}): models must list at least one model")
                unknown = [m for m in spec.models if m not in self.model_names]
                if unknown:
                    raise ValueError(f"tasks[{i}] ({spec.name}): models {unknown} are not in the suite's models {self.model_names}")
                unsupported = [m for m in spec.models if spec.name not in self.method_tasks(m)]
                if unsupported:
                    raise ValueError(f"tasks[{i}] ({spec.name}): models {unsupported} do not support task {spec.name!r} "
                                     f"({', '.join(f'{m}: {sorted(self.method_tasks(m))}' for m in unsupported)})")
            if not self.models_for(spec.name):
                raise ValueError(f"tasks[{i}] ({spec.name}): none of the models {self.model_names} supports task {spec.name!r}")
        return self

    def task_spec(self, task: str) -> TaskSpec:
        """The ``tasks:`` entry named ``task`` (KeyError if the suite has none)."""
        for spec in self.tasks:
            if spec.name == task:
                return spec
        raise KeyError(task)

    def models_for(self, task: str) -> list[str]:
        """The models evaluated on ``task``, in suite order: the task's own ``models`` list, or
        else every model of the suite whose fusion method declares the task
        (:attr:`FusionMethod.tasks`)."""
        spec = self.task_spec(task)
        wanted = spec.models if spec.models is not None else self.model_names
        return [m for m in self.model_names if m in wanted and task in self.method_tasks(m)]

    def method_tasks(self, row: str) -> frozenset[str]:
        """The tasks the fusion method behind leaderboard row ``row`` declares (:attr:`FusionMethod.tasks`)."""
        entry = next(m for m in self.models if m.name == row)
        return frozenset(entry.spec().cls.tasks)

    def skipped(self) -> list[dict[str, str]]:
        """(model, task, reason) of every suite model not evaluated on a suite task."""
        out = []
        for spec in self.tasks:
            chosen = self.models_for(spec.name)
            for m in self.model_names:
                if m in chosen:
                    continue
                tasks = self.method_tasks(m)
                reason = (f"{m} does not support task {spec.name} (it supports {', '.join(sorted(tasks))})"
                          if spec.name not in tasks else f"not in tasks.{spec.name}.models")
                out.append({"model": m, "task": spec.name, "reason": reason})
        return out

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != SUITE_VERSION:
            raise ValueError(f"this mafs-bench reads suite version {SUITE_VERSION}, got {v}")
        return v


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_suite_dict(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of a suite file with its ``include:`` files merged in."""
    path = path.resolve()
    if path in _seen:
        raise SuiteError(f"{path}: include cycle through {' -> '.join(str(p) for p in _seen)}")
    if not path.is_file():
        raise SuiteError(f"suite file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite must be a mapping of fields, got {type(data).__name__}")
    _anchor_plugin_files(data, path.parent)
    includes = data.pop("include", [])
    merged: dict[str, Any] = {}
    for inc in [includes] if isinstance(includes, str) else includes:
        merged = _merge(merged, read_suite_dict(path.parent / inc, (*_seen, path)))
    return _merge(merged, data)


def _anchor_plugin_files(data: dict[str, Any], folder: Path) -> None:
    """Make the relative ``"file.py:Class"`` methods of a suite file's ``models`` absolute,
    relative to the file's ``folder`` (before includes merge the files)."""
    models = data.get("models")
    if not isinstance(models, list):
        return
    for entry in models:
        method = entry.get("method") if isinstance(entry, dict) else None
        if isinstance(method, str) and is_file_reference(method):
            file, _, attr = method.rpartition(":")
            path = Path(file).expanduser()
            if not path.is_absolute():
                entry["method"] = f"{(folder / path).resolve()}:{attr}"


def format_validation_error(source: str, err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``file: field a.b: message (got value)``. A misspelled field of
    ``model`` (or of a model nested in it) is named with the closest known field."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        if e["type"] == "extra_forbidden" and model is not None and e["loc"]:
            msg = _unknown_field(str(e["loc"][-1]), _fields_at(model, e["loc"][:-1]))
        said = "got " in msg  # the message already shows the value
        shown = "" if isinstance(got, dict) or e["type"] == "missing" or said else f" (got {got!r})"
        lines.append(f"{source}: field {loc}: {msg}{shown}")
    return "\n".join(lines)


def _unknown_field(name: str, known: list[str] | None) -> str:
    """``Extra inputs are not permitted``, said with the closest known field and the known ones."""
    if not known:
        return "Extra inputs are not permitted (unknown field)"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"Extra inputs are not permitted: unknown field {name!r}{hint}; known fields: {', '.join(known)}"


def _fields_at(model: type[BaseModel], path: Sequence[Any]) -> list[str] | None:
    """The field names of the model at ``path`` (list indices skipped) below ``model``, or None."""
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        inner = None if field is None else _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (directly, or in a list, dict or union), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def suite_from_dict(data: dict[str, Any], source: str = "<suite>") -> Suite:
    """Validate a suite mapping; raises :class:`SuiteError` naming field and value."""
    try:
        return Suite.model_validate(data)
    except ValidationError as err:
        raise SuiteError(format_validation_error(source, err, Suite)) from None


def load_suite(path: str | Path) -> Suite:
    """Read, merge includes, and validate the suite at ``path``."""
    return suite_from_dict(read_suite_dict(Path(path)), str(path))
