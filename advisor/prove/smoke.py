"""The smoke test: prove a plan by loading it, running it and comparing it with a float32 eager reference.

Each configuration runs in its own child (`advisor.prove.smoke_worker`) under a timeout, so a segfault, a CUDA
error, an OOM or a hang becomes a failed attempt with its cause, and the device memory is released
before the next one. On failure the next candidate of the plan is tried (or every one with
`all_candidates`); the report lists every attempt. The parent never imports torch for the test itself:
checkpoint validation reads the safetensors headers with the standard library.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from advisor.candidate import Candidate
from advisor.errors import AdvisorError, NoViablePlanError, SmokeTestError, UsageError
from advisor.facts import SCHEMA_VERSION, Environment
from advisor.findings import Rejection
from advisor.io.rundir import temp_dir
from advisor.isolation.child import Trial, run_child
from advisor.model.remote_code import child_kwargs, refuse_code_keys
from advisor.model.spec import WEIGHT_FILES, ModelSpec
from advisor.model.towers import not_exercised
from advisor.plan.recommend import auto_class_name
from advisor.prove.diagnosis import SmokeDiagnosis, diagnose
from advisor.prove.smoke_worker import TOLERANCES, has_tokenizer

WORKER = "advisor.prove.smoke_worker"

if TYPE_CHECKING:  # the planner and the prober are imported only where they are used
    from advisor.plan.options import PlanOption, PlanRequest, Recommendation
    from advisor.probe.target import TargetSpec

__all__ = [
    "Attempt",
    "SmokeReport",
    "SmokeFailedError",
    "LoadResult",
    "run_smoke",
    "load",
    "validate_checkpoint",
    "normalize_options",
    "options_from_json",
    "plan_options",
]

OptionLike = Any  # PlanOption | Mapping (a PlanOption dump or bare from_pretrained JSON) | (Candidate | str, Mapping)

_SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "U16": 2, "I16": 2, "F16": 2,
    "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}


class Attempt(Trial):
    """One configuration tried in a child: what was passed, whether it worked, and what it measured."""

    latency_ms: float | None = None
    tokens_per_second: float | None = None
    generated_tokens: int | None = None
    peak_memory_bytes: int | None = None
    host_rss_bytes: int | None = None
    max_abs_diff: float | None = None
    max_abs_diff_tolerance: float | None = None
    cosine: float | None = None  # issue 12: mean cosine similarity of the outputs against the fp32 reference
    top1_agreement: float | None = None  # issue 12: share of positions whose argmax matches the reference
    dequantized_cosine: float | None = None  # quantized: against its own weights dequantized (what is judged)
    dequantized_top1_agreement: float | None = None
    device: str | None = None
    quantization: dict[str, Any] | None = None  # advisor.prove.quant_proof.count_quantized after a quantized load


class SmokeReport(BaseModel):
    """Every attempt, and the first configuration that passed (`config`, from_pretrained JSON kwargs)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ok: bool
    model: str
    reference: str
    config: dict[str, Any] | None
    attempts: list[Attempt]
    rejected: list[Rejection] = Field(
        default_factory=list, description="Options the plan rejected before any load, with rule and reason."
    )

    @field_serializer("rejected")
    def _three_keys(self, rejected: list[Rejection]) -> list[dict[str, Any]]:
        """The smoke JSON has always named an option, its rule and the reason only."""
        return [r.model_dump(include={"option", "code", "message"}) for r in rejected]
    tolerances: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: {"atol": a, "rtol": r} for k, (a, r) in TOLERANCES.items()}
    )
    ranks: list[dict[str, Any]] | None = Field(
        default=None, description="smoke --tp (issue 30): each rank's outcome and peak RSS beside the per-rank plan "
                                  "(advisor/prove/tp_smoke.py RankResult).")
    not_exercised: list[str] = Field(default_factory=list, description="Parts of the model the run did not "
                                     "exercise (a multimodal model's vision tower on token ids), said plainly.")
    diagnosis: SmokeDiagnosis | None = Field(
        default=None, description="The one error every attempt failed with, when it is not the configurations' "
                                  "fault (issue 24): its scope, cause and fix, and the candidates left untried.")

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


