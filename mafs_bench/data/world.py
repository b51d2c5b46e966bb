"""A procedurally generated image-caption-VQA world: the offline default dataset of mafs-bench.

Each image shows 2-3 coloured shapes on a 3x3 grid. A :class:`Scene` (what is where) is sampled
once per (seed, split, index) and can be rendered in any of the :data:`DOMAINS`:

* ``plain``: flat dark background, filled anti-aliased shapes (the training style);
* ``textured``: a random texture behind the shapes (blobs, stripes, checkers or grain);
* ``outline``: the plain background with shapes drawn as coloured outlines only;
* ``low_light``: the plain image darkened, with reduced contrast and mild noise.

The domain changes only the rendering, so the same scene in two domains isolates a style shift.
A continuous *style strength* ``s`` in [0, 1] (:func:`render_scenes`, :func:`with_domain`) renders
each image as the pixel-wise blend ``round((1 - s) * base + s * shifted)`` of the same scene in
the base style (the in-domain one, ``plain`` by default) and the shifted style: ``s = 0`` gives the
base style's pixels and ``s = 1`` the shifted style's, byte for byte, so a domain-shift curve
runs from the clean in-domain cell to the fully shifted domain.
Every caption names every object's size, colour, shape and position, so a caption identifies its
image; questions have one-word answers. Captions, questions and answers are lower case words with
no punctuation: tokenise with ``text.split()``; :func:`vocabulary` lists every word that can occur.

Splits are disjoint by content, not only by stream: a scene's canonical key is hashed (without the
seed) into train/val/test buckets (8:1:1 by default), and each split only keeps scenes of its own
bucket, so no test scene is ever a training scene, for any pair of seeds. Within a split scenes
are unique by default, so caption-to-image retrieval has exactly one correct image.

Randomness never touches a global RNG: scene, text and render generators are derived from
``(seed, split, index[, domain])`` with ``hashlib``, so arrays are byte-identical across runs
and processes.

Example:
    >>> cfg = WorldConfig()
    >>> test = build_split(cfg, "test", "plain", n=8, seed=0)
    >>> test.images.shape, len(test.captions[0])
    ((8, 64, 64, 3), 5)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from statistics import NormalDist

import cv2
import numpy as np

DOMAINS: tuple[str, ...] = ("plain", "textured", "outline", "low_light")
SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_TEST_SIZE = 1000
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Fixed-point bits for cv2 drawing (sub-pixel centres and radii, anti-aliased edges).
_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines the world, as data.

    Attributes:
        image_size: side of the square RGB images in pixels; geometry scales with it.
        shapes: shape names; each needs an entry in :data:`SHAPE_POLYGONS` or be "circle".
        colours: (name, (r, g, b)) pairs; chosen hue-separated and brighter than backgrounds so
            they stay distinguishable in every domain.
        sizes: size names, smallest first.
        size_radius: object radius per size as a fraction of ``image_size`` (6 and 10 px at 64).
        position_names: 3x3 names of the grid cells, row-major (top row first).
        min_objects, max_objects: objects per scene (each in its own cell).
        jitter: how much of a cell's free room an object may move off-centre (0 = centred).
        captions_per_image: captions per image (each from a different template).
        domains: rendering styles available for this world.
        split_weights: (split, weight) buckets that scene keys are hashed into.
        unique_scenes: keep canonical scenes unique within a split (no ambiguous captions).
        plain_background_range: grey level of the flat background (plain, outline, low_light).
        background_tint: max per-channel tint added to backgrounds.
        texture_level_range: grey levels the two texture colours are drawn from.
        texture_min_contrast: minimal grey-level difference between the two texture colours.
        outline_thickness: outline width as a fraction of the object radius (1 px for both sizes
            at 64; thicker outlines fill the arms of small stars and crosses).
        low_light_gain_range: multiplicative darkening (also scales contrast down).
        low_light_offset_range: grey level added after darkening (lifts the blacks).
        low_light_noise_range: standard deviation of the additive Gaussian noise (grey levels).
    """

    image_size: int = 64
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")
    colours: tuple[tuple[str, tuple[int, int, int]], ...] = (
        ("red", (230, 40, 40)),
        ("orange", (245, 145, 20)),
        ("yellow", (240, 230, 50)),
        ("green", (40, 190, 60)),
        ("cyan", (40, 215, 230)),
        ("blue", (45, 85, 245)),
        ("purple", (175, 60, 225)),
        ("white", (245, 245, 245)),
    )
    sizes: tuple[str, ...] = ("small", "large")
    size_radius: tuple[float, ...] = (6 / 64, 10 / 64)
    position_names: tuple[tuple[str, ...], ...] = (
        ("top left", "top center", "top right"),
        ("middle left", "middle", "middle right"),
        ("bottom left", "bottom center", "bottom right"),
    )
    min_objects: int = 2
    max_objects: int = 3
    jitter: float = 1.0
    captions_per_image: int = 5
    domains: tuple[str, ...] = DOMAINS
    split_weights: tuple[tuple[str, int], ...] = (("train", 8), ("val", 1), ("test", 1))
    unique_scenes: bool = True
    plain_background_range: tuple[int, int] = (25, 60)
    background_tint: int = 6
    texture_level_range: tuple[int, int] = (20, 150)
    texture_min_contrast: int = 35
    outline_thickness: float = 0.12
    low_light_gain_range: tuple[float, float] = (0.35, 0.5)
    low_light_offset_range: tuple[float, float] = (4.0, 12.0)
    low_light_noise_range: tuple[float, float] = (2.0, 4.0)

    def __post_init__(self) -> None:
        # Accept lists and a {name: rgb} mapping (YAML overrides); store hashable tuples.
        colours = self.colours.items() if isinstance(self.colours, dict) else self.colours
        object.__setattr__(self, "colours", tuple((str(n), tuple(int(v) for v in rgb)) for n, rgb in colours))
        for name in ("shapes", "sizes", "size_radius", "domains", "plain_background_range", "texture_level_range",
                     "low_light_gain_range", "low_light_offset_range", "low_light_noise_range"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "position_names", tuple(tuple(row) for row in self.position_names))
        object.__setattr__(self, "split_weights", tuple((str(k), int(w)) for k, w in self.split_weights))
        self._validate()

    def _validate(self) -> None:
        n_cells = sum(len(row) for row in self.position_names)
        if len(self.position_names) != 3 or any(len(row) != 3 for row in self.position_names):
            raise ValueError("position_names must be a 3x3 grid of names")
        if not 1 <= self.min_objects <= self.max_objects <= min(n_cells, len(NUMBER_WORDS) - 1):
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= {n_cells}, got {self.min_objects}, {self.max_objects}"
            )
        if len(self.size_radius) != len(self.sizes):
            raise ValueError("size_radius needs one entry per size")
        for kind, names in (("shape", self.shapes), ("colour", self.colour_names), ("size", self.sizes)):
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {kind} names in {names}")
            if not all(re.fullmatch(r"[a-z]+", n) for n in names):
                raise ValueError(f"{kind} names must be single lower-case words, got {names}")
        if not all(re.fullmatch(r"[a-z]+( [a-z]+)*", n) for row in self.position_names for n in row):
            raise ValueError("position names must be lower-case words separated by spaces")
        unknown = [s for s in self.shapes if s != "circle" and s not in SHAPE_POLYGONS]
        if unknown:
            raise ValueError(f"no geometry for shapes {unknown}; known: {sorted(SHAPE_POLYGONS) + ['circle']}")
        bad = [d for d in self.domains if d not in DOMAIN_RENDERERS]
        if bad:
            raise ValueError(f"unknown domains {bad}; known: {sorted(DOMAIN_RENDERERS)}")
        if sorted(s for s, _ in self.split_weights) != sorted(SPLITS) or any(w <= 0 for _, w in self.split_weights):
            raise ValueError(f"split_weights must give a positive weight to each of {SPLITS}")

    @cached_property
    def colour_names(self) -> tuple[str, ...]:
        """The colour names, in config order."""
        return tuple(name for name, _ in self.colours)

    def rgb(self, colour: str) -> tuple[int, int, int]:
        """The RGB triple of a named colour."""
        return dict(self.colours)[colour]

    def radius_px(self, size: str) -> float:
        """Object radius in pixels for a size name."""
        return self.size_radius[self.sizes.index(size)] * self.image_size


