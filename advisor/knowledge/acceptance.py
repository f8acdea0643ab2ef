"""The attention acceptance of a transformers release, executed: what its own load path does with each request.

Why: the matrix used to be read from class flags (`introspect.py`). A flag is not what a release executes: a
composite refuses what a sub-model refuses, a model-local attention table without `flash_attention_3` crashes,
FA3 refuses `attention_dropout > 0` in some releases, FA4 arrives with the release that accepts its name. So each
verdict here comes from running the release's own code, in a child process whose importable transformers is
the release under test (`scripts/generate_acceptance.py` installs each release into a throwaway folder).

What runs, per model type (its class as in `introspect`: the base model, else the first head class) and
implementation, on the meta device from the type's default config (`AutoConfig.for_model`), with
`torch_dtype=bfloat16` and a GPU `device_map`, as `from_pretrained(..., attn_implementation=impl)` would:

- API "autoset" (4.36 to 4.53: the release has `_autoset_attn_implementation`): the request set on the config
  (`config._attn_implementation = impl`, the step `from_pretrained` takes for the keyword), the default dtype set
  to bfloat16 (`_set_default_torch_dtype`), then `cls._autoset_attn_implementation(config, torch_dtype=...,
  device_map={"": 0})` (the call `from_pretrained` makes, with the keywords that release's signature takes),
  then `cls(config)`: its `__init__` and every sub-model it builds run their own checks (`_from_config` of
  sub-models, the per-release forwarding of the request to sub-configs).
- API "adjust" (4.54 on, 5.x: `_check_and_adjust_attn_implementation`): the request set on the config (its setter
  forwards it to the sub-configs where the release does), the dtype set on the config and as the default, then
  `cls(config)`: `PreTrainedModel.__init__` runs `_check_and_adjust_attn_implementation(..., is_init_check=True)`
  on the model and on every sub-model built inside it.

The flash packages count as present, as the audit's method does: before the release is imported, stub packages
`flash_attn` (2.8.3 and the FA4 distribution `flash-attn-4`), `flash_attn_interface` (FA3) and their sub-modules
are importable (a meta-path finder plus `*.dist-info` metadata), and the release's own
`is_flash_attn_{2,3,4}_available` answer True (they test for CUDA too, which this CPU box has not). Everything
else the release checks runs as written: class flags, sub-models, dtype, `attention_dropout`/ALiBi under FA3,
model-local attention tables indexed in `__init__`. A stub kernel raises `KernelReached` when called, so a
forward that gets as far as the kernel says the dispatch worked.

Model-local attention tables indexed at forward time (modernbert's `MODERNBERT_ATTENTION_FUNCTION` in 4.x): after a
build succeeds, every module-level dict of the tree's modeling modules keyed by implementation names is checked
for the request; one that lacks it is confirmed by a forward on the meta device with the model's
`dummy_inputs`: a `KeyError` naming the implementation is "crashes at forward", reaching the stub kernel is
acceptance, anything else leaves the cell undecided with the reason.

Verdicts: True (accepted), False (refused; the reason says which class refused and how), or
"undecided: <reason>" (the default config does not build here, or the failure is not about attention).

    python -m advisor.knowledge.acceptance [--shard I/N] [--types a,b] > cells.json
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.abc
import importlib.machinery
import inspect
import io
import json
import os
import re
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

from advisor.candidate import ATTENTION_IMPLS
from advisor.io.rundir import run_dir

__all__ = [
    "IMPLS",
    "final_verdicts",
    "KernelReached",
    "decide_model_type",
    "install_flash_stubs",
    "read_acceptance",
]

IMPLS = ATTENTION_IMPLS
FLASH_STUB_VERSIONS = {"flash_attn": ("flash-attn", "2.8.3"), "flash_attn_4": ("flash-attn-4", "4.0.0b4"),
                       "flash_attn_3": ("flash-attn-3", "3.0.0b1")}
_STUB_ROOTS = ("flash_attn", "flash_attn_interface", "flash_attn_3", "flash_attn_cuda", "flash_attn_2_cuda")
_AVAILABILITY = ("is_flash_attn_2_available", "is_flash_attn_3_available", "is_flash_attn_4_available")
METHOD = (
    "each model type's class (base model, else first head class) built on the meta device from its default config "
    "through the release's own from_pretrained attention steps (request on the config; bfloat16; autoset API: "
    "cls._autoset_attn_implementation(config, torch_dtype, device_map) then cls(config); adjust API: cls(config), "
    "whose __init__ runs _check_and_adjust_attn_implementation(is_init_check=True) on every sub-model); flash "
    "packages present as stubs and the release's is_flash_attn_{2,3,4}_available patched True; module-level "
    "attention tables lacking the request confirmed by a meta-device forward"
)


class KernelReached(RuntimeError):
    """Raised by a stub flash kernel: the model dispatched to the kernel, so the request was accepted."""


class _StubKernel:
    """Any name imported from a stub flash package: callable (raises KernelReached), subclassable, inspectable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise KernelReached("stub flash kernel called")


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_StubKernel,), {"__module__": self.__name__})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves every `flash_attn*` module as a stub package."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] in _STUB_ROOTS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []  # a package: sub-modules resolve through this finder too
        module.__version__ = FLASH_STUB_VERSIONS["flash_attn"][1]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install_flash_stubs() -> Path:
    """Make the flash packages importable with metadata (call before transformers is imported)."""
    if not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())
    site = run_dir() / "flash-stubs"  # removed when the process exits
    if str(site) in sys.path:
        return site
    site.mkdir(exist_ok=True)
    tops = {"flash_attn": "flash_attn", "flash_attn_4": "flash_attn", "flash_attn_3": "flash_attn_interface"}
    for key, (name, version) in FLASH_STUB_VERSIONS.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "top_level.txt").write_text(tops[key] + "\n")
        (info / "RECORD").write_text(f"{tops[key]}/__init__.py,,\n")
    sys.path.append(str(site))
    importlib.invalidate_caches()
    return site