class SmokeFailedError(AdvisorError):
    """Every configuration tried failed; carries the report with each cause."""

    exit_code = 1

    def __init__(self, report: SmokeReport) -> None:
        self.report = report
        d = report.diagnosis
        if d is not None:
            skipped = f", {len(d.not_tried)} more not tried" if d.not_tried else ""
            super().__init__(
                f"no configuration passed the smoke test of {report.model}: {d.scope}-level failure, the same for "
                f"{len(d.attempts)} configuration{'s' if len(d.attempts) != 1 else ''}{skipped}: {d.error}. "
                f"Cause: {d.cause}. Fix: {d.fix}" + (f" ({d.code})" if d.code else ""))
            return
        causes = "; ".join(f"{a.label}: {a.error}" for a in report.attempts[:3])
        more = f" (and {len(report.attempts) - 3} more)" if len(report.attempts) > 3 else ""
        super().__init__(f"no configuration passed the smoke test of {report.model}: {causes}{more}")


class LoadResult(NamedTuple):
    model: Any
    tokenizer: Any | None
    report: SmokeReport


# ------------------------------------------------------------------------------------ validation


def _corrupt(path: Path, reason: str) -> SmokeTestError:
    return SmokeTestError(f"{path} is corrupt or truncated: {reason}; re-save or re-download it")


