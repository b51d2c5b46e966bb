"""``mafs-bench corruptions list`` and ``mafs-bench corruptions preview``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from .common import console, friendly_errors, known_errors

app = typer.Typer(help="Inspect the corruption engine.", no_args_is_help=True)


def _fmt(param: object) -> str:
    if isinstance(param, float):
        return f"{param:g}"
    if isinstance(param, (tuple, list)):
        if len(param) > 8 and all(isinstance(p, (int, float)) for p in param):  # e.g. zoom factor lists
            return f"{_fmt(param[0])}..{_fmt(param[-1])} ({len(param)})"
        return "(" + ", ".join(_fmt(p) for p in param) + ")"
    return str(param)


@app.command("list")
def list_corruptions(modality: str | None = typer.Option(None, help="Only 'image', 'text' or 'pair'.")) -> None:
    """Every registered corruption: name, modality, family and parameters per severity."""
    import corruptions

    with friendly_errors(ValueError):
        names = corruptions.names(modality)
    table = Table(title=f"{len(names)} corruptions")
    for col in ("name", "modality", "family", "parameter", *(f"s{s}" for s in corruptions.SEVERITIES)):
        table.add_column(col, no_wrap=col == "name", overflow="fold")
    departing = []
    for name in names:
        c = corruptions.get(name)
        cells = [_fmt(p) + ("*" if s in c.departures() else "") for s, p in zip(corruptions.SEVERITIES, c.severities)]
        table.add_row(name, c.modality, c.family, ", ".join(c.param_names), *cells)
        if c.departures():
            departing.append(c)
    console.print(table)
    for c in departing:
        refs = ", ".join(f"s{s} {_fmt(c.reference_severities[s - 1])}" for s in c.departures())
        console.print(f"* {c.name}: departs from the reference's table where the reference's degradation does not "
                      f"grow with severity; the reference has {refs} (why: {c.fn.__module__} docstring)", soft_wrap=True)


def image_gallery(img: np.ndarray, names: list[str], seed: int) -> "object":
    """Figure: one row per image corruption, columns clean and severities 1..5."""
    from matplotlib.figure import Figure

    import corruptions

    cols = 1 + len(corruptions.SEVERITIES)
    fig = Figure(figsize=(1.6 * cols, 1.6 * len(names) + 0.4))
    axes = fig.subplots(len(names), cols, squeeze=False)
    for r, name in enumerate(names):
        for c in range(cols):
            ax = axes[r][c]
            shown = img if c == 0 else corruptions.apply(name, img, c, seed=seed)
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("clean" if c == 0 else f"severity {c}", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def text_gallery(text: str, names: list[str], seed: int) -> tuple["object", list[list[str]]]:
    """Figure and rows: one row per text corruption, the caption at severities 1..5."""
    from matplotlib.figure import Figure

    import corruptions

    rows = [[name, *(corruptions.apply(name, text, s, seed=seed) for s in corruptions.SEVERITIES)] for name in names]
    fig = Figure(figsize=(16, 0.9 * len(rows) + 1))
    ax = fig.add_subplot(111)
    ax.axis("off")
    cells = [[r[0], *("\n".join(textwrap.wrap(t, 28)) or "(empty)" for t in r[1:])] for r in rows]
    table = ax.table(cellText=cells, colLabels=["corruption", *(f"severity {s}" for s in corruptions.SEVERITIES)],
                     loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 3.2)
    ax.set_title(f"clean: {text}", fontsize=9)
    return fig, rows


@app.command("preview")
def preview(
    image: Path | None = typer.Option(None, "--image", help="An image file (PNG/JPEG) to corrupt."),
    text: str | None = typer.Option(None, "--text", help="A caption to corrupt."),
    out: Path = typer.Option(Path("gallery.png"), "--out", "-o", help="Where to write the gallery PNG."),
    seed: int = typer.Option(0, help="Corruption seed."),
    size: int = typer.Option(224, help="Resize the image's longer side to this many pixels first (0 keeps it)."),
) -> None:
    """A grid of every corruption of one modality at every severity: the picture to look at first."""
    import corruptions

    if (image is None) == (text is None):
        raise typer.BadParameter("give exactly one of --image PATH or --text '...'")
    with friendly_errors(*known_errors(), OSError):
        if image is not None:
            from PIL import Image

            with Image.open(image) as im:
                im = im.convert("RGB")
                if size and max(im.size) != size:
                    scale = size / max(im.size)
                    im = im.resize((max(32, round(im.width * scale)), max(32, round(im.height * scale))), Image.BICUBIC)
                img = np.asarray(im)
            fig = image_gallery(img, corruptions.names("image"), seed)
        else:
            fig, rows = text_gallery(text or "", corruptions.names("text"), seed)
            table = Table(title=f"clean: {text}")
            for col in ("corruption", *(f"s{s}" for s in corruptions.SEVERITIES)):
                table.add_column(col)
            for row in rows:
                table.add_row(*row)
            console.print(table)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    console.print(f"Wrote {out}", highlight=False)
