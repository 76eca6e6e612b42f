"""The one "did you mean" of the project: a misspelt column, parameter, setting, step or item id
gets the nearest valid name, phrased the same way everywhere. Standard library only (the kernel).

    suggest("timestmp", ["timestamp", "item_id"])  ->  " (did you mean 'timestamp'?)"
    suggest("nothing", ["timestamp"])              ->  ""
"""

from __future__ import annotations

import difflib
from typing import Callable, Iterable, Optional

CUTOFF = 0.6  # difflib's own default: a typo or two in a short name, not an unrelated word


MANY = 2000  # at most this many choices are scored (25,000 item ids: ~1.3 s of difflib otherwise)


def closest(word: str, choices: Iterable[str], cutoff: float = CUTOFF) -> Optional[str]:
    """The choice nearest to `word` (as spelt, then ignoring case), or None when none is close.

    Beyond MANY choices the MANY most alike by a cheap measure (the same first and last three
    characters, ignoring case, and the same length) are scored: a typo leaves most of that intact."""
    options = [str(c) for c in choices]
    if len(options) > MANY:
        text = str(word).lower()
        head, tail, size = text[:3], text[-3:], len(text)

        def likeness(option: str) -> int:
            lowered = option.lower()
            return (lowered[:3] == head) + (lowered[-3:] == tail) + (abs(len(lowered) - size) <= 1)

        options = sorted(options, key=likeness, reverse=True)[:MANY]  # stable: ties keep their order
    found = difflib.get_close_matches(str(word), options, n=1, cutoff=cutoff)
    if found:
        return found[0]
    lowered: dict = {}
    for option in options:
        lowered.setdefault(option.lower(), option)
    found = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[found[0]] if found else None


def suggest(word: str, choices: Iterable[str], cutoff: float = CUTOFF, render: Callable[[str], str] = repr) -> str:
    """ " (did you mean 'x'?)" naming the nearest choice, or "" when none is close.

    `render` writes the choice as the user would type it (default: quoted, as the message quotes
    the word), e.g. ``lambda c: f"--param {c}=3"``."""
    found = closest(word, choices, cutoff)
    return f" (did you mean {render(found)}?)" if found is not None else ""


__all__ = ["CUTOFF", "MANY", "closest", "suggest"]
