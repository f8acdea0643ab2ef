"""Golden outputs of every command and format on the shipped examples, recorded before the package moved (issue 26).

    PYTHONPATH=. python tests/golden/record.py            # (re)write tests/golden/outputs/
    PYTHONPATH=. python tests/golden/record.py --check    # compare, print the names that differ

tests/golden/test_outputs.py compares each case byte for byte. A case runs `advisor ARGV...` in-process (as
the `cli` fixture does) with its own empty analysis cache, against shipped models (data/models), the snapshots in
tests/fixtures/envs, the GPU table (--gpu: this machine's libraries, the same venv before and after a move; never its RAM or GPUs) and the
CI manifests in docs/examples/ci. Only what legitimately varies is normalised: dates, temporary folders, the
repository's own path, and (in the `timed` cases: smoke, bench, tune, which load a tiny model written by
save_pretrained and run it on the CPU) every number and the `best` label, so those compare on their structure.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = Path(__file__).resolve().parent / "outputs"
ENVS = ROOT / "tests" / "fixtures" / "envs"
CI = ROOT / "docs" / "examples" / "ci"

MODELS = sorted(p.stem.replace("--", "/") for p in (ROOT / "data" / "models").glob("*.json"))
ENV_FILES = sorted(p.stem for p in ENVS.glob("*.json"))
# a spread of targets for the per-format cases: no GPU, an old card, two cards, a Hopper with every library
SOME_ENVS = ("cpu_only", "t4_plain", "a100_40gb_x2_bnb", "h100_fa2_fa3_bnb")
SOME_MODELS = ("meta-llama/Llama-3.2-1B", "meta-llama/Meta-Llama-3-8B", "mistralai/Mixtral-8x7B-v0.1",
               "google-t5/t5-base", "openai-community/gpt2")
TINY = "<TINY>"  # replaced by the tiny model's folder


@dataclass(frozen=True)
class Case:
    """One command line; `timed` outputs compare on their structure (numbers and the measured best dropped)."""

    name: str
    argv: tuple[str, ...]
    timed: bool = False
    github_summary: bool = False
    output_file: bool = False
    environ: dict[str, str] = field(default_factory=dict)


def _env(name: str) -> tuple[str, str]:
    return ("--env", str(ENVS / f"{name}.json"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def cases() -> list[Case]:
    """Every command, in every format it supports, on the shipped examples (the order is the recording order)."""
    out: list[Case] = []
    add = out.append
    # help: the options and their choices (the vocabulary the CLI exposes)
    add(Case("help/advisor", ("--help",)))
    for command in ("probe", "doctor", "recommend", "check", "matrix", "smoke", "bench", "tune", "explain"):
        add(Case(f"help/{command}", (command, "--help")))
    # probe: every snapshot in both formats; a table GPU (this machine's libraries) in text
    for env in ENV_FILES:
        for fmt in ("text", "json"):
            add(Case(f"probe/{env}.{fmt}", ("probe", *_env(env), "--format", fmt)))
    # doctor: the machine only, every snapshot; with a model, every model on two targets; every format on a spread
    for env in ENV_FILES:
        add(Case(f"doctor/machine-{env}.text", ("doctor", *_env(env))))
    for env in SOME_ENVS:
        for fmt in ("json", "markdown", "html"):
            add(Case(f"doctor/machine-{env}.{fmt}", ("doctor", *_env(env), "--format", fmt)))
    for model in MODELS:
        for env in ("t4_plain", "h100_fa2_fa3_bnb"):
            add(Case(f"doctor/{_slug(model)}-{env}.text", ("doctor", model, *_env(env))))
    for model in SOME_MODELS[:3]:
        for env in SOME_ENVS:
            for fmt in ("text", "json", "markdown", "html"):
                add(Case(f"doctor/{_slug(model)}-{env}-v.{fmt}", ("doctor", model, *_env(env), "-v", "--format", fmt)))
    add(Case("doctor/llama-1b-gpu-T4-prefer-speed.text",
             ("doctor", "meta-llama/Llama-3.2-1B", "--gpu", "T4", "--prefer", "speed")))
    # recommend: every model on every snapshot (text), the other formats on a spread, the switches
    for model in MODELS:
        for env in ENV_FILES:
            add(Case(f"recommend/{_slug(model)}-{env}.text", ("recommend", model, *_env(env))))
    for model in MODELS:
        for env in SOME_ENVS:
            for fmt in ("json", "python") if model in SOME_MODELS else ("python",):
                add(Case(f"recommend/{_slug(model)}-{env}.{fmt}", ("recommend", model, *_env(env), "--format", fmt)))
    for model in SOME_MODELS:
        for env in SOME_ENVS:
            add(Case(f"recommend/{_slug(model)}-{env}-v.text", ("recommend", model, *_env(env), "-v")))
    for gpu in ("T4", "A100-80GB", "H100", "L4", "V100"):
        add(Case(f"recommend/llama-8b-gpu-{gpu}.text", ("recommend", "meta-llama/Meta-Llama-3-8B", "--gpu", gpu)))
    add(Case("recommend/llama-70b-gpu-2xA100.json",
             ("recommend", "meta-llama/Llama-2-70b-hf", "--gpu", "A100-80GB", "--gpu", "A100-80GB", "--format", "json")))
    for flags in (("--dtype", "float16"), ("--dtype", "bfloat16"), ("--quantize", "4bit"), ("--quantize", "none"),
                  ("--quantize", "8bit"), ("--batch", "8", "--seq-len", "8192"), ("--ignore", "DTYPE001"),
                  ("--prefer", "speed"), ("--prefer", "memory"), ("--no-measurements",),
                  ("--assume", "bitsandbytes==0.46.1"), ("--without", "flash-attn")):
        for env, fmt in (("t4_plain", "text"), ("h100_fa2_fa3_bnb", "text"), ("h100_fa2_fa3_bnb", "json")):
            add(Case(f"recommend/llama-8b-{env}-{_slug(' '.join(flags))}.{fmt}",
                     ("recommend", "meta-llama/Meta-Llama-3-8B", *_env(env), *flags, "--format", fmt)))
    add(Case("recommend/llama-8b-t4-simulate.text",
             ("recommend", "meta-llama/Llama-3.2-1B", *_env("t4_plain"), "--simulate", "--no-cache")))
    add(Case("recommend/unknown-model.text", ("recommend", "no/such-model", *_env("t4_plain"))))
    add(Case("recommend/tiny-folder.text", ("recommend", TINY, *_env("t4_plain"))))
    add(Case("recommend/tiny-folder-cpu.python", ("recommend", TINY, *_env("cpu_only"), "--format", "python")))
    # check: single configurations in every format, --config files, the manifests in every format
    configs = (("--attn", "flash_attention_2", "--dtype", "bfloat16"), ("--attn", "sdpa", "--dtype", "float16"),
               ("--attn", "eager", "--dtype", "float32"), ("--attn", "sdpa", "--quantize", "8bit"),
               ("--attn", "flash_attention_3", "--dtype", "bfloat16"), ("--attn", "flex_attention"), ())
    for model in SOME_MODELS:
        for env in SOME_ENVS:
            for flags in configs:
                add(Case(f"check/{_slug(model)}-{env}-{_slug(' '.join(flags)) or 'default'}.text",
                         ("check", model, *_env(env), *flags)))
    for env in SOME_ENVS:
        for flags in configs[:2]:
            for fmt in ("json", "markdown", "junit", "github"):
                add(Case(f"check/llama-8b-{env}-{_slug(' '.join(flags))}.{fmt}",
                         ("check", "meta-llama/Meta-Llama-3-8B", *_env(env), *flags, "--format", fmt),
                         github_summary=fmt == "github"))
    add(Case("check/config-file.text", ("check", "meta-llama/Llama-3.2-1B", *_env("t4_plain"),
                                        "--config", "<TMP>/config.json")))
    add(Case("check/config-file.json", ("check", "meta-llama/Llama-3.2-1B", *_env("h100_fa2_fa3_bnb"),
                                        "--config", "<TMP>/config.json", "--format", "json")))
    add(Case("check/no-model.text", ("check", *_env("t4_plain"))))
    for manifest in ("deploy", "deploy-failing"):
        for fmt in ("text", "json", "markdown", "junit", "github"):
            add(Case(f"check/manifest-{manifest}.{fmt}",
                     ("check", "--manifest", str(CI / f"{manifest}.yaml"), "--format", fmt),
                     github_summary=fmt == "github"))
    add(Case("check/manifest-deploy-output-file.junit",
             ("check", "--manifest", str(CI / "deploy.yaml"), "--format", "junit", "-o", "<TMP>/out.xml"),
             output_file=True))
    # matrix: the support table, a past release, a pattern, the full matrix, history, the fleet view
    for fmt in ("text", "json", "markdown", "html"):
        add(Case(f"matrix/table.{fmt}", ("matrix", "--format", fmt)))
        add(Case(f"matrix/table-4.40-llama.{fmt}", ("matrix", "--transformers", "4.40.2", "--model-type", "llama*",
                                                     "--format", fmt)))
        add(Case(f"matrix/full-llama.{fmt}", ("matrix", "--full", "--model-type", "llama", "--model-type", "gemma*",
                                              "--format", fmt)))
        add(Case(f"matrix/history-llama.{fmt}", ("matrix", "--history", "llama", "--format", fmt)))
        add(Case(f"matrix/fleet.{fmt}", ("matrix", "meta-llama/Llama-3.2-1B", "meta-llama/Meta-Llama-3-8B",
                                         "google-t5/t5-base", *_env("t4_plain"), *_env("a100_40gb_x2_bnb"),
                                         "--gpu", "H100", "--format", fmt)))
    add(Case("matrix/full.json", ("matrix", "--full", "--format", "json")))
    add(Case("matrix/full.text", ("matrix", "--full")))
    add(Case("matrix/table-5.0.text", ("matrix", "--transformers", "5.0.0")))
    for model_type in ("mistral", "t5", "gpt2", "whisper", "bert"):
        add(Case(f"matrix/history-{model_type}.text", ("matrix", "--history", model_type)))
    add(Case("matrix/fleet-all-models.text", ("matrix", *MODELS, *_env("t4_plain"), *_env("h100_fa2_fa3_bnb"),
                                              *_env("cpu_only"), "--batch", "2", "--seq-len", "2048")))
    add(Case("matrix/history-and-full.text", ("matrix", "--history", "llama", "--full")))
    # explain: every rule, and an unknown code
    from advisor.rules import RULES

    for rule in RULES:
        add(Case(f"explain/{rule.code}.text", ("explain", rule.code)))
    add(Case("explain/NOPE001.text", ("explain", "NOPE001")))
    # usage errors
    add(Case("usage/recommend-bad-dtype", ("recommend", "x", "--dtype", "float8")))
    add(Case("usage/no-command", ()))
    add(Case("usage/check-bad-format", ("check", "meta-llama/Llama-3.2-1B", "--format", "html")))
    # runs on the CPU with the tiny model (structure only: timings vary)
    add(Case("smoke/tiny.text", ("smoke", TINY, "--cpu", "--generate", "4"), timed=True))
    add(Case("smoke/tiny.json", ("smoke", TINY, "--cpu", "--generate", "4", "--format", "json"), timed=True))
    add(Case("smoke/tiny-config-eager.text", ("smoke", TINY, "--cpu", "--attn", "eager", "--dtype", "float32",
                                             "--generate", "2"), timed=True))
    for fmt in ("text", "json", "markdown"):
        add(Case(f"bench/tiny-sdpa-fp32.{fmt}", ("bench", TINY, "--cpu", "--attn", "sdpa", "--dtype", "float32",
                                                 "--repeats", "1", "--new-tokens", "4", "--seq-len", "8",
                                                 "--format", fmt), timed=True))
    for fmt in ("text", "json"):
        add(Case(f"tune/tiny.{fmt}", ("tune", TINY, "--budget-seconds", "600", "--no-measurements", "--format", fmt),
                 timed=True))
    return out


def normalise(text: str, timed: bool, tmp: Path | None = None, tiny: Path | None = None) -> str:
    """Drop what varies between machines, runs and days; keep everything a reader acts on."""
    if tiny is not None:
        text = text.replace(str(tiny), TINY)
    if tmp is not None:
        text = text.replace(str(tmp), "<TMP>")
    text = text.replace(str(ROOT), "<ROOT>")
    text = re.sub(r"/tmp/[A-Za-z0-9_./-]*", "<TMPPATH>", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}([T ][0-9:+.]+Z?)?", "DATE", text)
    # how long each manifest pair took (JSON "seconds", JUnit time="...")
    text = re.sub(r'(time=")[0-9.]+(")', r"\1T\2", text)
    text = re.sub(r'("seconds": )[0-9.]+', r"\1T", text)
    if timed:
        text = re.sub(r"[0-9#]*T\d{6}Z-[0-9a-f]{6}", "RUNID", text)  # a run's id: its time and a random tail
        # a decode too short to time (issue 31) is a figure like any other here: whether it is depends on the clock
        text = re.sub(r"[ \t]*too short = too short to time[^\n]*\n", "", text).replace("too short", "#")
        text = re.sub(r"(?<![A-Za-z_0-9.])-?\d+(\.\d+)?(e[-+]?\d+)?(?![0-9])", "#", text)
        text = re.sub(r"(best|winner): [^;\n\"]*", r"\1: #", text)
        text = re.sub(r"[ \t]*<- (advisor|best)[^\n]*", "", text)
        text = re.sub(r"[ \t]+", " ", text)
        text = _sort_runs(text)
    return text


def _sort_runs(text: str) -> str:
    """Rows of measured configurations come in the order of their timings: sort each run of such rows."""
    lines, out, run = text.split("\n"), [], []
    for line in lines + [""]:
        if " / " in line and not line.startswith(("Static", "Advisor", "Result")):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    return "\n".join(out[:-1])


def run_case(case: Case, tiny: Path) -> str:
    """`advisor ARGV` in-process with its own empty cache: exit code, stdout, stderr (and written files)."""
    from advisor.cli import main
    from advisor.io.environ import scoped_environ

    tmp = Path(tempfile.mkdtemp(prefix="advisor-golden-"))
    try:
        (tmp / "config.json").write_text(json.dumps({"attn_implementation": "sdpa", "dtype": "float16"}))
        summary = tmp / "summary.md"
        argv = [a.replace(TINY, str(tiny)).replace("<TMP>", str(tmp)) for a in case.argv]
        environ = {"ADVISOR_CACHE_DIR": str(tmp / "cache"), "COLUMNS": "100", **case.environ}
        if case.github_summary:
            environ["GITHUB_STEP_SUMMARY"] = str(summary)
        out, err = io.StringIO(), io.StringIO()
        with scoped_environ(environ), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: --help and usage errors
                code = int(exc.code or 0)
        stdout = out.getvalue()
        if case.timed and "--format" in argv and argv[argv.index("--format") + 1] == "json" and stdout:
            stdout = json.dumps(_skeleton(json.loads(stdout)), indent=1, sort_keys=True) + "\n"
        text = f"--- stdout\n{stdout}--- stderr\n{err.getvalue()}"
        if case.github_summary:
            text += "--- GITHUB_STEP_SUMMARY\n" + (summary.read_text() if summary.exists() else "(none)\n")
        if case.output_file:
            text += "--- -o file\n" + (tmp / "out.xml").read_text()
        return f"exit: {code}\n" + normalise(text, case.timed, tmp, tiny)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _skeleton(value: object) -> object:
    """A timed JSON report's structure: keys and strings kept, numbers zeroed, the measured best dropped."""
    if isinstance(value, dict):
        return {k: ("#" if k in ("best", "best_label", "winner", "speedup", "too_short") else
                    0 if k.endswith("_per_second") and v is None else _skeleton(v)) for k, v in value.items()}
    if isinstance(value, list):  # measured rows come in the order of their timings
        return sorted((_skeleton(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return 0
    if isinstance(value, str):
        return normalise(value, True)
    return value


def write_tiny_llama(folder: Path) -> Path:
    """The same 2-layer Llama as tests/conftest.py's tiny_llama, written by save_pretrained."""
    import importlib.util

    # by path, under its own name: in a full run `conftest` may already be tests/security/conftest.py
    spec = importlib.util.spec_from_file_location("advisor_golden_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    _save, _word_tokenizer = fixtures._save, fixtures._word_tokenizer

    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=1000, max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    folder.mkdir(parents=True, exist_ok=True)
    return _save(folder, transformers.LlamaForCausalLM(config), _word_tokenizer())


def golden_path(case: Case) -> Path:
    return OUTPUTS / f"{case.name}.txt"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    only = [a for a in argv if not a.startswith("--")]
    tiny_root = Path(tempfile.mkdtemp(prefix="advisor-golden-tiny-"))
    try:
        tiny = write_tiny_llama(tiny_root / "tiny")
        all_cases = cases()
        if not check and not only and OUTPUTS.exists():
            shutil.rmtree(OUTPUTS)
        differ = 0
        for case in all_cases:
            if only and not any(o in case.name for o in only):
                continue
            got = run_case(case, tiny)
            path = golden_path(case)
            if check:
                if not path.is_file() or path.read_text(encoding="utf-8") != got:
                    differ += 1
                    print("DIFFERS", case.name, flush=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(got, encoding="utf-8")
        print(f"{len(all_cases)} cases; {differ} differ" if check else f"{len(all_cases)} cases recorded")
        return 1 if differ else 0
    finally:
        shutil.rmtree(tiny_root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
