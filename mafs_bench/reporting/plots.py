"""Figures from the results files: robustness curves (per corruption and per family), fusion
weights, domain-shift curves, heatmaps and the corruption gallery.

Figures are drawn on :class:`matplotlib.figure.Figure` objects and saved through the
Agg renderer, without ``matplotlib.pyplot``: no window is ever opened and the caller's
global backend (e.g. a notebook's) is left alone. Every model keeps one colour and
marker across all subplots and figures (assigned by sorted model name, or by the
``models`` argument so several figures can share one assignment).

NaN and inf values are not skipped (see :func:`mafs_bench.reporting.schema.strict_mean`): a
point or bar whose mean includes one is left out, leaving a gap, and the model's legend entry
says ``(NaN/inf)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mafs_bench.reporting.families import family_sort_key
from mafs_bench.reporting.schema import (
    SchemaError,
    corruption_cells,
    in_domain,
    is_clean,
    nonfinite_count,
    split_domain,
    strict_mean,
    validate_metrics,
    validate_weights,
)

MAX_COLUMNS: Final[int] = 4
MAX_SEVERITY: Final[int] = 5
MIN_WIDTH: Final[float] = 6.4  # inches
DPI: Final[int] = 120
MARKERS: Final[tuple[str, ...]] = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<")
# No "Software" stamp, so the PNG bytes do not change with the matplotlib version.
_PNG_METADATA: Final = {"Software": None}
_LINE: Final = {"linewidth": 1.6, "markersize": 5}


def model_styles(models: Sequence[str]) -> dict[str, dict[str, str]]:
    """Colour and marker per model, fixed by the model's position in sorted order.

    Returns:
        ``{model: {"color": ..., "marker": ...}}`` for ``sorted(models)``.
    """
    names = sorted(dict.fromkeys(models))
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {
        name: {"color": palette(i % palette.N), "marker": MARKERS[i % len(MARKERS)]}
        for i, name in enumerate(names)
    }


def plot_robustness_curves(
    metrics: pd.DataFrame,
    task: str,
    metric: str,
    path: str | Path,
    domain: str | None = None,
    models: Sequence[str] | None = None,
) -> Path:
    """Metric vs severity, one subplot per corruption, one line per model.

    Severity 0 is the clean score, so each line starts where the model stands clean and
    shows how fast it degrades. Subplots share the y axis so drops compare directly.

    Args:
        metrics: Rows in the ``metrics.csv`` layout.
        task: Task to plot.
        metric: Metric on the y axis.
        path: PNG to write.
        domain: In-domain test set (default: the domain with corrupted rows).
        models: Models that fix the colour assignment (default: those plotted).

    Returns:
        ``path``.

    Raises:
        SchemaError: The task has no corrupted rows for ``metric``.
    """
    metrics = validate_metrics(metrics)
    domain = in_domain(metrics, task, domain)
    of_task = metrics[(metrics["task"] == task) & (metrics["metric"] == metric)]
    rows = of_task[of_task["domain"] == domain]
    curves = _severity_curves(rows, "value")
    if not curves:
        raise SchemaError(f"task {task!r} has no corrupted rows for {metric!r} in domain {domain!r}")
    plotted = sorted(rows["model"].unique())
    styles = model_styles(models if models is not None else plotted)
    top = max(MAX_SEVERITY, int(rows["severity"].max()))

    fig, axes = _grid(len(curves))
    for ax, ((corruption, modality), lines) in zip(axes, curves.items(), strict=False):
        for model, (xs, ys) in lines.items():
            ax.plot(xs, ys, **_LINE, **styles[model])
        _style_axis(ax, f"{corruption} ({modality})", top)
    _label_outer(axes[: len(curves)], xlabel="severity (0 = clean)")
    fig.supylabel(metric, fontsize=10)
    fig.suptitle(f"{task}: {metric} vs corruption severity (domain {domain})")
    broken = _nonfinite_models(rows, ["value"])
    _legend(fig, [_model_handle(m, styles[m], m in broken) for m in plotted])
    return _save(fig, path)


def plot_fusion_weights(
    weights: pd.DataFrame,
    path: str | Path,
    task: str | None = None,
    domain: str | None = None,
    models: Sequence[str] | None = None,
) -> Path:
    """Mean MA-AFS weights vs severity, one subplot per corruption, for each model.

    The diagnostic for the scheduler: as one modality is corrupted harder, its weight
    should fall. ``alpha_v`` (image weight) is a solid line, ``alpha_t`` (text weight)
    a dashed line in the same colour; severity 0 is the clean mean.

    Args:
        weights: Rows in the ``fusion_weights.csv`` layout.
        path: PNG to write.
        task: Task to plot; may be omitted when the frame holds a single task.
        domain: In-domain test set (default: the domain with corrupted rows).
        models: Models that fix the colour assignment (default: those plotted).

    Raises:
        SchemaError: Several tasks and no ``task``, or no corrupted rows to plot.
    """
    if task is not None and "task" in weights.columns:  # validate only the rows drawn
        weights = weights[weights["task"].astype(str) == task]
    weights = validate_weights(weights)
    tasks = sorted(weights["task"].unique())
    if task is None:
        if len(tasks) != 1:
            raise SchemaError(f"fusion weights hold tasks {tasks}; pass task= to pick one")
        task = tasks[0]
    domain = in_domain(weights, task, domain)
    rows = weights[(weights["task"] == task) & (weights["domain"] == domain)]
    curves = {column: _severity_curves(rows, column) for column in ("alpha_v", "alpha_t")}
    if not curves["alpha_v"]:
        raise SchemaError(f"fusion weights of task {task!r} have no corrupted rows in domain {domain!r}")
    plotted = sorted(rows["model"].unique())
    styles = model_styles(models if models is not None else plotted)
    top = max(MAX_SEVERITY, int(rows["severity"].max()))

    fig, axes = _grid(len(curves["alpha_v"]))
    for ax, cell in zip(axes, curves["alpha_v"], strict=False):
        ax.axhline(0.5, color="0.6", linewidth=0.8, linestyle=":")
        for column, linestyle, fill in (("alpha_v", "-", "full"), ("alpha_t", "--", "none")):
            for model, (xs, ys) in curves[column][cell].items():
                ax.plot(xs, ys, linestyle=linestyle, fillstyle=fill, **_LINE, **styles[model])
        _style_axis(ax, f"{cell[0]} ({cell[1]})", top)
        ax.set_ylim(-0.03, 1.03)
    _label_outer(axes[: len(curves["alpha_v"])], xlabel="severity (0 = clean)")
    fig.supylabel("mean fusion weight", fontsize=10)
    fig.suptitle(f"MA-AFS fusion weights vs severity: {task} (domain {domain})")
    broken = _nonfinite_models(rows, ["alpha_v", "alpha_t"])
    handles = [_model_handle(m, styles[m], m in broken) for m in plotted]
    handles += [
        Line2D([], [], color="0.3", linestyle="-", label="alpha_v (image)"),
        Line2D([], [], color="0.3", linestyle="--", label="alpha_t (text)"),
    ]
    _legend(fig, handles)
    return _save(fig, path)


def plot_domain_shift(
    metrics: pd.DataFrame,
    task: str,
    metric: str,
    path: str | Path,
    domain: str | None = None,
    models: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
) -> Path:
    """Domain-shift curves: clean score against shift, one line per model.

    The first panel runs across domains: the in-domain test set, then each shifted domain (at full
    strength) in ``order`` (the suite's ``shifted_domains`` order, e.g. NoCaps' in -> near -> out;
    default: by name), so an ordered list of domains reads as one curve. Then, for each shifted
    domain evaluated at style strengths below 1 (``<name>@<s>`` cells, see
    :func:`mafs_bench.reporting.schema.domain_label`), a panel of the score against strength from 0
    (the clean in-domain cell) to 1 (the shifted domain). Panels share the y axis.

    Args:
        metrics: rows in the ``metrics.csv`` layout.
        task, metric: what to plot.
        path: PNG to write.
        domain: in-domain test set (default: the domain with corrupted rows).
        models: models that fix the colour assignment (default: those plotted).
        order: shifted domain names in display order; names not listed follow by name.

    Raises:
        SchemaError: the task has clean rows for ``metric`` in only one domain.
    """
    metrics = validate_metrics(metrics)
    home = in_domain(metrics, task, domain)
    rows = metrics[(metrics["task"] == task) & (metrics["metric"] == metric) & is_clean(metrics)]
    panels = domain_shift_panels(rows, home, order)
    if not panels:
        raise SchemaError(f"task {task!r} has no shifted-domain rows for metric {metric!r}")
    plotted = sorted(rows["model"].unique())
    styles = model_styles(models if models is not None else plotted)
    means = strict_mean(rows, ["model", "domain"])
    shown = {label for panel in panels for _, label in panel.points}
    broken = _nonfinite_models(rows[rows["domain"].isin(shown)], ["value"])

    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels, strict=False):
        xs = [x for x, _ in panel.points]
        for model in plotted:
            ys = [float(means.get((model, label), math.nan)) for _, label in panel.points]
            ax.plot(xs, ys, **_LINE, **styles[model])
        ax.set_title(panel.title, fontsize=10)
        ax.grid(alpha=0.3)
        if panel.ticks is not None:
            ax.set_xticks(xs, panel.ticks, rotation=30 if len(xs) > 3 else 0, ha="right" if len(xs) > 3 else "center")
            ax.set_xlim(-0.3, len(xs) - 0.7)
        else:
            ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0])
            ax.set_xlim(-0.05, 1.05)
    _label_outer(axes[: len(panels)], xlabel="")
    for ax, panel in zip(axes, panels, strict=False):
        ax.set_xlabel(panel.xlabel, fontsize=9)
    fig.supylabel(f"clean {metric}", fontsize=10)
    fig.suptitle(f"{task}: clean {metric} against domain shift (in-domain {home})")
    _legend(fig, [_model_handle(m, styles[m], m in broken) for m in plotted])
    return _save(fig, path)


class ShiftPanel(NamedTuple):
    """One panel of :func:`plot_domain_shift`: ``points`` are (x, domain label) pairs."""

    title: str
    xlabel: str
    points: list[tuple[float, str]]
    ticks: list[str] | None  # categorical tick labels, or None for a numeric strength axis


def domain_shift_panels(clean_rows: pd.DataFrame, home: str, order: Sequence[str] | None = None) -> list[ShiftPanel]:
    """The panels of :func:`plot_domain_shift` from one (task, metric)'s clean rows (see there)."""
    labels = [str(d) for d in clean_rows["domain"].unique() if d != home]
    by_name: dict[str, list[tuple[float, str]]] = {}
    for label in labels:
        name, strength = split_domain(label)
        by_name.setdefault(name, []).append((strength, label))
    if not by_name:
        return []
    listed = [n for n in (order or ()) if n in by_name]
    names = listed + sorted(n for n in by_name if n not in listed)
    full = [(name, dict((s, l) for s, l in by_name[name]).get(1.0)) for name in names]
    full = [(name, label) for name, label in full if label is not None]
    panels = []
    if full:
        points = [(0.0, home)] + [(float(i + 1), label) for i, (_, label) in enumerate(full)]
        ticks = [f"{home}\n(in-domain)"] + [name for name, _ in full]
        panels.append(ShiftPanel("across domains", "domain", points, ticks))
    for name in names:
        steps = sorted(by_name[name])
        if any(s < 1.0 for s, _ in steps):
            panels.append(ShiftPanel(f"{home} -> {name}", "style strength (0 = in-domain)", [(0.0, home), *steps], None))
    return panels


