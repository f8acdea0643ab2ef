"""Plain terminal text, with ANSI colour only when asked (a TTY and no NO_COLOR)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from advisor.candidate import ATTENTION_IMPLS
from advisor.findings import Severity
from advisor.estimate.memory import method_label
from advisor.model.towers import shape_line
from advisor.numbers import diff, millis, plural, seconds, size
from advisor.render.escape import text_output
from advisor.render.kinds import report_kind
from advisor.render.parallel_text import parallelism_lines, rank_lines
from advisor.render.text_measured import ranking_lines, tune_lines

__all__ = ["render"]

_MARK = {Severity.OK: "ok", Severity.INFO: "--", Severity.WARN: "!!", Severity.FAIL: "XX"}
_COLOR = {Severity.OK: "32", Severity.INFO: "2", Severity.WARN: "33", Severity.FAIL: "31"}
_STATUS_OF = {mark: status for status, mark in _MARK.items()}
_MARKS = re.compile(r"\[(ok|--|!!|XX)\]")  # colour goes on after escaping, so only these marks get ANSI codes


def _mark(status: Severity, color: bool) -> str:
    text = f"[{_MARK[status]}]"
    return f"\033[{_COLOR[status]}m{text}\033[0m" if color else text


def _gib(n: int | None) -> str:
    return size(n)


def _summary(r: Any) -> str:
    if r.problems or r.warnings:
        counts = ", ".join(x for x in (plural(r.problems, "problem") if r.problems else "",
                                       plural(r.warnings, "warning") if r.warnings else "") if x)
    else:
        counts = "no problems or warnings"
    return f"Result: {counts}" + ("" if r.ok else " (exit 1)")


def _doctor(r: Any, color: bool, verbose: bool = False, heading: str = "doctor") -> list[str]:
    """Like `flutter doctor`: a healthy section is one line; every other item shows, each warning with its fix."""
    rec = r.recommendation
    subject = f"{rec.model.display}; {r.target}" if rec is not None else r.target
    lines = [f"Inference Advisor {heading}: {subject}", *([f"Facts: {r.facts_source}"] if r.facts_source else []), ""]
    if rec is not None and rec.verdict:  # the answer first, as in `recommend`
        lines += [_mark(Severity.OK if rec.ok else Severity.FAIL, color) + " " + rec.verdict, ""]
    for section in r.sections:
        statuses = {i.status for i in section.items}
        if not verbose and statuses == {Severity.OK} and section.title != "Recommendation":
            names = ", ".join(i.name for i in section.items)
            lines.append(f"{_mark(Severity.OK, color)} {section.title} ({plural(len(section.items), 'check')} passed: {names})")
            continue
        lines.append(f"{_mark(section.worst, color)} {section.title}")
        rejected = [i for i in section.items if i.name.startswith("rejected ")]
        hidden = 0 if verbose else max(0, len(rejected) - TOP_REASONS)
        skip = {id(i) for i in rejected[len(rejected) - hidden:]} if hidden else set()
        optional = [] if verbose else [i for i in section.items
                                       if i.status is Severity.INFO and i.value.startswith(("missing", "not usable here"))
                                       and "unblocks" not in i.value]
        skip |= {id(i) for i in optional}
        for item in section.items:
            if id(item) in skip or (item.name == "verdict" and rec is not None):  # already the first line
                continue
            lines.append(f"    {_mark(item.status, color)} {item.name}: {item.value}")
            if item.fix and item.status is not Severity.OK:
                lines.append(f"         fix: {item.fix}")
        if optional:
            lines.append(f"    {_mark(Severity.INFO, color)} not available here, nothing here needs them: "
                         f"{', '.join(i.name for i in optional)} (-v says what each adds and how to install it)")
        if hidden:
            lines.append(f"    ... and {hidden} more rejected (-v lists all)")
        lines.append("")
    if lines[-1] != "":
        lines.append("")
    if r.recommendation is not None and r.recommendation.python:
        lines += ["Load it with:", *("    " + line for line in r.recommendation.python.rstrip().splitlines()), ""]
    if r.recommendation is not None:
        lines += ranking_lines(r.recommendation.ranking)[1:] + [""]
    lines.append(_summary(r))
    return lines


def _option_line(option: Any) -> str:
    m = option.memory
    return f"{option.label:<45} {_gib(m.total_bytes):>10} of {_gib(m.budget_bytes)}"


TOP_REASONS = 5


def _rejected(rejected: Sequence[Any], color: bool, verbose: bool, indent: str = "  ") -> list[str]:
    """Rejections, most useful fix first: a count and the top reasons, or (verbose) all with every candidate."""
    if not rejected:
        return []
    names = {label for rej in rejected for label in rej.labels}
    total = len(names) or max(rej.candidates for rej in rejected)
    shown = rejected if verbose else rejected[:TOP_REASONS]
    head = f"Rejected: {plural(total, 'candidate')}, for {plural(len(rejected), 'reason')}"
    if len(shown) < len(rejected):
        head += f"; the top {len(shown)} (-v lists all)"
    lines = [head + ":"]
    for rej in shown:
        lines.append(f"{indent}{_mark(Severity.FAIL, color)} {rej.label or rej.option} ({plural(rej.candidates, 'candidate')})")
        lines.append(f"{indent}     {rej.code} {rej.message}")
        lines.append(f"{indent}     fix: {rej.fix}")
        if verbose and len(rej.labels) > 1:
            lines += [f"{indent}       - {label}" for label in rej.labels]
    return lines


def _recommend(r: Any, color: bool, verbose: bool = False) -> list[str]:
    m = r.model
    lines = [
        _mark(Severity.OK if r.ok else Severity.FAIL, color) + " " + r.verdict,
        "",
        f"Model:  {m.display}",
        f"        {shape_line(m)}, stored {m.stored}, source: {m.source}",
        f"Target: {r.target}; transformers {r.transformers or 'not installed'}; batch {r.batch}, seq_len {r.seq_len}",
        *([f"Facts:  {r.facts_source}"] if r.facts_source else []),
    ]
    if r.chosen is None:
        useful = [f for f in r.fixes if f.unblocks]
        if useful:
            lines += ["", "Fixes, by how many blocked candidates each one unblocks:"]
            for i, f in enumerate(useful, 1):
                lines.append(f"  {i}. {f.fix}  ({f.unblocks} unblocked; best {f.best}, {_gib(f.best_total_bytes)} "
                             f"of {_gib(f.best_budget_bytes)})")
    else:
        mem = r.memory
        lines += [
            "",
            "from_pretrained kwargs:",
            *("    " + line for line in json.dumps(r.from_pretrained, indent=2).splitlines()),
            "",
            f"Memory: weights {_gib(mem.weights_bytes)} + KV cache {_gib(mem.kv_cache_bytes)} + activations "
            f"{_gib(mem.activation_bytes)} + overhead {_gib(mem.overhead_bytes)} = {_gib(mem.total_bytes)} "
            f"of {_gib(mem.budget_bytes)} available ({method_label(mem.method)})",
        ]
        if r.tokenizer:
            lines.append("Tokenizer: " + ", ".join(f"{k}={v!r}" for k, v in r.tokenizer.items()))
        kernels = getattr(r, "hub_kernels", None)
        if kernels is not None and (kernels.kernelizes or kernels.emit is not None or kernels.requested is not None):
            lines.append(f"Hub kernels: {kernels.summary()}")
        ort = r.onnxruntime
        lines.append("ONNX Runtime: " + (f"available: {ort['call']}" if ort["available"] else "not available: " + "; ".join(ort["reasons"])))
    lines += parallelism_lines(getattr(r, "parallelism", None))  # issue 30
    notes = [f for f in r.findings if f.severity.value in ("warn", "fail", "info")]
    if notes:
        lines += ["", "Findings:"]
        for f in notes:
            lines.append(f"  {_mark(f.severity, color)} {f.code} {f.message}")
            if f.fix and f.severity.value != "info":
                lines.append(f"       fix: {f.fix}")
    if r.passed_over:
        lines += ["", "Ranked below the choice because of a warning:"]
        for p in r.passed_over:
            lines += [f"  {_mark(Severity.WARN, color)} {p.label}: {p.code} {p.message}", f"       fix: {p.fix}"]
    if r.alternatives:
        lines += ["", "Alternatives (best first):"]
        shown = _shown_alternatives(r.alternatives, len(r.alternatives) if verbose else 8)
        lines += [f"  {_option_line(o)}" for o in shown]
        if len(r.alternatives) > len(shown):
            lines.append(f"  ... and {len(r.alternatives) - len(shown)} more (-v or --format json lists all)")
    if r.rejected:
        lines += ["", *_rejected(r.rejected, color, verbose)]
    lines += ranking_lines(getattr(r, "ranking", None))
    return lines


def _shown_alternatives(alternatives: Sequence[Any], limit: int) -> list[Any]:
    """The first `limit`, plus the best option of each quantization they leave out (issue 31: under
    --prefer memory the unquantized option, what the preference gives up, hid in "... and 11 more")."""
    shown = list(alternatives[:limit])
    kinds = {o.candidate.quantization for o in shown}
    for o in alternatives[limit:]:
        if o.candidate.quantization not in kinds:
            kinds.add(o.candidate.quantization)
            shown.append(o)
    return shown


def _check(r: Any, color: bool) -> list[str]:
    lines = [*([f"Model: {r.model}"] if getattr(r, "model", None) else []), f"Configuration: {r.label}",
             f"Target: {r.target}",
             *([f"Facts: {r.facts_source}"] if r.facts_source else []), ""]
    for f in r.failures:
        lines += [f"  {_mark(Severity.FAIL, color)} {f.code} {f.message}", f"       fix: {f.fix}"]
    for f in r.warnings:
        lines += [f"  {_mark(Severity.WARN, color)} {f.code} {f.message}", f"       fix: {f.fix}"]
    if r.memory is not None:
        lines.append(f"  Memory: {_gib(r.memory.total_bytes)} of {_gib(r.memory.budget_bytes)} "
                     f"({method_label(r.memory.method)})")
    lines += [f"  Measurements: {note}" for note in getattr(r, "measurements", [])]
    lines += parallelism_lines(getattr(r, "parallelism", None), quiet_none=False)  # issue 30 (--tp N)
    lines += ["", "Result: " + ("this configuration will work" if r.ok else f"{plural(len(r.failures), 'problem')}: it will not work")]
    return lines


def _matrix(r: Any, color: bool) -> list[str]:
    impls = ATTENTION_IMPLS
    lines = [f"Attention support declared by transformers {r.transformers} ({plural(len(r.architectures), 'architecture')})"]
    if getattr(r, "requested", None):
        lines.append(f"Answered by {r.answered_by}")
    if getattr(r, "facts_source", None):
        lines.append(f"Facts: {r.facts_source}")
    lines.append("")
    header = f"{'model_type':<32} {'class':<40} " + " ".join(f"{i:<17}" for i in impls)
    lines += [header, "-" * len(header)]
    for row in r.architectures:
        cells = " ".join(f"{'yes' if getattr(row, i) else '-':<17}" for i in impls)
        lines.append(f"{row.model_type:<32} {row.class_name:<40} {cells}")
    return lines


def _per_second(value: float | None) -> str:
    """A rate, or n/a where none was measured (an encoder generates no tokens: issue 31's `tok/s 0.0`)."""
    return "n/a" if not value else f"{value:.1f}"


def _smoke(r: Any, color: bool) -> list[str]:
    lines = [f"Smoke test: {r.model}", f"Reference: {r.reference}",
             *(f"Not exercised: {what}" for what in getattr(r, "not_exercised", [])), ""]
    lines.append(f"  {'configuration':<45} {'ok':<4} {'load s':>7} {'latency ms':>11} {'tok/s':>8} {'peak mem':>10} {'max|diff|':>10}")
    shared = getattr(r, "diagnosis", None)
    for a in r.attempts:
        if a.ok:
            lines.append(
                f"  {a.label:<45} {'yes':<4} {seconds(a.load_seconds):>7} {millis(a.latency_ms):>11} "
                f"{_per_second(a.tokens_per_second):>8} {_gib(a.peak_memory_bytes):>10} {diff(a.max_abs_diff):>10}"
            )
        elif shared is not None and a.label in shared.attempts:
            lines.append(f"  {a.label:<45} {_mark(Severity.FAIL, color)} the {shared.scope}-level error below")
        else:
            lines.append(f"  {a.label:<45} {_mark(Severity.FAIL, color)} {a.error}")
    if shared is not None:
        scope = "the model" if shared.scope == "model" else "the environment" if shared.scope == "environment" \
            else "the model or the environment"
        lines += ["", f"Not the configurations' fault ({scope}): every configuration tried failed with", f"  {shared.error}",
                  f"  cause: {shared.cause}" + (" (the float32 / eager reference failed the same way)" if shared.reference else ""),
                  f"  fix: {shared.fix}" + (f" ({shared.code})" if shared.code else "")]
        if shared.not_tried:
            lines.append(f"  stopped after {len(shared.attempts)}: {len(shared.not_tried)} more configuration"
                         f"{'s' if len(shared.not_tried) != 1 else ''} not tried ({', '.join(shared.not_tried)})")
    lines += rank_lines(getattr(r, "ranks", None))  # issue 30: smoke --tp
    if r.rejected:
        lines += ["", "Rejected up front by the plan (never loaded):"]
        lines += [f"  {rej.option:<18} {rej.code} {rej.message}" for rej in r.rejected]
    lines += ["", "Result: " + (f"passed with {r.attempts[[a.ok for a in r.attempts].index(True)].label}" if r.ok else "no configuration passed")]
    return lines


def _bench(r: Any, color: bool) -> list[str]:
    w = r.workload
    lines = [f"Benchmark: {r.model} on {r.device}",
             f"Workload {w.name}: batch {w.batch}, prompt {w.prompt}{' (mixed lengths, padded)' if w.mixed else ''}, "
             f"{w.new_tokens} new tokens; metric {r.metric}", ""]
    lines.append(f"  {'configuration':<48} {'prefill tok/s':>13} {'decode tok/s':>12} {'TTFT ms':>9} {'peak':>9} {'predicted':>9}")

    def rate(row: Any, name: str, digits: int) -> str:
        value = getattr(row, name)
        if value is not None:
            return f"{value:.{digits}f}"
        return "too short" if name in getattr(row, "too_short", []) else "n/a"

    for row in r.rows:
        mark = " <- advisor" if row.advisor_choice else ""
        mark += " (best)" if row.label == r.best else ""
        if not row.ok:
            lines.append(f"  {row.label:<48} {_mark(Severity.FAIL, color)} {row.error}")
            continue
        lines.append(
            f"  {row.label:<48} {rate(row, 'prefill_tokens_per_second', 0):>13} "
            f"{rate(row, 'decode_tokens_per_second', 1):>12} "
            f"{row.ttft_ms or 0:>9.1f} {_gib(row.peak_memory_bytes):>9} {_gib(row.predicted_peak_bytes):>9}{mark}"
        )
    if any(getattr(row, "too_short", []) for row in r.rows):
        lines.append("  too short = too short to time (one step below the timer's reach; null in JSON)")
    if any(row.ok and (row.peak_memory_bytes is None or row.predicted_peak_bytes is None) for row in r.rows):
        lines.append("  ? = not known: peak is not measured on the CPU; predicted is missing where the plan has no "
                     "estimate for that candidate")
    regret = f"{r.regret:.3f}" if r.regret is not None else "n/a"
    lines += ["", f"Advisor's choice: {r.advisor_choice}; best: {r.best}; choice/best = {regret}"]
    if r.noise is not None:
        lines.append(f"Run-to-run noise (spread over the advisor's choice's processes): {100 * r.noise:.1f}%")
    if r.note:
        lines.append(f"Note: {r.note}")
    return lines


def _tune(r: Any, color: bool) -> list[str]:
    return tune_lines(r)


def _probe(r: Any, color: bool) -> list[str]:
    from advisor.plan.doctor_report import build_report

    return _doctor(build_report(r, []), color, verbose=True, heading="probe")[:-2]


_RENDERERS = {
    "doctor": _doctor,
    "recommend": _recommend,
    "check": _check,
    "matrix": _matrix,
    "smoke": _smoke,
    "probe": _probe,
    "bench": _bench,
    "tune": _tune,
}


def render(obj: BaseModel, *, color: bool = False, verbose: bool = False) -> str:
    """The lines, then the one boundary: control characters from configs/snapshots escaped, then our own colour."""
    kind = report_kind(obj)
    if kind in ("history", "fullmatrix"):
        from advisor.render import text_matrix

        return text_output("\n".join(getattr(text_matrix, f"{kind}_lines")(obj)) + "\n")
    if kind in ("doctor", "recommend"):
        lines = _RENDERERS[kind](obj, False, verbose=verbose)  # type: ignore[call-arg]
    else:
        lines = _RENDERERS[kind](obj, False)
    text = text_output("\n".join(lines) + "\n")
    return _MARKS.sub(lambda m: _mark(_STATUS_OF[m.group(1)], True), text) if color else text
