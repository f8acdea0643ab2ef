"""A transformers release's quantizers, executed under a target's conditions (issue 28: execute, do not read).

Why: data/quant_methods.json was read from one release's quantizer files and applied to every release, so a
requirement or a fallback of another release (which GPTQ backend 4.57.6 accepts, where FP8 or MXFP4 dequantize to
bf16 instead of refusing) was wrong there. This worker runs, in a child whose importable transformers is the
release under test (`scripts/generate_quantizer_acceptance.py` installs it into a throwaway folder), what
`from_pretrained` runs for a `quantization_config` before any weight is read:

- a pre-quantized checkpoint (GPTQ, AWQ, fine-grained FP8, MXFP4, compressed-tensors): the dict on the config, then
  the release's `get_hf_quantizer` where it has one (`supports_quant_method`, `merge_quantization_configs`,
  `AutoHfQuantizer.from_config(..., pre_quantized=True)`, `validate_environment`), else those steps as its
  `from_pretrained` makes them; an on-the-fly config (bitsandbytes, torchao, HQQ, quanto, FBGEMM FP8) the same way
  with `pre_quantized=False`;
- then `update_dtype` (`update_torch_dtype` before 4.56) for a requested bfloat16 and for none.

The target's conditions are FAKED, the rest is the release's own code: CUDA present or not and its compute
capability (`torch.cuda.is_available`, `get_device_capability`, `device_count`, `torch.accelerator`), and each
package present or absent (the release's own `is_<package>_available` replaced, in every loaded transformers
module, by an answer for the condition that honours a minimum-version argument; `importlib.metadata` answers the
stub version for a present package and PackageNotFoundError for an absent one; a present package that is not
installed here is an importable permissive stub). That is the acceptance generator's method for the flash
packages. A failure raised inside a stub (not in transformers' code) leaves the case undecided.

Verdicts per case: "accepted", "refused" (exception type and first line, and the release's file:line that raised),
"dequantizes" (the quantizer set `quantization_config.dequantize`, with the warning), "undecided"; plus the dtype
`update_dtype` returns and every warning logged.

    python -m advisor.knowledge.quantizer_run > rows.json
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import inspect
import json
import logging
import sys
import traceback
import types
import warnings
from pathlib import Path
from typing import Any

__all__ = ["CASES", "DEVICES", "METHODS", "STUB_VERSIONS", "run_all"]

# Versions a present package answers with: at or above every minimum a stored release asks for (5.25.0's
# import_utils.py *_MIN_VERSION, quantizer_gptq.py MIN_GPTQ_VERSION, quantizer_awq.py gptqmodel >= 5.0.0).
STUB_VERSIONS = {
    "optimum": "1.27.0", "auto-gptq": "0.7.1", "gptqmodel": "5.6.0", "autoawq": "0.2.9", "accelerate": "1.16.0",
    "bitsandbytes": "0.48.2", "torchao": "0.15.0", "hqq": "0.2.8", "optimum-quanto": "0.2.7",
    "fbgemm-gpu": "1.4.0", "compressed-tensors": "0.15.0", "triton": "3.5.0", "kernels": "0.19.1",
}
# The release's availability functions per package (the ones a quantizer calls).
AVAILABILITY = {
    "optimum": ("is_optimum_available",), "auto-gptq": ("is_auto_gptq_available",),
    "gptqmodel": ("is_gptqmodel_available",), "autoawq": ("is_auto_awq_available",),
    "accelerate": ("is_accelerate_available",), "bitsandbytes": ("is_bitsandbytes_available",),
    "torchao": ("is_torchao_available",), "hqq": ("is_hqq_available",),
    "optimum-quanto": ("is_optimum_quanto_available", "is_quanto_available"),
    "fbgemm-gpu": ("is_fbgemm_gpu_available",), "compressed-tensors": ("is_compressed_tensors_available",),
    "triton": ("is_triton_available",), "kernels": ("is_kernels_available",),
}
# Importable names of packages that are stubbed when present and not installed here.
MODULES = {
    "optimum": ("optimum.gptq",), "auto-gptq": ("auto_gptq",), "gptqmodel": ("gptqmodel",), "autoawq": ("awq",),
    "bitsandbytes": ("bitsandbytes",), "torchao": ("torchao",), "hqq": ("hqq",), "fbgemm-gpu": ("fbgemm_gpu",),
    "compressed-tensors": ("compressed_tensors",), "triton": ("triton",),
}

# Each method: how it reaches from_pretrained (a checkpoint's config.json dict, or a config a user passes), and
# the packages any stored release's quantizer asks about (the conditions vary each).
METHODS: dict[str, dict[str, Any]] = {
    "gptq": {"pre_quantized": True, "packages": ["optimum", "auto-gptq", "gptqmodel"],
             "config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True,
                        "damp_percent": 0.01, "true_sequential": True, "model_file_base_name": "model"}},
    "awq": {"pre_quantized": True, "packages": ["autoawq", "gptqmodel", "accelerate"],
            "config": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}},
    "fp8": {"pre_quantized": True, "packages": ["accelerate", "kernels"],
            "config": {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3",
                       "weight_block_size": [128, 128]}},
    "mxfp4": {"pre_quantized": True, "packages": ["accelerate", "triton", "kernels"],
              "config": {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn",
                                                                            "model.layers.*.mlp.router",
                                                                            "model.embed_tokens", "lm_head"]}},
    "compressed_tensors": {"pre_quantized": True, "packages": ["compressed-tensors"],
                           "config": {"quant_method": "compressed-tensors", "format": "float-quantized",
                                      "quantization_status": "compressed", "ignore": ["lm_head"],
                                      "config_groups": {"group_0": {
                                          "targets": ["Linear"],
                                          "weights": {"num_bits": 8, "type": "float", "strategy": "channel",
                                                      "symmetric": True, "dynamic": False},
                                          "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                                                                "symmetric": True, "dynamic": True}}}}},
    "bitsandbytes": {"pre_quantized": False, "packages": ["bitsandbytes", "accelerate"],
                     # the device check of 5.x asks the bitsandbytes library itself (stubbed here):
                     # data/bitsandbytes.json holds those facts, so a refusal from there is undecided
                     "library_checks": ["integrations/bitsandbytes.py"],
                     "config": {"quant_method": "bitsandbytes", "load_in_4bit": True,
                                "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16"}},
    "torchao": {"pre_quantized": False, "packages": ["torchao", "accelerate"],
                "config": {"quant_method": "torchao", "quant_type": "int8_weight_only"},
                "alternatives": [{"quant_method": "torchao", "quant_type": {"default": {
                    "_type": "Int8WeightOnlyConfig", "_version": 1, "_data": {}}}}]},
    "hqq": {"pre_quantized": False, "packages": ["hqq"],
            "config": {"quant_method": "hqq", "quant_config": {"weight_quant_params": {
                "nbits": 4, "channel_wise": True, "group_size": 64, "optimize": True, "round_zero": True, "axis": 1,
                "view_as_float": False}, "scale_quant_params": None, "zero_quant_params": None,
                "offload_meta": False}, "skip_modules": ["lm_head"]},
            "alternatives": [{"quant_method": "hqq", "nbits": 4, "group_size": 64}]},
    "quanto": {"pre_quantized": False, "packages": ["optimum-quanto", "accelerate"],
               "config": {"quant_method": "quanto", "weights": "int8"}},
    "fbgemm_fp8": {"pre_quantized": False, "packages": ["fbgemm-gpu", "accelerate", "kernels"],
                   "config": {"quant_method": "fbgemm_fp8"}},
}
# No CUDA, then compute capabilities from Pascal to Blackwell: every threshold a stored quantizer compares against
# (7.5 MXFP4, 8.0, 8.9 FP8 and compressed-tensors' FP8, 9.0 FBGEMM) is one of them, so a GPU between two of them
# gets the verdict of the one below it exactly.
DEVICES = ("cpu", "6.0", "7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0")


def CASES(method: str) -> list[tuple[str, tuple[str, ...]]]:  # noqa: N802  (a table, computed)
    """(device, absent packages) per case: every subset of the method's packages absent, on every device."""
    import itertools

    packages = METHODS[method]["packages"]
    absents = [combo for n in range(len(packages) + 1) for combo in itertools.combinations(packages, n)]
    return [(device, absent) for device in DEVICES for absent in absents]


