"""Text for an ONNX Runtime smoke report (JSON is the report's own dump)."""

from __future__ import annotations

from advisor.prove.onnx import OnnxSmokeReport
from advisor.render.escape import text_output

__all__ = ["onnx_text"]


def onnx_text(r: OnnxSmokeReport) -> str:
    lines = [f"ONNX Runtime smoke test: {r.model}",
             f"  {r.ort_class} (task {r.task}) on {r.provider or '?'}; available: {', '.join(r.providers_available) or '?'}",
             "  versions: " + ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items()))]
    if r.export_seconds is not None:
        lines.append(f"  export {r.export_seconds:.2f} s, load {r.load_seconds or 0:.2f} s, "
                     f"latency {r.latency_ms or 0:.2f} ms (median, inputs {r.inputs.get('input_ids')})")
    if r.max_abs_diff is not None:
        lines.append(f"  max |diff| vs PyTorch float32: {r.max_abs_diff:.3g} (tolerance {r.tolerance or 0:.3g})")
    lines += ["", "Result: passed" if r.ok else f"Result: failed: {r.error}"]
    return text_output("\n".join(lines) + "\n")
