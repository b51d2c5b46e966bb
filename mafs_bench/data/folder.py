"""Anyone's data: a folder in the Hugging Face ``imagefolder`` convention (dataset ``folder``).

Layout (https://huggingface.co/docs/datasets/image_dataset, "ImageFolder" with metadata): a
``metadata.jsonl`` file, one JSON object per line::

    {"file_name": "images/0001.png", "split": "test", "domain": "photo",
     "captions": ["a red circle", "a circle in red"],
     "qa": [{"question": "what colour is the circle", "answers": ["red"]},
            {"question": "how many objects are there", "answers": ["2", "two"], "type": "count"}]}

* ``file_name`` (required): the image, relative to the folder of the ``metadata.jsonl`` that
  names it. A path that leaves the dataset folder (absolute, ``..``, a symbolic link pointing
  out) is rejected.
* ``captions`` (optional): a list of strings (a single string is one caption).
* ``qa`` (optional): a list of ``{question, answers}``; ``answers`` a list of reference
  answers (a single string is one) and, optionally, ``type`` (or ``question_type``), the
  question's type. Without one, the type is the question's first two words ("what colour",
  "how many", "is there"), a stand-in for VQAv2's question types, so the ``prior`` row answers
  per kind of question.
* ``domain`` (optional): the rendering or source domain (default ``default``); the
  evaluation split's domains become the data set's domains, in order of first appearance.
* ``split`` (optional): the row's split. Instead, the folder may hold one subfolder per split,
  each with its own ``metadata.jsonl`` (``train/metadata.jsonl``, ``test/metadata.jsonl``); a row
  of such a file belongs to its folder's split. A row with neither belongs to ``train`` (the
  Hugging Face default for a folder without splits).

Every row needs captions or question-answer pairs. Errors name the file, the line, the field and
the value. Images are read lazily, any size or mode (converted to RGB).

The training split (option ``train_split``, default ``train``) is what the ``embedded`` backend
trains its encoder and heads on; its recipe (part of trained weights' cache keys) hashes the
metadata files, the size and modification time of every image, and this loader's source.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import DATASETS, DataMissingError, Dataset, ImageTextData
from .coco import LazyImages

METADATA = "metadata.jsonl"
DEFAULT_DOMAIN = "default"
#: split of a row without ``split`` outside a split subfolder (Hugging Face's default)
DEFAULT_SPLIT = "train"


class FolderFormatError(DataMissingError, ValueError):
    """A ``metadata.jsonl`` row that breaks the format; the message names file, line, field, value."""


@dataclass
class Row:
    """One parsed ``metadata.jsonl`` row."""

    path: Path
    split: str
    domain: str
    captions: list[str]
    qa: list[tuple[str, list[str], str]]  # (question, answers, type)
    source: str  # "file:line" for messages


@dataclass
class FolderIndex:
    """Every row of a folder data set, by split."""

    root: Path
    rows: dict[str, list[Row]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)  # the metadata files read


def _where(file: Path, line: int) -> str:
    return f"{file}:{line}"


def _strings(value: Any, what: str, where: str) -> list[str]:
    """A string or a list of non-empty strings as a list; FolderFormatError otherwise."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise FolderFormatError(f"{where}: field {what} must be a non-empty string or a list of them, got {value!r}")
    return [x.strip() for x in items]


def default_question_type(question: str) -> str:
    """The first two words of a question, lower case: the type of a question given none."""
    return " ".join(re.findall(r"[\w']+", question.lower())[:2]) or "all"