# --------------------------------------------------------------------------------------------
# Scenes


@dataclass(frozen=True)
class SceneObject:
    """One object: what it is (shape, colour, size) and where (grid row, col, 0..2).

    ``dx``/``dy`` in [-1, 1] move the object off the cell centre by that share of the cell's free
    room (scaled by ``WorldConfig.jitter``). They belong to the scene, so every domain draws the
    object at the same spot; captions and the canonical key ignore them.
    """

    shape: str
    colour: str
    size: str
    row: int
    col: int
    dx: float = 0.0
    dy: float = 0.0


@dataclass(frozen=True)
class Scene:
    """A set of objects in distinct grid cells, stored in reading order (row-major)."""

    objects: tuple[SceneObject, ...]


ObjectKey = tuple[str, str, str, int, int]


def describe_objects(scene: Scene) -> tuple[ObjectKey, ...]:
    """The canonical description: sorted (shape, colour, size, row, col) per object, no jitter.

    Two scenes with the same description have the same set of correct captions.
    """
    return tuple(sorted((o.shape, o.colour, o.size, o.row, o.col) for o in scene.objects))


def scene_key(scene: Scene) -> str:
    """:func:`describe_objects` as one string, e.g. ``"circle red large 0 0|star blue small 1 1"``."""
    return "|".join(" ".join(str(v) for v in obj) for obj in describe_objects(scene))


