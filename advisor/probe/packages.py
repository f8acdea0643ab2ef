"""Which libraries are installed, at which version, and whether their native code really loads.

Versions come from distribution metadata (cheap, no import). Native extensions are imported in a
child process with a timeout: a broken flash-attn build can segfault or hang, and `import bitsandbytes`
succeeds even when its native library is missing, so only a real load tells the truth.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from advisor.facts import LibraryInfo, Unavailable
from advisor.probe.hub_cache import cached_hub_kernels, kernels_cache_root

__all__ = ["LibrarySpec", "LIBRARIES", "probe_libraries", "ImportCheck"]


@dataclass(frozen=True)
class LibrarySpec:
    distribution: str
    import_name: str
    check: str | None = None  # Python run in a child; prints one JSON object of details, exits non-zero on failure
    needs_torch: bool = True  # import torch first (extensions link against libtorch and fail otherwise)


_PRELUDE = "import json, sys\n"
_TORCH_FIRST = "try:\n    import torch\nexcept Exception:\n    pass\n"

_FLASH_ATTN = """
import flash_attn, importlib
importlib.import_module("flash_attn_2_cuda")
print(json.dumps({"module": flash_attn.__file__}))
"""
_FLASH_ATTN_3 = """
import importlib
mod = importlib.import_module("flash_attn_interface")
try:
    importlib.import_module("flash_attn_3._C")
except ImportError:
    importlib.import_module("flash_attn_3_cuda")
print(json.dumps({"module": mod.__file__}))
"""
_FLASH_ATTN_4 = """
import flash_attn.cute as cute
print(json.dumps({"module": cute.__file__}))
"""
_BITSANDBYTES = """
# `import bitsandbytes` succeeds even without its native library (a mock stands in), and it imports torch,
# which costs seconds. Load the very library bitsandbytes would pick for this torch, without importing either.
# How it picks changed between releases; each branch below follows a row of data/bitsandbytes.json
# (bitsandbytes/cextension.py and cuda_specs.py at the tags cited there).
import ctypes, importlib.metadata, importlib.util, os, platform, re
from pathlib import Path
bnb_dir = Path(importlib.util.find_spec("bitsandbytes").submodule_search_locations[0])
try:
    release = tuple(int(x) for x in re.findall(r"\\d+", importlib.metadata.version("bitsandbytes"))[:2])
except Exception:
    release = (9999, 0)
torch_spec = importlib.util.find_spec("torch")
version_py = Path(torch_spec.submodule_search_locations[0]) / "version.py" if torch_spec else None
text = version_py.read_text() if version_py and version_py.is_file() else ""
def field(name):
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.split(":")[0].strip() == name and value.strip() not in ("", "None"):
            return value.strip().strip(chr(39) + chr(34))
    return None
suffix = {"Darwin": ".dylib", "Windows": ".dll"}.get(platform.system(), ".so")  # lib_suffix
def compact(version):  # lib_version_string: major*10+minor in 0.46-0.49, else <major><minor>
    major, minor = (int(x) for x in re.findall(r"\\d+", version)[:2])
    return str(major * 10 + minor) if (0, 46) <= release < (0, 50) else f"{major}{minor}"
def split(digits, hip):  # how 0.50 reads a library's version back (_split_cuda_version)
    return (int(digits[:1]), int(digits[1:])) if hip else (int(digits[:2]), int(digits[2:]))
cuda, hip, xpu = field("cuda"), field("hip"), field("xpu")
available = sorted(p.name for p in bnb_dir.glob("libbitsandbytes_*"))
names, why = [], None
if xpu and release >= (0, 48):  # xpu: official from 0.48; a oneAPI-versioned library first from 0.50
    backend = "XPU"
    names = ([f"libbitsandbytes_xpu{xpu[:4]}{suffix}"] if release >= (0, 50) else []) + [f"libbitsandbytes_xpu{suffix}"]
elif hip and release < (0, 46):  # lib_prefixes: CUDA libraries only before 0.46
    backend, why = "ROCm", f"bitsandbytes {'.'.join(map(str, release))} has no ROCm library (ROCm from 0.46)"
elif hip or cuda:
    backend, prefix, runtime = ("ROCm", "rocm", hip) if hip else ("CUDA", "cuda", cuda)
    override = os.environ.get("BNB_ROCM_VERSION") if hip and release >= (0, 50) else (
        None if hip else os.environ.get("BNB_CUDA_VERSION"))  # rocm_override_env
    exact = f"libbitsandbytes_{prefix}{override or compact(runtime)}{suffix}"
    names = [exact]
    if not override and release >= (0, 50) and not (bnb_dir / exact).is_file():  # lib_fallback: same major
        want = tuple(int(x) for x in re.findall(r"\\d+", runtime)[:2])
        packaged = {}
        for name in available:
            found = re.search(prefix + r"(\\d+)", name)
            if found and name.endswith(suffix):
                try:
                    packaged[split(found.group(1), bool(hip))] = name
                except ValueError:
                    pass
        lower = [v for v in packaged if v[0] == want[0] and v < want]
        higher = [v for v in packaged if v[0] == want[0] and v > want]
        if lower or higher:
            names = [packaged[max(lower) if lower else min(higher)]]
