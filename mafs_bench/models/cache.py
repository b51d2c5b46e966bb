"""The user cache for trained weights, keyed by a hash of everything that determines them.

Location: ``$MAFS_BENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/mafs-bench``, else
``~/.cache/mafs-bench``. An entry is ``weights/<kind>/<key>.safetensors`` (the tensors, with the
recipe in the header's metadata) and ``<key>.json`` beside it (the same recipe, for people).

The key is the SHA-256 of the canonical JSON of the config that produced the weights
(architecture, training recipe, data recipe, seed), the cache format and :func:`code_version`,
a hash of the source files that train the weights (:data:`CODE_SOURCES`). So an edit to the
training code, a fusion module or the data generator gives a new key and the weights are
trained again, instead of weights from the old code being reused under the new code.

Nothing in the cache is unpickled: the folder is user-writable, and ``torch.load`` of a pickle
runs whatever code the file names. A file that is not valid safetensors, or whose stored recipe
is not the one asked for, is treated as absent, with a :class:`CacheWarning` naming it; the
caller then trains and overwrites it. ``.pt`` files from earlier versions are never read.
Writes are atomic (temporary file + rename): a run killed mid-write never leaves a half file
that a later run would load.

**Storage precision.** :func:`save_weights` rounds every float32/float64 tensor to the nearest
float16 value, *in place* (the caller's module evaluates with exactly the stored values). So
weights trained here and weights shipped in float16 give identical numbers.

**Shipped weights (the model zoo).** ``mafs_bench/models/zoo/<kind>/<key>.safetensors`` holds
float16 copies of the embedded suites' trained weights, written by ``mafs-bench train SUITE
--ship``. On a cache miss, :func:`load_weights` takes the shipped entry with the same key (the
key covers config and code, so a shipped entry is never used stale), upcasts it to float32 and
copies it into the cache. When the zoo has an entry with the same config but another key (it was
trained by other code), a :class:`StaleShippedWeights` warning says so and the weights are
trained instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import warnings
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

#: Bumped when the layout of an entry changes; part of every key. 1: pickled ``.pt`` files.
CACHE_FORMAT = 2

#: Source files whose bytes determine trained weights, as globs ``"<top-level package>/<pattern>"``
#: resolved in each package's installed folder. Their hash (:func:`code_version`) is part of
#: every key, so editing any of them retrains. A module that training starts to read belongs here.
ENCODER_SOURCES: tuple[str, ...] = (
    "mafs_bench/models/training.py",  # contrastive training loop and schedule
    "mafs_bench/models/encoder.py",  # dual encoder architecture, image preprocessing
    "mafs_bench/models/tokenizer.py",
    "mafs_bench/models/configs/*.json",  # bundled encoder architectures
    "mafs_bench/data/world.py",  # the generator of the training images and captions
    "mafs_bench/data/embedded.py",  # training_data() / vocabulary() over the world
    "mafs_bench/data/base.py",  # the default training_data() of a dataset's train_split()
    # real-data loaders (folder, vqav2) put a hash of their own source in their recipe(), so
    # editing one retrains only the models trained on its data
)
#: The fusion heads' training code, whatever the encoder.
FUSION_SOURCES: tuple[str, ...] = (
    "mafs_bench/models/fusion_training.py",  # ITM loop, negatives, degradation draws
    "mafs_bench/models/heads.py",  # which methods, seeds, pool and checkpoints reach training
    "mafs_bench/models/augment.py",  # the training-time degradations
    "mafs_bench/models/vqa_training.py",  # VQA answer space, soft targets, training loop
    "mafs_bench/metrics/vqa.py",  # answer normalisation (the VQA answer vocabulary and targets)
    "mafs_bench/models/fusion/*.py",  # fusion networks and their initialisation
    "corruptions/**/*.py",  # opt-in training corruptions (fusion_training.corrupt_views)
    "corruptions/**/*.json.gz",  # corruption data read by them (WordNet synonyms)
)
CODE_SOURCES: tuple[str, ...] = (
    *ENCODER_SOURCES,  # fusion heads train on the encoder's features
    *FUSION_SOURCES,
    "mafs_bench/models/backends/embedded.py",  # which data, seeds and options reach training
)
#: Sources of fusion heads trained on a pretrained encoder's features (kind ``head``): the
#: fusion training code, the wrappers that compute the features, the real-data loaders whose
#: training split feeds the pool. Not the embedded world (its edits do not retrain COCO heads).
HEAD_SOURCES: tuple[str, ...] = (
    *FUSION_SOURCES,
    "mafs_bench/models/backends/pretrained.py",  # precision, batching, which heads train
    "mafs_bench/models/backends/open_clip_hub.py",  # open_clip features (tokens, masks)
    "mafs_bench/models/backends/hf.py",  # transformers features
    "mafs_bench/data/base.py",
    "mafs_bench/data/coco.py",  # Karpathy training splits and their order
)
#: the caption decoders (cache kind ``"caption"``): trained on an encoder's features (the
#: embedded one's or a pretrained one's) with the fusion methods' conditioners and the image
#: augmentations, on the dataset's training split
CAPTION_SOURCES: tuple[str, ...] = (
    *CODE_SOURCES,
    "mafs_bench/data/coco.py",  # Karpathy training splits and their order
    "mafs_bench/data/nocaps.py",  # which dataset lends nocaps its training split
    "mafs_bench/models/caption_decoder.py",  # decoder architecture
    "mafs_bench/models/caption_training.py",  # teacher forcing, pool, tokenizer, prior, keys
)
#: sources per cache kind; a kind not listed uses :data:`CODE_SOURCES`. The encoder's weights do
#: not depend on the fusion code, so editing a fusion module retrains only the fusion heads (the
#: encoder part of ``backends/embedded.py`` passes the keyed config through, nothing more).
KIND_SOURCES: dict[str, tuple[str, ...]] = {"encoder": ENCODER_SOURCES, "head": HEAD_SOURCES, "caption": CAPTION_SOURCES}

#: Suffixes hashed as text, with CRLF line endings read as LF (a Windows checkout hashes alike).
_TEXT_SUFFIXES = frozenset({".py", ".json", ".txt", ".yaml"})

#: Key of the recipe in the safetensors header metadata.
_RECIPE_KEY = "mafs_bench.recipe"


#: The shipped model zoo: float16 copies of trained weights, ``<kind>/<key>.safetensors`` (+ ``.json``).
SHIPPED_ROOT = Path(__file__).resolve().parent / "zoo"

#: Largest finite float16 value; a weight beyond it cannot be stored at float16 precision.
_FP16_MAX = float(torch.finfo(torch.float16).max)

#: (kind, key) of every entry loaded or saved by this process, in order (what ``--ship`` copies).
_used: dict[tuple[str, str], None] = {}


class CacheWarning(UserWarning):
    """A cached file was ignored (unreadable, or not the weights asked for); it will be retrained."""


class StaleShippedWeights(UserWarning):
    """The shipped weights of a kind do not match the current code or recipe; they are trained instead."""


def cache_root() -> Path:
    """The cache directory (created on demand)."""
    env = os.environ.get("MAFS_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mafs-bench"


def _package_dir(package: str) -> Path:
    """The folder of the installed top-level ``package`` (not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"cache: package {package!r} of CODE_SOURCES is not installed as a folder")
    return Path(next(iter(spec.submodule_search_locations)))


