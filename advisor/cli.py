"""`advisor` command line: the only module that reads argv, prints, and exits.

Exit codes: 0 ok, 1 the check found problems, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel

from advisor import analysis_cache, api, cache_root, interrupts, rundir
from advisor.errors import AdvisorError, UsageError
from advisor.fileio import check_output, is_stdout, write_output
from advisor.quant_methods import METHOD_QUANTIZATIONS
from advisor.render import OutputFormat, render
from advisor.render.escape import encodable, terminal_safe

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
    g.add_argument("--cpu", action="store_true", help="a machine with no GPU, with this machine's libraries")
    g.add_argument("--assume", action="append", default=[], metavar="DIST==VERSION",
                   help="treat DIST as installed and working at VERSION (repeatable)")
    g.add_argument("--without", action="append", default=[], metavar="DIST", help="treat DIST as absent (repeatable)")


def _model_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("model", nargs=None if required else "?", metavar="MODEL",
                   help="a local folder, a config.json, a hub id in the local HF cache, or a shipped model id")
    p.add_argument("--allow-download", action="store_true",
                   help="fetch the model's config.json from the Hub if needed (fails at once when offline)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow models that need custom code (auto_map)")
    p.add_argument("--no-cache", action="store_true",
                   help="neither read nor write the analysis cache (also: ADVISOR_NO_CACHE=1)")
    p.add_argument("--simulate", action="store_true",
                   help="simulate memory on fake tensors even for a shipped or cached model (imports torch; cached after)")


def _output_options(p: argparse.ArgumentParser, formats: Sequence[str], default: str = "text") -> None:
    p.add_argument("--format", choices=formats, default=default, help=f"output format (default: {default})")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write to FILE instead of stdout (- is stdout; see docs/security.md, 'What -o writes')")
    p.add_argument("--force", action="store_true", help="replace an output file even if it is read-only")


def _verbose_option(p: argparse.ArgumentParser, what: str = "list every rejected candidate and every check "
                                                             "(default: a count and the top reasons)") -> None:
    libraries = "let transformers' and torch's own log lines and warnings through"
    p.add_argument("-v", "--verbose", action="store_true", help=f"{what}; also {libraries}" if what else libraries)


# transformers' and huggingface_hub's switches for their own stderr output, set while a command runs without -v
_QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
              "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@contextlib.contextmanager
def _library_output(verbose: bool) -> Iterator[None]:
    """Without -v, no line of transformers' or torch's own logging or warnings reaches stderr (the advisor's
    output is the report); children inherit the environment switches. Restored afterwards (the CLI also runs
    in-process, from tests and notebooks)."""
    if verbose:
        yield
        return
    saved = {key: os.environ.get(key) for key in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    tf_logging = _transformers_logging()
    level = tf_logging.get_verbosity() if tf_logging is not None else None
    if tf_logging is not None:
        tf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tf_logging = _transformers_logging()
        if tf_logging is not None:  # imported during the command with the quiet default: put the default back
            tf_logging.set_verbosity(level if level is not None else logging.WARNING)


def _transformers_logging() -> Any:
    """transformers' logging module where transformers is already imported (never imports it)."""
    module = sys.modules.get("transformers.utils.logging")
    return module if module is not None and hasattr(module, "set_verbosity") else None


