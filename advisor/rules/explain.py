"""`advisor explain CODE`: a rule's what, why and fix from the installed package, so every docs_url resolves offline.

NOTE: issue 14 item 10 - findings pointed at "docs/rules.md#attn001", a path that exists only in a source checkout.
"""

from __future__ import annotations

from pathlib import Path

from advisor.errors import UsageError

__all__ = ["explain", "doc_topics", "docs_dir"]


def docs_dir() -> Path | None:
    """The guides: `advisor/docs` in an installed wheel (pyproject ships them), else the checkout's `docs/`.
    Issue 31: help and errors cited docs/*.md, which an installed user did not have."""
    package = Path(__file__).resolve().parent.parent  # advisor/
    for candidate in (package / "docs", package.parent / "docs"):
        if (candidate / "rules.md").is_file():
            return candidate
    return None


def doc_topics() -> list[str]:
    """The guides `advisor explain TOPIC` prints (prefer, manifest, security, ...)."""
    root = docs_dir()
    return sorted(p.stem for p in root.glob("*.md")) if root is not None else []


def explain(code: str) -> str:
    """The rule's text, as in docs/rules.md, or a whole guide by topic; anything else is a usage error naming
    what is known."""
    from advisor.rules import RULES

    topic = code.strip().lower().removeprefix("docs/").removesuffix(".md")
    root = docs_dir()
    if root is not None and topic in doc_topics():
        return (root / f"{topic}.md").read_text(encoding="utf-8")
    wanted = code.strip().upper()
    for r in RULES:
        if r.code == wanted:
            return (f"{r.code}: {r.title} (applies to: {r.scope})\n\n"
                    f"Why: {r.why}\n\nFix: {r.fix}\n\nIgnore it with: advisor recommend MODEL --ignore {r.code}\n")
    prefixes = sorted({r.code.rstrip("0123456789") for r in RULES})
    topics = f", or a guide: {', '.join(doc_topics())}" if doc_topics() else ""
    raise UsageError(f"no rule {code!r}; codes look like {', '.join(p + '001' for p in prefixes)} "
                     f"(`advisor explain rules` lists them all){topics}")