def _check_safetensors(path: Path) -> None:
    """What safetensors' safe_open validates (header length, JSON, offsets covering the file), without torch."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _corrupt(path, f"{size} bytes, too small for a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 * 1024 * 1024:
                raise _corrupt(path, f"the header claims {n} bytes but the file holds {size}")
            raw = f.read(n)
    except OSError as exc:
        raise SmokeTestError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, f"its header is not valid JSON ({type(exc).__name__})") from None
    except RecursionError:  # issue 25: a header of nested arrays gave exit 3
        raise _corrupt(path, "its header nests JSON too deep to be a tensor table") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(x) for x in info["data_offsets"])
            count = math.prod(int(d) for d in info["shape"])
            width = _SAFETENSORS_DTYPE_BYTES.get(str(info["dtype"]))
        except (KeyError, TypeError, ValueError):
            raise _corrupt(path, f"tensor {name!r} has a malformed header entry") from None
        if end < begin or (width is not None and (end - begin) != count * width):
            raise _corrupt(path, f"tensor {name!r} has inconsistent offsets")
        spans.append((begin, end))
    data = size - 8 - n
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise _corrupt(path, "its tensors do not tile the data section")
        position = end
    if position != data:
        raise _corrupt(path, f"the header promises {position} bytes of tensor data but the file holds {data}")


def _check_bin(path: Path) -> None:
    """A torch.save zip must have its central directory (the last bytes): a cheap truncation check."""
    try:
        with path.open("rb") as f:
            magic = f.read(2)
        if magic != b"PK":
            return  # legacy pickle format: nothing cheap to check
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except zipfile.BadZipFile as exc:
        raise _corrupt(path, f"not a complete torch zip archive ({exc})") from None
    except OSError as exc:
        raise SmokeTestError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_index(path: Path) -> None:
    from advisor.errors import InputFileError
    from advisor.io.read_input import read_json_file

    try:  # issue 25: read like a config (regular file, size cap, depth limit): deep nesting gave exit 3
        index = read_json_file(path, what="weight index")
        shards = sorted(set(index["weight_map"].values()))
    except InputFileError as exc:
        raise _corrupt(path, f"not a valid weight index ({exc.problem})") from None
    except (KeyError, TypeError, AttributeError):
        raise _corrupt(path, "not a valid weight index (JSON with a weight_map)") from None
    if not all(isinstance(s, str) and s and "/" not in s and s not in (".", "..") for s in shards):
        raise _corrupt(path, "its weight_map names a shard that is not a file name in this folder")
    for shard in shards:
        shard_path = path.parent / shard
        if not shard_path.is_file():
            raise SmokeTestError(f"{path} lists shard {shard}, which is missing; re-download the model")
        (_check_safetensors if shard.endswith(".safetensors") else _check_bin)(shard_path)


def validate_checkpoint(model: ModelSpec) -> None:
    """Refuse, in one line, what cannot be smoke-tested: no local folder, no weights, a damaged weight file.

    Only the file transformers would load is checked (safetensors first, as from_pretrained prefers it).
    """
    if model.path is None or not Path(model.path).is_dir():
        raise SmokeTestError(
            f"{model.name} is not a local model folder ({model.source}): the smoke test needs the weights; "
            "download them (e.g. `hf download MODEL --local-dir DIR`) and pass the folder"
        )
    folder = Path(model.path)
    if not model.has_weights:
        raise SmokeTestError(
            f"{folder} has no weights (none of {', '.join(WEIGHT_FILES)}); save the model with "
            "save_pretrained or download its weights into that folder"
        )
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            _check_index(path)
        elif name.endswith(".safetensors"):
            _check_safetensors(path)
        else:
            _check_bin(path)
        return


# ------------------------------------------------------------------------------------ options


def _describe(kwargs: Mapping[str, Any]) -> str:
    attn = kwargs.get("attn_implementation") or "default attention"
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype", "auto"))
    quant = kwargs.get("quantization_config")
    bits = ""
    if isinstance(quant, Mapping):
        bits = " + bnb 4bit" if quant.get("load_in_4bit") else " + bnb 8bit" if quant.get("load_in_8bit") else ""
        if not bits and quant.get("quant_method"):
            from advisor.plan.emit import quantization_of

            bits = f" + {quantization_of(kwargs)}"
    where = kwargs.get("device_map") or "CPU"
    return f"{attn} / {dtype}{bits} / {where}"


def normalize_options(options: Iterable[OptionLike]) -> list[tuple[str, dict[str, Any]]]:
    """(label, from_pretrained JSON kwargs) from PlanOptions, their dumps, bare kwargs or (Candidate, kwargs)."""
    from advisor.plan.options import PlanOption

    trials: list[tuple[str, dict[str, Any]]] = []
    for option in options:
        if isinstance(option, PlanOption):
            label, kwargs = option.label, dict(option.from_pretrained)
        elif isinstance(option, tuple) and len(option) == 2:
            first, raw = option
            kwargs = dict(raw)
            label = first.label() if isinstance(first, Candidate) else str(first)
        elif isinstance(option, Mapping):
            if isinstance(option.get("from_pretrained"), Mapping):
                kwargs = dict(option["from_pretrained"])
                label = str(option.get("label") or _describe(kwargs))
            else:
                kwargs = dict(option)
                label = _describe(kwargs)
        else:
            raise UsageError(f"cannot smoke-test {option!r}: expected a plan option or from_pretrained kwargs")
        refuse_code_keys(kwargs, source=f"the from_pretrained kwargs of {label}")  # issue 15: only the flag
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError):
            raise UsageError(f"the from_pretrained kwargs of {label} are not JSON (pass dtype names as strings)") from None
        trials.append((label, kwargs))
    return trials


def options_from_json(data: Any, *, source: str = "the --config file") -> list[dict[str, Any]]:
    """Options from a --config file: a plan (`chosen` + `alternatives`), a smoke report (`config`),
    a list of options, one option, or bare from_pretrained kwargs. A code key anywhere is refused (issue 15)."""
    refuse_code_keys(data, source=source)
    if isinstance(data, list):
        return [o for item in data for o in options_from_json(item)]
    if not isinstance(data, dict):
        raise UsageError("a --config file must hold a JSON object (from_pretrained kwargs, a plan or a report)")
    if "chosen" in data and "alternatives" in data:
        return [o for o in [data.get("chosen"), *(data.get("alternatives") or [])] if isinstance(o, dict)]
    if "attempts" in data and "config" in data:
        if not isinstance(data["config"], dict):
            raise UsageError("this smoke report has no passing config to re-test")
        return [{"from_pretrained": data["config"]}]
    return [data]


def plan_options(plan: Recommendation) -> list[PlanOption]:
    """The plan's candidates in its order: the chosen one first, then the ranked alternatives."""
    return ([plan.chosen] if plan.chosen is not None else []) + list(plan.alternatives)