def source_files(patterns: Iterable[str] = CODE_SOURCES) -> list[tuple[str, Path]]:
    """The files ``patterns`` match, as sorted ``(relative posix path, absolute path)`` pairs.

    The relative path starts with the package name (``"mafs_bench/models/training.py"``), so it
    does not depend on where the package is installed.
    """
    found: dict[str, Path] = {}
    for pattern in patterns:
        package, _, rest = pattern.partition("/")
        base = _package_dir(package)
        for path in base.glob(rest):
            if path.is_file() and "__pycache__" not in path.parts:
                found[f"{package}/{path.relative_to(base).as_posix()}"] = path
    return sorted(found.items())


def hash_sources(patterns: Iterable[str] = CODE_SOURCES) -> str:
    """16-hex-digit SHA-256 over the files ``patterns`` match: path and bytes of each, by path.

    Text files (``.py``, ``.json``, ...) are hashed with CRLF read as LF; others byte for byte.
    """
    digest = hashlib.sha256()
    for rel, path in source_files(patterns):
        data = path.read_bytes()
        if path.suffix in _TEXT_SUFFIXES:
            data = data.replace(b"\r\n", b"\n")
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=8)
def code_version(kind: str | None = None) -> str:
    """Hash of the code that trains weights of ``kind`` (:data:`KIND_SOURCES`, else
    :data:`CODE_SOURCES`), computed once per process."""
    return hash_sources(KIND_SOURCES.get(kind or "", CODE_SOURCES))