def position_name(obj: SceneObject, cfg: WorldConfig) -> str:
    """The name of the object's grid cell, e.g. "top left" or "middle"."""
    return cfg.position_names[obj.row][obj.col]


def sample_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """Draw a scene: a uniform number of objects, distinct cells, uniform attributes and jitter.

    One vector of uniforms is drawn per scene (cheap: rejection sampling calls this often).
    """
    n_cells = 9
    u = rng.random(1 + n_cells + 5 * cfg.max_objects).tolist()
    n = cfg.min_objects + int(u[0] * (cfg.max_objects - cfg.min_objects + 1))
    cells = sorted(sorted(range(n_cells), key=lambda c: u[1 + c])[:n])
    names = cfg.colour_names
    objects = []
    for k, cell in enumerate(cells):
        a = u[1 + n_cells + 5 * k : 1 + n_cells + 5 * (k + 1)]
        objects.append(
            SceneObject(
                shape=cfg.shapes[int(a[0] * len(cfg.shapes))],
                colour=names[int(a[1] * len(names))],
                size=cfg.sizes[int(a[2] * len(cfg.sizes))],
                row=cell // 3,
                col=cell % 3,
                dx=2.0 * a[3] - 1.0,
                dy=2.0 * a[4] - 1.0,
            )
        )
    return Scene(tuple(objects))


def split_of_scene(scene: Scene, cfg: WorldConfig) -> str:
    """The split a scene belongs to: a seed-independent hash of its canonical key into buckets.

    This is what makes train, val and test disjoint in content for every pair of seeds.
    """
    return _split_of_key(scene_key(scene), cfg)


def _split_of_key(key: str, cfg: WorldConfig) -> str:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"mafs-world").digest()
    slot = int.from_bytes(digest, "little") % sum(w for _, w in cfg.split_weights)
    for split, weight in cfg.split_weights:
        if slot < weight:
            return split
        slot -= weight
    raise AssertionError("unreachable: slot < total weight")


# --------------------------------------------------------------------------------------------
# Generators (no global RNG)


def _pcg64_state(seed: int, split: str, index: int, purpose: str) -> dict:
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    text = f"{int(seed)}/{split}/{int(index)}/{purpose}".encode("utf-8")
    digest = hashlib.blake2b(text, digest_size=32, person=b"mafs-world-rng").digest()
    state, inc = int.from_bytes(digest[:16], "little"), int.from_bytes(digest[16:], "little") | 1
    return {"bit_generator": "PCG64", "state": {"state": state, "inc": inc}, "has_uint32": 0, "uinteger": 0}


class _ItemRngs:
    """One PCG64 re-seeded per item: the streams of :func:`world_rng`, for loops.

    Building a SeedSequence and a generator costs ~20 us, as much as rendering a plain image;
    setting the state of one reused bit generator costs ~3 us.
    """

    def __init__(self, seed: int, split: str, purpose: str) -> None:
        self.seed, self.split, self.purpose = seed, split, purpose
        self._bits = np.random.PCG64(0)
        self._rng = np.random.Generator(self._bits)

    def __call__(self, index: int) -> np.random.Generator:
        self._bits.state = _pcg64_state(self.seed, self.split, index, self.purpose)
        return self._rng


def world_rng(seed: int, split: str, index: int, purpose: str) -> np.random.Generator:
    """The generator of one item for one ``purpose`` ("scene", "text" or "render/<domain>").

    Its PCG64 state and increment are the BLAKE2b hash of (seed, split, index, purpose), so the
    stream is the same in any process and independent of how many items are built or in which
    order. ``build_split`` uses exactly these streams.
    """
    bits = np.random.PCG64(0)
    bits.state = _pcg64_state(seed, split, index, purpose)
    return np.random.Generator(bits)


# --------------------------------------------------------------------------------------------
# Geometry and rendering


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _cross(arm: float = 0.34) -> np.ndarray:
    a = arm
    return np.array(
        [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]]
    )


def _triangle() -> np.ndarray:
    angles = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
    # Shifted down so the triangle's bounding box, not its centroid, sits on the cell centre.
    return np.stack([np.cos(angles), np.sin(angles) + 0.25], axis=1)


# Unit-radius outlines (x right, y down), centred on the object's centre.
SHAPE_POLYGONS: dict[str, np.ndarray] = {
    "square": np.array([[-0.85, -0.85], [0.85, -0.85], [0.85, 0.85], [-0.85, 0.85]]),
    "triangle": _triangle(),
    "star": _star(),
    "cross": _cross(),
    "diamond": np.array([[0.0, -1.0], [0.72, 0.0], [0.0, 1.0], [-0.72, 0.0]]),
}