@contextlib.contextmanager
def _progress_lines() -> Iterator[None]:
    """The library's progress messages (logger "advisor", INFO: a first read of a new transformers release) as
    `advisor: ...` lines on stderr, where a person watches it (a TTY); in a pipe or CI log stderr keeps only
    the one-line errors."""
    if not sys.stderr.isatty():
        yield
        return
    logger = logging.getLogger("advisor")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("advisor: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


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
    _write(args, render(obj, fmt, kind=kind, color=color, verbose=getattr(args, "verbose", False)))


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output is not None:
        write_output(args.output, text, force=args.force)
    else:
        sys.stdout.write(text)


def _preflight(args: argparse.Namespace) -> None:
    """Refuse an unwritable -o before spending seconds on probing."""
    if getattr(args, "output", None) is not None:
        check_output(args.output, force=args.force)


def cmd_probe(args: argparse.Namespace) -> int:
    env = api.target_environment(
        import_checks=not args.no_import_check, kernel_runs=not args.no_kernel_runs, **_target(args)
    )
    fmt = "json" if args.format == "json" else "text"
    args.format = fmt
    _emit(args, env, "probe")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.prove_all:
        from advisor.prove.proofs import prove_all

        with prove_all():
            args.prove_all = False
            return cmd_doctor(args)
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
    if args.format == "python" and not plan.ok:  # stdout (or -o) only ever receives Python
        sys.stderr.write(f"advisor: no Python to write: {terminal_safe(plan.verdict, keep_newlines=False)}\n")
        return 1
    _emit(args, plan, "recommend")
    return 0 if plan.ok else 1


def cmd_check(args: argparse.Namespace) -> int:
    if args.manifest is not None or args.format in ("markdown", "junit", "github"):
        return _check_suite(args)
    if args.model is None:
        raise UsageError("give MODEL, or --manifest FILE with models and targets")
    result = api.check(args.model, config=args.config, attn=args.attn, dtype=args.dtype, quantize=args.quantize,
                       batch=args.batch, seq_len=args.seq_len, allow_download=args.allow_download,
                       trust_remote_code=args.trust_remote_code, measurements=not args.no_measurements,
                       **_target(args))
    _emit(args, result, "check")
    return 0 if result.ok else 1


def _check_suite(args: argparse.Namespace) -> int:
    """Manifest and CI formats; with --format github the table also goes to $GITHUB_STEP_SUMMARY."""
    from advisor.check_cli import check_suite
    from advisor.render.suite import render_suite

    suite = check_suite(args)
    _write(args, render_suite(suite, args.format))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.format == "github" and summary:
        from advisor.render.github import step_summary

        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(encodable(step_summary(suite)))
    return 0 if suite.ok else 1


def cmd_matrix(args: argparse.Namespace) -> int:
    if args.models or args.env or args.gpu:
        from advisor.fleet import build_fleet
        from advisor.render.fleet_text import fleet_text

        if args.history or args.full or args.transformers:
            raise UsageError("the fleet view (MODEL..., --env, --gpu) does not combine with --history/--full/--transformers")
        fleet = build_fleet(args.models, args.env, args.gpu, batch=args.batch, seq_len=args.seq_len)
        if args.format == "text":
            _write(args, fleet_text(fleet))
        else:
            _emit(args, fleet, "fleet")
        return 0
    if args.history and args.full:
        raise UsageError("--history and --full are different views; use one")
    obj: BaseModel
    if args.history:
        from advisor.history_view import history_report

        obj, kind = history_report(args.history), "history"
    elif args.full:
        from advisor.history_view import full_matrix

        from advisor.matrix_view import filter_model_types

        full = full_matrix(args.transformers)
        keep = set(filter_model_types([a.model_type for a in full.architectures], args.model_type))
        obj, kind = full.model_copy(update={"architectures": [a for a in full.architectures if a.model_type in keep]}), "fullmatrix"
    else:
        from advisor.matrix_view import matrix_view
        from advisor.support import table_for

        from advisor.knowledge import load_knowledge

        table, where = table_for(args.transformers, load_knowledge(), refresh=args.refresh)
        obj, kind = matrix_view(table, where, args.transformers, args.model_type), "matrix"
    _emit(args, obj, kind)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from advisor.explain import explain

    sys.stdout.write(explain(args.code))
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    if args.runtime == "onnxruntime":
        from advisor.onnx_smoke import run_onnx_smoke_command
        from advisor.render.onnx import onnx_text

        onnx = run_onnx_smoke_command(args)
        _write(args, onnx_text(onnx) if args.format == "text" else render(onnx, OutputFormat.JSON, kind="smoke"))
        return onnx.exit_code
    from advisor.smoke_cli import run_smoke_command

    report = run_smoke_command(args)
    _emit(args, report, "smoke")
    return 0 if report.ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from advisor.bench import fitted_workload, run_bench
    from advisor.model import resolve_model
    from advisor.plan import PlanRequest
    from advisor.targets import TargetSpec, resolve_target

    model = resolve_model(args.model, allow_download=args.allow_download, trust_remote_code=args.trust_remote_code)
    base = fitted_workload(args.workload, model.max_positions)  # --seq-len, when given, replaces the prompt below
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


MAX_COUNT = 2**31 - 1  # issue 25: a count past a C int (tensor sizes, token positions) is not a workload
MAX_SECONDS = 1_000_000.0  # issue 25: --timeout 1e308 overflowed poll()'s milliseconds (its limit is ~24.8 days)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text[:40]} is more than {MAX_COUNT:,}")
    return value


def _seconds(text: str) -> float:
    """A timeout: a finite number of seconds above zero (nan, inf, 0 and negatives would never or always expire)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds above 0, e.g. 600")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {MAX_SECONDS:,.0f} seconds (11 days)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="advisor", description="How to load a Hugging Face transformers model on your hardware, proven.")
    parser.add_argument("--version", action="version", version="inference-advisor 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("probe", help="snapshot this machine (GPUs, dtypes, SDPA, libraries)")
    _verbose_option(p, "")
    _target_options(p)
    _output_options(p, ("json", "text"), default="text")
    p.add_argument("--no-import-check", action="store_true", help="skip importing native extensions in child processes")
    p.add_argument("--no-kernel-runs", action="store_true", help="skip the tiny GPU call per installed kernel")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("doctor", help="a report on the machine and, with MODEL, how to load it")
    _model_options(p, required=False)
    _target_options(p)
    _output_options(p, ("text", "json", "markdown", "html"))
    _verbose_option(p)
    p.add_argument("--smoke", action="store_true", help="also load and run the model with the plan (needs weights)")
    p.add_argument("--prove-all", action="store_true",
                   help="run every kernel proof now, also those that compile for seconds (flex_attention); by "
                        "default they run only for a plan that would use them")
    _measurement_options(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("recommend", help="the from_pretrained configuration to use, and why not the others")
    _model_options(p)
    _target_options(p)
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                   help="only plans in this dtype (default auto: the planner picks)")
    p.add_argument("--quantize", choices=("auto", "none", "8bit", "4bit", *METHOD_QUANTIZATIONS), default="auto",
                   help="only plans with this quantization: bitsandbytes 8bit/4bit or another method where it can run "
                        "(docs/quantization.md; default auto: the planner picks)")
    p.add_argument("--batch", type=_positive, default=1, help="sequences per forward pass, for the KV cache (default 1)")
    p.add_argument("--seq-len", type=_positive, default=None,
                   help="tokens per sequence, prompt plus output (default: min(4096, max positions))")
    p.add_argument("--ignore", action="append", default=[], metavar="CODE", help="ignore a rule by code (repeatable)")
    _output_options(p, ("text", "json", "python"))
    _measurement_options(p)
    _verbose_option(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("check", help="will this configuration work on that target? (exit 0 yes, 1 no)")
    _verbose_option(p, "")
    _model_options(p, required=False)
    p.add_argument("--manifest", type=Path, metavar="FILE",
                   help="check every model x target pair of a YAML/TOML manifest (docs/manifest.md)")
    _target_options(p)
    p.add_argument("--config", type=Path, metavar="FILE.json", help="from_pretrained kwargs as JSON (or recommend's JSON)")
    p.add_argument("--attn", metavar="IMPL", help="attn_implementation (eager, sdpa, flash_attention_2, ...)")
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"),
                   help="the dtype to check (default: the config's, else what from_pretrained would pick)")
    p.add_argument("--quantize", choices=("none", "8bit", "4bit", *METHOD_QUANTIZATIONS),
                   help="quantization to check: bitsandbytes 8bit/4bit or another method (default: the config's, else none)")
    p.add_argument("--batch", type=_positive, default=1, help="sequences per forward pass, for the KV cache (default 1)")
    p.add_argument("--seq-len", type=_positive, default=None,
                   help="tokens per sequence, prompt plus output (default: min(4096, max positions))")
    _output_options(p, ("text", "json", "markdown", "junit", "github"))
    _measurement_options(p, prefer=False)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("matrix", help="which attention implementations each architecture supports")
    _verbose_option(p, "")
    p.add_argument("--transformers", metavar="VERSION",
                   help="a past release (from the shipped history); a newer one than any stored is an error")
    p.add_argument("--history", metavar="MODEL_TYPE", help="first release supporting each implementation")
    p.add_argument("--refresh", action="store_true", help="read the installed transformers even if a table is shipped")
    p.add_argument("--model-type", action="append", default=[], metavar="TYPE",
                   help="only these architectures (exact or a pattern like 'llama*'; repeatable)")
    p.add_argument("--full", action="store_true",
                   help="architectures x implementations x GPU generations x dtypes, each cell with its reason")
    p.add_argument("models", nargs="*", metavar="MODEL", help="fleet view: which of these models runs on which machine")
    p.add_argument("--env", action="append", type=Path, default=[], metavar="FILE",
                   help="fleet view: a machine snapshot from `advisor probe -o` (repeatable)")
    p.add_argument("--gpu", action="append", default=[], metavar="NAME", help="fleet view: a GPU from the table (repeatable)")
    p.add_argument("--batch", type=_positive, default=1, help="fleet view: batch size")
    p.add_argument("--seq-len", type=_positive, default=None, help="fleet view: sequence length")
    _output_options(p, ("text", "json", "markdown", "html"))
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("smoke", help="load the model with the plan, run it, compare with an fp32 reference")
    _verbose_option(p, "")
    _model_options(p)
    p.add_argument("--cpu", action="store_true", help="test on the CPU even if a GPU is present")
    p.add_argument("--config", type=Path, metavar="FILE.json", help="test this from_pretrained config only")
    p.add_argument("--attn", metavar="IMPL", help="only candidates with this attn_implementation")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="only candidates in this dtype")
    p.add_argument("--quantize", choices=("none", "8bit", "4bit", *METHOD_QUANTIZATIONS), help="only this quantization")
    p.add_argument("--all", action="store_true", help="try every viable candidate, side by side")
    p.add_argument("--runtime", choices=("transformers", "onnxruntime"), default="transformers",
                   help="onnxruntime: export with optimum-onnx, run with ORTModelFor..., compare with PyTorch fp32")
    p.add_argument("--generate", type=_positive, default=8, metavar="N", help="tokens to generate (default 8)")
    p.add_argument("--timeout", type=_seconds, default=600.0, metavar="S", help="seconds per attempt (default 600)")
    _output_options(p, ("text", "json"))
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser("bench", help="time every viable candidate here; mark the advisor's choice and the best")
    _verbose_option(p, "")
    _model_options(p)
    p.add_argument("--cpu", action="store_true", help="benchmark on the CPU even if a GPU is present")
    p.add_argument("--workload", choices=("decode", "prefill", "batch"), default="decode",
                   help="decode: batch-1 generation; prefill: one long prompt; batch: padded batch (default decode)")
    p.add_argument("--batch", type=_positive, default=None, help="sequences per batch (default: the workload's)")
    p.add_argument("--seq-len", type=_positive, default=None, help="prompt length (default: the workload's)")
    p.add_argument("--new-tokens", type=_positive, default=None, help="tokens to generate (default: the workload's)")
    p.add_argument("--repeats", type=_positive, default=3, help="timed repeats per candidate, median kept (default 3)")
    p.add_argument("--rounds", type=_positive, default=1, metavar="N",
                   help="run every candidate in N processes, round-robin, and keep each one's best (default 1)")
    p.add_argument("--control", action="store_true",
                   help="run the advisor's choice again at the end, to show the run-to-run noise")
    p.add_argument("--attn", metavar="IMPL", help="only candidates with this attn_implementation")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="only candidates in this dtype")
    p.add_argument("--quantize", choices=("none", "8bit", "4bit", *METHOD_QUANTIZATIONS), help="only this quantization")
    p.add_argument("--timeout", type=_seconds, default=600.0, metavar="S", help="seconds per candidate")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="also write a bar chart (needs matplotlib)")
    _output_options(p, ("text", "json", "markdown"))
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tune", help="time every viable candidate on this GPU (random weights) and store the ranking")
    _verbose_option(p, "")
    _model_options(p)
    p.add_argument("--workload", choices=("decode", "prefill", "batch"), default="prefill",
                   help="what to time: prefill (1 x 4096, cut to the model's positions; default), decode or batch")
    p.add_argument("--budget-seconds", type=_seconds, default=60.0, metavar="N",
                   help="the whole command's budget, probe included: no candidate starts that would pass it "
                        "(default 60)")
    p.add_argument("--no-measurements", action="store_true", help="do not record the results in the store")
    p.add_argument("--checkpoint", action="store_true", help="load the model's own weights instead of random ones")
    _output_options(p, ("text", "json"))
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("explain", help="what a rule code (ATTN005, MEM001, ...) checks, why, and the fix")
    p.add_argument("code", metavar="CODE", help="a rule code from a report, e.g. ATTN005")
    p.set_defaults(func=cmd_explain)
    return parser


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        with interrupts.handled():  # SIGTERM/SIGHUP unwind like Ctrl-C: children killed, temp folders removed
            rundir.sweep_stale()  # what a SIGKILLed run left, whatever this command is
            _preflight(args)
            with contextlib.ExitStack() as stack:
                stack.enter_context(_library_output(bool(getattr(args, "verbose", False))))
                stack.enter_context(_progress_lines())
                if getattr(args, "no_cache", False):
                    stack.enter_context(analysis_cache.disabled())
                if analysis_cache.enabled() and func is not cmd_explain:
                    cache_root.check_root()  # a file where the cache folder belongs: exit 2, never replaced
                if getattr(args, "simulate", False):
                    from advisor.estimate.adapter import always_simulate

                    stack.enter_context(always_simulate())
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
        problem = terminal_safe(f"{type(exc).__name__}: {exc}", keep_newlines=False)
        sys.stderr.write(f"advisor: internal error: {problem} (set ADVISOR_DEBUG=1 for the traceback)\n")
        return 3


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "allow_download", False):
        return _run(args.func, args)
    from advisor.offline import offline

    with offline():  # set before anything imports huggingface_hub: no request leaves without --allow-download
        return _run(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
