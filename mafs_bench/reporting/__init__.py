"""Reports built from a run's results files: leaderboard tables and figures.

Public API::

    from mafs_bench.reporting import write_report
    paths = write_report("runs/exp1", {"retrieval": "r_mean"})

Everything here reads ``metrics.csv`` / ``fusion_weights.csv`` (see :mod:`.schema`),
never the runner's state.
"""

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
from mafs_bench.reporting.schema import (
    METRICS_COLUMNS,
    WEIGHTS_COLUMNS,
    SchemaError,
    read_metrics,
    read_weights,
    validate_metrics,
    validate_weights,
)

__all__ = [
    "BASE_COLUMNS",
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