@dataclass(frozen=True)
class _Palette:
    """Per-config drawing constants, looked up once per image instead of once per object."""

    rgb: dict[str, tuple[int, int, int]]
    radius: dict[str, float]
    room: dict[str, float]
    polygons: dict[str, dict[str, np.ndarray]]  # size -> shape -> fixed-point offsets (x16)
    cell: float
    outline: dict[str, int]  # size -> outline thickness in pixels


@lru_cache(maxsize=16)
def _palette(cfg: WorldConfig) -> _Palette:
    cell = cfg.image_size / 3
    radius = {s: cfg.radius_px(s) for s in cfg.sizes}
    return _Palette(
        rgb=dict(cfg.colours),
        radius=radius,
        room={s: max(0.0, cell / 2 - r - cfg.image_size / 64) * cfg.jitter for s, r in radius.items()},
        polygons={s: {k: SHAPE_POLYGONS[k] * r * _ONE for k in cfg.shapes if k != "circle"} for s, r in radius.items()},
        cell=cell,
        outline={s: max(1, round(cfg.outline_thickness * r)) for s, r in radius.items()},
    )


def object_centre(obj: SceneObject, cfg: WorldConfig) -> tuple[float, float]:
    """Pixel centre (x, y) of an object: its cell centre moved by the jitter within free room."""
    pal = _palette(cfg)
    room = pal.room[obj.size]
    return (obj.col + 0.5) * pal.cell + obj.dx * room, (obj.row + 0.5) * pal.cell + obj.dy * room


def draw_scene(img: np.ndarray, scene: Scene, cfg: WorldConfig, filled: bool = True) -> None:
    """Draw a scene's objects in place on ``img`` (uint8 HxWx3), filled or as outlines, anti-aliased."""
    pal = _palette(cfg)
    for obj in scene.objects:
        thickness = -1 if filled else pal.outline[obj.size]
        room = pal.room[obj.size]
        cx = (obj.col + 0.5) * pal.cell + obj.dx * room
        cy = (obj.row + 0.5) * pal.cell + obj.dy * room
        colour = pal.rgb[obj.colour]
        if obj.shape == "circle":
            centre = (round(cx * _ONE), round(cy * _ONE))
            cv2.circle(img, centre, round(pal.radius[obj.size] * _ONE), colour, thickness, cv2.LINE_AA, _SHIFT)
            continue
        pts = np.rint(pal.polygons[obj.size][obj.shape] + (cx * _ONE, cy * _ONE)).astype(np.int32)
        if filled:
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(img, [pts], True, colour, thickness, cv2.LINE_AA, _SHIFT)


def _tinted(level: float, rng: np.random.Generator, cfg: WorldConfig) -> np.ndarray:
    return level + rng.uniform(-cfg.background_tint, cfg.background_tint, size=3)


def _plain_background(out: np.ndarray, rng: np.random.Generator, cfg: WorldConfig) -> None:
    level = rng.uniform(*cfg.plain_background_range)
    colour = np.clip(np.rint(_tinted(level, rng, cfg)), 0, 255).astype(int).tolist()
    # cv2 fill: numpy's broadcast of a 3-vector over HxWx3 is several times slower.
    cv2.rectangle(out, (0, 0), (out.shape[1], out.shape[0]), colour, -1)


def render_plain(out: np.ndarray, scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> None:
    """Training style: flat dark background, filled shapes."""
    _plain_background(out, rng, cfg)
    draw_scene(out, scene, cfg)


def render_outline(out: np.ndarray, scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> None:
    """Shift: the plain background, shapes drawn as coloured outlines only."""
    _plain_background(out, rng, cfg)
    draw_scene(out, scene, cfg, filled=False)


# Standard normal quantiles at the 256 bin centres: uint8 uniforms through this table give
# Gaussian noise several times faster than Generator.standard_normal, and exactly reproducibly.
_GAUSS_TABLE = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], dtype=np.float32)