def patch_availability(names: tuple[str, ...] = _AVAILABILITY) -> list[str]:
    """The release's `is_flash_attn_*_available` (`names`) answer True, in every transformers module bound to
    them."""
    import transformers.utils.import_utils as import_utils

    originals = {name: getattr(import_utils, name) for name in names if hasattr(import_utils, name)}

    def yes(*args: Any, **kwargs: Any) -> bool:
        return True

    patched = []
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith("transformers"):
            continue
        namespace = vars(module)  # never getattr: a lazy module would import what the name points to
        for name, original in originals.items():
            if namespace.get(name) is original:
                setattr(module, name, yes)
                patched.append(f"{module.__name__}.{name}")
    return patched


def _api() -> str:
    from transformers import PreTrainedModel

    return "adjust" if hasattr(PreTrainedModel, "_check_and_adjust_attn_implementation") else "autoset"


def _receiving(config: Any) -> list[Any]:
    found, todo, seen = [], [config], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        for key in getattr(current, "sub_configs", None) or {}:
            sub = getattr(current, key, None)
            if sub is not None and hasattr(sub, "to_dict"):
                todo.append(sub)
    return found


@contextlib.contextmanager
def _default_dtype(dtype: Any) -> Any:
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _no_init() -> contextlib.AbstractContextManager[Any]:
    from advisor.knowledge.introspect import _no_init as no_init

    return no_init()


@contextlib.contextmanager
def _empty_weights() -> Any:
    """Parameters on the meta device, buffers and other tensors on the CPU (accelerate's `init_empty_weights`): for
    an `__init__` that reads a tensor's value (`.item()`, a copy), which the meta device cannot give."""
    import torch

    original = torch.nn.Module.register_parameter

    def register(module: Any, name: str, param: Any) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = type(param)(param.to("meta"), requires_grad=param.requires_grad)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def _build(cls: Any, config: Any, impl: str, api: str, device: str = "meta") -> Any:
    """One `from_pretrained` of `cls` with `attn_implementation=impl`, without the weights."""
    import torch

    dtype = torch.bfloat16
    config = copy.deepcopy(config)
    config._attn_implementation = impl
    for sub in _receiving(config):
        for field in ("dtype", "torch_dtype"):
            if field in getattr(sub, "__dict__", {}) or field == "torch_dtype":
                with contextlib.suppress(Exception):
                    setattr(sub, field, dtype)
    with _default_dtype(dtype), _no_init():
        if api == "autoset" and not getattr(config, "_attn_implementation_autoset", False):
            params = inspect.signature(cls._autoset_attn_implementation).parameters
            wanted = {"torch_dtype": dtype, "device_map": {"": 0}, "use_flash_attention_2": False}
            config = cls._autoset_attn_implementation(config, **{k: v for k, v in wanted.items() if k in params})
        if device == "meta":
            with torch.device("meta"):
                return cls(config)
        if device == "empty":
            with _empty_weights():
                return cls(config)
        return cls(config)  # "cpu": real tensors (the forward probe of a small model)