class _Anything:
    """What a stub package hands out: callable, any attribute, usable as a base class or a context manager."""

    __version__ = "0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()

    def __iter__(self) -> Any:
        return iter(())

    def __enter__(self) -> _Anything:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __mro_entries__(self, bases: Any) -> tuple[type, ...]:
        return (_Anything,)


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports of a stubbed package (and any sub-module) give a permissive module; a package made absent by the
    case raises ImportError."""

    def __init__(self) -> None:
        self.present: set[str] = set()  # importable roots stubbed now
        self.absent: set[str] = set()  # importable roots hidden now

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        for root in self.absent:
            if fullname == root or fullname.startswith(root + "."):
                raise ImportError(f"No module named {fullname!r} (absent in this case)")
        for root in self.present:
            if fullname == root or fullname.startswith(root + "."):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        dist = next((d for d, roots in MODULES.items() if any(spec.name.startswith(r.split(".")[0]) for r in roots)),
                    None)
        module.__version__ = STUB_VERSIONS.get(dist or "", "0")
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


_FINDER = _StubFinder()
_STATE: dict[str, Any] = {"present": set(), "absent": set(), "cuda": None}


def _dist_dir() -> Path:
    """Where the stub distributions' metadata is written: inside this process's run folder (advisor/io/rundir.py),
    made on first use and removed at exit, never a bare folder in $TMPDIR (and none at import: the generator
    imports this module for its tables)."""
    from advisor.io.rundir import run_dir

    folder = run_dir() / "quantizer-stubs"
    folder.mkdir(exist_ok=True)
    return folder


def _canon(name: str) -> str:
    return name.lower().replace("_", "-")


def _stub_distribution(name: str) -> importlib.metadata.Distribution:
    info = _dist_dir() / f"{name.replace('-', '_')}-{STUB_VERSIONS[name]}.dist-info"
    if not info.exists():
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {STUB_VERSIONS[name]}\n")
    return importlib.metadata.PathDistribution(info)


_ORIGINAL_FROM_NAME = importlib.metadata.Distribution.from_name.__func__  # type: ignore[attr-defined]


def _from_name(cls: Any, name: str) -> importlib.metadata.Distribution:
    """`importlib.metadata.version(...)` and friends under the case: absent raises, present answers the stub."""
    canon = _canon(name)
    if canon in _STATE["absent"]:
        raise importlib.metadata.PackageNotFoundError(f"{name} (absent in this case)")
    if canon in _STATE["present"] and canon in STUB_VERSIONS:
        return _stub_distribution(canon)
    return _ORIGINAL_FROM_NAME(cls, name)  # type: ignore[no-any-return]


def _installed(dist: str) -> bool:
    try:
        _ORIGINAL_FROM_NAME(importlib.metadata.Distribution, dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _answer(dist: str) -> Any:
    def available(*args: Any, **kwargs: Any) -> bool:
        if dist not in _STATE["present"]:
            return False
        minimum = args[0] if args and isinstance(args[0], str) else kwargs.get("min_version")
        if minimum:
            from packaging.version import Version

            return Version(STUB_VERSIONS[dist]) >= Version(str(minimum))
        return True

    return available


def _cuda_answer() -> Any:
    return lambda *a, **k: _STATE["cuda"] is not None


def _patch_availability(originals: dict[str, Any]) -> list[str]:
    """Replace the release's availability functions in every loaded transformers module (never getattr: a
    lazy module would import what the name points to)."""
    patched = []
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith("transformers"):
            continue
        namespace = vars(module)
        for name, (original, replacement) in originals.items():
            if namespace.get(name) is original:
                setattr(module, name, replacement)
                patched.append(f"{module.__name__}.{name}")
    return patched


@contextlib.contextmanager
def _fake_cuda(cc: tuple[int, int] | None) -> Any:
    import torch

    saved = {n: getattr(torch.cuda, n) for n in ("is_available", "get_device_capability", "device_count",
                                                   "current_device", "get_device_name")}
    accel = getattr(torch, "accelerator", None)
    saved_accel = {n: getattr(accel, n) for n in ("current_accelerator", "is_available")
                   if accel is not None and hasattr(accel, n)}
    _STATE["cuda"] = cc
    try:
        if cc is not None:
            torch.cuda.is_available = lambda: True
            torch.cuda.get_device_capability = lambda *a, **k: cc
            torch.cuda.device_count = lambda: 1
            torch.cuda.current_device = lambda: 0
            torch.cuda.get_device_name = lambda *a, **k: f"a GPU of compute capability {cc[0]}.{cc[1]}"
            if "current_accelerator" in saved_accel:
                accel.current_accelerator = lambda *a, **k: torch.device("cuda")
            if "is_available" in saved_accel:
                accel.is_available = lambda: True
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.cuda, n, f)
        for n, f in saved_accel.items():
            setattr(accel, n, f)
        _STATE["cuda"] = None


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.records.append(record.getMessage().strip())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _raised_at(exc: BaseException, root: Path) -> str | None:
    """file:line of the innermost frame inside transformers (None: it was raised outside, e.g. in a stub). An
    import of a package the case made absent counts as the release's own failure, at the line that imports it."""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not frames[-1].filename.startswith(str(root)) and "(absent in this case)" in str(exc):
        frames = [f for f in frames if f.filename.startswith(str(root))]
    if not frames or not frames[-1].filename.startswith(str(root)):
        return None
    frame = frames[-1]
    return f"{Path(frame.filename).relative_to(root.parent)}:{frame.lineno}"