def config_key(config: dict[str, Any], kind: str | None = None) -> str:
    """Stable 16-hex-digit key of a JSON-serialisable config under the current code.

    Covers the config (key order does not matter), :data:`CACHE_FORMAT` and
    :func:`code_version` of ``kind``.
    """
    blob = _canonical({"format": CACHE_FORMAT, "code": code_version(kind), "config": config})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_path(kind: str, config: dict[str, Any]) -> Path:
    """Where the weights of ``kind`` trained with ``config`` live (a ``.safetensors`` file)."""
    return cache_root() / "weights" / kind / f"{config_key(config, kind)}.safetensors"


def recipe_path(kind: str, config: dict[str, Any]) -> Path:
    """The JSON beside :func:`weights_path`: kind, key, code version, config, meta, library versions."""
    return weights_path(kind, config).with_suffix(".json")


def load_weights(kind: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The cached checkpoint of ``kind`` trained with ``config``, or None if there is none usable.

    Returns:
        ``{"state_dict": {name: CPU tensor}, "config": dict, "meta": dict}``; the tensors are as
        saved (dtype, shape) and go straight into ``module.load_state_dict``. ``config`` and
        ``meta`` come back through JSON (tuples as lists, other non-JSON values as strings).
        None when the file is absent (and the zoo has no entry with this key: see the module
        docstring), or is not valid safetensors, or its stored recipe differs from the one asked
        for (kind, config, format, code version); the last two also emit a :class:`CacheWarning`
        naming the file. Nothing is unpickled.
    """
    path = weights_path(kind, config)
    got = _read(path, kind, config) if path.is_file() else None
    if got is None:
        got = _load_shipped(kind, config)
    if got is not None:
        _used[(kind, path.stem)] = None
    return got


def _read(path: Path, kind: str, config: dict[str, Any], what: str = "weights") -> dict[str, Any] | None:
    """The entry at ``path`` if it is readable and holds ``kind`` trained with ``config``."""
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            recipe = json.loads((f.metadata() or {})[_RECIPE_KEY])
            problem = _recipe_mismatch(recipe, kind, config)
            if problem:
                _ignore(path, problem, what)
                return None
            state_dict = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        _ignore(path, f"not a readable safetensors {what} file ({type(err).__name__}: {err})", what)
        return None
    return {"state_dict": state_dict, "config": recipe["config"], "meta": recipe["meta"]}


def shipped_path(kind: str, config: dict[str, Any], root: Path | None = None) -> Path:
    """Where the shipped float16 weights of ``kind`` trained with ``config`` would be."""
    return (root or SHIPPED_ROOT) / kind / f"{config_key(config, kind)}.safetensors"


def _same_config_shipped(kind: str, config: dict[str, Any]) -> Path | None:
    """A zoo entry of ``kind`` with this very config but another key (other code), or None."""
    folder = SHIPPED_ROOT / kind
    wanted = _canonical(config)
    for recipe_file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            if _canonical(json.loads(recipe_file.read_text()).get("config")) == wanted:
                return recipe_file.with_suffix(".safetensors")
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _load_shipped(kind: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The shipped entry with this key, upcast to float32 and copied into the cache; or None
    (with a :class:`StaleShippedWeights` warning when the zoo holds this config from other code)."""
    path = shipped_path(kind, config)
    if not path.is_file():
        stale = _same_config_shipped(kind, config)
        if stale is not None:
            warnings.warn(f"the shipped {kind} weights {stale} were trained with the same config by other code "
                          f"(this code's key is {path.stem}): they are not used, the weights are trained instead. "
                          f"`mafs-bench train SUITE --ship` refreshes the zoo.", StaleShippedWeights, stacklevel=3)
        return None
    got = _read(path, kind, config)
    if got is None:
        return None
    state = {name: t.float() if t.dtype == torch.float16 else t for name, t in got["state_dict"].items()}
    meta = {**got["meta"], "shipped": str(path.name)}
    save_weights(kind, config, state, meta)
    return {"state_dict": state, "config": got["config"], "meta": meta}


def ship_used(root: Path | None = None, prune: bool = True) -> list[Path]:
    """Write float16 copies of every entry this process loaded or saved into the zoo, except
    plugins' (entries whose config has a ``plugin`` part: a user's code, not the package's).

    Args:
        root: the zoo folder (default :data:`SHIPPED_ROOT`, the package's own).
        prune: delete zoo entries of the shipped kinds that this process did not use (stale ones).

    Returns:
        The written ``.safetensors`` paths.
    """
    root = root or SHIPPED_ROOT
    written: list[Path] = []
    for kind, key in _used:
        source = cache_root() / "weights" / kind / f"{key}.safetensors"
        with safe_open(source, framework="pt", device="cpu") as f:
            header = (f.metadata() or {})[_RECIPE_KEY]
            config = json.loads(header).get("config")
            if isinstance(config, dict) and "plugin" in config:
                continue
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        half = {name: t.half() if t.dtype in (torch.float32, torch.float64) else t for name, t in tensors.items()}
        dest = root / kind / f"{key}.safetensors"
        dest.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(dest.with_suffix(".json"), lambda tmp, src=source: tmp.write_text(src.with_suffix(".json").read_text()))
        _atomic_write(dest, lambda tmp, h=half, m=header: save_file(h, tmp, metadata={_RECIPE_KEY: m}))
        written.append(dest)
    if prune:
        keep = set(written)
        for kind in {k for k, _ in _used}:
            for old in (root / kind).glob("*.safetensors"):
                if old not in keep:
                    old.unlink()
                    old.with_suffix(".json").unlink(missing_ok=True)
    return written


def round_to_fp16(state_dict: dict[str, Any]) -> None:
    """Round every float32/float64 tensor of ``state_dict`` to the nearest float16 value, in place.

    Raises:
        ValueError: a finite value beyond float16's range (65504), naming the tensor.
    """
    with torch.no_grad():
        for name, t in state_dict.items():
            if isinstance(t, torch.Tensor) and t.dtype in (torch.float32, torch.float64):
                if t.numel() and float(t.abs().max()) > _FP16_MAX:
                    raise ValueError(f"state_dict[{name!r}] has values beyond float16's range ({_FP16_MAX}): "
                                     f"max |value| {float(t.abs().max())}")
                t.copy_(t.to(torch.float16).to(t.dtype))


def save_weights(kind: str, config: dict[str, Any], state_dict: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Atomically store ``state_dict`` trained with ``config``; returns the ``.safetensors`` path.

    Args:
        kind: entry family (``"encoder"``, ``"fusion"``).
        config: what determined the weights (the key's input); JSON-serialisable.
        state_dict: name -> tensor, any device, dtype and layout; stored as contiguous CPU copies,
            so tied (shared) tensors are stored once per name.
        meta: facts about the training (losses, seconds); JSON-serialisable.

    Float32/float64 tensors of ``state_dict`` are first rounded to float16 precision *in place*
    (:func:`round_to_fp16`), so the caller's module computes with the stored values.

    Raises:
        TypeError: a ``state_dict`` value is not a tensor.
        ValueError: a weight beyond float16's range.
    """
    path = weights_path(kind, config)
    round_to_fp16(state_dict)
    _write(path, kind, config, state_dict, meta)
    _used[(kind, path.stem)] = None
    return path


def _write(path: Path, kind: str, config: dict[str, Any], state_dict: dict[str, Any], meta: dict[str, Any]) -> None:
    """Atomically write a safetensors entry at ``path`` (tensors as they are) and its JSON recipe."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = _plain_tensors(state_dict)
    recipe = {"format": CACHE_FORMAT, "kind": kind, "key": path.stem, "code_version": code_version(kind),
              "config": config, "meta": meta, "versions": _library_versions()}
    header = json.dumps(recipe, sort_keys=True, default=str)
    text = json.dumps(json.loads(header), indent=2, sort_keys=True)
    # the JSON first: a weights file present means its entry is complete
    _atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={_RECIPE_KEY: header}))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _recipe_mismatch(recipe: Any, kind: str, config: dict[str, Any]) -> str | None:
    """Why a stored recipe is not the one asked for, or None when it is."""
    if not isinstance(recipe, dict):
        return "its recipe metadata is not a JSON object"
    wanted = {"format": CACHE_FORMAT, "kind": kind, "code_version": code_version(kind)}
    for field, value in wanted.items():
        if recipe.get(field) != value:
            return f"stored {field} {recipe.get(field)!r} is not the current {value!r}"
    if _canonical(recipe.get("config")) != _canonical(config):
        return "its stored config is not the requested one"
    if not isinstance(recipe.get("meta"), dict):
        return "its recipe metadata has no meta"
    return None


def _ignore(path: Path, reason: str, what: str = "weights") -> None:
    again = "they will be trained again" if what == "weights" else "training starts from the beginning"
    warnings.warn(f"ignoring cached {what} {path}: {reason}; {again}", CacheWarning, stacklevel=3)


def checkpoint_path(kind: str, config: dict[str, Any]) -> Path:
    """Where a training of ``kind`` with ``config`` keeps its periodic checkpoint (a
    ``.safetensors`` file under ``<cache>/checkpoints/``, removed once the weights are saved)."""
    return cache_root() / "checkpoints" / kind / f"{config_key(config, kind)}.safetensors"


def save_checkpoint(kind: str, config: dict[str, Any], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Atomically store a training checkpoint (tensors + JSON-serialisable ``meta``, e.g. the
    step) in the format of :func:`save_weights`, in another folder, and *not* rounded to float16:
    a training that continues from it must see exactly the state it stopped in."""
    path = checkpoint_path(kind, config)
    _write(path, kind, config, tensors, meta)
    return path


def load_checkpoint(kind: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint of an unfinished training of ``kind`` with ``config``: ``{"state_dict":
    tensors, "config": ..., "meta": ...}``, or None (absent, unreadable or of another recipe or
    code version: a :class:`CacheWarning` names the file then)."""
    path = checkpoint_path(kind, config)
    return _read(path, kind, config, "checkpoint") if path.is_file() else None


def drop_checkpoint(kind: str, config: dict[str, Any]) -> None:
    """Remove the checkpoint of a finished training (and its JSON), if any."""
    path = checkpoint_path(kind, config)
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)


def file_digest(path: str | Path) -> str:
    """16-hex-digit SHA-256 of a file's bytes (weights files: the identity of pretrained weights in
    cache keys), memoised in ``<cache>/digests.json`` by absolute path, size and mtime, so a
    multi-gigabyte file is read once.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    path = Path(path).resolve()
    stat = path.stat()
    memo_key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_file = cache_root() / "digests.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(memo_key), str):
        return memo[memo_key]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    value = digest.hexdigest()[:16]
    memo = memo if isinstance(memo, dict) else {}
    memo[memo_key] = value
    memo_file.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(memo_file, lambda tmp: tmp.write_text(json.dumps(memo, indent=0, sort_keys=True)))
    return value


def tree_digest(folder: str | Path, suffixes: Iterable[str] | None = None) -> dict[str, str]:
    """:func:`file_digest` of every file under ``folder`` (relative posix path -> digest), sorted;
    ``suffixes`` keeps only files ending so (e.g. ``(".json", ".safetensors")``)."""
    root = Path(folder)
    keep = tuple(suffixes) if suffixes is not None else None
    return {p.relative_to(root).as_posix(): file_digest(p) for p in sorted(root.rglob("*"))
            if p.is_file() and (keep is None or p.name.endswith(keep)) and ".cache" not in p.relative_to(root).parts}


def _plain_tensors(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies that share no memory (safetensors refuses views and tied tensors)."""
    out = {}
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(value).__name__}, not a tensor; the weights cache stores tensors only")
        out[name] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    return out


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    # a name unique to this process and call; created by ``write`` with the usual permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _library_versions() -> dict[str, str]:
    """Versions of the libraries that run training, recorded (not keyed) for provenance."""
    versions = {}
    for dist in ("torch", "open_clip_torch", "numpy", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions
