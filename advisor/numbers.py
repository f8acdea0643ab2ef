"""Numbers for people: one place that decides how many digits a reader sees.

NOTE: issue 14 item 5 - a tiny model printed "0.00B params" and "0.0 GiB"; every renderer rounds here.
"""

from __future__ import annotations

__all__ = ["GiB", "MiB", "params", "size", "seconds", "millis", "diff", "plural"]

MiB = 1024**2
GiB = 1024**3


def params(count: int | float) -> str:
    """8.03B, or 1.2M below 0.01B (so a tiny model never reads "0.00B")."""
    if count >= 1e7:
        return f"{count / 1e9:.2f}B"
    if count >= 1e4:
        return f"{count / 1e6:.2f}M"
    return f"{int(count)}"


def size(n: int | float | None) -> str:
    """GiB with one decimal; MiB below 0.1 GiB, so a small number never reads "0.0 GiB"."""
    if n is None:
        return "?"
    if abs(n) >= 0.1 * GiB:
        return f"{n / GiB:.1f} GiB"
    if abs(n) >= 0.1 * MiB:
        return f"{n / MiB:.1f} MiB"
    return f"{int(n)} B"


def seconds(value: float | None) -> str:
    """Seconds to two decimals."""
    return "-" if value is None else f"{value:.2f}"


def millis(value: float | None) -> str:
    """Milliseconds to one decimal."""
    return "-" if value is None else f"{value:.1f}"


def diff(value: float | None) -> str:
    """A max |difference| in scientific notation with two significant digits (1.2e-03)."""
    return "-" if value is None else f"{value:.1e}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 problem', '2 problems' (never "1 problem(s)")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
