"""Column contracts for the runner's results files, and readers that enforce them.

Reports read only the files the runner writes (never its in-memory state), so this
module is the one place where those files are described: the exact columns, their
dtypes, and the conventions that mark a row as clean. A file that breaks the contract
fails here, loudly and naming the file, instead of producing a quietly wrong table.

Conventions (shared with the runner):

* A clean row has ``corruption == "none"``, ``modality == "none"`` and ``severity == 0``.
* A corrupted row has a modality in :data:`MODALITIES` and a severity >= 1.
* Shifted-domain rows are clean rows whose ``domain`` differs from the in-domain one.
* A value may be NaN (blank in the file) or +-inf: the score is undefined for that cell (e.g.
  a model's non-finite output). Tables and figures treat inf as NaN and propagate it: any mean
  over a group holding one is NaN (:func:`strict_mean`), never the mean of the other cells,
  so a model cannot look better for a cell it broke on.
* ``seed`` is the training seed of the fusion heads (a suite's ``seeds``); a file written
  before seeds existed has no such column and reads as seed 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

METRICS_COLUMNS: Final[tuple[str, ...]] = (
    "model",
    "seed",
    "task",
    "dataset",
    "domain",
    "corruption",
    "modality",
    "corrupted",
    "severity",
    "metric",
    "value",
)
"""Columns of ``metrics.csv``, in file order. ``corrupted`` says what the cell's corruption
altered for the task (``Task.corrupted_input``): ``none`` (clean), ``images``, ``captions``,
``caption_pairs`` (captions paired with other images), ``questions``, ``question_pairs``."""

DEFAULT_CORRUPTED: Final[dict[str, str]] = {"none": "none", "image": "images", "text": "captions", "pair": "caption_pairs"}
"""``corrupted`` of a row by its modality in files written before the column existed (retrieval only)."""

WEIGHTS_COLUMNS: Final[tuple[str, ...]] = (
    "model",
    "seed",
    "task",
    "domain",
    "corruption",
    "modality",
    "severity",
    "sample_id",
    "alpha_v",
    "alpha_t",
    "h_v",
    "h_t",
    "agreement",
    "a_v",
    "a_t",
)
"""Columns of ``fusion_weights.csv``: per-sample MA-AFS weights and the raw cues behind them
(``h_v``, ``h_t``: normalised entropies against the reference banks; ``agreement``: cos(v, t);
``a_v``, ``a_t``: bank agreement, the largest cosine with the other modality's bank; blank for a
method that reports weights without cues), in file order."""

WEIGHT_VALUES: Final[tuple[str, ...]] = ("alpha_v", "alpha_t", "h_v", "h_t", "agreement", "a_v", "a_t")
"""The numeric columns of ``fusion_weights.csv``."""

ITEMS_KEY: Final[tuple[str, ...]] = (*METRICS_COLUMNS[: METRICS_COLUMNS.index("metric")], "query", "item")
"""Key columns of the items file (``items.csv.gz``), in file order; the value columns follow.

