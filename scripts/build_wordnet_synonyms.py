"""Generate the WordNet synonym table shipped with mafs-bench's text corruptions.

Reads a WordNet 3.0 database directory (Debian: ``apt-get install wordnet-base`` puts it in
``/usr/share/wordnet``) and writes

* ``corruptions/text/data/wordnet_synonyms.json.gz``: synsets reduced to single-word alphabetic
  lower-case lemmas, plus the morphy exception lists (see ``corruptions/text/wordnet.py``);
* ``corruptions/text/data/LICENSE-WordNet-3.0.txt``: the WordNet 3.0 licence, copied from the
  header of ``data.noun`` (the licence requires it on every copy).

The output is deterministic (sorted JSON, gzip mtime 0), so regenerating gives identical bytes.

Usage::

    python scripts/build_wordnet_synonyms.py [--wordnet-dir /usr/share/wordnet] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corruptions.text.wordnet import DATA_DIR, TABLE_PATH, build_table  # noqa: E402

LICENSE_NAME = "LICENSE-WordNet-3.0.txt"


def licence_text(dict_dir: Path) -> str:
    """The licence paragraph at the top of ``data.noun`` (lines starting with two spaces)."""
    lines = []
    with open(dict_dir / "data.noun", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("  "):
                break
            # "  12 text  " -> "text"
            parts = line.strip().split(" ", 1)
            lines.append(parts[1].rstrip() if len(parts) > 1 else "")
    header = (
        "The synonym table wordnet_synonyms.json.gz in this directory is derived from WordNet 3.0\n"
        "(Princeton University, https://wordnet.princeton.edu/) by scripts/build_wordnet_synonyms.py.\n"
        "It is distributed under the WordNet 3.0 licence, reproduced below.\n\n"
    )
    return header + "\n".join(lines).strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"),
                        help="WordNet 3.0 database directory (holds data.noun); default: Debian wordnet-base")
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR, help=f"output directory (default {DATA_DIR})")
    args = parser.parse_args(argv)
    if not (args.wordnet_dir / "data.noun").is_file():
        parser.error(f"{args.wordnet_dir}/data.noun not found: `apt-get install wordnet-base` or pass --wordnet-dir")

    table = build_table(args.wordnet_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / TABLE_PATH.name
    raw = json.dumps(table, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    out.write_bytes(buf.getvalue())
    (args.out_dir / LICENSE_NAME).write_text(licence_text(args.wordnet_dir), encoding="utf-8")

    n_syn = {pos: len(groups) for pos, groups in table["synsets"].items()}
    n_exc = {pos: len(exc) for pos, exc in table["exceptions"].items()}
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB; synsets {n_syn}; exceptions {n_exc})")
    print(f"wrote {args.out_dir / LICENSE_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
