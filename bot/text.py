"""Text normalisation shared by the detector, the gazetteer and the region resolver."""

from __future__ import annotations

__all__ = ["fold"]

# Folded to one form before matching (str.replace beats str.translate by far here).
_FOLDS = (
    ("ё", "е"),
    ("’", "'"),
    ("ʼ", "'"),
    ("`", "'"),
    ("‘", "'"),
    ("\u2010", "-"),
    ("\u2011", "-"),
    ("\u00a0", " "),
)


def fold(text: str) -> str:
    """Lower-case and fold ё, apostrophes and odd hyphens, keeping every offset in place.

    The detector reports spans in the original text, so the folded text must have the same
    length: the rare characters whose lower case is longer («İ») are kept as they are.
    """
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    for old, new in _FOLDS:
        if old in lowered:
            lowered = lowered.replace(old, new)
    return lowered