_ATTN_WORDS = ("attention", "attn", "sdpa", "flash", "flex", "eager", "alibi", "dropout")


def _short(exc: BaseException, impl: str | None = None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    match = re.search(r"(\w+) does not support ", text)
    if match and impl is not None:
        text = f"{match.group(1)} does not support {impl}"  # the release's sentence, cut to who refused what
    return f"{type(exc).__name__}: {text}"[:180]


# A class that redirects flash requests to a Hub kernel (`_compatible_flash_implementations`, 5.x) fetches it
# while loading; offline, the fetch fails after the architecture accepted (the oracle's rule too).
_HUB_FETCH = ("not available in the local cache", "Kernel repository")


def _classify(exc: BaseException, impl: str) -> tuple[bool | str, str]:
    """(verdict, reason) for an exception raised while building with `impl`, the eager build having succeeded.

    Only the request differs from the eager build, so whatever `from_pretrained` raises is the release failing
    that request: a check refusing (ValueError/ImportError: "X does not support ..."), a model-local table without
    the name (KeyError at load), a check with a stale signature (bark's `_check_and_enable_flash_attn_2` in 4.36:
    TypeError). Exceptions that come from the stand-ins of this method instead (a stub kernel misused, a meta
    tensor read) leave the cell undecided."""
    reason = _short(exc, impl)
    text = str(exc)
    if isinstance(exc, KernelReached):
        return True, "accepted: the build reached the flash kernel"
    if any(marker in text for marker in _HUB_FETCH):
        return True, f"accepted: redirected to a Hub kernel, not fetched offline ({_short(exc)})"[:180]
    if isinstance(exc, ImportError) and "`kernels`" in text and impl.startswith("flash"):
        # the same redirect where the release does not install `kernels`: the package that runs the kernel is
        # missing, as flash-attn is (and counted present) for the others
        return True, f"accepted: redirected to a Hub kernel, needs the kernels package ({_short(exc)})"[:180]
    if isinstance(exc, KeyError) and impl in text:
        return False, f"refuses at load: KeyError {text}"[:180]
    if isinstance(exc, (ValueError, ImportError)) and "meta" not in text:
        return False, reason
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    if any(code.co_filename == __file__ and code.co_name != "_build" for code in frames) or "meta" in text.lower():
        return f"undecided: {reason}", reason
    return False, f"fails at load: {reason}"[:180]


def _attention_tables(model: Any) -> dict[str, dict[str, Any]]:
    """Module-level dicts keyed by implementation names in the modeling modules of the tree's classes."""
    found: dict[str, dict[str, Any]] = {}
    modules = {type(m).__module__ for m in model.modules()}
    for name in sorted(modules):
        module = sys.modules.get(name)
        if module is None or not name.startswith("transformers.models."):
            continue
        for attr, value in vars(module).items():
            if isinstance(value, dict) and "eager" in value and any(
                k in value for k in ("sdpa", "flash_attention_2")
            ):
                found[f"{name.rsplit('.', 1)[-1]}.{attr}"] = value
    return found


def _forward_probe(model: Any, impl: str, device: str = "meta") -> tuple[bool | str, str]:
    """Run a forward (meta device, else CPU): KeyError(impl) -> crash; the stub kernel reached -> accepted."""
    import torch

    try:
        inputs = model.dummy_inputs
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in dict(inputs).items()}
        with torch.no_grad():
            model(**inputs)
    except KernelReached:
        return True, "forward reached the flash kernel"
    except KeyError as exc:
        if impl in str(exc):
            return False, f"crashes at forward: KeyError {str(exc)}"
        return f"undecided: forward probe: {_short(exc)}", ""
    except Exception as exc:  # a model whose dummy inputs do not fit, an op without a meta kernel
        return f"undecided: forward probe: {_short(exc)}", ""
    return True, "forward ran"