def _call(fn: Any, **kwargs: Any) -> Any:
    """Call with the keywords the release's signature takes."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**kwargs)
    return fn(**{k: v for k, v in kwargs.items() if k in params})


def _quantizer_for(config: Any) -> Any:
    """The release's path from a config's quantization_config to a validated quantizer."""
    from transformers.quantizers import auto

    method = METHODS[config._method]
    if hasattr(auto, "get_hf_quantizer"):
        user_config = None if method["pre_quantized"] else config._user_config
        device_map = config._device_map
        import torch

        out = _call(auto.get_hf_quantizer, config=config, quantization_config=user_config,
                    dtype=torch.bfloat16, torch_dtype=torch.bfloat16, from_tf=False, from_flax=False,
                    device_map=device_map, weights_only=True, user_agent={})
        return out[0]  # (hf_quantizer, config, device_map) in 5.x, with the dtype in 4.5x
    # Before get_hf_quantizer (4.37-4.5x): the steps from_pretrained makes itself.
    if method["pre_quantized"]:
        params = config.quantization_config
        if hasattr(auto.AutoHfQuantizer, "supports_quant_method") and \
                not auto.AutoHfQuantizer.supports_quant_method(params):
            return None
        config.quantization_config = auto.AutoHfQuantizer.merge_quantization_configs(params, None)
        hf_quantizer = auto.AutoHfQuantizer.from_config(config.quantization_config, pre_quantized=True)
    else:
        hf_quantizer = auto.AutoHfQuantizer.from_config(config._user_config, pre_quantized=False)
    import torch

    _call(hf_quantizer.validate_environment, torch_dtype=torch.bfloat16, dtype=torch.bfloat16, from_tf=False,
          from_flax=False,
          device_map=config._device_map, weights_only=True)
    return hf_quantizer


def _user_config(spec: dict[str, Any], row: dict[str, Any]) -> Any:
    """The release's config class from the first of the method's serialised forms it reads (4.x and 5.x differ
    for torchao and HQQ); the last error when none does."""
    from transformers.quantizers.auto import AutoQuantizationConfig

    forms = [spec["config"], *spec.get("alternatives", ())]
    for i, form in enumerate(forms):
        try:
            made = AutoQuantizationConfig.from_dict(copy.deepcopy(form))
        except Exception:
            if i == len(forms) - 1:
                raise
            continue
        row["config_form"] = i
        return made
    raise AssertionError("unreachable")


def _dtype(hf_quantizer: Any, requested: Any) -> str:
    update = getattr(hf_quantizer, "update_dtype", None) or getattr(hf_quantizer, "update_torch_dtype")
    out = update(requested)
    return str(out).removeprefix("torch.") if out is not None else "none"


def run_case(method: str, device: str, absent: tuple[str, ...], root: Path) -> dict[str, Any]:
    """One method under one condition, through the release's own code."""
    import torch
    import transformers

    spec = METHODS[method]
    present = {p for p in STUB_VERSIONS if p not in absent}
    _STATE["present"], _STATE["absent"] = present, set(absent)
    _FINDER.absent = {m.split(".")[0] if p != "optimum" else m for p in absent for m in MODULES.get(p, ())}
    _FINDER.present = {m for p in present for m in MODULES.get(p, ()) if not _installed(p)}
    for name in [n for n in sys.modules if any(n == r or n.startswith(r + ".") for r in _FINDER.present |
                                                _FINDER.absent)]:
        del sys.modules[name]
    cc = None if device == "cpu" else tuple(int(x) for x in device.split("."))
    capture = _Capture()
    logger = logging.getLogger("transformers")
    handlers, logger.handlers = logger.handlers, [capture]
    level = logger.level
    logger.setLevel(logging.INFO)
    once = getattr(transformers.utils.logging, "warning_once", None)
    if hasattr(once, "cache_clear"):
        once.cache_clear()
    row: dict[str, Any] = {"method": method, "device": device, "absent": list(absent)}
    try:
        with _fake_cuda(cc), warnings.catch_warnings(record=True) as caught:  # type: ignore[arg-type]
            warnings.simplefilter("always")
            from transformers import LlamaConfig

            config = LlamaConfig(num_hidden_layers=1, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                                 num_key_value_heads=4, vocab_size=128)
            config._method = method
            config._device_map = {"": "cpu"} if cc is None else {"": 0}
            try:
                if spec["pre_quantized"]:
                    config.quantization_config = copy.deepcopy(spec["config"])
                else:  # the config a user builds: the release's own class from the mapping
                    config._user_config = _user_config(spec, row)
                hf_quantizer = _quantizer_for(config)
            except Exception as exc:  # the verdict: what the release raised
                where = _raised_at(exc, root)
                row.update(verdict="refused" if where else "undecided", error=_first_line(exc),
                           raised_at=where)
                if not where:
                    row["error"] = "raised outside transformers (a stub?): " + row["error"]
                elif isinstance(exc, (TypeError, AttributeError)) and any(
                        _FINDER.present & set(MODULES.get(p, ())) for p in spec["packages"]):
                    row["verdict"] = "undecided"
                    row["error"] = "a stub's answer did not suffice: " + row["error"]
                elif any(f in where for f in spec.get("library_checks", ())):
                    row["verdict"] = "undecided"
                    row["error"] = "the library's own check (stubbed here): " + row["error"]
                hf_quantizer = None
            if hf_quantizer is not None:
                qc = hf_quantizer.quantization_config
                row["quantizer"] = f"{type(hf_quantizer).__module__.replace('.', '/')}.py"
                dequant = bool(getattr(qc, "dequantize", False))
                if method == "compressed_tensors" and getattr(qc, "run_compressed", True) is False:
                    dequant = True
                row["verdict"] = "dequantizes" if dequant else "accepted"
                try:
                    row["dtype"] = {"bfloat16": _dtype(hf_quantizer, torch.bfloat16),
                                    "none": _dtype(hf_quantizer, None)}
                except Exception as exc:
                    row["dtype_error"] = _first_line(exc)
            elif "verdict" not in row:
                row.update(verdict="undecided", error="the release does not know this quant_method")
            row["warnings"] = sorted({*capture.records, *(str(w.message).strip() for w in caught
                                                           if not issubclass(w.category, DeprecationWarning))})
    finally:
        logger.handlers = handlers
        logger.setLevel(level)
    if "quantizer" not in row:
        row["quantizer"] = _quantizer_file(method)
    return row


