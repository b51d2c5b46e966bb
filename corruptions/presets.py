"""Named corruption presets: which corruptions at which severities a published protocol uses.

A preset is data (a :class:`Preset`: corruption names, severities, reference), registered in
:data:`PRESETS` so that suites and the CLI can say ``imagenet-c`` instead of listing 19 names::

    from corruptions import presets
    presets.names()                      # ['imagenet-c', 'mmrobustness', 'qmf']
    p = presets.get("mmrobustness")
    p.pairs()                            # [('gaussian_noise', 1), ..., ('insert_punctuation', 5)]
    print(p.describe())

Presets:

* ``imagenet-c``: the 19 ImageNet-C corruptions (Hendrycks & Dietterich 2019, imagecorruptions
  1.1.2 order), severities 1..5; ``common`` holds the first 15 (the "common" set used for mCE),
  the other four are the extra ("validation") set.
* ``mmrobustness``: MMRobustness (Qiu et al. 2022): the 15 common ImageNet-C corruptions plus the
  6 character-level and 5 word-level text corruptions, severities 1..5. Not included: the image
  "stylize" (AdaIN) and the 5 sentence-level text perturbations (formal, casual, passive, active,
  back-translation), which need model weights; nor MMRobustness's resampling of word-level
  outputs to a sentence similarity >= 0.9.
* ``qmf``: the QMF / PDF protocol (:mod:`corruptions.qmf`): ``qmf_image_noise`` and
  ``qmf_text_mask``, severity ``s`` = noise level ``eps = 2 * s``.

Importing this module registers the QMF corruptions (``corruptions.qmf``).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import qmf as _qmf  # noqa: F401  (registers qmf_image_noise, qmf_text_mask)
from .base import CORRUPTIONS, SEVERITIES
from .registry import Registry

IMAGENET_C_COMMON: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
IMAGENET_C_EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
TEXT_CHARACTER: tuple[str, ...] = ("keyboard", "ocr", "char_insert", "char_substitute", "char_swap", "char_delete")
TEXT_WORD: tuple[str, ...] = ("synonym_replace", "word_insert", "word_swap", "word_delete", "insert_punctuation")


@dataclass(frozen=True)
class Preset:
    """A named list of corruptions and the severities to run each at.

    Attributes:
        name: registered name (``presets.get(name)``).
        corruptions: corruption names, in report order.
        severities: severities to run every corruption at.
        reference: the protocol's source.
        description: one line on what it is.
        common: optional named subset (ImageNet-C's 15 "common" corruptions).
        notes: what the preset leaves out and why.
    """

    name: str
    corruptions: tuple[str, ...]
    severities: tuple[int, ...] = SEVERITIES
    reference: str = ""
    description: str = ""
    common: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        if len(set(self.corruptions)) != len(self.corruptions):
            raise ValueError(f"preset {self.name!r} lists a corruption twice")
        if not set(self.common) <= set(self.corruptions):
            raise ValueError(f"preset {self.name!r}: common names must be among its corruptions")
        if not self.severities or any(s not in SEVERITIES for s in self.severities):
            raise ValueError(f"preset {self.name!r}: severities must be within {SEVERITIES}, got {self.severities}")

    def pairs(self) -> list[tuple[str, int]]:
        """Every (corruption, severity) to run, corruption-major."""
        return [(c, s) for c in self.corruptions for s in self.severities]

    def missing(self) -> list[str]:
        """Listed corruptions that are not registered in this installation."""
        return [c for c in self.corruptions if c not in CORRUPTIONS]

    def check(self) -> None:
        """Raise a clear error if any listed corruption is not registered."""
        missing = self.missing()
        if missing:
            raise LookupError(f"preset {self.name!r} needs corruptions that are not registered: {', '.join(missing)}")

    def describe(self) -> str:
        """A human-readable summary: reference, severities, corruptions grouped by modality/family."""
        lines = [f"{self.name}: {self.description}".rstrip(": ")]
        if self.reference:
            lines.append(f"  reference: {self.reference}")
        lines.append(f"  severities: {', '.join(map(str, self.severities))}; "
                     f"{len(self.corruptions)} corruptions, {len(self.pairs())} runs")
        groups: dict[str, list[str]] = {}
        for c in self.corruptions:
            if c in CORRUPTIONS:
                spec = CORRUPTIONS.get(c)
                key = f"{spec.modality}/{spec.family}"
            else:
                key = "not registered"
            groups.setdefault(key, []).append(c)
        for key, members in groups.items():
            lines.append(f"  {key}: {', '.join(members)}")
        if self.common:
            lines.append(f"  common ({len(self.common)}): {', '.join(self.common)}")
        if self.notes:
            lines.append(f"  notes: {self.notes}")
        return "\n".join(lines)


PRESETS: Registry[Preset] = Registry("preset")


def register_preset(preset: Preset) -> Preset:
    """Add ``preset`` to :data:`PRESETS` under its name (a duplicate name is an error)."""
    PRESETS.add(preset.name, preset)
    return preset


def get(name: str) -> Preset:
    """The preset called ``name`` (clear error with suggestions otherwise)."""
    return PRESETS.get(name)


def names() -> list[str]:
    """Registered preset names, in registration order."""
    return PRESETS.names()


register_preset(Preset(
    name="imagenet-c",
    corruptions=IMAGENET_C_COMMON + IMAGENET_C_EXTRA,
    common=IMAGENET_C_COMMON,
    reference="Hendrycks & Dietterich 2019 (ImageNet-C); imagecorruptions 1.1.2 order",
    description="the 19 ImageNet-C image corruptions (15 common + 4 extra) at severities 1-5",
    notes="mCE and relative CE use the 15 common corruptions; the extra four are the validation set",
))

register_preset(Preset(
    name="mmrobustness",
    corruptions=IMAGENET_C_COMMON + TEXT_CHARACTER + TEXT_WORD,
    reference="Qiu et al. 2022, arXiv 2212.08044 (MMRobustness); text rate 0.05 * severity",
    description="15 common ImageNet-C image corruptions + 6 character-level and 5 word-level text corruptions",
    notes=("image 'stylize' (AdaIN) and the sentence-level text perturbations (formal, casual, passive, "
           "active, back-translation) need model weights and are not included; nor is the resampling "
           "of word-level outputs to sentence similarity >= 0.9"),
))

register_preset(Preset(
    name="qmf",
    corruptions=("qmf_image_noise", "qmf_text_mask"),
    reference="QMF (Zhang et al., ICML 2023) / PDF (Cao et al., ICML 2024) noise protocol",
    description="50% of images get Gaussian noise std 10*eps (0..255), 50% of texts mask words w.p. 0.1*eps",
    notes="severity s -> eps = 2*s (2, 4, 6, 8, 10); the papers report eps 0, 5, 10",
))