else:
    backend, names = "CPU", [f"libbitsandbytes_cpu{suffix}"]
lib = next((bnb_dir / n for n in names if (bnb_dir / n).is_file()), bnb_dir / names[0] if names else None)
details = {"backend": backend, "library": lib.name if lib else "", "available": available,
           "bitsandbytes": ".".join(map(str, release))}
if lib is None or not lib.is_file():
    details["native_library"] = "missing"
    print(json.dumps(details))
    print(why or f"{lib.name} is not in this bitsandbytes build (torch wants {backend} {cuda or hip or xpu or ''})",
          file=sys.stderr)
    sys.exit(3)
try:
    ctypes.CDLL(str(lib))
except OSError as exc:
    details["native_library"] = "unloadable"
    print(json.dumps(details))
    print(f"{lib.name} does not load: {exc}", file=sys.stderr)
    sys.exit(1)
details["native_library"] = "loaded"
print(json.dumps(details))
"""
_ONNXRUNTIME = """
import onnxruntime as ort
print(json.dumps({"providers": ort.get_available_providers()}))
"""
_KERNELS = """
import kernels
print(json.dumps({"module": kernels.__file__}))
"""

LIBRARIES: tuple[LibrarySpec, ...] = (
    LibrarySpec("torch", "torch"),
    LibrarySpec("transformers", "transformers"),
    LibrarySpec("accelerate", "accelerate"),
    LibrarySpec("safetensors", "safetensors"),
    LibrarySpec("tokenizers", "tokenizers"),
    LibrarySpec("huggingface-hub", "huggingface_hub"),
    LibrarySpec("flash-attn", "flash_attn", _FLASH_ATTN),
    LibrarySpec("flash-attn-3", "flash_attn_interface", _FLASH_ATTN_3),
    LibrarySpec("flash-attn-4", "flash_attn.cute", _FLASH_ATTN_4),
    # pure Python: `import kernels` does not load torch (0.19.1), so its check need not pay torch's import first
    # (1.7 s of every first run on a CPU box, issue 27); a kernel it fetches imports torch when it is loaded
    LibrarySpec("kernels", "kernels", _KERNELS, needs_torch=False),
    LibrarySpec("bitsandbytes", "bitsandbytes", _BITSANDBYTES, needs_torch=False),
    LibrarySpec("optimum", "optimum"),
    LibrarySpec("optimum-onnx", "optimum.onnxruntime"),
    LibrarySpec("onnxruntime", "onnxruntime", _ONNXRUNTIME, needs_torch=False),
    LibrarySpec("onnxruntime-gpu", "onnxruntime", _ONNXRUNTIME, needs_torch=False),
    LibrarySpec("nvidia-ml-py", "pynvml"),
    # Quantization backends transformers loads besides bitsandbytes (data/quant_methods.json); versions only.
    LibrarySpec("torchao", "torchao"),
    LibrarySpec("hqq", "hqq"),
    LibrarySpec("optimum-quanto", "optimum.quanto"),
    LibrarySpec("gptqmodel", "gptqmodel"),
    LibrarySpec("auto-gptq", "auto_gptq"),  # GPTQ's other backend in 4.x (data/quantizer_acceptance.json)
    LibrarySpec("autoawq", "awq"),  # AWQ's library in 4.x
    LibrarySpec("compressed-tensors", "compressed_tensors"),
    LibrarySpec("fbgemm-gpu", "fbgemm_gpu"),
    LibrarySpec("triton", "triton"),
    # Mamba's fused scan and convolution (SSM001): transformers' slow torch path runs without them
    LibrarySpec("mamba-ssm", "mamba_ssm"),
    LibrarySpec("causal-conv1d", "causal_conv1d"),
)


@dataclass(frozen=True)
class ImportCheck:
    ok: bool | Unavailable
    error: str | None
    details: dict[str, str | list[str]]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else ""


def run_import_check(code: str, timeout: float = 60.0, *, torch_first: bool = False) -> ImportCheck:
    """Run `code` in a fresh interpreter; a crash, hang or exception becomes a reason, never ours."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PRELUDE + (_TORCH_FIRST if torch_first else "") + code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return ImportCheck(Unavailable(reason=f"import check timed out after {timeout:.0f}s"), None, {})
    details: dict[str, str | list[str]] = {}
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    stdout = lines[-1].strip() if lines else ""
    if stdout.startswith("{"):
        try:
            details = json.loads(stdout)
        except json.JSONDecodeError:
            pass
    if done.returncode == 0:
        return ImportCheck(True, None, details)
    if done.returncode < 0:
        return ImportCheck(False, f"the import crashed the interpreter (signal {-done.returncode})", details)
    if done.returncode == 3:  # the check itself ran and found the native part missing
        why = _last_line(done.stderr) or "native library missing"
        return ImportCheck(False, f"{why}; `python -m bitsandbytes` diagnoses it", details)
    return ImportCheck(False, _last_line(done.stderr) or f"exit status {done.returncode}", details)


