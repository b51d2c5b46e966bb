"""``report.html``: one self-contained page from one or several run directories.

:func:`build_report` merges the runs (:mod:`.merge`), rebuilds the leaderboard with intervals
(:mod:`.leaderboard`, :mod:`.bootstrap`), computes the robustness aggregates
(:mod:`.robustness`), draws the figures (:mod:`.plots`), writes one JSON per leaderboard entry
(:mod:`.entries`) and the page. Every figure is embedded as a base64 PNG and the page's only
script (table sorting and a render check) is inline, so it opens offline, from any folder.

Sections (their HTML ids, which the end-to-end test checks): ``runs`` (runs and tasks),
``leaderboard``, ``robustness``, ``curves``, ``families``, ``heatmap``, ``domain-shift``,
``fusion-weights``, ``gallery``, ``entries``, ``definitions``.

Files written into the output folder: ``report.html``, ``leaderboard.csv`` / ``leaderboard.md``
(merged), ``robustness.csv`` / ``robustness.md``, ``figures/*.png`` (the embedded figures, also as files) and
``entries/*.json``.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from mafs_bench import __version__
from mafs_bench.reporting.bootstrap import ALPHA, BOOTSTRAP_SEED, RESAMPLES
from mafs_bench.reporting.entries import build_entries, write_entries
from mafs_bench.reporting.families import corruption_families
from mafs_bench.reporting.leaderboard import (
    CI_HIGH,
    CI_LOW,
    DOMAIN_PREFIX,
    NOT_SIGNIFICANT_MARK,
    P_VS_RANK1,
    SD_SUFFIX,
    build_leaderboard,
    write_leaderboard,
)
from mafs_bench.reporting.merge import Merged, Run, merge_runs
from mafs_bench.reporting.plots import (
    plot_domain_shift,
    plot_family_curves,
    plot_fusion_weights,
    plot_heatmap,
    plot_robustness_curves,
)
from mafs_bench.reporting.robustness import MEASURES, robustness_markdown, robustness_table
from mafs_bench.reporting.schema import SchemaError, in_domain, is_clean

REPORT_HTML: Final[str] = "report.html"
ROBUSTNESS_CSV: Final[str] = "robustness.csv"
ROBUSTNESS_MD: Final[str] = "robustness.md"
FIGURES_DIR: Final[str] = "figures"

SECTIONS: Final[tuple[tuple[str, str], ...]] = (
    ("runs", "Runs and tasks"),
    ("leaderboard", "Leaderboard"),
    ("robustness", "Robustness aggregates"),
    ("curves", "Robustness curves per corruption"),
    ("families", "Robustness curves per corruption family"),
    ("heatmap", "Relative robustness: model x corruption"),
    ("domain-shift", "Domain shift"),
    ("fusion-weights", "MA-AFS fusion weights against severity"),
    ("gallery", "Corruption gallery"),
    ("entries", "Leaderboard entries (JSON)"),
    ("definitions", "Definitions and sources"),
)
"""(id, heading) of every section, in page order."""

MEASURE_LABELS: Final[Mapping[str, str]] = {
    "relative_robustness": "relative robustness",
    "mmi": "MMI",
    "ce": "mCE",
    "relative_ce": "relative mCE",
    "auc": "AUC",
    "effective_robustness": "effective robustness",
}
"""Column headings of the aggregates at family level (``ce`` is the family's mean CE)."""


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes:
        html: the report page.
        files: every file written (page, tables, figures, entries).
        tasks: the merged task names, in leaderboard order.
        figures: how many figures the page embeds.
    """

    html: Path
    files: list[Path] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    figures: int = 0


def build_report(run_dirs: Sequence[str | Path], out_dir: str | Path, resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> ReportResult:
    """Merge ``run_dirs`` and write ``report.html`` with its tables, figures and entries into ``out_dir``.

    Args:
        run_dirs: run directories (each with ``metrics.csv``; the other results files optional).
        out_dir: output folder (created; may be the single run's own directory).
        resamples, seed: bootstrap replicates and seed of every interval.

    Returns:
        A :class:`ReportResult`.

    Raises:
        FileNotFoundError: a run directory has no ``metrics.csv``.
        SchemaError: a results file breaks its contract, or the runs cannot be merged (message
            names the file or the problem).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = out / FIGURES_DIR
    figures.mkdir(exist_ok=True)
    merged = merge_runs(run_dirs)
    metrics = merged.metrics
    tasks = list(merged.primary)
    homes = {task: _home(merged, task) for task in tasks}
    board = pd.concat([build_leaderboard(metrics[metrics["task"] == t], {t: merged.primary[t]}, homes[t],
                                         items=merged.items, meta=merged.meta, resamples=resamples, seed=seed)
                       for t in tasks], ignore_index=True)
    board = board.reindex(columns=_board_columns(board))
    seen = sorted({c for run in merged.runs for c in (run.meta.get("training") or {}).get("corruptions_seen") or []})
    files = write_leaderboard(board, out, metrics, None, seen)

    tables = []
    references = {}
    for task in tasks:
        run = _first_run(merged, task)
        reference, baseline = (run.model_name(_orig_task(run, task), m) if m else None for m in run.report_models())
        references[task] = (reference, baseline)
        tables.append(robustness_table(metrics, task, merged.primary[task], reference, baseline, homes[task],
                                       merged.items, _meta_for(merged, run), resamples, seed))
    robustness = pd.concat(tables, ignore_index=True)
    robustness.to_csv(out / ROBUSTNESS_CSV, index=False, lineterminator="\n", float_format="%.6g")
    (out / ROBUSTNESS_MD).write_text(robustness_markdown(robustness, references), encoding="utf-8", newline="\n")
    files += [out / ROBUSTNESS_CSV, out / ROBUSTNESS_MD]

    palette = sorted(dict.fromkeys([*metrics["model"], *([] if merged.weights is None else merged.weights["model"])]))
    pictures = _Figures(figures)
    for task in tasks:
        _draw_task(pictures, merged, task, homes[task], robustness, palette)
    files += pictures.written

    entries = build_entries(board, robustness, merged)
    entry_paths = write_entries(entries, out)
    files += entry_paths
    page = render_page(merged, board, robustness, pictures, entry_paths, out)
    path = out / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    files.append(path)
    return ReportResult(path, files, tasks, pictures.count)


# --------------------------------------------------------------------------------------------
# Figures


class _Figures:
    """Figures by (section, task): each drawn to ``figures/<section>_<task>.png`` or a note why not."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_key: dict[tuple[str, str], list[tuple[str, Path | str]]] = {}
        self.written: list[Path] = []

    def draw(self, section: str, task: str, name: str, caption: str, draw: Callable[[Path], Path]) -> None:
        path = self.folder / f"{_slug(name)}_{_slug(task)}.png"
        try:
            self.written.append(draw(path))
            self.by_key.setdefault((section, task), []).append((caption, path))
        except SchemaError as err:
            self.by_key.setdefault((section, task), []).append((caption, f"not drawn: {err}"))

    def note(self, section: str, task: str, text: str) -> None:
        self.by_key.setdefault((section, task), []).append(("", text))

    @property
    def count(self) -> int:
        return sum(isinstance(p, Path) for items in self.by_key.values() for _, p in items)


def _draw_task(pictures: _Figures, merged: Merged, task: str, home: str, robustness: pd.DataFrame,
               palette: Sequence[str]) -> None:
    """Every figure of one task."""
    metrics = merged.metrics
    metric = merged.primary[task]
    rows = metrics[(metrics["task"] == task) & (metrics["metric"] == metric)]
    run = _first_run(merged, task)
    corrupted = rows[(rows["domain"] == home) & ~is_clean(rows)]
    if corrupted.empty:
        for section in ("curves", "families", "heatmap"):
            pictures.note(section, task, "no corrupted cells in this task")
    else:
        pictures.draw("curves", task, "robustness_curves", f"{metric} against severity, one panel per corruption",
                      lambda p: plot_robustness_curves(metrics, task, metric, p, home, palette))
        families = corruption_families(set(zip(corrupted["corruption"], corrupted["modality"], strict=True)),
                                       _meta_for(merged, run))
        pictures.draw("families", task, "family_curves", f"{metric} against severity, mean over each family's corruptions",
                      lambda p: plot_family_curves(metrics, task, metric, families, p, home, palette))
    of_task = robustness[(robustness["task"] == task) & (robustness["level"] == "corruption")]
    if not of_task.empty:
        names = list(dict.fromkeys(of_task["name"]))
        heat = of_task.pivot_table(index="model", columns="name", values="relative_robustness", dropna=False)
        heat = heat.reindex(columns=names)
        family_of = dict(zip(of_task["name"], of_task["family"], strict=False))
        heat.columns = [f"{n} ({family_of[n]})" for n in names]
        pictures.draw("heatmap", task, "relative_robustness_heatmap",
                      "relative robustness (mean over levels of score / clean score); domains at their strengths",
                      lambda p: plot_heatmap(heat, p, f"{task}: relative robustness of {metric}", "corrupted / clean"))
    shifted = rows[is_clean(rows) & (rows["domain"] != home)]
    if shifted.empty:
        pictures.note("domain-shift", task, "no shifted domains in this task")
    else:
        pictures.draw("domain-shift", task, "domain_shift", f"clean {metric} across domains and against style strength",
                      lambda p: plot_domain_shift(metrics, task, metric, p, home, palette, run.shifted_order()))
    weights = merged.weights
    of_weights = None if weights is None else weights[(weights["task"] == task) & ~is_clean(weights)]
    if of_weights is None or of_weights.empty:
        pictures.note("fusion-weights", task, "no model of this task reports fusion weights under corruption")
    else:
        pictures.draw("fusion-weights", task, "fusion_weights",
                      "mean alpha_v (solid) and alpha_t (dashed) against severity; 0 = clean",
                      lambda p: plot_fusion_weights(weights[weights["task"] == task], p, task, home, palette))


# --------------------------------------------------------------------------------------------
# The page


def render_page(merged: Merged, board: pd.DataFrame, robustness: pd.DataFrame, pictures: _Figures,
                entries: Sequence[Path], out: Path) -> str:
    """The whole HTML page (see the module docstring)."""
    tasks = list(merged.primary)
    body = [f"<h1>mafs-bench report</h1><p class='lead'>{len(merged.runs)} run(s), tasks: "
            + ", ".join(f"<code>{_e(t)}</code> ({_e(merged.primary[t])})" for t in tasks)
            + f". Built by mafs-bench {__version__} from results files only.</p>", _toc()]
    body.append(_section("runs", _runs_html(merged)))
    body.append(_section("leaderboard", _leaderboard_html(board)))
    body.append(_section("robustness", _robustness_html(merged, robustness)))
    for section in ("curves", "families", "heatmap", "domain-shift", "fusion-weights"):
        body.append(_section(section, "".join(_figures_html(pictures, section, t) for t in tasks)))
    body.append(_section("gallery", _gallery_html(merged)))
    body.append(_section("entries", _entries_html(entries, out)))
    body.append(_section("definitions", DEFINITIONS_HTML))
    return _PAGE.format(style=_STYLE, script=_SCRIPT, body="\n".join(body))


def _toc() -> str:
    return "<nav><ul>" + "".join(f"<li><a href='#{i}'>{_e(h)}</a></li>" for i, h in SECTIONS) + "</ul></nav>"


def _section(section_id: str, inner: str) -> str:
    heading = dict(SECTIONS)[section_id]
    return f"<section id='{section_id}'><h2>{_e(heading)}</h2>\n{inner}\n</section>"


def _runs_html(merged: Merged) -> str:
    rows = []
    for run in merged.runs:
        meta = run.meta
        suite = meta.get("suite") or {}
        tasks = ", ".join(sorted({run.task_name(t) for t in run.metrics["task"].unique()}))
        renamed = ", ".join(f"{m} -> {new}" for (_, m), new in sorted(run.renames.items())) or "none"
        reference, baseline = run.report_models()
        rows.append([run.label, str(run.path), suite.get("name", ""), tasks,
                     ", ".join(sorted(run.metrics["dataset"].unique())), str(meta.get("git_commit") or "unknown"),
                     ", ".join(str(s) for s in meta.get("seeds") or sorted(run.metrics["seed"].unique())),
                     str(meta.get("device") or ""), f"{reference} / {baseline}", renamed,
                     "yes" if run.items is not None else "no (no intervals)"])
    header = ["run", "folder", "suite", "tasks", "dataset", "commit", "training seeds", "device",
              "reference / baseline", "renamed models", "items"]
    task_list = "".join(f"<li><code>{_e(t)}</code>: primary metric <code>{_e(m)}</code></li>"
                        for t, m in merged.primary.items())
    return (_table(header, [[_e(c) for c in r] for r in rows], sortable=True)
            + f"<p>Tasks in this report:</p><ul id='task-list'>{task_list}</ul>")


def _board_columns(board: pd.DataFrame) -> list[str]:
    """Columns of a concatenated leaderboard: base and domain columns, then their companions."""
    main = [c for c in board.columns if not c.endswith((SD_SUFFIX, CI_LOW, CI_HIGH)) and c != P_VS_RANK1]
    return [*main, *(c for c in board.columns if c.endswith(SD_SUFFIX)),
            *(c for c in board.columns if c.endswith((CI_LOW, CI_HIGH))), P_VS_RANK1]


def _leaderboard_html(board: pd.DataFrame) -> str:
    parts = [f"<p>Ranked within each task by the mean corrupted score. Each score: mean over training seeds "
             f"± their standard deviation, then its 95% bootstrap interval (1000 resamples of items and seeds). "
             f"<b>{NOT_SIGNIFICANT_MARK}</b> after a rank: the corrupted score does not differ significantly from "
             f"rank 1's (paired bootstrap, alpha {ALPHA}). Click a heading to sort.</p>"]
    for task, rows in board.groupby("task", sort=False):
        columns = [c for c in rows.columns if c not in ("task", "metric", P_VS_RANK1)
                   and not c.endswith((SD_SUFFIX, CI_LOW, CI_HIGH)) and rows[c].notna().any()
                   and (c != "nonfinite_cells" or (rows[c] > 0).any())]
        body = []
        for row in rows.to_dict("records"):
            cells = []
            for c in columns:
                value = row[c]
                if c == "rank":
                    p = row.get(P_VS_RANK1)
                    mark = (f" <span class='ns' title='not significantly different from rank 1 (p = {p:.3f})'>"
                            f"{NOT_SIGNIFICANT_MARK}</span>") if _finite(p) and p >= ALPHA else ""
                    cells.append(f"<td data-sort='{int(value)}'>{int(value)}{mark}</td>")
                elif c in ("model", "seeds", "nonfinite_cells"):
                    cells.append(f"<td>{_e(str(value))}</td>")
                else:
                    cells.append(_score_cell(value, row.get(c + SD_SUFFIX), row.get(c + CI_LOW), row.get(c + CI_HIGH)))
            body.append(cells)
        metric = rows["metric"].iloc[0]
        parts.append(f"<h3>{_e(task)} <small>ranked by mean corrupted <code>{_e(metric)}</code></small></h3>")
        parts.append(_table([c.replace(DOMAIN_PREFIX, "domain: ") for c in columns], body, sortable=True, raw=True))
    return "".join(parts)


def _robustness_html(merged: Merged, robustness: pd.DataFrame) -> str:
    parts = ["<p>Per corruption family and overall (<code>all</code>: every corruption, shifted domains excluded; "
             "the <code>domain</code> family holds the shifted domains over their style strengths). mCE and relative "
             "mCE are against the reference model, effective robustness against the baseline model (see "
             "<a href='#definitions'>definitions</a>). Values with their 95% bootstrap interval. Per-corruption "
             f"values are in <code>{ROBUSTNESS_CSV}</code> and below each table.</p>"]
    for task, rows in robustness.groupby("task", sort=False):
        run = _first_run(merged, task)
        reference, baseline = run.report_models()
        reference = run.model_name(_orig_task(run, task), reference) if reference else None
        baseline = run.model_name(_orig_task(run, task), baseline) if baseline else None
        parts.append(f"<h3>{_e(task)} <small><code>{_e(rows['metric'].iloc[0])}</code>; reference model "
                     f"<code>{_e(str(reference))}</code>, baseline model <code>{_e(str(baseline))}</code></small></h3>")
        for level, title in (("family", None), ("corruption", "per corruption")):
            shown = rows[rows["level"] != "corruption"] if level == "family" else rows[rows["level"] == "corruption"]
            names = list(dict.fromkeys(shown.sort_values("level", key=lambda c: c != "all", kind="stable")["name"]))
            shown = shown.assign(_order=shown["name"].map({n: i for i, n in enumerate(names)}))
            shown = shown.sort_values(["_order", "model"], kind="stable")  # models side by side per family
            header = ["model", "family" if level == "family" else "corruption", "modality", "corruptions"]
            header += [MEASURE_LABELS[m] if level == "family" else MEASURE_LABELS[m].replace("mCE", "CE")
                       for m in MEASURES]
            body = []
            for r in shown.to_dict("records"):
                cells = [f"<td>{_e(r['model'])}</td>", f"<td>{_e(r['name'])}</td>", f"<td>{_e(r['modality'])}</td>",
                         f"<td data-sort='{r['corruptions']}'>{r['corruptions']}</td>"]
                cells += [_score_cell(r[m], None, r[m + "_ci_low"], r[m + "_ci_high"]) for m in MEASURES]
                body.append(cells)
            table = _table(header, body, sortable=True, raw=True)
            parts.append(table if title is None else f"<details><summary>{_e(task)}: {title}</summary>{table}</details>")
    return "".join(parts)


def _figures_html(pictures: _Figures, section: str, task: str) -> str:
    items = pictures.by_key.get((section, task), [])
    if not items:
        return ""
    parts = [f"<h3>{_e(task)}</h3>"]
    for caption, item in items:
        if isinstance(item, Path):
            data = base64.b64encode(item.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{_e(caption)}</figcaption></figure>")
        else:
            parts.append(f"<p class='note'>{_e(item)}</p>")
    return "".join(parts)


def _gallery_html(merged: Merged) -> str:
    parts = []
    for run in merged.runs:
        parts.append(f"<h3>run {_e(run.label)}</h3>")
        png, record = run.gallery_png, run.gallery
        if png is None and record is None:
            parts.append("<p class='note'>This run recorded no gallery (gallery.png / gallery.json are written by "
                         "runs of this mafs-bench version; rerun the suite to get them).</p>")
            continue
        if png is not None:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='corruption gallery of {_e(run.label)}' src='data:image/png;base64,{data}'>"
                         "<figcaption>The first in-domain test image under every image corruption and severity of "
                         "the run (its own draws), then each shifted domain at each style strength.</figcaption></figure>")
        if record is not None and record.get("text"):
            severities = sorted({s for row in record["text"] for s in row["severities"]}, key=int)
            body = [[_e(row["corruption"]), _e(row["modality"]), _e(row["family"]),
                     *(_e(row["severities"].get(s, "")) for s in severities)] for row in record["text"]]
            parts.append(f"<p>Caption {record.get('caption_id')} (clean): <q>{_e(record.get('caption', ''))}</q></p>")
            parts.append(_table(["corruption", "modality", "family", *(f"severity {s}" for s in severities)], body,
                                css="text"))
    return "".join(parts)


def _entries_html(entries: Sequence[Path], out: Path) -> str:
    items = "".join(f"<li><a href='{_e(p.relative_to(out).as_posix())}'>{_e(p.name)}</a></li>" for p in entries)
    return ("<p>One JSON per leaderboard entry (scores with intervals, robustness aggregates, unaggregated "
            "per-cell results, configuration, commit, seeds and package versions), in the manner of RobustBench's "
            f"entries, in <code>entries/</code> beside this page:</p><ul>{items}</ul>")


# --------------------------------------------------------------------------------------------
# Helpers


def _home(merged: Merged, task: str) -> str:
    """The task's in-domain test set: inferred, else the first run's suite domain."""
    try:
        return in_domain(merged.metrics, task)
    except SchemaError:
        run = _first_run(merged, task)
        if run.in_domain():
            return in_domain(merged.metrics, task, run.in_domain())
        raise


def _first_run(merged: Merged, task: str) -> Run:
    for run in merged.runs:
        if any(run.task_name(t) == task for t in run.metrics["task"].unique()):
            return run
    raise KeyError(task)


def _orig_task(run: Run, task: str) -> str:
    return next(str(t) for t in run.metrics["task"].unique() if run.task_name(str(t)) == task)


def _meta_for(merged: Merged, run: Run) -> dict[str, Any]:
    """``run.json`` view for one merged task: the run's corruption families, the merged items map."""
    return {**run.meta, "items": merged.meta["items"]}


def _score_cell(value: Any, sd: Any, low: Any, high: Any) -> str:
    if not _finite(value):
        return "<td data-sort=''></td>"
    text = f"{value:.3f}"
    if _finite(sd):
        text += f" <span class='sd'>± {sd:.3f}</span>"
    if _finite(low) and _finite(high):
        text += f"<br><span class='ci'>[{low:.3f}, {high:.3f}]</span>"
    return f"<td data-sort='{value:.6g}'>{text}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], sortable: bool = False, raw: bool = False,
           css: str = "") -> str:
    """A table; ``rows`` hold escaped cell texts, or whole ``<td>`` elements when ``raw``."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(c if raw else f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    classes = " ".join(c for c in ("sortable" if sortable else "", css) if c)
    cls = f" class='{classes}'" if classes else ""
    return f"<div class='scroll'><table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "_"


DEFINITIONS_HTML: Final[str] = """
<p>All scores are higher-is-better (recall, accuracy, CIDEr). Per corruption <i>c</i> at levels
<i>l</i> = 1..L (severities 1..5; for a shifted domain its style strengths in (0, 1]) with score
<i>A(l)</i> and clean in-domain score <i>A(0)</i>, every cell the mean over training seeds:</p>
<dl>
<dt>relative robustness</dt><dd>RR = mean<sub>l</sub> A(l) / A(0) (MMRobustness; the leaderboard's
<code>relative_robustness</code> is the mean over seeds of per-seed ratios, so it may differ in the third decimal).</dd>
<dt>MMI (MultiModal Impact)</dt><dd>mean<sub>l</sub> (A(0) &minus; A(l)) / A(0) = 1 &minus; RR: the relative drop
(Qiu et al. 2022, <i>Are Multimodal Models Robust to Image and Text Perturbations?</i>, arXiv 2212.08044).</dd>
<dt>CE, mCE</dt><dd>CE<sub>c</sub> = &Sigma;<sub>l</sub> E(l) / &Sigma;<sub>l</sub> E<sub>ref</sub>(l) with error
E = 1 &minus; A and <i>ref</i> the suite's <code>report.reference_model</code>; mCE = mean of CE over a family's
corruptions (Hendrycks and Dietterich 2019, <i>Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations</i>, ImageNet-C). Below 1: fewer errors than the reference. Undefined (blank) for scores not in
[0, 1] (CIDEr).</dd>
<dt>relative CE, relative mCE</dt><dd>&Sigma;<sub>l</sub> (E(l) &minus; E(0)) / &Sigma;<sub>l</sub>
(E<sub>ref</sub>(l) &minus; E<sub>ref</sub>(0)): the model's degradation relative to the reference's (ImageNet-C);
blank when the reference does not degrade.</dd>
<dt>AUC</dt><dd>area under the curve (0, A(0)), (l<sub>1</sub>, A(l<sub>1</sub>)), ..., by the trapezoid rule,
divided by the span l<sub>L</sub>: the curve's mean height in the metric's units (MultiBench's "relative
robustness", Liang et al. 2021, <i>MultiBench</i>).</dd>
<dt>effective robustness</dt><dd>mean<sub>l</sub> [(A(l) &minus; A(0)) &minus; (A<sub>b</sub>(l) &minus;
A<sub>b</sub>(0))] against the suite's <code>report.baseline_model</code> <i>b</i> of the same run: the score
above the baseline's curve shifted to the model's clean score (MultiBench's definition, without its hard-coded
curves and min-max normalisation; Taori et al. 2020, <i>Measuring Robustness to Natural Distribution Shifts in
Image Classification</i>, fit the baseline trend over many models, which one declared baseline reduces to
this shift). Positive: the model loses less than the baseline.</dd>
<dt>families</dt><dd>noise, blur, weather, digital, occlusion/missing (image), text character, text word,
text missing, misalignment (pairs), domain (shifted domains); a family's value is the mean of its
corruptions' values; <code>all</code> averages every corruption (not the domains).</dd>
<dt>intervals</dt><dd>95% percentile bootstrap intervals over 1000 resamples of the evaluation items and of the
training seeds, the same resamples for every model (Efron and Tibshirani 1993; Koehn 2004), from
<code>items.csv.gz</code>; blank for runs without it.</dd>
</dl>
"""

_STYLE: Final[str] = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1400px;
 padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em} h3 small{font-weight:normal;color:#555}
nav ul{columns:3;list-style:none;padding:0} nav a{text-decoration:none}
.scroll{overflow-x:auto} table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;position:sticky;top:0} td:nth-child(-n+2){text-align:left}
th[data-dir=asc]::after{content:" \\25B2"} th[data-dir=desc]::after{content:" \\25BC"}
table.text td{text-align:left} .sd{color:#555} .ci{color:#777;font-size:.9em} .ns{color:#b35900;font-weight:bold}
figure{margin:1em 0} figure img{max-width:100%;height:auto;border:1px solid #eee} figcaption{color:#555;font-size:.9em}
.note{color:#777;font-style:italic} dt{font-weight:bold;margin-top:.6em} code{background:#f6f6f6;padding:0 .2em}
"""

_SCRIPT: Final[str] = """
function sortKey(row, i) {
  const cell = row.cells[i];
  if (!cell) return null;
  if (cell.dataset.sort === undefined) return cell.textContent.trim().toLowerCase();
  return cell.dataset.sort === '' ? null : parseFloat(cell.dataset.sort);
}
document.querySelectorAll('table.sortable thead th').forEach(function (th) {
  th.addEventListener('click', function () {
    const table = th.closest('table'), body = table.tBodies[0], i = th.cellIndex;
    const dir = th.dataset.dir === 'desc' ? 'asc' : 'desc';
    table.querySelectorAll('thead th').forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = dir;
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = sortKey(a, i), y = sortKey(b, i);
      if (x === null || y === null) return (x === null) - (y === null);
      const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return dir === 'asc' ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
function renderCheck() {
  const images = Array.from(document.images);
  const ok = images.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesDecoded = ok;
  document.body.dataset.sections = Array.from(document.querySelectorAll('section')).map(function (s) { return s.id; }).join(' ');
}
window.addEventListener('load', renderCheck);
"""

_PAGE: Final[str] = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>mafs-bench report</title><style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""