CPU_PROBE_MAX_PARAMETERS = 400_000_000


def _cpu_forward_probe(cls: Any, config: Any, impl: str, api: str, model: Any, why: str) -> tuple[bool | str, str]:
    """The forward probe on real CPU tensors, for a model small enough (a forward that reads values: unpadding)."""
    count = sum(p.numel() for p in model.parameters())
    if count > CPU_PROBE_MAX_PARAMETERS:
        return f"{why} (too large for the CPU probe: {count / 1e6:.0f}M parameters)", ""
    try:
        small = _build(cls, config, impl, api, "cpu")
    except Exception as exc:
        return f"undecided: CPU probe build: {_short(exc)}", ""
    return _forward_probe(small, impl, device="cpu")


def _unbuilt(row: dict[str, Any]) -> bool:
    """Every cell undecided because the config or the eager model did not build."""
    return bool(row["cells"]) and all(isinstance(v, str) and ("not buildable here" in v or "does not build" in v)
                                      for v in row["cells"].values())


def decide_model_type(model_type: str, class_name: str, impls: tuple[str, ...], api: str,
                      fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every implementation of one model type: verdicts, reasons, and what the release applied.

    `fields`: config fields that make the type's config valid (the release's own test config), used only when the
    default config does not build, so a type decided from its default is never decided otherwise; the row then
    records them (`config`)."""
    row = _decide(model_type, class_name, impls, api, None)
    if fields and _unbuilt(row):
        default_reason = next(iter(row["cells"].values()))
        fixed = _decide(model_type, class_name, impls, api, fields)
        if not _unbuilt(fixed):
            return {**fixed, "config": fields}
        again = next(iter(fixed["cells"].values()))
        note = " (also with the config fields that make it valid)" if again == default_reason else (
            f" (with the config fields that make it valid: {again.removeprefix('undecided: ')})")
        row["cells"] = {impl: f"{v}{note}"[:300] for impl, v in row["cells"].items()}
    return row


def _config(model_type: str, fields: dict[str, Any] | None) -> Any:
    """The type's default config, or the config with `fields` (a dict with `model_type` is a sub-config, built the
    way the composite's own `__init__` builds it from a dict)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **copy.deepcopy(fields or {}))


def _decide(model_type: str, class_name: str, impls: tuple[str, ...], api: str,
            fields: dict[str, Any] | None) -> dict[str, Any]:
    import transformers

    from advisor.knowledge.introspect import _module_name

    row: dict[str, Any] = {"model_type": model_type, "class": class_name, "cells": {}, "reasons": {}}
    started = time.monotonic()
    try:
        try:
            cls = getattr(transformers, class_name)
        except Exception:
            module = importlib.import_module(f"transformers.models.{_module_name(model_type)}")
            cls = getattr(module, class_name)
        config = _config(model_type, fields)
    except Exception as exc:
        reason = f"undecided: not buildable here: {_short(exc)}"
        row["cells"] = dict.fromkeys(impls, reason)
        return row
    eager_error: str | None = None
    device = "meta"
    for impl in ("eager", *[i for i in impls if i != "eager"]):
        if impl not in impls and impl != "eager":
            continue
        try:
            try:
                model = _build(cls, config, impl, api, device)
            except Exception as exc:
                if impl != "eager" or "meta" not in str(exc).lower():
                    raise
                device = "empty"  # an __init__ that reads a tensor: parameters on meta, buffers on the CPU
                row["device"] = "meta parameters, CPU buffers"
                model = _build(cls, config, impl, api, device)
        except Exception as exc:
            if impl == "eager":
                eager_error = _short(exc)
                row["cells"] = dict.fromkeys(impls, f"undecided: default config does not build: {eager_error}")
                return row
            verdict, reason = _classify(exc, impl)
            row["cells"][impl] = verdict
            if verdict is not True or reason.startswith("accepted"):
                row["reasons"][impl] = reason
            continue
        verdict = True
        applied = getattr(model.config, "_attn_implementation", None)
        if impl != "eager":
            missing = [name for name, table in _attention_tables(model).items() if impl not in table]
            if missing:
                verdict, reason = _forward_probe(model, impl)
                if isinstance(verdict, str) and "meta" in verdict.lower():
                    verdict, reason = _cpu_forward_probe(cls, config, impl, api, model, verdict)
                if verdict is False:
                    row["reasons"][impl] = f"{reason} ({', '.join(missing)} lacks it)"[:180]
        if isinstance(applied, str) and applied != impl and verdict is True and impl != "eager":
            row.setdefault("applied", {})[impl] = applied
        row["cells"][impl] = verdict
        del model
    row["seconds"] = round(time.monotonic() - started, 2)
    return final_verdicts(row)


