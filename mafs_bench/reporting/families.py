"""Corruption families of the report: which corruptions are aggregated together.

A run's ``run.json`` records each evaluated corruption's modality and registry family
(``corruptions``: ``{name: {"modality": ..., "family": ...}}``, from
:class:`corruptions.base.Corruption`); runs written before it existed fall back to the corruption
registry itself (the standalone ``corruptions`` package, never the runner). The registry's families
are mapped to the report's families by :data:`REPORT_FAMILY`, a table, so that an image occlusion and
a missing image share "occlusion/missing" and text corruptions are named as such ("text
character", "text word"). Shifted domains form the family :data:`DOMAIN_FAMILY`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

REPORT_FAMILY: Final[Mapping[tuple[str, str], str]] = {
    ("image", "noise"): "noise",
    ("image", "blur"): "blur",
    ("image", "weather"): "weather",
    ("image", "digital"): "digital",
    ("image", "occlusion"): "occlusion/missing",
    ("image", "missing"): "occlusion/missing",
    ("text", "character"): "text character",
    ("text", "word"): "text word",
    ("text", "missing"): "text missing",
    ("pair", "misalignment"): "misalignment",
}
"""(modality, registry family) -> report family. A pair not listed reads ``"<modality> <family>"``."""

DOMAIN_FAMILY: Final[str] = "domain"
"""Family of the shifted domains (their clean scores, by style strength)."""

FAMILY_ORDER: Final[tuple[str, ...]] = (
    "noise", "blur", "weather", "digital", "occlusion/missing", "text character", "text word", "text missing",
    "misalignment", DOMAIN_FAMILY,
)
"""Display order of the report families; others follow by name."""


def report_family(modality: str, family: str) -> str:
    """The report family of a corruption with this modality and registry family."""
    return REPORT_FAMILY.get((modality, family), f"{modality} {family}".strip())


def corruption_families(names: Iterable[tuple[str, str]], meta: Mapping | None = None) -> dict[tuple[str, str], str]:
    """Report family of each ``(corruption, modality)``.

    Args:
        names: (corruption, modality) pairs of the corrupted rows.
        meta: the run's ``run.json`` (its ``corruptions`` field), or None.

    Returns:
        ``{(corruption, modality): family}``; a corruption neither in ``meta`` nor in the
        registry gets ``"<modality> other"``.
    """
    recorded = dict((meta or {}).get("corruptions") or {})
    out: dict[tuple[str, str], str] = {}
    for corruption, modality in names:
        info = recorded.get(corruption)
        if info is None:
            info = _registry_info(corruption)
        family = (info or {}).get("family", "other")
        out[(corruption, modality)] = report_family(modality, family)
    return out


def family_sort_key(family: str) -> tuple[int, str]:
    """Sort key: :data:`FAMILY_ORDER` first, then by name."""
    return (FAMILY_ORDER.index(family), "") if family in FAMILY_ORDER else (len(FAMILY_ORDER), family)


def _registry_info(name: str) -> dict[str, str] | None:
    """Modality and family from the corruption registry (runs without ``run.json`` corruptions)."""
    try:
        import corruptions

        spec = corruptions.get(name)
    except (ImportError, KeyError):  # engine not importable, or a name it does not know
        return None
    return {"modality": spec.modality, "family": spec.family}
