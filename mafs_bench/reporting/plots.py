"""Figures from the results files: robustness curves, fusion weights, domain shift.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mafs_bench.reporting.schema import (
    SchemaError,
    corruption_cells,
    in_domain,
    is_clean,
    nonfinite_count,
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
) -> Path:
    """Clean score per domain, grouped bars with one bar per model.

    The in-domain test set comes first, then the shifted domains by name, so the drop
    from the first group to the others is the cost of the shift.

    Raises:
        SchemaError: The task has clean rows for ``metric`` in only one domain.
    """
    metrics = validate_metrics(metrics)
    home = in_domain(metrics, task, domain)
    rows = metrics[(metrics["task"] == task) & (metrics["metric"] == metric) & is_clean(metrics)]
    shifted = sorted(d for d in rows["domain"].unique() if d != home)
    if not shifted:
        raise SchemaError(f"task {task!r} has no shifted-domain rows for metric {metric!r}")
    domains = [home, *shifted]
    plotted = sorted(rows["model"].unique())
    styles = model_styles(models if models is not None else plotted)
    means = strict_mean(rows, ["model", "domain"])
    broken = _nonfinite_models(rows[rows["domain"].isin(domains)], ["value"])

    width = 0.8 / len(plotted)  # of one bar, so a group spans 0.8 of its slot
    fig = Figure(figsize=(max(5.0, 0.35 * len(domains) * len(plotted) + 3.0), 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, model in enumerate(plotted):
        offsets = [j + (i - (len(plotted) - 1) / 2) * width for j in range(len(domains))]
        heights = [float(means.get((model, d), math.nan)) for d in domains]
        ax.bar(offsets, heights, width=width * 0.95, color=styles[model]["color"], label=_label(model, model in broken))
    ax.set_xticks(range(len(domains)), [f"{home}\n(in-domain)", *shifted])
    ax.set_ylabel(metric)
    ax.set_title(f"{task}: clean {metric} across domains")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
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
