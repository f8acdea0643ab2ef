"""Wall time of the advisor's commands against `python -m torch.utils.collect_env`, cold processes (issue 14).

Usage: python benchmarks/advisor_cost.py [--repeats 3] [--json OUT] [--root DIR]
Every command runs in a fresh interpreter; repeats go round-robin over the commands so a load change on
the machine hits them alike; the median of the repeats is reported with its ratio to collect_env.
`--root DIR` times another checkout of the advisor (e.g. the code before issue 14) with the same commands.

Each command gets its own analysis cache ($ADVISOR_CACHE_DIR):
- "empty cache": a fresh, empty folder for every run (what a first run on this machine costs);
- "seen before": one untimed run first fills it, then every timed run reads it.
The "new config" is the shipped Llama-3-8B config with one field changed per run (a config never seen: a
relative of a shipped model with another vocabulary, counted by that model's formula, advisor.model.param_formula),
written to a model folder. The "new structure" also sets `attention_bias: true` (bias parameters the formula
never saw), so it is built on the meta device: importing torch and transformers. Targets (issues 14 and 27):
recommend/check on a shipped model or a config seen before (also at a new length) <= 0.3x, the first run on a
new config or a new structure <= 1.0x, doctor without a model <= 1.0x on an empty cache and <= 0.3x seen before.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SHIPPED = "meta-llama/Meta-Llama-3-8B"
COLLECT_ENV = "torch.utils.collect_env"
CPU_SECONDS: list[float] = []  # user + system seconds of each timed command and what it waited for

# name -> (advisor argv, cache mode, target ratio or None)
COMMANDS: dict[str, tuple[list[str], str, float | None]] = {
    "recommend shipped Llama-3-8B (empty cache)": (["recommend", SHIPPED, "--format", "json"], "empty", 0.3),
    "check shipped Llama-3-8B (empty cache)": (["check", SHIPPED, "--dtype", "bfloat16", "--format", "json"], "empty", 0.3),
    "recommend config seen before": (["recommend", "{seen}", "--format", "json"], "seen", 0.3),
    "check config seen before": (["check", "{seen}", "--dtype", "bfloat16", "--format", "json"], "seen", 0.3),
    "recommend new config (first run)": (["recommend", "{new}", "--format", "json"], "empty", 1.0),
    "recommend new structure (first run)": (["recommend", "{newstruct}", "--format", "json"], "empty", 1.0),
    # issue 27: a new shape of a config seen before is served by its memory formula (no torch) where one holds
    "recommend config seen before, new length": (["recommend", "{seen}", "--seq-len", "{seq}", "--format", "json"],
                                                 "seen", 0.3),
    "doctor, no model (seen before)": (["doctor", "--format", "json"], "seen", 0.3),
    "doctor, no model (empty cache)": (["doctor", "--format", "json"], "empty", 1.0),
}


def _config(root: Path) -> dict[str, object]:
    for base in (root / "data" / "models", root / "advisor" / "data" / "models"):
        path = base / "meta-llama--Meta-Llama-3-8B.json"
        if path.is_file():
            return dict(json.loads(path.read_text())["config"])
    raise SystemExit(f"no shipped Llama-3-8B config under {root}")


def _model_folder(parent: Path, config: dict[str, object], salt: int, **extra: object) -> Path:
    """A model folder (config.json only) whose content no cache has seen: the vocabulary grows by `salt`."""
    folder = Path(tempfile.mkdtemp(prefix="model-", dir=parent))
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": int(config["vocab_size"]) + salt, **extra}))  # type: ignore[call-overload]
    return folder


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """The command's wall time to its answer; then, untimed, the wait for the work it left behind (issue 27:
    the memory formulas fitted by a detached advisor.estimate.fit_worker), so no command is timed beside it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1) or "Traceback (most recent call last)" in done.stderr:  # exit 1 is a verdict
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-500:]}")
    _wait_for_background(env.get("ADVISOR_CACHE_DIR"))
    return elapsed


