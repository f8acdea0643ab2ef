"""A headline fits on a screen: the first line of a report names the answer, the details follow below it.

Issue 31: a verdict quoted a whole rule message and fix (900 characters). The full texts stay in the report's
findings and rejections; the headline keeps their first clauses, without parenthesised detail.
"""

from __future__ import annotations

import re

__all__ = ["HEADLINE_WIDTH", "brief", "fit"]

HEADLINE_WIDTH = 240  # characters (three 80-column lines); a longer verdict is shortened, never wrapped


def _without_asides(text: str) -> str:
    """`text` without its parenthesised asides (sources, versions, examples), nested ones included."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\s*\([^()]*\)", "", text)
    return text


def brief(text: str, room: int) -> str:
    """`text` in at most `room` characters: asides dropped first, then cut after a whole clause or word."""
    if len(text) <= room:
        return text
    text = _without_asides(text)
    if len(text) <= room:
        return text
    cut = text[: max(room - 4, 1)]
    for mark in ("; ", ": ", ", ", " "):
        at = cut.rfind(mark)
        if at > room // 3:
            cut = cut[:at]
            break
    return cut.rstrip(" ,;:.") + " ..."


def fit(head: str, reason: str, tail: str = "", *, width: int = HEADLINE_WIDTH) -> str:
    """head + reason + tail within `width`, the reason shortened (the head and tail carry the answer)."""
    return head + brief(reason, max(width - len(head) - len(tail), 60)) + tail