def plot_family_curves(
    metrics: pd.DataFrame,
    task: str,
    metric: str,
    families: Mapping[tuple[str, str], str],
    path: str | Path,
    domain: str | None = None,
    models: Sequence[str] | None = None,
) -> Path:
    """Metric vs severity per corruption family: each point is the mean over the family's
    corruptions at that severity (strict: NaN if any is NaN), one subplot per family.

    Args:
        families: (corruption, modality) -> report family (:func:`.families.corruption_families`).

    Raises:
        SchemaError: no corrupted rows for ``metric``.
    """
    metrics = validate_metrics(metrics)
    domain = in_domain(metrics, task, domain)
    rows = metrics[(metrics["task"] == task) & (metrics["metric"] == metric) & (metrics["domain"] == domain)]
    corrupted = rows[~is_clean(rows)]
    if corrupted.empty:
        raise SchemaError(f"task {task!r} has no corrupted rows for {metric!r} in domain {domain!r}")
    keyed = corrupted.assign(family=[families.get((c, m), f"{m} other")
                                     for c, m in zip(corrupted["corruption"], corrupted["modality"], strict=True)])
    per_cell = strict_mean(keyed, ["family", "corruption", "model", "severity"]).rename("value").reset_index()
    curves = strict_mean(per_cell, ["family", "model", "severity"])
    clean = strict_mean(rows[is_clean(rows)], "model")
    order = sorted(keyed["family"].unique(), key=family_sort_key)
    plotted = sorted(rows["model"].unique())
    styles = model_styles(models if models is not None else plotted)
    top = max(MAX_SEVERITY, int(rows["severity"].max()))
    fig, axes = _grid(len(order))
    for ax, family in zip(axes, order, strict=False):
        for model in plotted:
            if (family, model) not in curves.index.droplevel("severity"):
                continue
            curve = curves.loc[(family, model)]
            xs, ys = [0, *[int(x) for x in curve.index]], [float(clean.get(model, math.nan)), *[float(y) for y in curve]]
            ax.plot(xs, ys, **_LINE, **styles[model])
        n = keyed.loc[keyed["family"] == family, "corruption"].nunique()
        _style_axis(ax, f"{family} ({n} corruption{'s' if n > 1 else ''})", top)
    _label_outer(axes[: len(order)], xlabel="severity (0 = clean)")
    fig.supylabel(f"{metric} (mean over the family)", fontsize=10)
    fig.suptitle(f"{task}: {metric} vs severity per corruption family (domain {domain})")
    broken = _nonfinite_models(rows, ["value"])
    _legend(fig, [_model_handle(m, styles[m], m in broken) for m in plotted])
    return _save(fig, path)