def _wait_for_background(cache: str | None, limit: float = 600.0) -> None:
    """Until no fit worker writing to `cache` is alive (read from /proc; Linux only, else no wait)."""
    if not cache:
        return
    marker = f"ADVISOR_CACHE_DIR={cache}".encode()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = False
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if b"advisor.estimate.fit_worker" in (proc / "cmdline").read_bytes() and \
                        marker in (proc / "environ").read_bytes().split(b"\0"):
                    alive = True
                    break
            except OSError:
                continue
        if not alive:
            return
        time.sleep(0.5)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _gpu_names() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--root", type=Path, default=HERE, help="the advisor checkout to time (default: this one)")
    args = parser.parse_args()
    load_at_start = list(os.getloadavg())
    root = args.root.resolve()
    # bytecode as `pip install` leaves it: torch's and transformers' modules have theirs, so the advisor's must
    # too, or every run times Python compiling the advisor (0.2 s, more than half a warm run; a shell with
    # PYTHONDONTWRITEBYTECODE=1 never writes it)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "advisor")], check=True,
                   stdout=subprocess.DEVNULL)
    config = _config(root)
    work = Path(tempfile.mkdtemp(prefix="advisor-cost-"))
    inherited = os.environ.get("PYTHONPATH")  # e.g. the wheels carried to the device machine (docs/gpu)
    base_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *([inherited] if inherited else [])])}
    base_env.pop("ADVISOR_NO_CACHE", None)
    seen_model = _model_folder(work, config, 1)
    seen_cache = work / "seen-cache"
    salt = 1000

    def argv_for(name: str) -> list[str]:
        nonlocal salt
        salt += 1
        fill = {"{seen}": str(seen_model), "{new}": str(_model_folder(work, config, salt)), "{seq}": str(1000 + salt),
                "{newstruct}": str(_model_folder(work, config, salt, attention_bias=True))}
        return [sys.executable, "-m", "advisor", *(fill.get(a, a) for a in COMMANDS[name][0])]

    def env_for(mode: str) -> dict[str, str]:
        cache = seen_cache if mode == "seen" else Path(tempfile.mkdtemp(prefix="cache-", dir=work))
        return {**base_env, "ADVISOR_CACHE_DIR": str(cache)}

    for name, (_, mode, _) in COMMANDS.items():  # fill the "seen before" cache: untimed
        if mode == "seen":
            _timed(argv_for(name), root, env_for(mode))
    runs: dict[str, list[float]] = {name: [] for name in [COLLECT_ENV, *COMMANDS]}
    cpu: dict[str, list[float]] = {name: [] for name in runs}  # CPU seconds: steadier than wall on a shared box

    def summarise(final: bool) -> None:
        """Medians so far; written after every round, so a run cut short still leaves its rounds."""
        medians = {name: statistics.median(times) for name, times in runs.items()}
        base = medians[COLLECT_ENV]
        ratios = {name: median / base for name, median in medians.items()}
        targets = {
            name: {"ratio": round(ratios[name], 3), "at_most": target, "met": ratios[name] <= target}
            for name, (_, _, target) in COMMANDS.items() if target is not None
        }
        for name, median in (medians.items() if final else ()):
            target = COMMANDS[name][2] if name in COMMANDS else None
            verdict = "" if target is None else f"  target <= {target}: {'met' if ratios[name] <= target else 'NOT met'}"
            cpu_ratio = statistics.median(cpu[name]) / statistics.median(cpu[COLLECT_ENV])
            print(f"{name:<46} median {median:6.2f} s  ratio {ratios[name]:5.2f} (CPU {cpu_ratio:4.2f}){verdict}  runs "
                  f"{[round(t, 2) for t in runs[name]]}")
        result = {
            "what": "advisor commands vs python -m torch.utils.collect_env, cold processes, median of repeats",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "root": str(root),
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "gpus": _gpu_names(), "load_average_at_start": load_at_start,
                        "load_average_at_end": list(os.getloadavg()),
                        "torch": _version("torch"), "transformers": _version("transformers")},
            "repeats": len(runs[COLLECT_ENV]),
            "runs_s": runs,
            "median_s": medians,
            "cpu_s": cpu,
            "cpu_ratio_to_collect_env": {name: statistics.median(c) / statistics.median(cpu[COLLECT_ENV])
                                         for name, c in cpu.items() if c},
            "ratio_to_collect_env": ratios,
            "targets": targets,
        }
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")

    for done in range(1, args.repeats + 1):
        runs[COLLECT_ENV].append(_timed([sys.executable, "-m", COLLECT_ENV], root, base_env))
        cpu[COLLECT_ENV].append(CPU_SECONDS[-1])
        for name, (_, mode, _) in COMMANDS.items():
            runs[name].append(_timed(argv_for(name), root, env_for(mode)))
            cpu[name].append(CPU_SECONDS[-1])
        summarise(final=done == args.repeats)


if __name__ == "__main__":
    main()
