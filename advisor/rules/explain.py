"""`advisor explain CODE`: a rule's what, why and fix from the installed package, so every docs_url resolves offline.

NOTE: issue 14 item 10 - findings pointed at "docs/rules.md#attn001", a path that exists only in a source checkout.
"""

from __future__ import annotations

from advisor.errors import UsageError

__all__ = ["explain"]


def explain(code: str) -> str:
    """The rule's text, as in docs/rules.md; an unknown code is a usage error naming the known ones."""
    from advisor.rules import RULES

    wanted = code.strip().upper()
    for r in RULES:
        if r.code == wanted:
            return (f"{r.code}: {r.title} (applies to: {r.scope})\n\n"
                    f"Why: {r.why}\n\nFix: {r.fix}\n\nIgnore it with: advisor recommend MODEL --ignore {r.code}\n")
    prefixes = sorted({r.code.rstrip("0123456789") for r in RULES})
    raise UsageError(f"no rule {code!r}; codes look like {', '.join(p + '001' for p in prefixes)} "
                     "(docs/rules.md lists them all)")