One row per (model, seed, task, cell, query kind, item): ``query`` is the kind of query (for
retrieval ``i2t``, one row per image, or ``t2i``, one row per caption), ``item`` the dataset's id
of the query's image or caption (``image_ids`` / ``caption_ids``, int64, the same ids in every
domain and cell, so resampling by id pairs cells, models and runs). The value columns are every
task's per-item score columns (``Task.item_columns``; retrieval: ``i2t_r<K>``, ``t2i_r<K>``, a
hit 1 or a miss 0), blank where the column belongs to another query kind or task. The metric of
a cell is the mean of its column over the cell's rows where it is not blank; composite metrics
(retrieval's ``r_mean``) are the mean of their parts, as ``run.json``'s ``items`` records
(metric -> parts). gzip-compressed CSV (no parquet engine is a dependency); appended per cell,
each append a gzip member, which readers concatenate."""

ITEMS_FILE: Final[str] = "items.csv.gz"
"""File name of the per-item scores in a run directory."""

CLEAN: Final[str] = "none"
"""Value of ``corruption`` and ``modality`` on clean rows."""

MODALITIES: Final[tuple[str, ...]] = ("image", "text", "pair")
"""Modalities a corruption can target, in display order."""

METRICS_KEY: Final[tuple[str, ...]] = METRICS_COLUMNS[:-1]
WEIGHTS_KEY: Final[tuple[str, ...]] = WEIGHTS_COLUMNS[: -len(WEIGHT_VALUES)]
#: columns a file may lack (older layouts), with the value they read as
_OPTIONAL: Final = {"seed": "0", "h_v": "nan", "h_t": "nan", "agreement": "nan", "a_v": "nan", "a_t": "nan"}

_METRICS_STR: Final = ("model", "task", "dataset", "domain", "corruption", "modality", "corrupted", "metric")
_WEIGHTS_STR: Final = ("model", "task", "domain", "corruption", "modality", "sample_id")
_ITEMS_STR: Final = ("model", "task", "dataset", "domain", "corruption", "modality", "corrupted", "query")
_NAN_SPELLINGS: Final = ("", "nan")
_MAX_LISTED: Final = 5


class SchemaError(ValueError):
    """A results file or frame does not match its column contract."""


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Read and validate a runner ``metrics.csv``.

    Args:
        path: The CSV file.

    Returns:
        A frame with exactly :data:`METRICS_COLUMNS` in that order, string columns as
        ``str``, ``severity`` as int64 and ``value`` as float64.

    Raises:
        FileNotFoundError: The file does not exist.
        SchemaError: Columns missing or extra, unparsable numbers, unknown modality,
            inconsistent clean rows or duplicate cells; the message names the file.
    """
    return validate_metrics(_read_csv(Path(path)), source=str(path))


def read_weights(path: str | Path) -> pd.DataFrame:
    """Read and validate a runner ``fusion_weights.csv``.

    Returns:
        A frame with exactly :data:`WEIGHTS_COLUMNS`, ``severity`` and ``seed`` int64, the
        :data:`WEIGHT_VALUES` float64, every other column ``str`` (sample ids stay strings).

    Raises:
        FileNotFoundError: The file does not exist.
        SchemaError: As for :func:`read_metrics`.
    """
    return validate_weights(_read_csv(Path(path)), source=str(path))


def read_cues(path: str | Path) -> pd.DataFrame:
    """Read a runner ``fusion_cues.csv`` (per-cell means of the weights and cues, with ``samples``)
    as a weights frame: one row per (model, seed, task, cell) with ``sample_id`` ``"mean"``, so the
    weight plots read it like ``fusion_weights.csv`` (means over equal-sized cells are the same).

    Raises:
        FileNotFoundError: The file does not exist.
        SchemaError: As for :func:`read_weights` (the ``samples`` column is required too).
    """
    frame = _read_csv(Path(path))
    if "samples" not in frame.columns:
        raise SchemaError(f"{path}: columns do not match the schema; missing: ['samples']")
    frame = frame.drop(columns="samples").assign(sample_id="mean")
    return validate_weights(frame, source=str(path))


def read_items(path: str | Path) -> pd.DataFrame:
    """Read and validate a runner items file (:data:`ITEMS_KEY` then value columns).

    Returns:
        A frame with :data:`ITEMS_KEY` first (string columns ``str``, ``seed``, ``severity``,
        ``item`` int64) and every other column float64 (NaN where blank).

    Raises:
        FileNotFoundError: The file does not exist.
        SchemaError: Key columns missing, unparsable numbers, unknown modality, inconsistent
            clean rows or repeated keys; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    header = pd.read_csv(path, nrows=0).columns.tolist()
    keys = [c for c in header if c in ITEMS_KEY]
    if "corrupted" not in keys:  # written before the column existed: validate_items fills it
        keys.append("corrupted")
    _check_columns(keys, ITEMS_KEY, str(path))
    values = [c for c in header if c not in ITEMS_KEY]
    dtypes = {**{c: str for c in _ITEMS_STR}, **{c: "float64" for c in values}}
    try:
        frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in values})
    except (ValueError, EOFError, OSError) as err:
        raise SchemaError(f"{path}: cannot read the items file: {err}") from err
    return validate_items(frame, source=str(path))


def validate_items(frame: pd.DataFrame, source: str = "items frame") -> pd.DataFrame:
    """Check an items frame (:data:`ITEMS_KEY` plus float value columns) and return a
    normalised copy with the key columns first."""
    if "corrupted" not in frame.columns and "modality" in frame.columns:
        frame = frame.assign(corrupted=frame["modality"].map(DEFAULT_CORRUPTED).fillna(""))
    values = [c for c in frame.columns if c not in ITEMS_KEY]
    out = frame.loc[:, [*ITEMS_KEY, *values]].reset_index(drop=True)
    _check_columns(out.columns[: len(ITEMS_KEY)], ITEMS_KEY, source)
    for column in _ITEMS_STR:
        out[column] = out[column].astype(str)
    for column in ("seed", "severity", "item"):
        out[column] = _to_int(out[column], column, source)
    for column in values:
        out[column] = _to_float(out[column], column, source)
    _check_modalities(out, source)
    _check_unique(out, ITEMS_KEY, source)
    return out


def validate_metrics(frame: pd.DataFrame, source: str = "metrics frame") -> pd.DataFrame:
    """Check a metrics frame against the contract and return a normalised copy.

    Used by :func:`read_metrics` and by the table builders, so an in-memory frame gets
    the same checks as a file.

    Args:
        frame: Rows in the ``metrics.csv`` layout (any column order).
        source: What to call the frame in error messages (usually the file path).
    """
    out = _normalise(frame, METRICS_COLUMNS, _METRICS_STR, ("value",), source)
    _check_modalities(out, source)
    _check_unique(out, METRICS_KEY, source)
    return out


def validate_weights(frame: pd.DataFrame, source: str = "weights frame") -> pd.DataFrame:
    """Check a fusion-weights frame against the contract and return a normalised copy."""
    out = _normalise(frame, WEIGHTS_COLUMNS, _WEIGHTS_STR, WEIGHT_VALUES, source)
    _check_modalities(out, source)
    _check_unique(out, WEIGHTS_KEY, source)
    return out


STRENGTH_SEP: Final[str] = "@"
"""Separator of a shifted domain's name and its style strength in the ``domain`` column."""


def domain_label(domain: str, strength: float) -> str:
    """The ``domain`` value of a shifted domain's clean cell at a style strength.

    Strength 1 (the shifted domain itself) keeps the plain name, so runs without strengths read
    as before; any other strength is ``"<domain>@<strength:g>"``, e.g. ``outline@0.5``.
    """
    return domain if strength == 1.0 else f"{domain}{STRENGTH_SEP}{strength:g}"


def split_domain(label: str) -> tuple[str, float]:
    """Inverse of :func:`domain_label`: ``"outline@0.5"`` -> ``("outline", 0.5)``, ``"outline"`` ->
    ``("outline", 1.0)``. A suffix that is not a number in [0, 1] is part of the name."""
    name, sep, tail = str(label).rpartition(STRENGTH_SEP)
    if sep:
        try:
            strength = float(tail)
        except ValueError:
            return str(label), 1.0
        if 0.0 <= strength <= 1.0 and name:
            return name, strength
    return str(label), 1.0


def is_clean(frame: pd.DataFrame) -> pd.Series:
    """Boolean mask of the clean rows (``corruption == "none"``)."""
    return frame["corruption"] == CLEAN


def in_domain(frame: pd.DataFrame, task: str, domain: str | None = None) -> str:
    """The domain a task was evaluated under corruption in (its in-domain test set).

    Why: the leaderboard's clean/corrupted columns must come from the same domain,
    and the other domains' clean rows are the domain-shift columns.

    Args:
        frame: A validated metrics or weights frame.
        task: The task to look at.
        domain: An explicit choice; checked to have rows for the task.

    Returns:
        ``domain`` if given; else the single domain with corrupted rows for the task;
        else, when the task has no corrupted rows, its single domain.

    Raises:
        SchemaError: The choice is ambiguous (pass ``domain``) or has no rows.
    """
    rows = frame[frame["task"] == task]
    present = sorted(rows["domain"].unique())
    if domain is not None:
        if domain not in present:
            raise SchemaError(f"task {task!r} has no rows in domain {domain!r}; domains: {present}")
        return domain
    corrupted = sorted(rows.loc[~is_clean(rows), "domain"].unique())
    candidates = corrupted or present
    if len(candidates) != 1:
        what = "corrupted rows" if corrupted else "rows"
        raise SchemaError(
            f"task {task!r} has {what} in several domains {candidates}; "
            "pass domain= to say which is the in-domain test set"
        )
    return candidates[0]


def task_order(frame: pd.DataFrame, primary: Mapping[str, str]) -> list[str]:
    """Tasks present in ``frame``, in the order of ``primary``.

    Raises:
        SchemaError: A task in the frame has no primary metric, or the frame is empty.
    """
    present = sorted(frame["task"].unique())
    if not present:
        raise SchemaError("no metric rows to report")
    unknown = [task for task in present if task not in primary]
    if unknown:
        raise SchemaError(
            f"no primary metric for task(s) {unknown}; primary covers {list(primary)}"
        )
    return [task for task in primary if task in present]


def strict_mean(frame: pd.DataFrame, by: str | Sequence[str], column: str = "value") -> pd.Series:
    """Mean of ``column`` per group of ``by``; NaN for a group holding any NaN or +-inf.

    Why: pandas skips NaN by default, so a model with a NaN cell would be averaged over its
    other cells only and could rank above a model that scored every cell.

    Returns:
        A float64 series indexed by the groups (as ``frame.groupby(by)``).
    """
    values = frame[column].astype("float64")
    finite = frame.assign(**{column: values.where(np.isfinite(values))})
    grouped = finite.groupby(by)[column]
    return grouped.mean().where(grouped.count() == grouped.size())


def nonfinite_count(frame: pd.DataFrame, by: str, column: str = "value") -> pd.Series:
    """Number of NaN or +-inf values of ``column`` per group of ``by`` (int64)."""
    values = frame[column].astype("float64")
    return (~np.isfinite(values)).groupby(frame[by]).sum().astype("int64")


def corruption_cells(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The distinct ``(corruption, modality)`` pairs of the corrupted rows.

    Ordered by modality (:data:`MODALITIES` order), then corruption name, so tables and
    plot grids group the image corruptions, then text, then pair.
    """
    rows = frame.loc[~is_clean(frame), ["corruption", "modality"]].drop_duplicates()
    pairs = [(str(c), str(m)) for c, m in rows.itertuples(index=False)]
    return sorted(pairs, key=lambda cell: (MODALITIES.index(cell[1]), cell[0]))


def _read_csv(path: Path) -> pd.DataFrame:
    """Read every column as text; dtypes are applied by the validators."""
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise SchemaError(f"{path}: file is empty (expected a header row)") from err


def _normalise(
    frame: pd.DataFrame,
    columns: Sequence[str],
    str_columns: Sequence[str],
    float_columns: Sequence[str],
    source: str,
) -> pd.DataFrame:
    """Check the column set and cast every column to its contract dtype."""
    frame = frame.copy()
    for column, default in _OPTIONAL.items():
        if column in columns and column not in frame.columns:
            frame[column] = default
    if "corrupted" in columns and "corrupted" not in frame.columns and "modality" in frame.columns:
        frame["corrupted"] = frame["modality"].map(DEFAULT_CORRUPTED).fillna("")
    _check_columns(frame.columns, columns, source)
    out = frame.loc[:, list(columns)].reset_index(drop=True)
    for column in str_columns:
        out[column], empty = _as_str(out[column])
        _fail_rows(empty, f"empty values in column {column!r}", source)
    out["severity"] = _to_int(out["severity"], "severity", source)
    out["seed"] = _to_int(out["seed"], "seed", source)
    for column in float_columns:
        out[column] = _to_float(out[column], column, source)
    return out


def _check_columns(found: Sequence[str], expected: Sequence[str], source: str) -> None:
    """Raise naming the missing and extra columns if ``found`` is not ``expected``."""
    found = [str(column) for column in found]
    missing = [column for column in expected if column not in found]
    extra = [column for column in found if column not in expected]
    if missing or extra:
        raise SchemaError(
            f"{source}: columns do not match the schema; missing: {missing}, extra: {extra}; "
            f"expected exactly: {','.join(expected)}"
        )


def _to_int(values: pd.Series, column: str, source: str) -> pd.Series:
    """Parse a column of whole numbers, rejecting blanks and fractions."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round())
    _fail_rows(bad, f"column {column!r} must hold integers", source, values)
    return numbers.astype("int64")


def _as_str(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``values`` as strings and the mask of the empty ones (missing, blank or ``nan``).

    Checked on the distinct values only: a weights or items column has a handful of distinct
    labels over up to millions of rows.
    """
    missing = values.isna()  # pandas 3 keeps NaN through astype(str), pandas 2 spells it "nan"
    text = values.astype(str)
    distinct = pd.unique(text)
    blank = [v for v in distinct if isinstance(v, str) and v.strip() in _NAN_SPELLINGS]
    return text, (missing | text.isin(blank)) if blank else missing


def _to_float(values: pd.Series, column: str, source: str) -> pd.Series:
    """Parse a float column; blank or ``nan`` means missing, anything else must parse.

    A column that is already numeric (an in-memory frame) is only cast; text is parsed and
    only the entries that did not parse are checked for a spelling of missing.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    unparsed = numbers.isna() & values.notna()
    if unparsed.any():
        spelled_nan = values[unparsed].astype(str).str.strip().str.lower().isin(_NAN_SPELLINGS)
        _fail_rows(unparsed & ~spelled_nan.reindex(values.index, fill_value=True),
                   f"column {column!r} must hold numbers", source, values)
    return numbers


def _check_modalities(frame: pd.DataFrame, source: str) -> None:
    """Modality must be known, and clean rows must be exactly the severity-0 ones."""
    known = (*MODALITIES, CLEAN)
    unknown = sorted(set(frame["modality"]) - set(known))
    if unknown:
        raise SchemaError(f"{source}: unknown modality {unknown}; expected one of {list(known)}")
    clean = is_clean(frame)
    clean_ok = (frame["modality"] == CLEAN) & (frame["severity"] == 0)
    corrupted_ok = (frame["modality"] != CLEAN) & (frame["severity"] >= 1)
    _fail_rows(
        (clean & ~clean_ok) | (~clean & ~corrupted_ok),
        "clean rows need modality 'none' and severity 0, corrupted rows a modality and severity >= 1",
        source,
    )


def _check_unique(frame: pd.DataFrame, key: Sequence[str], source: str) -> None:
    """Each key must appear once: a repeat means an appended rerun or a runner bug."""
    duplicated = frame.duplicated(list(key), keep=False)
    if duplicated.any():
        first = frame.loc[duplicated, list(key)].head(_MAX_LISTED).to_dict("records")
        raise SchemaError(
            f"{source}: {int(duplicated.sum())} rows repeat the key ({', '.join(key)}); first: {first}"
        )


def _fail_rows(
    bad: pd.Series, message: str, source: str, values: pd.Series | None = None
) -> None:
    """Raise with the first offending data rows (1-based, as a spreadsheet shows them)."""
    if not bad.any():
        return
    rows = [int(i) + 1 for i in bad[bad].index[:_MAX_LISTED]]
    shown = f", values {[str(v) for v in values[bad].head(_MAX_LISTED)]}" if values is not None else ""
    raise SchemaError(f"{source}: {message}; {int(bad.sum())} bad row(s), first data rows {rows}{shown}")
