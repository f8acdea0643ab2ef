"""JUnit XML for a check suite: one <testcase> per model x target pair, so CI systems list each pair.

A failing pair carries one <failure> whose `type` is its first rule code and whose text lists every
failing rule with its fix. The layout is the Ant/Surefire JUnit format CI systems read (tests validate it
against tests/fixtures/junit.xsd).

Issue 25: names and messages come from the repository under test; every string passes `render.escape.xml_safe`
on its way into the tree, so the document is well-formed XML 1.0 (and UTF-8) whatever Unicode they hold.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from advisor.fleet.manifest import CheckSuite, PairResult
from advisor.render.escape import xml_safe

__all__ = ["render_junit"]


def _finding_lines(pair: PairResult) -> list[str]:
    lines = []
    for f in pair.failures:
        lines.append(f"[{f.code}] {f.message}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    return lines


def _testcase(pair: PairResult) -> ET.Element:
    case = ET.Element("testcase", {
        "classname": xml_safe(f"advisor.{pair.target}"),
        "name": xml_safe(pair.name),
        "time": f"{pair.seconds:.3f}",
    })
    if not pair.ok:
        codes = ", ".join(dict.fromkeys(f.code for f in pair.failures)) or "FAILED"
        first = pair.failures[0] if pair.failures else None
        message = f"{codes}: {first.message}" if first else "the check failed"
        failure = ET.SubElement(case, "failure", {"type": xml_safe(codes.split(", ")[0]), "message": xml_safe(message)})
        failure.text = xml_safe("\n".join(_finding_lines(pair)))
    out = [f"configuration: {pair.config or 'none'} ({pair.mode})"]
    if pair.from_pretrained:
        out.append("from_pretrained: " + ", ".join(f"{k}={v!r}" for k, v in pair.from_pretrained.items()))
    out += [f"warning [{w.code}] {w.message}" + (f" (fix: {w.fix})" if w.fix else "") for w in pair.warnings]
    ET.SubElement(case, "system-out").text = xml_safe("\n".join(out))
    return case


def render_junit(suite: CheckSuite) -> str:
    """The suite as a JUnit <testsuites> document (UTF-8, with an XML declaration)."""
    failures = sum(1 for p in suite.pairs if not p.ok)
    total_time = f"{sum(p.seconds for p in suite.pairs):.3f}"
    name = xml_safe(f"advisor check {suite.manifest}" if suite.manifest else "advisor check")
    root = ET.Element("testsuites", {"name": name, "tests": str(len(suite.pairs)), "failures": str(failures),
                                     "errors": "0", "time": total_time})
    ts = ET.SubElement(root, "testsuite", {"name": name, "tests": str(len(suite.pairs)), "failures": str(failures),
                                           "errors": "0", "skipped": "0", "time": total_time})
    props = ET.SubElement(ts, "properties")
    ET.SubElement(props, "property", {"name": "batch", "value": str(suite.workload.batch)})
    ET.SubElement(props, "property", {"name": "seq_len", "value": str(suite.workload.seq_len or "model default")})
    for pair in suite.pairs:
        ts.append(_testcase(pair))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
