"""The user cache for trained weights, keyed by a hash of everything that determines them.

Location: ``$MAFS_BENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/mafs-bench``, else
``~/.cache/mafs-bench``. A key is the SHA-256 of the canonical JSON of the config that produced
the weights (architecture, training recipe, data recipe, seed, and a format version), so any
change gives a new entry and a repeated run reuses the old one. Writes are atomic (temporary
file + rename): a run killed mid-write never leaves a half file that a later run would load.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

CACHE_FORMAT = 1


def cache_root() -> Path:
    """The cache directory (created on demand)."""
    env = os.environ.get("MAFS_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mafs-bench"


def config_key(config: dict[str, Any]) -> str:
    """Stable 16-hex-digit key of a JSON-serialisable config."""
    blob = json.dumps({"format": CACHE_FORMAT, **config}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_path(kind: str, config: dict[str, Any]) -> Path:
    """Where the weights of ``kind`` trained with ``config`` live."""
    return cache_root() / "weights" / kind / f"{config_key(config)}.pt"


def load_weights(kind: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The cached checkpoint dict (``state_dict``, ``config``, ``meta``), or None if absent."""
    path = weights_path(kind, config)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def save_weights(kind: str, config: dict[str, Any], state_dict: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Atomically store a checkpoint; returns its path."""
    path = weights_path(kind, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state_dict": state_dict, "config": config, "meta": meta}, tmp)
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps({"config": config, "meta": meta}, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path