def final_verdicts(row: dict[str, Any]) -> dict[str, Any]:
    """A request the release replaced by eager while loading (4.54-4.56 turn an explicit `sdpa` on a class without
    SDPA into eager at `__init__`, without a word) is not supported: the load succeeds, the implementation never runs.
    Other replacements (a class's own flash kernel for a flash request) stay accepted. Idempotent."""
    for impl, applied in list(row.get("applied", {}).items()):
        if applied == "eager" and row["cells"].get(impl) is True:
            row["cells"][impl] = False
            row["reasons"][impl] = "silently runs eager: the release replaces the request at load (applied: eager)"
            del row["applied"][impl]
    return row


def _model_classes() -> list[tuple[str, str]]:
    from transformers.models.auto import modeling_auto

    from advisor.knowledge.introspect import _model_classes as classes

    out = []
    for model_type, names in classes(modeling_auto).items():
        first = names if isinstance(names, str) else names[0]
        out.append((model_type, first))
    return out


def _accepted_names() -> list[str]:
    """The implementation names this release accepts at all, from the installed files (release_reader)."""
    import transformers

    from advisor.knowledge.release_reader import Release, attn_names

    root = Path(transformers.__file__).resolve().parent.parent  # the folder holding `transformers/...`
    names = attn_names(Release(transformers.__version__, root))["value"]
    return [impl for impl in IMPLS if impl in names]


def read_acceptance(shard: tuple[int, int] = (0, 1), only: list[str] | None = None,
                    impls: list[str] | None = None, fields: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Install the stubs, import the release, and decide every model type of this shard (`fields`: per model type,
    the config fields to build with where the default config does not build)."""
    install_flash_stubs()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with contextlib.redirect_stdout(io.StringIO()):
        import transformers

        patched = patch_availability()
        transformers.logging.set_verbosity_error()
        api = _api()
        accepted = impls or _accepted_names()
        rows = _model_classes()
        if only:
            rows = [r for r in rows if r[0] in only]
        rows = rows[shard[0]::shard[1]]
        out = []
        for model_type, class_name in rows:
            out.append(decide_model_type(model_type, class_name, tuple(accepted), api, (fields or {}).get(model_type)))
    return {
        "transformers": transformers.__version__,
        "api": api,
        "impls": accepted,
        "patched": sorted({p.rsplit(".", 1)[-1] for p in patched}),
        "rows": out,
    }


_OPTIONS = {"--shard": "0/1", "--types": "", "--impls": "", "--config-fields": ""}


def main(argv: list[str] | None = None) -> int:
    """`--shard I/N` (every N-th model type from the I-th), `--types a,b`, `--impls a,b` (default: all, the
    release's), `--config-fields FILE` (JSON: model type -> config fields, used where the default does not build).
    Read by hand: argparse belongs to the command line (the layers contract)."""
    args = sys.argv[1:] if argv is None else argv
    options = dict(_OPTIONS)
    if len(args) % 2 or any(key not in _OPTIONS for key in args[::2]):
        usage = " ".join(f"[{key} X]" for key in _OPTIONS)
        sys.stderr.write(f"usage: python -m advisor.knowledge.acceptance {usage}\n")
        return 2
    options.update(zip(args[::2], args[1::2]))
    index, count = (int(x) for x in options["--shard"].split("/"))
    fields = json.loads(Path(options["--config-fields"]).read_text()) if options["--config-fields"] else None
    result = read_acceptance((index, count), [t for t in options["--types"].split(",") if t] or None,
                             [i for i in options["--impls"].split(",") if i] or None, fields)
    json.dump(result, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
