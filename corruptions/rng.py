"""Per-sample random generators, derived without any global RNG.

Every random choice in the engine comes from ``sample_rng(seed, sample_id, corruption, severity)``:
the same four values give the same stream in any process, in any order and with any number of
workers. ``hashlib`` (not Python's salted ``hash``) turns the corruption name into integers.
Two documented variations (see :class:`corruptions.base.Corruption`): a ``shared_draws``
corruption (fog, frost) derives its stream with severity 0, so a sample gets the same draws at
every severity; a choice made by :func:`corruptions.base.stratified_choice` (frost's texture) is
dealt from (seed, corruption, sample id) instead of drawn.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_name_key(name: str) -> list[int]:
    """Four 32-bit words from the SHA-256 of ``name``: stable across processes and platforms."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def sample_rng(seed: int, sample_id: int, corruption: str, severity: int) -> np.random.Generator:
    """The generator for one sample under one (corruption, severity).

    Args:
        seed: the suite's seed (non-negative).
        sample_id: the sample's stable id in its dataset (non-negative).
        corruption: the corruption's registered name.
        severity: 1..5 (0 for clean; nothing random should happen then).
    """
    if seed < 0 or sample_id < 0:
        raise ValueError(f"seed and sample_id must be non-negative, got seed={seed}, sample_id={sample_id}")
    entropy = [int(seed), int(sample_id), int(severity), *stable_name_key(corruption)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def constant_rng(name: str, *extra: int) -> np.random.Generator:
    """A generator for expensive constants shared by all samples (textures, plasma fields).

    Derived from the constant's name only, so every sample and process sees the same constant.
    """
    entropy = [*stable_name_key(name), *[int(e) for e in extra]]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