def plot_heatmap(table: pd.DataFrame, path: str | Path, title: str, value_label: str,
                 low: float = 0.0, high: float = 1.0) -> Path:
    """A model x column heatmap with every value printed in its cell.

    Args:
        table: index = models (rows), columns = what is compared, in display order; NaN cells are
            grey and blank.
        low, high: the colour scale (red at ``low``, green at ``high``); widened to the data.
    """
    data = table.to_numpy(dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size:
        low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    fig = Figure(figsize=(max(MIN_WIDTH, 0.8 * table.shape[1] + 2.8), 0.42 * table.shape[0] + 2.4),
                 layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["RdYlGn"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=low, vmax=high, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index], fontsize=9)
    for (i, j), value in np.ndenumerate(data):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label=value_label, shrink=0.8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_image_gallery(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], path: str | Path,
                       title: str = "") -> Path:
    """A grid of images: one row per ``(label, [(column label, HxWx3 uint8 image), ...])``.

    Rows may have different lengths; empty slots are hidden.
    """
    ncols = max(len(cells) for _, cells in rows)
    fig = Figure(figsize=(1.25 * ncols + 1.6, 1.3 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (label, cells) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.set_visible(False)
                continue
            caption, image = cells[c]
            ax.imshow(np.asarray(image), interpolation="nearest")
            ax.set_title(caption, fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


Curves = dict[str, tuple[list[int], list[float]]]
"""Model -> (severities, values) of one corruption cell; severity 0 is the clean value."""


def _severity_curves(rows: pd.DataFrame, column: str) -> dict[tuple[str, str], Curves]:
    """Mean ``column`` per severity for every (corruption, modality) cell and model.

    Each curve starts at severity 0 with the model's clean mean when it has clean rows.
    Cells come in :func:`corruption_cells` order, models sorted by name. A mean over a NaN
    or inf value is NaN (a gap in the line).
    """
    clean = strict_mean(rows[is_clean(rows)], "model", column)
    corrupted = rows[~is_clean(rows)]
    means = strict_mean(corrupted, ["corruption", "modality", "model", "severity"], column)
    found: dict[tuple[str, str], Curves] = {}
    for (corruption, modality, model), curve in means.groupby(level=[0, 1, 2]):
        xs = [int(x) for x in curve.index.get_level_values("severity")]
        ys = [float(y) for y in curve]
        if model in clean.index:
            xs, ys = [0, *xs], [float(clean[model]), *ys]
        found.setdefault((corruption, modality), {})[model] = (xs, ys)
    return {cell: found[cell] for cell in corruption_cells(rows)}


def _grid(n: int) -> tuple[Figure, list[Axes]]:
    """``n`` subplots sharing the y axis, at most :data:`MAX_COLUMNS` per row, rows filled evenly.

    The spare slots of the last row are hidden.
    """
    nrows = math.ceil(n / MAX_COLUMNS)
    ncols = math.ceil(n / nrows)
    width = max(MIN_WIDTH, 3.2 * ncols + 0.6)  # wide enough for the title over one subplot
    fig = Figure(figsize=(width, 2.6 * nrows + 1.2), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, sharey=True, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _style_axis(ax: Axes, title: str, top: int) -> None:
    """Common look: integer severities 0..top, light grid, small title."""
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(top + 1))
    ax.set_xlim(-0.3, top + 0.3)
    ax.grid(alpha=0.3)


def _label_outer(axes: Sequence[Axes], xlabel: str) -> None:
    """Y tick labels on the first column only; x label under the lowest subplot of each column.

    (A figure-level x label would collide with the legend below the grid.)
    """
    for i, ax in enumerate(axes):
        spec = ax.get_subplotspec()
        ax.tick_params(labelleft=spec.is_first_col(), labelsize=8)
        if i + spec.get_gridspec().ncols >= len(axes):
            ax.set_xlabel(xlabel, fontsize=9)


def _model_handle(model: str, style: dict[str, str], nonfinite: bool = False) -> Line2D:
    return Line2D([], [], label=_label(model, nonfinite), **_LINE, **style)


def _label(model: str, nonfinite: bool) -> str:
    """Legend label; flags a model with NaN/inf values among those plotted."""
    return f"{model} (NaN/inf)" if nonfinite else model


def _nonfinite_models(rows: pd.DataFrame, columns: Sequence[str]) -> set[str]:
    """Models with a NaN or inf value in any of ``columns`` of ``rows``."""
    counts = sum(nonfinite_count(rows, "model", column) for column in columns)
    return {str(model) for model, n in counts.items() if n > 0}


def _legend(fig: Figure, handles: list[Line2D]) -> None:
    """One legend for the whole figure, below the subplots."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), frameon=False)


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, metadata=_PNG_METADATA)
    return out
