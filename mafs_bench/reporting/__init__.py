"""Reports built from a run's results files: leaderboard tables and figures.

Public API::

    from mafs_bench.reporting import write_report, build_report
    paths = write_report("runs/exp1", {"retrieval": "r_mean"})       # what every run writes
    result = build_report(["runs/exp1", "runs/exp2"], "reports/both")  # report.html (mafs-bench report)

Everything here reads ``metrics.csv`` / ``fusion_weights.csv`` / ``fusion_cues.csv`` /
``items.csv.gz`` / ``run.json`` / ``gallery.*`` (see :mod:`.schema`), never the runner's state.
Intervals and paired tests: :mod:`.bootstrap`; the regression gate between two runs:
:mod:`.compare`; robustness aggregates: :mod:`.robustness`; several runs as one: :mod:`.merge`;
the HTML page: :mod:`.html`; RobustBench-style entries: :mod:`.entries`.
"""

from mafs_bench.reporting.bootstrap import PairedResult, paired_bootstrap
from mafs_bench.reporting.compare import CompareInputError, Comparison, compare_runs
from mafs_bench.reporting.leaderboard import (
    BASE_COLUMNS,
    DOMAIN_PREFIX,
    build_leaderboard,
    leaderboard_markdown,
    per_corruption_table,
    write_leaderboard,
)
from mafs_bench.reporting.plots import (
    model_styles,
    plot_domain_shift,
    plot_fusion_weights,
    plot_robustness_curves,
)
from mafs_bench.reporting.report import DEFAULT_PRIMARY, write_report
from mafs_bench.reporting.robustness import MEASURES, robustness_table
from mafs_bench.reporting.merge import merge_runs
from mafs_bench.reporting.html import build_report
from mafs_bench.reporting.schema import (
    ITEMS_FILE,
    ITEMS_KEY,
    METRICS_COLUMNS,
    WEIGHTS_COLUMNS,
    SchemaError,
    domain_label,
    read_items,
    read_metrics,
    read_weights,
    split_domain,
    validate_items,
    validate_metrics,
    validate_weights,
)

__all__ = [
    "BASE_COLUMNS",
    "MEASURES",
    "build_report",
    "domain_label",
    "merge_runs",
    "robustness_table",
    "split_domain",
    "CompareInputError",
    "Comparison",
    "ITEMS_FILE",
    "ITEMS_KEY",
    "PairedResult",
    "compare_runs",
    "paired_bootstrap",
    "read_items",
    "validate_items",
    "DEFAULT_PRIMARY",
    "DOMAIN_PREFIX",
    "METRICS_COLUMNS",
    "WEIGHTS_COLUMNS",
    "SchemaError",
    "build_leaderboard",
    "leaderboard_markdown",
    "model_styles",
    "per_corruption_table",
    "plot_domain_shift",
    "plot_fusion_weights",
    "plot_robustness_curves",
    "read_metrics",
    "read_weights",
    "validate_metrics",
    "validate_weights",
    "write_leaderboard",
    "write_report",
]
