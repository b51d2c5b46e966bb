"""The runner: suites in, results files out (see :mod:`.run` and :mod:`.suite`)."""

from .run import PreflightError, RunResult, plan_cells, run_suite
from .suite import Suite, SuiteError, load_suite, suite_from_dict

__all__ = ["PreflightError", "RunResult", "Suite", "SuiteError", "load_suite", "plan_cells", "run_suite", "suite_from_dict"]
