"""Plain-text lines for `advisor matrix --history` and `advisor matrix --full` (no colour: tables only)."""

from __future__ import annotations

from typing import Any

from advisor.candidate import SHORT_DTYPE

__all__ = ["fullmatrix_lines", "history_lines"]



def history_lines(r: Any) -> list[str]:
    """First stored release per implementation, with the caveats that make it exact."""
    classes = ", ".join(r.class_names) or "class not importable"
    lines = [
        f"Attention support history for {r.model_type} ({classes})",
        (
            f"transformers {r.releases_first} .. {r.releases_last}: {r.releases_count} stored releases, "
            "the newest patch of each minor"
        ),
        "",
        f"  {'implementation':<19} {'first release':<14} {'latest':<7} notes",
    ]
    for item in r.implementations:
        first = item.first_release or "never"
        now = "gone" if r.absent_from else "yes" if item.supported_in_latest else "no"
        lines.append(f"  {item.impl:<19} {first:<14} {now:<7} {item.note}")
    extra = []
    if r.present_from and r.present_from != r.releases_first:
        extra.append(f"model type added in {r.present_from}")
    if r.unreadable_in:
        extra.append(f"class not importable in {', '.join(r.unreadable_in)}")
    if r.renamed_from:
        extra.append(f"its class came from model type {r.renamed_from}")
    if r.absent_from:
        extra.append(
            f"absent from {r.absent_from} on" + (f" (renamed to {r.renamed_to})" if r.renamed_to else "")
        )
    if len(r.class_history) > 1:
        extra.append("class read: " + ", ".join(f"{cls} from {start}" for start, cls in r.class_history))
    lines += ["", *(f"Note: {e}" for e in extra)] if extra else [""]
    lines.append(f"BetterTransformer (optimum): {r.bettertransformer.note}")
    lines.append(f"Source: {r.source}")
    return lines


def _verdict_text(cell: dict[str, Any]) -> str:
    """'fp16,bf16 no fp32'; a '*' marks a dtype that runs with a caveat (slow)."""
    ok = ",".join(SHORT_DTYPE.get(d, d) + ("*" if d in cell["caveat_dtypes"] else "") for d in cell["ok"])
    no = cell["no"]
    if not no:
        return ok
    return (ok + " " if ok else "") + "no " + ",".join(SHORT_DTYPE.get(v.dtype, v.dtype) for v in no)


def fullmatrix_lines(m: Any) -> list[str]:
    """The two halves of every cell: hardware verdicts per generation, then declarations per architecture."""
    lines = [
        f"Attention support matrix for transformers {m.transformers}",
        f"Source: {m.source}",
        "A cell (architecture, implementation, GPU generation, dtype) is ok when the architecture",
        "declares the implementation (second table) and the hardware runs it in that dtype (first table).",
        "",
        "Hardware: dtypes each implementation runs in, per GPU generation",
    ]
    width = max(len(g.label) for g in m.generations) + 2
    header = (f"  {'generation':<{width}} " + " ".join(f"{i:<19}" for i in m.impls)).rstrip()
    lines += [header, "  " + "-" * (len(header) - 2)]
    reasons: list[str] = []
    for row in m.verdict_rows():
        gen = row["generation"]
        cells = " ".join(f"{_verdict_text(row['cells'][i]):<19}" for i in m.impls)
        lines.append(f"  {gen.label:<{width}} {cells}".rstrip())
        for impl in m.impls:
            if row["cells"][impl]["why"]:
                reasons.append(f"  {gen.label} x {impl}: " + "; ".join(row["cells"][impl]["why"]))
    lines += [
        "",
        "Example GPUs: "
        + "; ".join(f"{g.label}: {', '.join(g.examples)}" for g in m.generations if g.examples),
    ]
    lines += ["", "Why not (every dtype unless [dtypes] follow):", *reasons]
    caveats = sorted({v.reason for v in m.hardware if v.ok and v.reason != "ok"})
    if caveats:
        lines += ["", "* ok, but:", *(f"  {c.removeprefix('ok, but ')}" for c in caveats)]
    requires = sorted({f"{v.impl}: {v.requires}" for v in m.hardware if v.requires})
    lines += ["", "Also needs:", *(f"  {r}" for r in requires)]
    lines += ["", f"Declared by each architecture ({len(m.architectures)}):"]
    header = (f"  {'model_type':<32} {'class':<40} " + " ".join(f"{i:<17}" for i in m.impls)).rstrip()
    lines += [header, "  " + "-" * (len(header) - 2)]
    for a in m.architectures:
        cells = " ".join(f"{'yes' if a.declared[i] else '-':<17}" for i in m.impls)
        lines.append(f"  {a.model_type:<32} {a.class_name:<40} {cells}".rstrip())
    if m.skipped:
        lines += ["", "Not readable in this release:", *(f"  {s}" for s in m.skipped)]
    lines += ["", f"Not covered: {m.not_covered}"]
    return lines
