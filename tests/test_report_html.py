"""``mafs-bench report``: merged leaderboards, robustness tables, entries and a self-contained
report.html, checked in headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs).

Two synthetic runs of one "suite" (tests/synthetic_runs.py): run ``b``'s mafs misses every query
under gaussian_noise. Both have retrieval (with items: intervals), vqa and captioning (without).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mafs_bench.cli.main import app
from mafs_bench.reporting.html import SECTIONS, build_report
from mafs_bench.reporting.merge import label_runs, merge_runs
from synthetic_runs import CELLS_WITH_STRENGTHS, flip_hits, make_items, write_report_run

MODELS = ("clip", "fixed_sum", "mafs")
TASKS = ("retrieval", "vqa", "captioning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    a = make_items(models=MODELS, seeds=(0, 1), n_images=60, cells=CELLS_WITH_STRENGTHS, seed=0)
    b = flip_hits(make_items(models=MODELS, seeds=(0, 1), n_images=60, cells=CELLS_WITH_STRENGTHS, seed=1), "mafs",
                  lambda f: f["corruption"] == "gaussian_noise")
    return [write_report_run(root / "a", a, MODELS), write_report_run(root / "b", b, MODELS, gallery=False)]


@pytest.fixture(scope="module")
def report(runs: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    return out, build_report(runs, out, resamples=200)


def test_runs_merge_with_models_renamed_by_run(runs: list[Path], report) -> None:
    out, result = report
    assert result.tasks == list(TASKS)
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board.loc[board["task"] == "retrieval", "model"]) == sorted(
        f"{m} [{r}]" for m in MODELS for r in ("a", "b"))
    assert board.loc[board["task"] == "retrieval", "model"].iloc[-1] == "mafs [b]"  # the broken one ranks last
    assert {"corrupted_ci_low", "corrupted_ci_high", "domain:outline@0.5", "domain:outline@0.5_ci_low"} <= set(board.columns)
    retrieval = board[board["task"] == "retrieval"]
    assert retrieval["corrupted_ci_low"].notna().all() and board.loc[board["task"] == "vqa", "corrupted_ci_low"].isna().all()
    marked = retrieval["p_vs_rank1"] >= 0.05
    assert bool(re.search(r"\| \d+ ≈ \|", (out / "leaderboard.md").read_text())) == bool(marked.any())


def test_a_run_alone_keeps_its_model_names_and_labels_are_unique(runs: list[Path], tmp_path: Path) -> None:
    merged = merge_runs(runs[:1])
    assert sorted(merged.metrics["model"].unique()) == sorted(MODELS)
    other = tmp_path / "x" / "a"
    shutil.copytree(runs[0], other)
    assert label_runs([runs[0], other]) == [f"{runs[0].parent.name}/a", "x/a"]
    assert label_runs([runs[0], runs[0]]) == [f"{runs[0].parent.name}/a", f"{runs[0].parent.name}/a-2"]


def test_a_task_on_two_datasets_is_split_by_dataset(runs: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "coco"
    shutil.copytree(runs[0], other)
    metrics = pd.read_csv(other / "metrics.csv")
    metrics.loc[metrics["task"] == "vqa", "dataset"] = "vqav2"
    metrics.to_csv(other / "metrics.csv", index=False)
    merged = merge_runs([runs[0], other])
    tasks = set(merged.metrics["task"])
    assert {"vqa [world]", "vqa [vqav2]", "retrieval"} <= tasks
    assert merged.primary["vqa [vqav2]"] == "accuracy"


def test_robustness_table_per_task_with_reference_and_baseline(report) -> None:
    out, _ = report
    table = pd.read_csv(out / "robustness.csv")
    assert list(dict.fromkeys(table["task"])) == list(TASKS)
    fam = table[(table["level"] == "family") & (table["task"] == "retrieval")]
    assert set(fam["name"]) == {"noise", "text character", "misalignment", "domain"}
    ref = table[(table["model"] == "clip [a]") & (table["level"] == "all") & (table["task"] != "captioning")]
    assert (ref["ce"] == 1.0).all()  # the suite's reference model, renamed with its run
    base = table[(table["model"] == "fixed_sum [a]") & (table["level"] == "all")]
    assert (base["effective_robustness"] == 0.0).all()
    markdown = (out / "robustness.md").read_text()
    assert "## captioning" in markdown and "### all corruptions" in markdown and "### ce by family" in markdown
    captioning = table[table["task"] == "captioning"]
    assert captioning["ce"].isna().all() and captioning["relative_ce"].notna().any()  # CIDEr has no error rate
    retrieval = table[table["task"] == "retrieval"]
    assert retrieval["auc_ci_low"].notna().all()


def test_one_entry_per_leaderboard_row(report) -> None:
    out, _ = report
    board = pd.read_csv(out / "leaderboard.csv")
    entries = sorted((out / "entries").glob("*.json"))
    assert len(entries) == len(board)
    entry = json.loads((out / "entries" / "retrieval__mafs_b.json").read_text())
    assert entry["entry"]["model"] == "mafs [b]" and entry["entry"]["run"] == "b"
    assert entry["entry"]["original_model"] == "mafs" and entry["entry"]["rank"] == 6
    assert entry["provenance"]["commit"] == "0123abc" and entry["provenance"]["seeds"] == [0, 1]
    assert entry["provenance"]["versions"]["mafs_bench"] == "0.1.0"
    assert entry["configuration"]["model"] == "mafs" and entry["configuration"]["model_facts"]["mafs_params"] == 1000
    assert set(entry["scores"]["corrupted"]) == {"value", "sd", "ci_low", "ci_high"}
    assert entry["robustness"]["all"]["ce"]["value"] > 1  # worse than the reference under noise
    noise = [u for u in entry["unaggregated"] if u["corruption"] == "gaussian_noise"]
    assert len(noise) == 3 and all(u["value"] == 0.0 and set(u["per_seed"]) == {"0", "1"} for u in noise)


class _Assets(HTMLParser):
    """Every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.links.append((tag, name, value))


