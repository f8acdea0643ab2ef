"""`advisor` command line: the only module that reads argv, prints, and exits.

Exit codes: 0 ok, 1 the check found problems, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel

from advisor import api, interrupts
from advisor.errors import AdvisorError, UsageError
from advisor.fileio import check_output, is_stdout, write_output
from advisor.render import OutputFormat, render
from advisor.render.escape import terminal_safe

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"advisor: error: {message}; see `{self.prog} --help`\n")
        raise SystemExit(2)


def _target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target (default: this machine)")
    g.add_argument("--env", type=Path, metavar="FILE", help="a snapshot from `advisor probe -o FILE`")
    g.add_argument("--gpu", action="append", default=[], metavar="NAME",
                   help="a GPU from the shipped table; repeat for several cards (--gpu A100-80GB --gpu A100-80GB)")
    g.add_argument("--cpu", action="store_true", help="a machine with no GPU")
    g.add_argument("--assume", action="append", default=[], metavar="DIST==VERSION",
                   help="treat DIST as installed and working at VERSION (repeatable)")
    g.add_argument("--without", action="append", default=[], metavar="DIST", help="treat DIST as absent (repeatable)")


def _model_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("model", nargs=None if required else "?", metavar="MODEL",
                   help="a local folder, a config.json, a hub id in the local HF cache, or a shipped model id")
    p.add_argument("--allow-download", action="store_true", help="fetch the model's config.json from the Hub if needed")
    p.add_argument("--trust-remote-code", action="store_true", help="allow models that need custom code (auto_map)")


def _output_options(p: argparse.ArgumentParser, formats: Sequence[str], default: str = "text") -> None:
    p.add_argument("--format", choices=formats, default=default, help=f"output format (default: {default})")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write to FILE instead of stdout (- is stdout; see docs/security.md, 'What -o writes')")
    p.add_argument("--force", action="store_true", help="replace an output file even if it is read-only")


def _target(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "env": args.env,
        "gpu": args.gpu,
        "cpu": args.cpu,
        "assume": args.assume,
        "without": args.without,
    }


def _emit(args: argparse.Namespace, obj: Any, kind: str) -> None:
    fmt = OutputFormat(args.format)
    color = is_stdout(args.output) and sys.stdout.isatty() and "NO_COLOR" not in os.environ and fmt is OutputFormat.TEXT
    text = render(obj, fmt, kind=kind, color=color)
    if args.output is not None:
        write_output(args.output, text, force=args.force)
    else:
        sys.stdout.write(text)


def _preflight(args: argparse.Namespace) -> None:
    """Refuse an unwritable -o before spending seconds on probing."""
    if getattr(args, "output", None) is not None:
        check_output(args.output, force=args.force)


def cmd_probe(args: argparse.Namespace) -> int:
    env = api.target_environment(import_checks=not args.no_import_check, **_target(args))
    fmt = "json" if args.format == "json" else "text"
    args.format = fmt
    _emit(args, env, "probe")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    report = api.doctor(args.model, smoke=args.smoke, allow_download=args.allow_download,
                        trust_remote_code=args.trust_remote_code, prefer=args.prefer,
                        measurements=not args.no_measurements, **_target(args))
    _emit(args, report, "doctor")
    return 0 if report.ok else 1


def cmd_recommend(args: argparse.Namespace) -> int:
    plan = api.recommend(args.model, dtype=args.dtype, quantize=args.quantize, batch=args.batch, seq_len=args.seq_len,
                         ignore=args.ignore, allow_download=args.allow_download,
                         trust_remote_code=args.trust_remote_code, prefer=args.prefer,
                         measurements=not args.no_measurements, **_target(args))
    if args.format == "python" and not plan.ok:
        args.format = "text"
        sys.stderr.write("advisor: no viable configuration, so no Python snippet; the reasons follow\n")
    _emit(args, plan, "recommend")
    return 0 if plan.ok else 1


def cmd_check(args: argparse.Namespace) -> int:
    result = api.check(args.model, config=args.config, attn=args.attn, dtype=args.dtype, quantize=args.quantize,
                       batch=args.batch, seq_len=args.seq_len, allow_download=args.allow_download,
                       trust_remote_code=args.trust_remote_code, measurements=not args.no_measurements,
                       **_target(args))
    _emit(args, result, "check")
    return 0 if result.ok else 1


def cmd_matrix(args: argparse.Namespace) -> int:
    if args.history and args.full:
        raise UsageError("--history and --full are different views; use one")
    obj: BaseModel
    if args.history:
        from advisor.history_view import history_report

        obj, kind = history_report(args.history), "history"
    elif args.full:
        from advisor.history_view import full_matrix

        obj, kind = full_matrix(args.transformers), "fullmatrix"
    else:
        obj, kind = api.matrix(args.transformers, refresh=args.refresh), "matrix"
    _emit(args, obj, kind)
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from advisor.smoke_cli import run_smoke_command

    report = run_smoke_command(args)
    _emit(args, report, "smoke")
    return 0 if report.ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from advisor.bench import WORKLOADS, run_bench
    from advisor.model import resolve_model
    from advisor.plan import PlanRequest
    from advisor.targets import TargetSpec, resolve_target

    model = resolve_model(args.model, allow_download=args.allow_download, trust_remote_code=args.trust_remote_code)
    base = WORKLOADS[args.workload]
    workload = base.model_copy(update={k: v for k, v in (("batch", args.batch), ("prompt", args.seq_len),
                                                         ("new_tokens", args.new_tokens)) if v is not None})
    if args.plot is not None:
        check_output(args.plot, force=args.force)
    env = resolve_target(TargetSpec(cpu=args.cpu))

    def progress(done: int, total: int, label: str) -> None:
        if sys.stderr.isatty() or os.environ.get("ADVISOR_PROGRESS"):
            bar = "#" * int(30 * done / max(total, 1))
            sys.stderr.write(f"\r[{bar:<30}] {done}/{total} {label[:50]:<50}")
            if done == total:
                sys.stderr.write("\n")

    request = PlanRequest(attn=args.attn, dtype=args.dtype or "auto", quantize=args.quantize or "auto")
    (report,) = run_bench(model, env, [workload], repeats=args.repeats, timeout=args.timeout, progress=progress,
                          request=request, control=args.control, rounds=args.rounds)
    if args.plot is not None:
        from advisor.render.plot import bench_plot

        write_output(args.plot, bench_plot(report), force=args.force)
    _emit(args, report, "bench")
    return 0 if report.ok else 1


def cmd_tune(args: argparse.Namespace) -> int:
    from advisor.prove.tune import run_tune_command

    report = run_tune_command(args)
    _emit(args, report, "tune")
    return 0 if report.ok else 1


def _measurement_options(p: argparse.ArgumentParser, prefer: bool = True) -> None:
    """Issue 12: the measurement store and the preference that ranks quantization and dtype."""
    if prefer:
        p.add_argument("--prefer", choices=("speed", "quality", "memory"), default="quality",
                       help="rank quantization and dtype for this (default: quality; see docs/prefer.md)")
    p.add_argument("--no-measurements", action="store_true",
                   help="ignore measurements (the local store of `advisor tune` and the shipped ones)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    """A timeout: a finite number of seconds above zero (nan, inf, 0 and negatives would never or always expire)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds above 0, e.g. 600")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="advisor", description="How to load a Hugging Face transformers model on your hardware, proven.")
    parser.add_argument("--version", action="version", version="inference-advisor 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("probe", help="snapshot this machine (GPUs, dtypes, SDPA, libraries)")
    _target_options(p)
    _output_options(p, ("json", "text"), default="text")
    p.add_argument("--no-import-check", action="store_true", help="skip importing native extensions in child processes")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("doctor", help="a report on the machine and, with MODEL, how to load it")
    _model_options(p, required=False)
    _target_options(p)
    _output_options(p, ("text", "json", "markdown", "html"))
    p.add_argument("--smoke", action="store_true", help="also load and run the model with the plan (needs weights)")
    _measurement_options(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("recommend", help="the from_pretrained configuration to use, and why not the others")
    _model_options(p)
    _target_options(p)
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto")
    p.add_argument("--quantize", choices=("auto", "none", "8bit", "4bit"), default="auto")
    p.add_argument("--batch", type=_positive, default=1)
    p.add_argument("--seq-len", type=_positive, default=None, help="default: min(4096, max positions)")
    p.add_argument("--ignore", action="append", default=[], metavar="CODE", help="ignore a rule by code (repeatable)")
    _output_options(p, ("text", "json", "python"))
    _measurement_options(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("check", help="will this configuration work on that target? (exit 0 yes, 1 no)")
    _model_options(p)
    _target_options(p)
    p.add_argument("--config", type=Path, metavar="FILE.json", help="from_pretrained kwargs as JSON (or recommend's JSON)")
    p.add_argument("--attn", metavar="IMPL", help="attn_implementation")
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"))
    p.add_argument("--quantize", choices=("none", "8bit", "4bit"))
    p.add_argument("--batch", type=_positive, default=1)
    p.add_argument("--seq-len", type=_positive, default=None)
    _output_options(p, ("text", "json"))
    _measurement_options(p, prefer=False)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("matrix", help="which attention implementations each architecture supports")
    p.add_argument("--transformers", metavar="VERSION", help="a past release (from the shipped history)")
    p.add_argument("--history", metavar="MODEL_TYPE", help="first release supporting each implementation")
    p.add_argument("--refresh", action="store_true", help="read the installed transformers even if a table is shipped")
    p.add_argument("--full", action="store_true",
                   help="architectures x implementations x GPU generations x dtypes, each cell with its reason")
    _output_options(p, ("text", "json", "markdown", "html"))
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("smoke", help="load the model with the plan, run it, compare with an fp32 reference")
    _model_options(p)
    p.add_argument("--cpu", action="store_true", help="test on the CPU even if a GPU is present")
    p.add_argument("--config", type=Path, metavar="FILE.json", help="test this from_pretrained config only")
    p.add_argument("--attn", metavar="IMPL")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--quantize", choices=("none", "8bit", "4bit"))
    p.add_argument("--all", action="store_true", help="try every viable candidate, side by side")
    p.add_argument("--generate", type=_positive, default=8, metavar="N", help="tokens to generate (default 8)")
    p.add_argument("--timeout", type=_seconds, default=600.0, metavar="S", help="seconds per attempt (default 600)")
    _output_options(p, ("text", "json"))
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser("bench", help="time every viable candidate here; mark the advisor's choice and the best")
    _model_options(p)
    p.add_argument("--cpu", action="store_true", help="benchmark on the CPU even if a GPU is present")
    p.add_argument("--workload", choices=("decode", "prefill", "batch"), default="decode")
    p.add_argument("--batch", type=_positive, default=None)
    p.add_argument("--seq-len", type=_positive, default=None, help="prompt length")
    p.add_argument("--new-tokens", type=_positive, default=None)
    p.add_argument("--repeats", type=_positive, default=3)
    p.add_argument("--rounds", type=_positive, default=1, metavar="N",
                   help="run every candidate in N processes, round-robin, and keep each one's best (default 1)")
    p.add_argument("--control", action="store_true",
                   help="run the advisor's choice again at the end, to show the run-to-run noise")
    p.add_argument("--attn", metavar="IMPL", help="only candidates with this attn_implementation")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="only candidates in this dtype")
    p.add_argument("--quantize", choices=("none", "8bit", "4bit"), help="only this quantization")
    p.add_argument("--timeout", type=_seconds, default=600.0, metavar="S", help="seconds per candidate")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="also write a bar chart (needs matplotlib)")
    _output_options(p, ("text", "json", "markdown"))
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tune", help="time every viable candidate on this GPU (random weights) and store the ranking")
    _model_options(p)
    p.add_argument("--workload", choices=("decode", "prefill", "batch"), default="prefill")
    p.add_argument("--budget-seconds", type=_seconds, default=60.0, metavar="N",
                   help="stop starting candidates past N seconds (default 60)")
    p.add_argument("--no-measurements", action="store_true", help="do not record the results in the store")
    p.add_argument("--checkpoint", action="store_true", help="load the model's own weights instead of random ones")
    _output_options(p, ("text", "json"))
    p.set_defaults(func=cmd_tune)
    return parser


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        with interrupts.handled():  # SIGTERM/SIGHUP unwind like Ctrl-C: children killed, temp folders removed
            _preflight(args)
            return func(args)
    except interrupts.Interrupted as exc:
        sys.stderr.write(f"advisor: {exc}\n")
        return exc.exit_code
    except AdvisorError as exc:
        sys.stderr.write(f"advisor: error: {terminal_safe(str(exc), keep_newlines=False)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("advisor: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("ADVISOR_DEBUG"):
            raise
        sys.stderr.write(f"advisor: internal error: {type(exc).__name__}: {exc} (set ADVISOR_DEBUG=1 for the traceback)\n")
        return 3


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _run(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
