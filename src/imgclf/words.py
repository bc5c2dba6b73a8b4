"""Counted words in what imgclf prints: `counted(1, "epoch")` is '1 epoch', `counted(1437, "image")` '1,437 images',
`counted(2, "copy")` '2 copies' — so that no message says '1 epochs' or hedges with 'image(s)'."""

from __future__ import annotations


def plural(word: str, n: float, many: str | None = None) -> str:
    """`word` as it goes with a count of `n`: as given for exactly 1, else `many` or the regular plural of its last
    word (CPU → CPUs, class → classes, copy → copies)."""
    if n == 1:
        return word
    if many is not None:
        return many
    if word.endswith(("s", "x")):              # "epoch" → "epochs": a "-ches" word gives `many`
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    return word + "s"


def counted(n: float, word: str, many: str | None = None) -> str:
    """'1 epoch', '2 epochs', '1,437 images': `n` (thousands separated) and `word` as it goes with it."""
    return f"{n:,} {plural(word, n, many)}"