def _quantizer_file(method: str) -> str | None:
    """The file of the release's quantizer class for this method (from its AUTO_QUANTIZER_MAPPING)."""
    try:
        from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING
    except ImportError:
        return None
    key = METHODS[method]["config"]["quant_method"]
    if method == "bitsandbytes":
        key = "bitsandbytes_4bit"
    cls = AUTO_QUANTIZER_MAPPING.get(key)
    return f"{cls.__module__.replace('.', '/')}.py" if cls is not None else None


def run_all() -> dict[str, Any]:
    """Every method under every case, in this process (one release)."""
    sys.meta_path.insert(0, _FINDER)
    importlib.metadata.Distribution.from_name = classmethod(_from_name)  # type: ignore[method-assign,assignment]
    import transformers
    import transformers.utils.import_utils as import_utils
    from transformers import LlamaConfig  # noqa: F401  (before any stub: 5.22-5.24 fail to import it beside them)

    root = Path(transformers.__file__).parent
    if not (root / "quantizers").is_dir():
        return {"transformers": transformers.__version__, "rows": [], "no_quantizers": True}
    # Every package present while the quantizer modules are imported (their module-level `if is_x_available():
    # from x import ...` then binds the stub), the availability functions patched first in import_utils and
    # transformers.utils (the names `from ..utils import is_x_available` binds); each case then answers its own.
    _STATE["present"] = set(STUB_VERSIONS)
    _FINDER.present = {m for p in STUB_VERSIONS for m in MODULES.get(p, ()) if not _installed(p)}
    originals: dict[str, Any] = {}
    for dist, names in AVAILABILITY.items():
        for name in names:
            if hasattr(import_utils, name):
                originals[name] = (getattr(import_utils, name), _answer(dist))
    if hasattr(import_utils, "is_torch_cuda_available"):
        originals["is_torch_cuda_available"] = (import_utils.is_torch_cuda_available, _cuda_answer())
    _patch_availability(originals)
    import transformers.quantizers.auto  # noqa: F401

    for path in sorted((root / "quantizers").glob("quantizer_*.py")):
        with contextlib.suppress(Exception):
            importlib.import_module(f"transformers.quantizers.{path.stem}")
    patched = _patch_availability(originals)
    rows = []
    for method in METHODS:
        for device, absent in CASES(method):
            rows.append(run_case(method, device, absent, root))
    files = {}
    for row in rows:
        rel = row.get("quantizer")
        if rel and rel not in files and (root.parent / rel).is_file():
            files[rel] = hashlib.sha256((root.parent / rel).read_bytes()).hexdigest()[:16]
    return {"transformers": transformers.__version__, "rows": rows, "files": files, "patched": len(patched)}


if __name__ == "__main__":
    logging.disable(logging.NOTSET)
    result = run_all()
    print(json.dumps(result))