def _files_digest(distribution: str) -> str | None:
    """The digest of a distribution's RECORD (its installed files), None when it has none."""
    try:
        record = metadata.distribution(distribution).read_text("RECORD")
    except metadata.PackageNotFoundError:
        return None
    return hashlib.sha256(record.encode("utf-8")).hexdigest()[:24] if record else None


def _cached_check(code: str, *, torch_first: bool = False, distribution: str = "", cache: bool = True) -> ImportCheck:
    """`run_import_check` through the analysis cache, keyed by the distribution's files (and torch's, when the
    check imports torch first): a child per library per run cost a second on every command once transformers
    5.25 made `kernels` a dependency. A reinstall changes the RECORD, and with it the key; a timeout is not kept."""
    from advisor.io import analysis_cache

    key = {"code": code, "torch_first": torch_first, "python": sys.executable, "files": _files_digest(distribution),
           "torch": _files_digest("torch") if torch_first else None}
    if key["files"] is None:
        return run_import_check(code, torch_first=torch_first)
    hit = analysis_cache.get("import-check", key, transformers=None, use=cache)
    if isinstance(hit, dict) and isinstance(hit.get("ok"), bool):
        return ImportCheck(bool(hit["ok"]), hit.get("error"), dict(hit.get("details") or {}))
    found = run_import_check(code, torch_first=torch_first)
    if isinstance(found.ok, bool):
        analysis_cache.put("import-check", key, {"ok": found.ok, "error": found.error, "details": found.details},
                           transformers=None, use=cache)
    return found


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def probe_libraries(
    *,
    import_checks: bool = True,
    versions: Callable[[str], str | None] = _version,
    runner: Callable[..., ImportCheck] = run_import_check,
    hub_cache: Callable[[], list[str]] = cached_hub_kernels,
    cache: bool = True,
) -> dict[str, LibraryInfo]:
    """Every library in LIBRARIES, checked in parallel child processes where a native part exists. `kernels`
    also lists the Hub kernels in its local cache (`hub_cache`: fine-grained FP8 needs one, advisor/rules/fp8_kernel.py).
    `cache=False` (--no-cache): the checks neither read nor write the analysis cache; passed explicitly because
    they run in pool threads, which a context variable does not reach."""
    found = {spec.distribution: versions(spec.distribution) for spec in LIBRARIES}
    to_check = [spec for spec in LIBRARIES if spec.check and found[spec.distribution] is not None]
    checks: dict[str, ImportCheck] = {}
    if import_checks and to_check:
        from advisor.io import analysis_cache

        cache = cache and analysis_cache.enabled()  # decided in this thread, not in the pool's

        def check(spec: LibrarySpec) -> ImportCheck:
            if runner is run_import_check:
                return _cached_check(spec.check or "", torch_first=spec.needs_torch, distribution=spec.distribution,
                                     cache=cache)
            return runner(spec.check or "", torch_first=spec.needs_torch)

        with ThreadPoolExecutor(max_workers=len(to_check)) as pool:
            results = pool.map(check, to_check)
            checks = {spec.distribution: result for spec, result in zip(to_check, results)}
    libraries: dict[str, LibraryInfo] = {}
    for spec in LIBRARIES:
        version = found[spec.distribution]
        check = checks.get(spec.distribution)
        if version is None:
            libraries[spec.distribution] = LibraryInfo(
                distribution=spec.distribution, import_name=spec.import_name, installed=False
            )
            continue
        importable: bool | Unavailable | None = None
        if check is not None:
            importable = check.ok
        elif spec.check and not import_checks:
            importable = Unavailable(reason="import check skipped (--no-import-check)")
        libraries[spec.distribution] = LibraryInfo(
            distribution=spec.distribution,
            import_name=spec.import_name,
            installed=True,
            version=version,
            importable=importable,
            error=check.error if check else None,
            details={**(check.details if check else {}),
                     **({"hub_cache": hub_cache(), "hub_cache_dir": str(kernels_cache_root())}
                        if spec.distribution == "kernels" else {})},
        )
    return libraries