def resolve_image(root: Path, base: Path, file_name: Any, where: str) -> Path:
    """The image ``file_name`` names, relative to ``base``, checked to stay inside ``root``.

    Raises:
        FolderFormatError: not a relative path string, or a path leaving ``root`` (``..``, an
            absolute path, a symbolic link pointing out); the image missing.
    """
    if not isinstance(file_name, str) or not file_name.strip():
        raise FolderFormatError(f"{where}: field file_name must be a relative path, got {file_name!r}")
    rel = Path(file_name)
    if rel.is_absolute() or rel.drive:
        raise FolderFormatError(f"{where}: field file_name {file_name!r} is an absolute path; it must be relative "
                                f"to {base}")
    path = (base / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise FolderFormatError(f"{where}: field file_name {file_name!r} leaves the dataset folder {root} "
                                f"(resolves to {path})")
    if not path.is_file():
        raise DataMissingError(f"{where}: field file_name {file_name!r}: image not found at {path}")
    return path


def parse_row(data: Any, root: Path, base: Path, split: str | None, where: str) -> Row:
    """One ``metadata.jsonl`` object as a :class:`Row` (``split``: the subfolder's, or None)."""
    if not isinstance(data, dict):
        raise FolderFormatError(f"{where}: a row must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"file_name", "captions", "qa", "domain", "split"})
    if unknown:
        raise FolderFormatError(f"{where}: unknown fields {unknown}; a row has file_name, captions, qa, domain, split")
    if "file_name" not in data:
        raise FolderFormatError(f"{where}: field file_name is missing")
    path = resolve_image(root, base, data["file_name"], where)
    row_split = data.get("split")
    if row_split is not None and (not isinstance(row_split, str) or not row_split.strip()):
        raise FolderFormatError(f"{where}: field split must be a non-empty string, got {row_split!r}")
    if split is not None and row_split is not None and row_split != split:
        raise FolderFormatError(f"{where}: field split {row_split!r} contradicts the split folder {split!r}")
    domain = data.get("domain", DEFAULT_DOMAIN)
    if not isinstance(domain, str) or not domain.strip():
        raise FolderFormatError(f"{where}: field domain must be a non-empty string, got {domain!r}")
    captions = _strings(data["captions"], "captions", where) if "captions" in data else []
    qa: list[tuple[str, list[str], str]] = []
    pairs = data.get("qa", [])
    if not isinstance(pairs, list):
        raise FolderFormatError(f"{where}: field qa must be a list of {{question, answers}}, got {pairs!r}")
    for k, pair in enumerate(pairs):
        field_name = f"qa[{k}]"
        if not isinstance(pair, dict) or "question" not in pair or "answers" not in pair:
            raise FolderFormatError(f"{where}: field {field_name} must be an object with question and answers, got {pair!r}")
        question = _strings(pair["question"], f"{field_name}.question", where)
        if len(question) != 1:
            raise FolderFormatError(f"{where}: field {field_name}.question must be one string, got {pair['question']!r}")
        answers = _strings(pair["answers"], f"{field_name}.answers", where)
        qtype = pair.get("type", pair.get("question_type"))
        if qtype is None:
            qtype = default_question_type(question[0])
        elif not isinstance(qtype, str) or not qtype.strip():
            raise FolderFormatError(f"{where}: field {field_name}.type must be a non-empty string, got {qtype!r}")
        qa.append((question[0], answers, qtype.strip()))
    if not captions and not qa:
        raise FolderFormatError(f"{where}: the row has neither captions nor qa")
    return Row(path, split or row_split or DEFAULT_SPLIT, domain.strip(), captions, qa, where)


def read_metadata(file: Path, root: Path, split: str | None) -> list[Row]:
    """The rows of one ``metadata.jsonl`` (blank lines skipped)."""
    rows = []
    for line_no, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise FolderFormatError(f"{_where(file, line_no)}: not valid JSON: {err}") from None
        rows.append(parse_row(data, root, file.parent, split, _where(file, line_no)))
    return rows


def index_folder(root: Path) -> FolderIndex:
    """Read ``root/metadata.jsonl`` and every ``root/<split>/metadata.jsonl``.

    Raises:
        DataMissingError: ``root`` is not a folder or holds no metadata file.
        FolderFormatError: a bad row (see :func:`parse_row`).
    """
    if not root.is_dir():
        raise DataMissingError(f"dataset folder: {root} is not a folder (suite field dataset.options.root)")
    index = FolderIndex(root)
    files = [(root / METADATA, None)] if (root / METADATA).is_file() else []
    files += [(sub / METADATA, sub.name) for sub in sorted(root.iterdir()) if sub.is_dir() and (sub / METADATA).is_file()]
    if not files:
        raise DataMissingError(f"dataset folder: no {METADATA} in {root} or in its split subfolders "
                               f"(e.g. {root / 'test' / METADATA}); see mafs_bench/data/folder.py for the format")
    for file, split in files:
        index.files.append(file)
        for row in read_metadata(file, root, split):
            index.rows.setdefault(row.split, []).append(row)
    return index


def rows_data(rows: list[Row], name: str, domain: str) -> ImageTextData:
    """:class:`ImageTextData` of ``rows`` (images read lazily)."""
    captions, caption_image, questions, answers, q_image, q_types = [], [], [], [], [], []
    for i, row in enumerate(rows):
        captions += row.captions
        caption_image += [i] * len(row.captions)
        for question, refs, qtype in row.qa:
            questions.append(question)
            answers.append(refs)
            q_image.append(i)
            q_types.append(qtype)
    return ImageTextData(name, domain, LazyImages([r.path for r in rows]), captions, np.asarray(caption_image, np.int64),
                         questions=questions, answers=answers, question_image=np.asarray(q_image, np.int64),
                         question_types=q_types)


def words(texts: list[str]) -> list[str]:
    """Every word of ``texts`` (the tokenizer's lower-case whitespace split, commas apart)."""
    from ..models.tokenizer import split_words

    return sorted({w for t in texts for w in split_words(t)})


@DATASETS.register("folder")
class FolderDataset(Dataset):
    """A data set in the imagefolder convention (module docstring).

    Args:
        root: the dataset folder.
        split: the evaluation split.
        train_split: the split the ``embedded`` backend trains on.
        name: the data set's name in reports (default: the folder's name).

    Raises:
        DataMissingError: no folder, no metadata, a missing image, or no rows in ``split``
            (the message lists the splits there are).
        FolderFormatError: a bad row.
    """

    def __init__(self, root: str | None = None, split: str = "test", train_split: str = DEFAULT_SPLIT,
                 name: str | None = None) -> None:
        if not root:
            raise DataMissingError("dataset folder needs dataset.options.root: the folder holding metadata.jsonl")
        self.root = Path(root).expanduser()
        self.index = index_folder(self.root)
        self.split, self.train_split_name = split, train_split
        self.name = name or self.root.name
        if split not in self.index.rows:
            raise DataMissingError(f"dataset folder {self.root}: no rows in split {split!r} "
                                   f"(suite field dataset.options.split); splits present: {sorted(self.index.rows)}")
        self.domains = tuple(dict.fromkeys(r.domain for r in self.index.rows[split]))

    def load(self, domain: str) -> ImageTextData:
        if domain not in self.domains:
            raise ValueError(f"dataset folder {self.root} has no domain {domain!r} in split {self.split!r}; "
                             f"known: {', '.join(self.domains)}")
        rows = [r for r in self.index.rows[self.split] if r.domain == domain]
        return rows_data(rows, f"{self.name}-{self.split}", domain)

    def train_split(self) -> ImageTextData | None:
        """Every row of the training split (all its domains), or None if there is none."""
        rows = self.index.rows.get(self.train_split_name)
        if not rows:
            return None
        return rows_data(rows, f"{self.name}-{self.train_split_name}", rows[0].domain)

    def vocabulary(self) -> list[str] | None:
        """Every word of the training split's captions, questions and answers (a word seen only
        in evaluation data is unknown to the model, as a typo is), or None when there is no
        training split."""
        rows = self.index.rows.get(self.train_split_name)
        if not rows:
            return None
        return words([t for r in rows for t in (*r.captions, *(q for q, _, _ in r.qa), *(a for _, refs, _ in r.qa for a in refs))])

    def recipe(self) -> dict[str, Any]:
        """Hashes of the metadata files, of each training image's size and modification time,
        and of this loader's source; and the training split's name."""
        digest = hashlib.sha256(Path(__file__).read_bytes())
        for file in self.index.files:
            digest.update(str(file.relative_to(self.root)).encode() + b"\0" + file.read_bytes())
        for row in self.index.rows.get(self.train_split_name, []):
            stat = row.path.stat()
            digest.update(f"{row.path.relative_to(self.root.resolve())}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        return {"folder": digest.hexdigest()[:16], "train_split": self.train_split_name}

    def describe(self) -> dict[str, Any]:
        rows = self.index.rows[self.split]
        return {"root": str(self.root), "split": self.split, "train_split": self.train_split_name,
                "splits": {s: len(r) for s, r in self.index.rows.items()}, "images": len(rows),
                "captions": sum(len(r.captions) for r in rows), "questions": sum(len(r.qa) for r in rows)}
