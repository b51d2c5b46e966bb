"""Per-sample random generators, derived without any global RNG.

Every random choice in the engine comes from ``sample_rng(seed, sample_id, corruption, severity)``:
the same four values give the same stream in any process, in any order and with any number of
workers. ``hashlib`` (not Python's salted ``hash``) turns the corruption name into integers.
Two documented variations (see :class:`corruptions.base.Corruption`): a ``shared_draws``
corruption (fog, frost) derives its stream with severity 0, so a sample gets the same draws at
every severity; a choice made by :func:`corruptions.base.stratified_choice` (frost's texture) is
dealt from (seed, corruption, sample id) instead of drawn.

A caller that gives no sample id gets :func:`content_id`: an id derived from the sample's own
content (SHA-256 of its bytes), so different inputs get independent draws, equal inputs equal
ones, in any process. (A fixed default id would give every image the same noise field.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

CONTENT_ID_BITS = 63  # content ids are < 2**63: they fit an int64 sample-id column
CONTENT_ID_SPACE = 1 << CONTENT_ID_BITS


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


def content_id(x: "str | np.ndarray | Sequence[str]") -> int:
    """A sample id derived from the sample's content: the default when a caller gives none.

    The id is the SHA-256 digest of a typed encoding of ``x``, read as a little-endian integer
    and cut to :data:`CONTENT_ID_BITS` (63) bits, so it is stable across processes, platforms
    and Python versions (never Python's salted ``hash``) and fits an int64 column:

    * text (``str``): ``b"text\\0"`` + its UTF-8 bytes (lone surrogates passed through);
    * image (``ndarray``): ``b"image\\0"`` + dtype (``dtype.str``) + shape + the C-ordered bytes,
      so the same pixels in another shape or dtype are another sample;
    * captions (a sequence of ``str``, the unit of a pair corruption): ``b"captions\\0"`` + each
      caption's UTF-8 length (8 bytes) and bytes. This is the id of the *first* caption; caption
      ``i`` uses ``content_id + i``, so the value is reduced modulo ``2**63 - (n - 1)`` to keep
      the last id below ``2**63``.

    A content id equals a small explicit id (0, 1, ...) with probability ~n / 2**63: mixing
    explicit and content ids in one run is safe in practice, but a run should use one or the other.

    Example:
        >>> content_id("a red circle") == content_id("a red circle") != content_id("a red square")
        True
    """
    digest = _content_digest(x)
    value = int.from_bytes(digest[:8], "little") >> (64 - CONTENT_ID_BITS)
    if isinstance(x, (str, np.ndarray)):
        return value
    return value % (CONTENT_ID_SPACE - max(len(x) - 1, 0))


def _content_digest(x: "str | np.ndarray | Sequence[str]") -> bytes:
    """SHA-256 of the typed encoding :func:`content_id` documents."""
    h = hashlib.sha256()
    if isinstance(x, str):
        h.update(b"text\0")
        h.update(x.encode("utf-8", "surrogatepass"))
    elif isinstance(x, np.ndarray):
        arr = np.ascontiguousarray(x)
        h.update(f"image\0{arr.dtype.str}\0{','.join(map(str, arr.shape))}\0".encode("ascii"))
        h.update(arr.data if arr.size else b"")
    elif isinstance(x, Sequence) and all(isinstance(c, str) for c in x):
        h.update(b"captions\0")
        for caption in x:
            data = caption.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    else:
        raise TypeError(f"content_id takes a str, a numpy array or a sequence of str, got {type(x).__name__}")
    return h.digest()