def render_low_light(out: np.ndarray, scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> None:
    """Shift: the plain image darkened (gain < 1 also cuts contrast), lifted blacks, mild noise.

    The noise is luminance noise (one Gaussian value per pixel, all channels), so it does not
    shift hues.
    """
    render_plain(out, scene, rng, cfg)
    gain = rng.uniform(*cfg.low_light_gain_range)
    offset = rng.uniform(*cfg.low_light_offset_range)
    sigma = rng.uniform(*cfg.low_light_noise_range)
    darken = (np.arange(256, dtype=np.float32) * np.float32(gain) + np.float32(offset)).astype(np.float32)
    noise = cv2.LUT(rng.integers(0, 256, size=out.shape[:2], dtype=np.uint8), _GAUSS_TABLE * np.float32(sigma))
    dark = cv2.LUT(out, darken) + cv2.merge([noise, noise, noise])
    np.maximum(dark, 0, out=dark)
    out[...] = cv2.convertScaleAbs(dark)  # rounds and saturates at 255


def _texture_blobs(rng: np.random.Generator, size: int) -> np.ndarray:
    # Separable bilinear upsampling of a coarse random grid, written out elementwise so it is
    # exact (no BLAS or SIMD-dependent resize): smooth cloudy blobs.
    k = int(rng.integers(3, 7))
    grid = rng.random((k + 1, k + 1), dtype=np.float32)
    pos = (np.arange(size, dtype=np.float32) + np.float32(0.5)) * np.float32(k / size)
    i0 = np.minimum(pos.astype(np.int64), k - 1)
    w = pos - i0
    rows = grid[:, i0] * (1 - w) + grid[:, i0 + 1] * w  # (k+1, size)
    return rows[i0] * (1 - w)[:, None] + rows[i0 + 1] * w[:, None]


def _texture_stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(5, 14) * size / 64
    phase = rng.random()
    coords = np.arange(size, dtype=np.float32)
    proj = (coords * np.float32(math.cos(theta) / period))[None, :] + (
        coords * np.float32(math.sin(theta) / period) + np.float32(phase)
    )[:, None]
    frac = proj - np.floor(proj)
    return np.abs(2 * frac - 1)  # triangle wave: soft stripes without transcendental ufuncs


def _texture_checker(rng: np.random.Generator, size: int) -> np.ndarray:
    cell = max(2, round(int(rng.integers(4, 11)) * size / 64))
    ox, oy = rng.integers(0, 2 * cell, size=2)
    coords = np.arange(size)
    return (((coords + ox) // cell)[None, :] + ((coords + oy) // cell)[:, None]) % 2


def _texture_grain(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random((size, size), dtype=np.float32)


# Texture name -> fn(rng, size) -> HxW pattern in [0, 1] mixing the two background colours.
TEXTURES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "blobs": _texture_blobs,
    "stripes": _texture_stripes,
    "checker": _texture_checker,
    "grain": _texture_grain,
}


_RAMP = (np.arange(256) / 255.0)[:, None]


def render_textured(out: np.ndarray, scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> None:
    """Shift: a random texture (see :data:`TEXTURES`) between two low-saturation colours."""
    names = sorted(TEXTURES)
    pattern = TEXTURES[names[int(rng.integers(len(names)))]](rng, cfg.image_size)
    lo, hi = cfg.texture_level_range
    a = rng.uniform(lo, hi - cfg.texture_min_contrast)
    b = rng.uniform(a + cfg.texture_min_contrast, hi)
    c0, c1 = _tinted(a, rng, cfg), _tinted(b, rng, cfg)
    # Quantise the pattern to 256 levels and map them through a 256-entry colour ramp.
    lut = np.clip(np.rint(c0 + _RAMP * (c1 - c0)), 0, 255).astype(np.uint8).reshape(256, 1, 3)
    level = (pattern * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    out[...] = cv2.LUT(cv2.merge([level, level, level]), lut)
    draw_scene(out, scene, cfg)


Renderer = Callable[[np.ndarray, Scene, np.random.Generator, WorldConfig], None]
DOMAIN_RENDERERS: dict[str, Renderer] = {
    "plain": render_plain,
    "textured": render_textured,
    "outline": render_outline,
    "low_light": render_low_light,
}


def render(scene: Scene, domain: str, rng: np.random.Generator, cfg: WorldConfig) -> np.ndarray:
    """Render a scene in a domain: a uint8 HxWx3 RGB image."""
    out = np.empty((cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    _renderer(domain, cfg)(out, scene, rng, cfg)
    return out


def _renderer(domain: str, cfg: WorldConfig) -> Renderer:
    if domain not in cfg.domains:
        raise ValueError(f"unknown domain {domain!r}; this world has {cfg.domains}")
    return DOMAIN_RENDERERS[domain]


# --------------------------------------------------------------------------------------------
# Captions


@dataclass(frozen=True)
class CaptionTemplate:
    """A caption phrasing: ``prefix`` + per-object ``fragment``s joined by ``joiner``.

    Placeholders: ``{count}`` (number word), ``{size} {colour} {shape} {pos}``; the article "a"
    becomes "an" before a vowel. ``order`` is how objects are listed: "reading" (row-major),
    "reverse", "random" or "size" (largest first, then reading order).
    """

    name: str
    fragment: str
    prefix: str = ""
    joiner: str = " and "
    order: str = "reading"


CAPTION_TEMPLATES: tuple[CaptionTemplate, ...] = (
    CaptionTemplate("list", "a {size} {colour} {shape} in the {pos}"),
    CaptionTemplate("there_is", "a {size} {colour} {shape} in the {pos}", prefix="there is ", order="random"),
    CaptionTemplate("position_first", "in the {pos} is a {size} {colour} {shape}", order="random"),
    CaptionTemplate("has", "the {pos} has a {size} {colour} {shape}", prefix="{count} shapes ", order="reverse"),
    CaptionTemplate("terse", "{size} {colour} {shape} {pos}", prefix="{count} shapes ", order="size"),
    CaptionTemplate("that_is", "a {colour} {shape} that is {size} in the {pos}", order="random"),
    CaptionTemplate("terse_position", "{pos} a {size} {colour} {shape}", prefix="{count} objects ", order="reverse"),
)


def _ordered(
    objects: Sequence[SceneObject], order: str, rng: np.random.Generator, cfg: WorldConfig
) -> list[SceneObject]:
    if order == "reading":
        return list(objects)
    if order == "reverse":
        return list(objects)[::-1]
    if order == "random":
        return [objects[i] for i in rng.permutation(len(objects))]
    if order == "size":
        return sorted(objects, key=lambda o: -cfg.sizes.index(o.size))
    raise ValueError(f"unknown object order {order!r}")


_ARTICLE = re.compile(r"\ba (?=[aeiou])")


def _fix_articles(text: str) -> str:
    """"a" becomes "an" before a word starting with a vowel ("an orange star")."""
    return _ARTICLE.sub("an ", text)


def caption_from_template(scene: Scene, template: CaptionTemplate, rng: np.random.Generator, cfg: WorldConfig) -> str:
    """One caption of ``scene`` in one phrasing (``rng`` only orders objects for "random")."""
    parts = [
        template.fragment.format(size=o.size, colour=o.colour, shape=o.shape, pos=position_name(o, cfg))
        for o in _ordered(scene.objects, template.order, rng, cfg)
    ]
    prefix = template.prefix.format(count=NUMBER_WORDS[len(scene.objects)])
    return _fix_articles(prefix + template.joiner.join(parts))


def captions_for(scene: Scene, rng: np.random.Generator, cfg: WorldConfig, n: int = 5) -> list[str]:
    """``n`` distinct captions, each from a different template drawn at random.

    Every caption names every object's size, colour, shape and position.
    """
    if not 1 <= n <= len(CAPTION_TEMPLATES):
        raise ValueError(f"n must be in 1..{len(CAPTION_TEMPLATES)} (one template per caption), got {n}")
    chosen = rng.permutation(len(CAPTION_TEMPLATES))[:n]
    return [caption_from_template(scene, CAPTION_TEMPLATES[i], rng, cfg) for i in chosen]


# --------------------------------------------------------------------------------------------
# Visual question answering

# Question type -> template; question_type() recognises a question by its fixed prefix.
QUESTION_TEMPLATES: dict[str, str] = {
    "colour": "what colour is the {shape}",
    "size": "what size is the {shape}",
    "shape_at": "what shape is in the {pos}",
    "count": "how many objects are there",
    "count_colour": "how many {colour} objects are there",
    "exists": "is there a {colour} {shape}",
}
QA_TYPES: tuple[str, ...] = tuple(QUESTION_TEMPLATES)


# Each template as a regex: a placeholder matches one or two words ("top left").
_QUESTION_PATTERNS: dict[str, re.Pattern[str]] = {
    qtype: re.compile(re.sub(r"\\\{\w+\\\}", r"\\w+( \\w+)?", re.escape(template)))
    for qtype, template in QUESTION_TEMPLATES.items()
}


def question_type(question: str) -> str:
    """The type (a key of :data:`QUESTION_TEMPLATES`) of a question made by :func:`qa_for`."""
    for qtype, pattern in _QUESTION_PATTERNS.items():
        if pattern.fullmatch(question.replace(" an ", " a ")):
            return qtype
    raise ValueError(f"not a world question: {question!r}")


_T = TypeVar("_T")


def _pick(rng: np.random.Generator, items: Sequence[_T]) -> _T:
    return items[int(rng.integers(len(items)))]


def _unique_shape_objects(scene: Scene) -> list[SceneObject]:
    counts = Counter(o.shape for o in scene.objects)
    return [o for o in scene.objects if counts[o.shape] == 1]


def _absent_pair(
    present: Sequence[tuple[str, str]], hard: bool, rng: np.random.Generator, cfg: WorldConfig, tries: int = 100
) -> tuple[str, str] | None:
    """A (colour, shape) pair absent from ``present`` (None if every pair is present).

    If ``hard``, the pair keeps the colour or the shape of a present object. Drawn by rejection
    (at most 3 of the 48 default pairs are present); a hard draw falls back to any absent pair.
    """
    if len(set(present)) >= len(cfg.colours) * len(cfg.shapes):
        return None
    for attempt in range(tries * 2):
        colour, shape = _pick(rng, cfg.colour_names), _pick(rng, cfg.shapes)
        if hard and attempt < tries:
            keep_colour, keep_shape = _pick(rng, present)
            if rng.random() < 0.5:
                colour = keep_colour
            else:
                shape = keep_shape
        if (colour, shape) not in present:
            return colour, shape
    absent = [(c, s) for c in cfg.colour_names for s in cfg.shapes if (c, s) not in present]
    return _pick(rng, absent)


def qa_for(scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> list[tuple[str, str]]:
    """Question/answer pairs with one-word answers, one per type that applies, in QA_TYPES order.

    * colour / size of a shape: only for a shape that occurs once in the scene;
    * shape at an occupied position;
    * count of all objects ("two", "three");
    * count of one colour: the colour is present with probability 1/2 (answers "zero".."three");
    * existence of a (colour, shape): "yes" with probability 1/2; a "no" shares the colour or the
      shape with a present object half of the time (hard negative), so neither word alone answers.
    """
    fill = QUESTION_TEMPLATES
    qa: list[tuple[str, str]] = []
    unique = _unique_shape_objects(scene)
    if unique:
        obj = _pick(rng, unique)
        qa.append((fill["colour"].format(shape=obj.shape), obj.colour))
        obj = _pick(rng, unique)
        qa.append((fill["size"].format(shape=obj.shape), obj.size))
    obj = _pick(rng, scene.objects)
    qa.append((fill["shape_at"].format(pos=position_name(obj, cfg)), obj.shape))
    qa.append((fill["count"], NUMBER_WORDS[len(scene.objects)]))

    present_colours = sorted({o.colour for o in scene.objects}, key=cfg.colour_names.index)
    absent_colours = [c for c in cfg.colour_names if c not in present_colours]
    use_present = rng.random() < 0.5 or not absent_colours
    colour = _pick(rng, present_colours if use_present else absent_colours)
    count = sum(o.colour == colour for o in scene.objects)
    qa.append((fill["count_colour"].format(colour=colour), NUMBER_WORDS[count]))

    present = [(o.colour, o.shape) for o in scene.objects]
    negative = None
    if rng.random() < 0.5:
        negative = _absent_pair(present, bool(rng.random() < 0.5), rng, cfg)
    if negative is None:
        (colour, shape), answer = _pick(rng, present), "yes"
    else:
        (colour, shape), answer = negative, "no"
    qa.append((_fix_articles(fill["exists"].format(colour=colour, shape=shape)), answer))
    return qa


# --------------------------------------------------------------------------------------------
# Vocabulary


def _template_words(template: str) -> set[str]:
    return set(re.sub(r"\{\w+\}", " ", template).split())


def answer_vocabulary(cfg: WorldConfig) -> list[str]:
    """Every possible answer, sorted: colours, shapes, sizes, number words, yes, no."""
    numbers = NUMBER_WORDS[: cfg.max_objects + 1]
    return sorted({*cfg.colour_names, *cfg.shapes, *cfg.sizes, *numbers, "yes", "no"})


def vocabulary(cfg: WorldConfig) -> list[str]:
    """Every word of every caption, question and answer, sorted.

    Tokenise any world text with ``text.split()``: there is no punctuation and it is lower case.
    """
    words: set[str] = {"a", "an", *answer_vocabulary(cfg)}
    for row in cfg.position_names:
        for name in row:
            words.update(name.split())
    for t in CAPTION_TEMPLATES:
        words |= _template_words(t.fragment) | _template_words(t.prefix) | _template_words(t.joiner)
    for q in QUESTION_TEMPLATES.values():
        words |= _template_words(q)
    return sorted(words)


# --------------------------------------------------------------------------------------------
# Splits


@dataclass
class WorldSplit:
    """One rendered split: N images with their captions, scenes and question/answer pairs.

    Attributes:
        name: "world-<domain>-<split>".
        split: "train", "val" or "test".
        domain: the rendering style of ``images``.
        seed: the seed it was built from.
        images: uint8 array (N, H, W, 3), RGB.
        captions: N lists of ``captions_per_image`` strings.
        scenes: the N scenes.
        qa: N lists of (question, answer).
        ids: stable item ids (the index within the split), int64.
    """

    name: str
    split: str
    domain: str
    seed: int
    images: np.ndarray
    captions: list[list[str]]
    scenes: list[Scene]
    qa: list[list[tuple[str, str]]]
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.scenes)

    def flat_captions(self) -> tuple[list[str], np.ndarray]:
        """All captions in one list and, for each, the index of its image (int64)."""
        texts = [c for caps in self.captions for c in caps]
        owner = np.repeat(np.arange(len(self.captions), dtype=np.int64), [len(c) for c in self.captions])
        return texts, owner

    def flat_qa(self) -> tuple[list[str], list[str], np.ndarray]:
        """Questions, answers and, for each pair, the index of its image (int64)."""
        questions = [q for pairs in self.qa for q, _ in pairs]
        answers = [a for pairs in self.qa for _, a in pairs]
        owner = np.repeat(np.arange(len(self.qa), dtype=np.int64), [len(p) for p in self.qa])
        return questions, answers, owner


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def build_scenes(cfg: WorldConfig, split: str, n: int, seed: int, max_tries: int = 10_000) -> list[Scene]:
    """The first ``n`` scenes of a split: item i is drawn from its own generator (seed, split, i).

    A draw is kept only if its key hashes to ``split`` (see :func:`split_of_scene`) and, with
    ``cfg.unique_scenes``, it is new in the split; so item i depends on (seed, split, i) and the
    items before it, and a smaller ``n`` gives a prefix of a larger one.
    """
    _check_split(split)
    seen: set[str] = set()
    scenes: list[Scene] = []
    rngs = _ItemRngs(seed, split, "scene")
    for index in range(n):
        rng = rngs(index)
        for _ in range(max_tries):
            scene = sample_scene(rng, cfg)
            key = scene_key(scene)
            if _split_of_key(key, cfg) == split and not (cfg.unique_scenes and key in seen):
                break
        else:
            raise RuntimeError(f"no new {split} scene after {max_tries} draws; is the scene space too small?")
        seen.add(key)
        scenes.append(scene)
    return scenes


def render_scenes(scenes: Sequence[Scene], cfg: WorldConfig, split: str, domain: str, seed: int,
                  strength: float = 1.0, base: str | None = None) -> np.ndarray:
    """Render scenes in one domain: (N, H, W, 3) uint8; item i uses generator (seed, split, i, domain).

    Args:
        strength: style strength in [0, 1]. 1 (default) renders ``domain`` itself; 0 renders
            ``base``; in between, each image is ``round((1 - strength) * base_image + strength *
            domain_image)`` of the same scene, each rendering with its own domain's generator (so
            the end points are exactly the two styles' pixels).
        base: the style at strength 0 (default: ``cfg.domains[0]``, the training style).

    Raises:
        ValueError: unknown domain, or ``strength`` outside [0, 1] or not finite.
    """
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"style strength must be a number in [0, 1], got {strength!r}")
    base = cfg.domains[0] if base is None else base
    if strength == 1.0 or domain == base:
        return _render_pure(scenes, cfg, split, domain, seed)
    if strength == 0.0:
        return _render_pure(scenes, cfg, split, base, seed)
    start = _render_pure(scenes, cfg, split, base, seed).astype(np.float32)
    end = _render_pure(scenes, cfg, split, domain, seed).astype(np.float32)
    mixed = start * np.float32(1.0 - strength) + end * np.float32(strength)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _render_pure(scenes: Sequence[Scene], cfg: WorldConfig, split: str, domain: str, seed: int) -> np.ndarray:
    renderer = _renderer(domain, cfg)
    images = np.empty((len(scenes), cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    rngs = _ItemRngs(seed, split, f"render/{domain}")
    for index, scene in enumerate(scenes):
        renderer(images[index], scene, rngs(index), cfg)
    return images


def build_split(cfg: WorldConfig, split: str, domain: str, n: int, seed: int) -> WorldSplit:
    """Build ``n`` items of a split rendered in ``domain``.

    The same (seed, split, index) gives the same scene, captions and questions in every domain;
    only the pixels change with the domain.
    """
    scenes = build_scenes(cfg, split, n, seed)
    captions: list[list[str]] = []
    qa: list[list[tuple[str, str]]] = []
    rngs = _ItemRngs(seed, split, "text")
    for index, scene in enumerate(scenes):
        rng = rngs(index)
        captions.append(captions_for(scene, rng, cfg, cfg.captions_per_image))
        qa.append(qa_for(scene, rng, cfg))
    return WorldSplit(
        name=f"world-{domain}-{split}",
        split=split,
        domain=domain,
        seed=seed,
        images=render_scenes(scenes, cfg, split, domain, seed),
        captions=captions,
        scenes=scenes,
        qa=qa,
        ids=np.arange(n, dtype=np.int64),
    )


def with_domain(world: WorldSplit, domain: str, cfg: WorldConfig, strength: float = 1.0) -> WorldSplit:
    """The same split re-rendered in another domain (scenes, captions and QA are shared).

    ``strength`` < 1 blends from ``world``'s own style towards ``domain`` (:func:`render_scenes`);
    ``domain`` stays the shifted style's name, ``name`` says the strength.
    """
    images = render_scenes(world.scenes, cfg, world.split, domain, world.seed, strength, base=world.domain)
    shown = domain if strength == 1.0 else f"{domain} at strength {strength:g}"
    return WorldSplit(
        name=f"world-{shown}-{world.split}",
        split=world.split,
        domain=domain,
        seed=world.seed,
        images=images,
        captions=world.captions,
        scenes=world.scenes,
        qa=world.qa,
        ids=world.ids,
    )


def caption_ambiguity(world: WorldSplit) -> float:
    """Share of images whose caption set also fits another image of the split.

    That is the share of images whose canonical description (:func:`describe_objects`) occurs more
    than once; 0.0 with ``unique_scenes`` (the default).
    """
    if len(world.scenes) == 0:
        return 0.0
    counts = Counter(scene_key(s) for s in world.scenes)
    return sum(counts[scene_key(s)] > 1 for s in world.scenes) / len(world.scenes)
