"""``mafs-bench train SUITE.yaml``: train (or load from the cache) every model a suite needs."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, err_console, friendly_errors, known_errors
from .progress import rich_progress


def train(
    suite: Path = typer.Argument(..., help="Suite YAML file whose backend and models to train."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    ship: bool = typer.Option(False, "--ship", help="Also write float16 copies of every weight the suite uses (plugins' "
                              "excepted) into the package's model zoo (mafs_bench/models/zoo/), and delete the zoo's "
                              "entries of those kinds this suite does not use: fresh clones then skip training. "
                              "For the maintainers' quickstart."),
) -> None:
    """Train the suite's encoder, fusion heads (ITM and VQA) and caption decoders into the weights cache (nothing is evaluated)."""
    from ..models.cache import SHIPPED_ROOT, cache_root, ship_used
    from ..runner import load_suite
    from ..runner.run import build_groups, fit_tasks, group_task_models, preflight, resolve_device
    from ..tasks import create_task

    with friendly_errors(*known_errors()):
        spec = load_suite(suite)
        dataset, groups = preflight(spec)
        device = resolve_device(spec.device)
        task_models = {t.name: spec.models_for(t.name) for t in spec.tasks}
        tasks = {t.name: create_task(t.name, **t.options) for t in spec.tasks}
        with rich_progress(err_console, progress) as factory:
            bundles = build_groups(groups, dataset, device, factory, spec.training_seeds,
                                   log=lambda line: console.print(line, highlight=False, markup=False),
                                   task_models=task_models)
            try:
                for group, bundle in zip(groups, bundles):
                    fit_tasks(tasks, bundle, dataset, group_task_models(group, task_models), device, factory)
            finally:
                for task in tasks.values():
                    task.close()
    for group, bundle in zip(groups, bundles):
        if len(groups) > 1:
            console.print(f"backend {group.label}:", highlight=False, markup=False)
        for key, value in bundle.info.items():
            console.print(f"{key}: {value}", highlight=False, markup=False)
    console.print(f"Weights cached under {cache_root()}", highlight=False)
    if ship:
        written = ship_used()
        size = sum(p.stat().st_size for p in written)
        console.print(f"Shipped {len(written)} weight files ({size / 2**20:.1f} MiB, float16) to {SHIPPED_ROOT}",
                      highlight=False)