def test_page_is_self_contained_and_names_every_task(report) -> None:
    out, result = report
    page = (out / "report.html").read_text(encoding="utf-8")
    parser = _Assets()
    parser.feed(page)
    for tag, name, value in parser.links:
        assert value.startswith(("data:image/png;base64,", "#", "entries/")), (tag, name, value[:60])
    assert not re.search(r"https?://", page)
    assert sum(1 for _, n, v in parser.links if n == "src") == result.figures + 1 >= 3  # + the gallery
    for section, _ in SECTIONS:
        assert f"<section id='{section}'>" in page
    for task in TASKS:
        assert f"<code>{task}</code>" in page
    assert "mafs [b]" in page
    assert "This run recorded no gallery" in page  # run b was written without one


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium(report, tmp_path: Path) -> None:
    """Every section and every embedded image is there once the page has loaded (its inline script
    writes the counts onto <body>; it runs after the table-sorting code, so it also shows that
    script ran without an error)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium; .ci/run installs it)")
    out, result = report
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
               (out / "report.html").as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert done.returncode == 0 and "<body" in dom, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs.get("sections", "").split() == [s for s, _ in SECTIONS], attrs
    total, decoded = int(attrs["images-total"]), int(attrs["images-decoded"])
    assert total == result.figures + 1 and decoded == total >= 3
    text = re.sub(r"<[^>]+>", " ", dom)
    for task in TASKS:
        assert task in text


def test_cli_report(runs: list[Path], tmp_path: Path) -> None:
    cli = CliRunner()
    result = cli.invoke(app, ["report", str(runs[0]), str(runs[1])])
    assert result.exit_code == 2 and "need --out" in result.output
    single = tmp_path / "single"
    shutil.copytree(runs[1], single)
    result = cli.invoke(app, ["report", str(single), "--resamples", "50"])
    assert result.exit_code == 0, result.output
    assert (single / "report.html").is_file() and (single / "entries").is_dir()
    assert "tasks: retrieval, vqa, captioning" in result.output
    result = cli.invoke(app, ["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_report_of_a_run_without_items_run_json_or_gallery(runs: list[Path], tmp_path: Path) -> None:
    """Older runs: metrics.csv alone still gives every section, without intervals."""
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(runs[0] / "metrics.csv", bare / "metrics.csv")
    result = build_report([bare], tmp_path / "out", resamples=50)
    page = result.html.read_text(encoding="utf-8")
    for section, _ in SECTIONS:
        assert f"<section id='{section}'>" in page
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert board["corrupted_ci_low"].isna().all()
    assert "no model of this task reports fusion weights" in page
