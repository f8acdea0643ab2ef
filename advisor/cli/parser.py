"""`advisor` command line: the parser, and the one place a command's errors become one line and an exit code.

Exit codes: 0 ok, 1 the check found problems, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from advisor import env as envvars
from advisor.candidate import DTYPE_CHOICES, DTYPE_NAMES
from advisor.cli.output import library_output, preflight, progress_lines
from advisor.errors import AdvisorError
from advisor.io import analysis_cache, cache_root, rundir
from advisor.isolation import interrupts
from advisor.knowledge.quant_methods import METHOD_QUANTIZATIONS
from advisor.render.escape import terminal_safe

__all__ = ["build_parser", "main"]


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The command `advisor NAME` runs, imported only when it runs: a command pays for its own modules, not for
    every other command's (the warm paths' budget, issue 27)."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(f"advisor.cli.{name}")
        return int(getattr(module, f"cmd_{name}")(args))

    run.__qualname__ = run.__name__ = f"cmd_{name}"
    return run


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"advisor: error: {message}; see `{self.prog} --help`\n")
        raise SystemExit(2)


def _target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target (default: this machine)")
    g.add_argument("--env", type=Path, metavar="FILE", help="a snapshot from `advisor probe -o FILE.json`")
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
                   help="write to FILE instead of stdout (- is stdout; see `advisor explain security`, 'What -o writes')")
    p.add_argument("--force", action="store_true", help="replace an output file even if it is read-only")


def _verbose_option(p: argparse.ArgumentParser, what: str = "list every rejected candidate and every check "
                                                             "(default: a count and the top reasons)") -> None:
    libraries = "let transformers' and torch's own log lines and warnings through"
    p.add_argument("-v", "--verbose", action="store_true", help=f"{what}; also {libraries}" if what else libraries)


def _tp_option(p: argparse.ArgumentParser) -> None:
    """Issue 30: tensor parallel of size N (advisor/plan/parallelism.py; smoke: N CPU processes through torchrun)."""
    p.add_argument("--tp", type=_positive, default=None, metavar="N",
                   help="tensor parallel of size N (DistributedConfig(tp_size=N), one process per rank under "
                        "torchrun; see `advisor explain parallelism`)")


def _measurement_options(p: argparse.ArgumentParser, prefer: bool = True) -> None:
    """Issue 12: the measurement store and the preference that ranks quantization and dtype."""
    if prefer:
        p.add_argument("--prefer", choices=("speed", "quality", "memory"), default="quality",
                       help="rank quantization and dtype for this (default: quality; see `advisor explain prefer`)")
    p.add_argument("--no-measurements", action="store_true",
                   help="ignore measurements (the local store of `advisor tune` and the shipped ones)")
    if prefer:  # issue 29: whether a compiled kernel's first call counts; issue 30: tensor parallel's start-up
        p.add_argument("--workload", choices=("server", "one-shot"), default="server",
                       help="server (default): a long-running process pays a compiled kernel's first call once per "
                            "shape and tensor parallel's start-up once, so the steady state ranks; one-shot: a job "
                            "that exits after its first batch pays both in full, so the measured first call ranks and "
                            "device_map is kept wherever it fits (see `advisor explain parallelism`)")


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
    p.set_defaults(format=None)  # none given: JSON for -o FILE.json (what --env reads), else text (issue 31)
    p.add_argument("--no-import-check", action="store_true", help="skip importing native extensions in child processes")
    p.add_argument("--no-kernel-runs", action="store_true", help="skip the tiny GPU call per installed kernel")
    p.set_defaults(func=_command("probe"))

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
    p.set_defaults(func=_command("doctor"))

    p = sub.add_parser("recommend", help="the from_pretrained configuration to use, and why not the others")
    _model_options(p)
    _target_options(p)
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="only plans in this dtype (default auto: the planner picks)")
    p.add_argument("--quantize", choices=("auto", "none", "8bit", "4bit", *METHOD_QUANTIZATIONS), default="auto",
                   help="only plans with this quantization: bitsandbytes 8bit/4bit or another method where it can run "
                        "(`advisor explain quantization`; default auto: the planner picks)")
    p.add_argument("--batch", type=_positive, default=1, help="sequences per forward pass, for the KV cache (default 1)")
    p.add_argument("--seq-len", type=_positive, default=None,
                   help="tokens per sequence, prompt plus output (default: min(4096, max positions))")
    p.add_argument("--ignore", action="append", default=[], metavar="CODE", help="ignore a rule by code (repeatable)")
    _output_options(p, ("text", "json", "python"))
    _measurement_options(p)
    _verbose_option(p)
    _tp_option(p)
    p.set_defaults(func=_command("recommend"))

    p = sub.add_parser("check", help="will this configuration work on that target? (exit 0 yes, 1 no)")
    _verbose_option(p, "")
    _model_options(p, required=False)
    p.add_argument("--manifest", type=Path, metavar="FILE",
                   help="check every model x target pair of a YAML/TOML manifest (`advisor explain manifest`)")
    _target_options(p)
    p.add_argument("--config", type=Path, metavar="FILE.json", help="from_pretrained kwargs as JSON (or recommend's JSON)")
    p.add_argument("--attn", metavar="IMPL", help="attn_implementation (eager, sdpa, flash_attention_2, ...)")
    p.add_argument("--dtype", choices=DTYPE_CHOICES,
                   help="the dtype to check (default: the config's, else what from_pretrained would pick)")
    p.add_argument("--quantize", choices=("none", "8bit", "4bit", *METHOD_QUANTIZATIONS),
                   help="quantization to check: bitsandbytes 8bit/4bit or another method (default: the config's, else none)")
    p.add_argument("--batch", type=_positive, default=1, help="sequences per forward pass, for the KV cache (default 1)")
    p.add_argument("--seq-len", type=_positive, default=None,
                   help="tokens per sequence, prompt plus output (default: min(4096, max positions))")
    _output_options(p, ("text", "json", "markdown", "junit", "github"))
    _measurement_options(p, prefer=False)
    _tp_option(p)
    p.set_defaults(func=_command("check"))

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
    p.set_defaults(func=_command("matrix"))

    p = sub.add_parser("smoke", help="load the model with the plan, run it, compare with an fp32 reference")
    _verbose_option(p, "")
    _model_options(p)
    p.add_argument("--cpu", action="store_true", help="test on the CPU even if a GPU is present")
    p.add_argument("--config", type=Path, metavar="FILE.json", help="test this from_pretrained config only")
    p.add_argument("--attn", metavar="IMPL", help="only candidates with this attn_implementation")
    p.add_argument("--dtype", choices=DTYPE_NAMES, help="only candidates in this dtype")
    p.add_argument("--quantize", choices=("none", "8bit", "4bit", *METHOD_QUANTIZATIONS), help="only this quantization")
    p.add_argument("--all", action="store_true", help="try every viable candidate, side by side")
    p.add_argument("--runtime", choices=("transformers", "onnxruntime"), default="transformers",
                   help="onnxruntime: export with optimum-onnx, run with ORTModelFor..., compare with PyTorch fp32")
    p.add_argument("--generate", type=_positive, default=8, metavar="N", help="tokens to generate (default 8)")
    p.add_argument("--timeout", type=_seconds, default=600.0, metavar="S", help="seconds per attempt (default 600)")
    _output_options(p, ("text", "json"))
    _tp_option(p)
    p.set_defaults(func=_command("smoke"))

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
    p.add_argument("--dtype", choices=DTYPE_NAMES, help="only candidates in this dtype")
    p.add_argument("--quantize", choices=("none", "8bit", "4bit", *METHOD_QUANTIZATIONS), help="only this quantization")
    p.add_argument("--timeout", type=_seconds, default=600.0, metavar="S", help="seconds per candidate")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="also write a bar chart (needs matplotlib)")
    _output_options(p, ("text", "json", "markdown"))
    p.set_defaults(func=_command("bench"))

    p = sub.add_parser("tune", help="time every viable candidate on this GPU (random weights) and store the ranking")
    _verbose_option(p, "")
    _model_options(p)
    p.add_argument("--workload", choices=("decode", "prefill", "batch"), default="prefill",
                   help="what to time: prefill (1 x 4096, cut to the model's positions; default), decode or batch")
    p.add_argument("--budget-seconds", type=_seconds, default=60.0, metavar="N",
                   help="the whole command's budget, probe included (default 60): each candidate's cost is "
                        "estimated before it starts and none but the static choice starts past it; a child still "
                        "running at the budget + 5 s is stopped")
    p.add_argument("--no-measurements", action="store_true", help="do not record the results in the store")
    p.add_argument("--checkpoint", action="store_true", help="load the model's own weights instead of random ones")
    _output_options(p, ("text", "json"))
    p.set_defaults(func=_command("tune"))

    p = sub.add_parser("explain", help="what a rule code (ATTN005, MEM001, ...) checks, why, and the fix")
    p.add_argument("code", metavar="CODE", help="a rule code from a report, e.g. ATTN005, or a guide: prefer, manifest, security, ...")
    p.set_defaults(func=_command("explain"))
    return parser


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        with interrupts.handled():  # SIGTERM/SIGHUP unwind like Ctrl-C: children killed, temp folders removed
            rundir.sweep_stale()  # what a SIGKILLed run left, whatever this command is
            preflight(args)
            with contextlib.ExitStack() as stack:
                stack.enter_context(library_output(bool(getattr(args, "verbose", False))))
                stack.enter_context(progress_lines())
                if analysis_cache.enabled() and not getattr(args, "no_cache", False) and getattr(args, "command", None) != "explain":
                    cache_root.check_root()  # a file where the cache folder belongs: exit 2, never replaced
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
        if envvars.read(envvars.DEBUG):
            raise
        problem = terminal_safe(f"{type(exc).__name__}: {exc}", keep_newlines=False)
        sys.stderr.write(f"advisor: internal error: {problem} (set ADVISOR_DEBUG=1 for the traceback)\n")
        return 3


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "allow_download", False):
        return _run(args.func, args)
    from advisor.io.offline import offline

    with offline():  # set before anything imports huggingface_hub: no request leaves without --allow-download
        return _run(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
