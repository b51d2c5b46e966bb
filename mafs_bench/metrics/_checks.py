"""Input checks shared by the metric functions: one prediction (str) and a list of str references per item."""

from __future__ import annotations

from collections.abc import Sequence


def check_item(label: str, prediction: object, references: object, kind: str, field: str) -> None:
    """Raise TypeError / ValueError naming ``label`` (e.g. "item 3", "id 'x'") unless
    ``prediction`` is a str and ``references`` (the argument ``field``) a non-empty list of str
    reference ``kind`` (e.g. "answers")."""
    if not isinstance(prediction, str):
        raise TypeError(f"prediction of {label} is {type(prediction).__name__}, not str")
    if isinstance(references, str):
        raise TypeError(f"{field} of {label} is the str {references!r}; give a list of reference {kind}, "
                        f"e.g. [{references!r}]")
    if not isinstance(references, Sequence) or len(references) == 0:
        raise ValueError(f"{label} has no reference {kind}")
    for reference in references:
        if not isinstance(reference, str):
            raise TypeError(f"{field} of {label} hold a {type(reference).__name__}, not str")