# ------------------------------------------------------------------------------------ children


# ------------------------------------------------------------------------------------ the run


def _reference_kwargs(trials: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """float32 + eager, spelled like the candidates; spread over GPUs and RAM when they run on a GPU."""
    key = "torch_dtype" if any("torch_dtype" in kw for _, kw in trials) else "dtype"
    kwargs: dict[str, Any] = {key: "float32", "attn_implementation": "eager"}
    if any(kw.get("device_map") for _, kw in trials):
        kwargs["device_map"] = "auto"
    if any("use_kernels" in kw for _, kw in trials) or _reads_use_kernels():
        kwargs["use_kernels"] = False  # issue 24: the reference keeps torch's own layers, and needs no Hub kernel
    return kwargs


def _reads_use_kernels() -> bool:
    """Whether the installed transformers' from_pretrained reads `use_kernels` (4.53 on; before, the keyword
    would reach the model's __init__ and raise TypeError)."""
    from advisor.knowledge.installed import installed_version
    from advisor.knowledge.releases import load_release_constraints

    version = installed_version()
    run = load_release_constraints().at("use_kernels_default", version) if version else None
    return run is not None and run.value is not None


def _attempt(label: str, kwargs: dict[str, Any], result: Mapping[str, Any]) -> Attempt:
    fields = {k: result.get(k) for k in Attempt.model_fields if k not in ("label", "from_pretrained", "ok", "error")}
    return Attempt(label=label, from_pretrained=kwargs, ok=bool(result.get("ok")), error=result.get("error"), **fields)


def run_smoke(
    model: ModelSpec,
    options: Iterable[OptionLike],
    *,
    all_candidates: bool = False,
    generate_tokens: int = 8,
    timeout: float = 300,
    batch: int = 2,
    seq_len: int = 16,
    compare: bool = True,
) -> SmokeReport:
    """Try each option in a child, in order, until one passes (or all of them with `all_candidates`).

    The float32 eager reference runs once, in its own child, under the same timeout; if it fails (say,
    float32 does not fit), the attempts still run and the report says their outputs were not compared.
    """
    validate_checkpoint(model)
    trials = normalize_options(options)
    if not trials:
        raise SmokeTestError(f"no configuration to smoke-test for {model.name}")
    if batch < 1 or seq_len < 2 or generate_tokens < 0 or timeout <= 0:
        raise UsageError("the smoke test needs batch >= 1, seq_len >= 2, generate >= 0 and timeout > 0")
    auto_class = auto_class_name(model)
    if auto_class == "AutoModelForSpeechSeq2Seq":
        raise SmokeTestError(f"{model.name} takes audio features; the smoke test only feeds token ids")
    base: dict[str, Any] = {
        "path": model.path,
        "auto_class": auto_class,
        "architecture": model.architecture,
        "generative": model.generative,
        "is_encoder_decoder": model.is_encoder_decoder,
        "trust_remote_code": model.trust_remote_code,
        "batch": batch,
        "seq_len": seq_len,
        "generate_tokens": generate_tokens,
    }
    attempts: list[Attempt] = []
    reference_error: str | None = None
    diagnosis: SmokeDiagnosis | None = None
    with temp_dir("smoke-") as tmp:  # inside this run's folder, swept by the next run after a SIGKILL
        reference_file: str | None = None
        reference = "not computed (comparison turned off); outputs were not compared"
        if compare:
            ref_kwargs = _reference_kwargs(trials)
            wanted = str(Path(tmp) / "reference.pt")
            ref_request = {**base, "role": "reference", "from_pretrained": ref_kwargs, "reference_file": wanted}
            result = run_child(WORKER, ref_request, timeout)
            if result.get("ok"):
                reference_file = wanted
                reference = f"float32 / eager on {result.get('device')}; inputs: {result.get('inputs')}"
            else:
                reference_error = str(result.get("error"))
                reference = f"float32 / eager reference failed ({result.get('error')}); outputs were not compared"
        for index, (label, kwargs) in enumerate(trials):
            request = {**base, "role": "attempt", "index": index, "from_pretrained": kwargs,
                       "reference_file": reference_file}
            result = run_child(WORKER, request, timeout)
            if reference_file is None and result.get("inputs") and "inputs:" not in reference:
                reference += f"; inputs: {result['inputs']}"
            attempts.append(_attempt(label, kwargs, result))
            if attempts[-1].ok and not all_candidates:
                break
            if len(attempts) == 2 and not all_candidates:
                # issue 24: two configurations failing alike is not their fault; the others would fail too
                diagnosis = diagnose(attempts, not_tried=[t[0] for t in trials[2:]], reference_error=reference_error)
                if diagnosis is not None:
                    break
    passed = next((a for a in attempts if a.ok), None)
    if passed is None and diagnosis is None:
        diagnosis = diagnose(attempts, reference_error=reference_error)
    return SmokeReport(
        ok=passed is not None,
        model=model.display,
        reference=reference,
        config=dict(passed.from_pretrained) if passed else None,
        attempts=attempts,
        not_exercised=not_exercised(model),
        diagnosis=diagnosis,
    )


# ------------------------------------------------------------------------------------ load()


def _load_here(model: ModelSpec, config: dict[str, Any]) -> tuple[Any, Any | None]:
    """Load the passing configuration in this process, and the tokenizer when the folder has one."""
    import transformers

    from advisor.plan.emit import to_kwargs

    kwargs = to_kwargs(child_kwargs(config, trust_remote_code=model.trust_remote_code))
    loaded = getattr(transformers, auto_class_name(model)).from_pretrained(model.path, **kwargs)
    loaded.eval()
    tokenizer = None
    if has_tokenizer(str(model.path)):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(model.path, trust_remote_code=model.trust_remote_code)
        except Exception:
            tokenizer = None
    if tokenizer is not None and model.generative and not model.is_encoder_decoder:
        tokenizer.padding_side = "left"  # batched generation with a decoder-only model needs left padding
    return loaded, tokenizer


def load(
    model: str | os.PathLike[str] | ModelSpec,
    *,
    env: Environment | TargetSpec | None = None,
    request: PlanRequest | None = None,
    cpu: bool = False,
    timeout: float = 300,
    generate_tokens: int = 8,
    batch: int = 2,
    seq_len: int = 16,
    compare: bool = True,
    trust_remote_code: bool = False,
) -> LoadResult:
    """Plan, smoke-test the plan's candidates in children (falling back in order), then load the first
    that passed here. `env` is an Environment or a TargetSpec; by default this machine (or `cpu`)."""
    from advisor.model.resolve import resolve_model
    from advisor.plan.recommend import make_plan
    from advisor.probe.target import TargetSpec, resolve_target

    if env is not None and cpu:
        raise UsageError("pass env or cpu=True, not both")
    spec = model if isinstance(model, ModelSpec) else resolve_model(str(model), trust_remote_code=trust_remote_code)
    validate_checkpoint(spec)
    if isinstance(env, Environment):
        environment = env
    else:
        environment = resolve_target(env if isinstance(env, TargetSpec) else TargetSpec(cpu=cpu))
    plan = make_plan(spec, environment, request)
    if not plan.ok:
        raise NoViablePlanError([
            r.as_finding() for r in plan.rejected
        ])
    report = run_smoke(
        spec, plan_options(plan), all_candidates=False, generate_tokens=generate_tokens, timeout=timeout,
        batch=batch, seq_len=seq_len, compare=compare,
    )
    if not report.ok or report.config is None:
        raise SmokeFailedError(report)
    loaded, tokenizer = _load_here(spec, report.config)
    return LoadResult(loaded, tokenizer, report)
