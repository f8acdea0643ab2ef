"""Read a transformers release's version-dependent facts from its own files, as text and AST.

Why: hand-typed facts drift (FA3's gate moved from CC 9 to CC 8, FA4 arrived in 5.4, every release has its own
torch floor). Each extractor reads one fact from the released source and returns it with the file and line it
came from, so a value is checkable. `scripts/generate_release_constraints.py` runs them over every stored
release's wheel (`data/release_constraints.json`); `advisor.knowledge.installed` runs the same extractors over
the installed package when it is newer than the shipped tables.
"""

from __future__ import annotations

import ast
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from advisor.candidate import ATTENTION_IMPLS

__all__ = ["EXTRACTORS", "Fact", "Release", "read_facts", "runs"]

IMPORT_UTILS = "transformers/utils/import_utils.py"
MODELING_UTILS = "transformers/modeling_utils.py"
FA_UTILS = "transformers/modeling_flash_attention_utils.py"
HUB_KERNELS = "transformers/integrations/hub_kernels.py"
DEPS = "transformers/dependency_versions_table.py"
BNB4 = "transformers/quantizers/quantizer_bnb_4bit.py"
FP8 = "transformers/integrations/finegrained_fp8.py"
DIST_CONFIG = "transformers/distributed/configuration_utils.py"
TORCHAO = "transformers/integrations/torchao.py"
FP8_KERNEL = "finegrained-fp8"  # the name fine-grained FP8 asks `lazy_load_kernel` for (_HUB_KERNEL_MAPPING key)
BASE_IMPLS = ATTENTION_IMPLS
VERSION_RE = re.compile(r"^\d+(\.\d+)+$")

Fact = dict[str, Any]  # {"value", "file", "line"}


class Release:
    """One release's files, read lazily as text and AST by their path inside the wheel (`transformers/...`):
    from the wheel zip (the generators) or from the folder that holds the installed package (the advisor,
    for an installed release newer than the shipped tables). Nothing is imported."""

    def __init__(self, version: str, source: Path) -> None:
        self.version = version
        self._zip = zipfile.ZipFile(source) if source.is_file() else None
        self._root = None if self._zip is not None else source
        self._text: dict[str, str | None] = {}
        self._tree: dict[str, ast.Module | None] = {}

    def text(self, path: str) -> str | None:
        if path not in self._text:
            self._text[path] = self._read(path)
        return self._text[path]

    def _read(self, path: str) -> str | None:
        try:
            if self._zip is not None:
                return self._zip.read(path).decode("utf-8")
            assert self._root is not None
            return (self._root / path).read_text(encoding="utf-8")
        except (KeyError, OSError, UnicodeDecodeError):
            return None

    def tree(self, path: str) -> ast.Module | None:
        if path not in self._tree:
            text = self.text(path)
            self._tree[path] = ast.parse(text) if text is not None else None
        return self._tree[path]

    def metadata_path(self) -> str | None:
        """`transformers-X.dist-info/METADATA`: the wheel's, or the installed distribution's beside the package
        (where pip writes it; the one of this release when several are there)."""
        if self._zip is not None:
            names = [n for n in self._zip.namelist() if re.fullmatch(r"transformers-[^/]+\.dist-info/METADATA", n)]
        else:
            assert self._root is not None
            names = [f"{p.parent.name}/METADATA" for p in self._root.glob("transformers-*.dist-info/METADATA")]
        own = [n for n in names if n.startswith(f"transformers-{self.version}.dist-info/")]
        found = own or sorted(names)
        return found[0] if found else None


def fact(value: Any, file: str, line: int | None) -> Fact:
    return {"value": value, "file": file.removeprefix("transformers/"), "line": line}


def _functions(tree: ast.AST, name: str) -> Iterator[ast.FunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            yield node


def _function(release: Release, path: str, name: str) -> ast.FunctionDef | None:
    tree = release.tree(path)
    return next(_functions(tree, name), None) if tree is not None else None


def _version_consts(node: ast.AST) -> list[tuple[str, int]]:
    found = [
        (n.value, n.lineno)
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and VERSION_RE.match(n.value)
    ]
    return sorted(found, key=lambda item: item[1])


def _module_assign(release: Release, path: str, name: str) -> tuple[ast.expr, int] | None:
    tree = release.tree(path)
    if tree is None:
        return None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if value is not None and any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return value, node.lineno
    return None


def _const_assign(release: Release, path: str, name: str) -> Fact:
    found = _module_assign(release, path, name)
    if found and isinstance(found[0], ast.Constant):
        return fact(found[0].value, path, found[1])
    return fact(None, path, None)


# -- extractors: one per fact ---------------------------------------------------------------------------


def torch_floor(r: Release) -> Fact:
    """The torch version below which the release disables torch (`is_torch_available` returns False)."""
    fn = _function(r, IMPORT_UTILS, "is_torch_available")
    if fn is not None and (consts := _version_consts(fn)):
        return fact(consts[0][0], IMPORT_UTILS, consts[0][1])
    text = r.text(IMPORT_UTILS) or ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "Disabling PyTorch because PyTorch >=" in line:
            for j in range(i, max(i - 8, -1), -1):
                m = re.search(r'version\.parse\("(\d[\d.]*)"\)', lines[j])
                if m and "torch" in lines[j]:
                    return fact(m.group(1), IMPORT_UTILS, j + 1)
    return fact(None, IMPORT_UTILS, fn.lineno if fn is not None else None)


def torch_requirement(r: Release) -> Fact:
    """The torch requirement of the `torch` extra (dependency_versions_table.py): what pip enforces."""
    found = _module_assign(r, DEPS, "deps")
    if found and isinstance(found[0], ast.Dict):
        for key, value in zip(found[0].keys, found[0].values):
            if isinstance(key, ast.Constant) and key.value == "torch" and isinstance(value, ast.Constant):
                return fact(value.value, DEPS, key.lineno)
    return fact(None, DEPS, None)


def _min_from_function(r: Release, path: str, name: str) -> Fact:
    fn = _function(r, path, name)
    if fn is not None and (consts := _version_consts(fn)):
        return fact(consts[0][0], path, consts[0][1])
    return fact(None, path, fn.lineno if fn is not None else None)


def sdpa_torch_min(r: Release) -> Fact:
    """`is_torch_sdpa_available`: the torch version SDPA needs (gone once the torch floor is above it)."""
    return _min_from_function(r, IMPORT_UTILS, "is_torch_sdpa_available")


def flex_torch_min(r: Release) -> Fact:
    """`is_torch_flex_attn_available`: the torch version flex_attention needs."""
    return _min_from_function(r, IMPORT_UTILS, "is_torch_flex_attn_available")


def flash_attn_min(r: Release) -> Fact:
    """`is_flash_attn_2_available`: the flash-attn version accepted on CUDA (its first version literal)."""
    return _min_from_function(r, IMPORT_UTILS, "is_flash_attn_2_available")


def accelerate_min(r: Release) -> Fact:
    return _const_assign(r, IMPORT_UTILS, "ACCELERATE_MIN_VERSION")


_BNB_LINE = re.compile(r'version\("bitsandbytes"\)\)\s*(?:<|>=)\s*version\.parse\("(\d[\d.]*)"\)')


def bitsandbytes_min(r: Release) -> Fact:
    """BITSANDBYTES_MIN_VERSION, else the 4-bit quantizer's (or modeling_utils') bitsandbytes check."""
    const = _const_assign(r, IMPORT_UTILS, "BITSANDBYTES_MIN_VERSION")
    if const["value"] is not None:
        return const
    for path in (BNB4, MODELING_UTILS):
        for number, line in enumerate((r.text(path) or "").splitlines(), start=1):
            m = _BNB_LINE.search(line)
            if m and "serializ" not in line:
                return fact(m.group(1), path, number)
    return fact(None, IMPORT_UTILS, None)


def kernels_window(r: Release) -> Fact:
    """[KERNELS_MIN_VERSION, KERNELS_MAX_VERSION): the `kernels` versions whose Hub kernels the release uses."""
    low = _const_assign(r, IMPORT_UTILS, "KERNELS_MIN_VERSION")
    high = _const_assign(r, IMPORT_UTILS, "KERNELS_MAX_VERSION")
    if low["value"] is None:
        fn = _function(r, IMPORT_UTILS, "is_kernels_available")
        if fn is None:
            return fact(None, IMPORT_UTILS, None)
        consts = _version_consts(fn)
        if not consts:
            return fact({"min": None, "max": None}, IMPORT_UTILS, fn.lineno)
        return fact({"min": consts[0][0], "max": None}, IMPORT_UTILS, consts[0][1])
    return fact({"min": low["value"], "max": high["value"]}, IMPORT_UTILS, low["line"])


def _str_const(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def kernel_fallback(r: Release) -> Fact:
    """FLASH_ATTN_KERNEL_FALLBACK (impl -> Hub kernel used when the flash package is missing); on ROCm the
    release may name another repo (`rocm`)."""
    for path in (FA_UTILS, MODELING_UTILS):
        found = _module_assign(r, path, "FLASH_ATTN_KERNEL_FALLBACK")
        if found is not None:
            break
    if found and isinstance(found[0], ast.Dict):
        mapping: dict[str, Any] = {}
        for key, value in zip(found[0].keys, found[0].values):
            impl = _str_const(key)
            if impl is None:
                continue
            if isinstance(value, ast.IfExp):
                mapping[impl] = {"cuda": _str_const(value.orelse), "rocm": _str_const(value.body)}
            else:
                mapping[impl] = {"cuda": _str_const(value), "rocm": _str_const(value)}
        return fact(mapping, path, found[1])
    tree = r.tree(MODELING_UTILS)
    if tree is not None:  # before the map: a literal assigned in _check_and_adjust_attn_implementation
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and (repo := _str_const(node.value)) and repo.startswith("kernels-community/"):
                return fact({"flash_attention_2": {"cuda": repo, "rocm": repo}}, MODELING_UTILS, node.lineno)
    return fact(None, FA_UTILS, None)


def _matrix(r: Release) -> tuple[ast.Dict, int] | None:
    found = _module_assign(r, FA_UTILS, "FLASH_ATTENTION_COMPATIBILITY_MATRIX")
    return (found[0], found[1]) if found and isinstance(found[0], ast.Dict) else None


def flash_cc_gates(r: Release) -> Fact:
    """Minimum CUDA compute-capability major per flash implementation, where the release gates it."""
    matrix = _matrix(r)
    if matrix is not None:
        gates: dict[str, int | None] = {}
        line = matrix[1]
        for key, value in zip(matrix[0].keys, matrix[0].values):
            if not (isinstance(key, ast.Constant) and isinstance(value, ast.Dict)):
                continue
            gates[f"flash_attention_{key.value}"] = None
            for k, v in zip(value.keys, value.values):
                if _str_const(k) == "cuda_min_major_version" and isinstance(v, ast.Constant):
                    gates[f"flash_attention_{key.value}"] = v.value
                    line = min(line, v.lineno) if line != matrix[1] else v.lineno
        return fact(gates, FA_UTILS, line)
    gates = {}
    first_line: int | None = None
    function_line: int | None = None
    for version in (2, 3, 4):
        fn = _function(r, MODELING_UTILS, f"_flash_attn_{version}_can_dispatch") or _function(
            r, MODELING_UTILS, f"_check_and_enable_flash_attn_{version}"
        )
        if fn is None:
            continue
        gates[f"flash_attention_{version}"] = None
        function_line = function_line or fn.lineno  # no gate found: cite the check that has none
        for node in ast.walk(fn):
            text = ast.unparse(node) if isinstance(node, ast.Compare) else ""
            if "get_device_capability" in text or re.match(r"^major\s*<", text):
                nums = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, int)]
                if nums:
                    gates[f"flash_attention_{version}"] = max(nums)
                    first_line = first_line or node.lineno
    if not gates:
        return fact(None, MODELING_UTILS, None)
    return fact(gates, MODELING_UTILS, first_line or function_line)


def flash_devices(r: Release) -> Fact:
    """Device types each flash implementation supports (`supported_devices` of the compatibility matrix)."""
    matrix = _matrix(r)
    if matrix is None:
        return fact(None, FA_UTILS, None)
    devices: dict[str, list[str]] = {}
    line = matrix[1]
    for key, value in zip(matrix[0].keys, matrix[0].values):
        if not (isinstance(key, ast.Constant) and isinstance(value, ast.Dict)):
            continue
        for k, v in zip(value.keys, value.values):
            if _str_const(k) == "supported_devices" and isinstance(v, ast.Tuple):
                names = [s for el in v.elts if isinstance(el, ast.Tuple) for e in el.elts if (s := _str_const(e))]
                devices[f"flash_attention_{key.value}"] = names
    return fact(devices, FA_UTILS, line)


def _string_lists_with_eager(tree: ast.AST) -> Iterator[tuple[list[str], int]]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            values = [_str_const(e) for e in node.elts]
            if "eager" in values and "sdpa" in values and all(v is not None for v in values):
                yield [v for v in values if v is not None], node.lineno


def _attention_mapping(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Keys of `_global_mapping = {...}` (AttentionInterface) or `ALL_ATTENTION_FUNCTIONS.update({...})`."""
    for node in ast.walk(tree):
        target = None
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in ("_global_mapping", "ALL_ATTENTION_FUNCTIONS") for t in targets):
                target = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update":
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "ALL_ATTENTION_FUNCTIONS" and node.args:
                target = node.args[0]
        if isinstance(target, ast.Dict):
            for key in target.keys:
                if (name := _str_const(key)) is not None:
                    yield name, key.lineno


def attn_names(r: Release) -> Fact:
    """The attn_implementation names the release accepts, each with the line that accepts it."""
    tree = r.tree(MODELING_UTILS)
    assert tree is not None
    names: dict[str, int] = {}
    for values, line in _string_lists_with_eager(tree):
        for name in values:
            names.setdefault(name, line)
    for name, line in _attention_mapping(tree):
        names.setdefault(name, line)
    if "eager" not in names:
        for node in ast.walk(tree):
            if _str_const(node) == "eager":  # type: ignore[arg-type]
                names["eager"] = node.lineno  # type: ignore[attr-defined]
                break
    ordered = sorted(names, key=lambda n: (n not in BASE_IMPLS, n))
    item = fact(ordered, MODELING_UTILS, min(names.values()))
    item["lines"] = {name: names[name] for name in ordered}
    return item


def paged_prefix(r: Release) -> Fact:
    """Whether `paged|<impl>` names are accepted: the line that strips or maps the `paged|` prefix."""
    text = r.text(MODELING_UTILS) or ""
    for number, line in enumerate(text.splitlines(), start=1):
        if '"paged|"' in line or "'paged|'" in line or '"paged|eager"' in line:
            return fact(True, MODELING_UTILS, number)
    return fact(False, MODELING_UTILS, None)


def hub_kernel_pattern(r: Release) -> Fact:
    """The regex an attn_implementation must match to be loaded as a Hub kernel (`org/repo[:function]`)."""
    for path in (HUB_KERNELS, MODELING_UTILS):
        tree = r.tree(path)
        if tree is None:
            continue
        for node in ast.walk(tree):
            value = _str_const(node) if isinstance(node, ast.Constant) else None
            if value and value.startswith("^[^/:]+/"):
                return fact(value, path, node.lineno)
    return fact(None, MODELING_UTILS, None)


def _from_pretrained(r: Release) -> ast.FunctionDef | None:
    tree = r.tree(MODELING_UTILS)
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "PreTrainedModel":
            return next(_functions(node, "from_pretrained"), None)
    return None


def _kwarg_pop(fn: ast.FunctionDef, name: str) -> int | None:
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("pop", "get")
            and node.args
            and _str_const(node.args[0]) == name
        ):
            return node.lineno
    return None


def load_in_kwargs(r: Release) -> Fact:
    """Top-level `load_in_8bit=` / `load_in_4bit=`: read by from_pretrained (line), or gone (then an unknown
    kwarg reaches the model's __init__ and raises TypeError); the line cited is then from_pretrained's def."""
    fn = _from_pretrained(r)
    assert fn is not None, f"{r.version}: no PreTrainedModel.from_pretrained"
    line = _kwarg_pop(fn, "load_in_8bit")
    if line is not None:
        return fact("accepted", MODELING_UTILS, line)
    return fact("removed", MODELING_UTILS, fn.lineno)


def dtype_kwarg(r: Release) -> Fact:
    """The from_pretrained keyword for the dtype: `dtype` (with `torch_dtype` kept as an alias) or `torch_dtype`."""
    fn = _from_pretrained(r)
    assert fn is not None
    line = _kwarg_pop(fn, "dtype")
    params = [a.arg for a in (*fn.args.args, *fn.args.kwonlyargs)]
    if line is None and "dtype" in params:
        line = next(a.lineno for a in (*fn.args.args, *fn.args.kwonlyargs) if a.arg == "dtype")
    if line is not None:
        return fact("dtype", MODELING_UTILS, line)
    return fact("torch_dtype", MODELING_UTILS, _kwarg_pop(fn, "torch_dtype"))


def dtype_default(r: Release) -> Fact:
    """What from_pretrained loads with no dtype: "auto" (the checkpoint's dtype, v5) or "float32" (torch's default)."""
    fn = _from_pretrained(r)
    assert fn is not None
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "dtype" for t in node.targets)
            and _str_const(node.value) == "auto"
        ):
            return fact("auto", MODELING_UTILS, node.lineno)
    return fact("float32", MODELING_UTILS, _kwarg_pop(fn, "torch_dtype"))


def right_padding(r: Release) -> Fact:
    """What generate() does with right-padded batches of a decoder-only model: "warns" (the line), else null."""
    path = "transformers/generation/utils.py"
    for number, line in enumerate((r.text(path) or "").splitlines(), start=1):
        if "right-padding was detected" in line:
            return fact("warns", path, number)
    return fact(None, path, None)


def use_kernels_default(r: Release) -> Fact:
    """What `from_pretrained` does without `use_kernels`: True where it turns Hub kernels on (5.25:
    `elif use_kernels is None: use_kernels = True`, cited there), False where the keyword defaults to off (cited
    at its `kwargs.pop`), null where from_pretrained does not read the keyword at all (before 4.53: it then
    reaches the model's `__init__`, which raises TypeError; cited at from_pretrained's def)."""
    fn = _from_pretrained(r)
    assert fn is not None, f"{r.version}: no PreTrainedModel.from_pretrained"
    line = _kwarg_pop(fn, "use_kernels")
    if line is None:
        return fact(None, MODELING_UTILS, fn.lineno)
    for node in ast.walk(fn):
        if not (isinstance(node, ast.If) and _is_none_test(node.test, "use_kernels")):
            continue
        for stmt in node.body:
            if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "use_kernels"
                                                     for t in stmt.targets)
                    and isinstance(stmt.value, ast.Constant) and stmt.value.value is True):
                return fact(True, MODELING_UTILS, stmt.lineno)
    return fact(False, MODELING_UTILS, line)


def _is_none_test(test: ast.expr, name: str) -> bool:
    """`name is None`."""
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == name
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Is)
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None)


def _string_set(node: ast.expr | None) -> list[str] | None:
    if isinstance(node, (ast.Set, ast.Tuple, ast.List)) and all(_str_const(e) is not None for e in node.elts):
        return sorted(str(_str_const(e)) for e in node.elts)
    return None


def hub_kernels_env(r: Release) -> Fact:
    """How `USE_HUB_KERNELS` switches Hub kernels off: `{"variable", "default", "true"}` (the values read as on;
    anything else is off), case-folded as the release compares it. 5.25: `_kernels_enabled()` calls
    `is_env_variable_true("USE_HUB_KERNELS", default="YES")` on every load (true: 1, on, true, y, yes);
    5.0-5.24: read once at import, `.upper() in ENV_VARS_TRUE_VALUES` (1, ON, TRUE, YES). Null where the release
    reads no such variable. Cited at the line reading it."""
    tree = r.tree(HUB_KERNELS)
    if tree is None:
        return fact(None, HUB_KERNELS, None)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and _str_const(node.args[0]) == "USE_HUB_KERNELS"):
            continue
        default = next((_str_const(k.value) for k in node.keywords if k.arg == "default"), None)
        default = default or (_str_const(node.args[1]) if len(node.args) > 1 else None)
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        true: list[str] | None = None
        if name == "is_env_variable_true":
            helper = _function(r, IMPORT_UTILS, "is_env_variable_true")
            found = [s for n in ast.walk(helper) if (s := _string_set(n if isinstance(n, ast.expr) else None))] \
                if helper is not None else []
            true = found[0] if found else None
        else:  # os.environ.get(...).upper() compared with ENV_VARS_TRUE_VALUES
            found_set = _module_assign(r, IMPORT_UTILS, "ENV_VARS_TRUE_VALUES")
            true = _string_set(found_set[0]) if found_set else None
        values = sorted({v.lower() for v in true}) if true else None
        return fact({"variable": "USE_HUB_KERNELS", "default": default, "true": values}, HUB_KERNELS, node.lineno)
    return fact(None, HUB_KERNELS, None)


_REQUIRES_KERNELS = re.compile(r"^Requires-Dist:\s*kernels\s*([^;]*?)\s*(;.*)?$")


def kernels_required(r: Release) -> Fact:
    """The `kernels` requirement pip installs with transformers itself: the wheel's `Requires-Dist: kernels...`
    line without an `extra ==` marker (5.25: `kernels<0.20,>=0.19.1`, a core dependency), else null (an extra
    only, or not named). Read from the wheel's METADATA, or the installed dist-info's."""
    path = r.metadata_path()
    if path is None:
        return fact(None, "METADATA", None)
    for number, line in enumerate((r.text(path) or "").splitlines(), start=1):
        m = _REQUIRES_KERNELS.match(line.strip())
        if m and "extra" not in (m.group(2) or ""):
            return fact(m.group(1).replace(" ", "") or "", path, number)
    return fact(None, path, None)


def _hub_kernel_entry(r: Release, name: str) -> tuple[ast.Dict, int] | None:
    """The `_HUB_KERNEL_MAPPING[name]` dict literal of hub_kernels.py and its line."""
    found = _module_assign(r, HUB_KERNELS, "_HUB_KERNEL_MAPPING")
    if found is None or not isinstance(found[0], ast.Dict):
        return None
    for key, value in zip(found[0].keys, found[0].values):
        if _str_const(key) == name and isinstance(value, ast.Dict):
            return value, key.lineno
    return None


def _dict_get(node: ast.Dict, key: str) -> Any:
    for k, v in zip(node.keys, node.values):
        if _str_const(k) == key and isinstance(v, ast.Constant):
            return v.value
    return None


def fp8_hub_kernel(r: Release) -> Fact:
    """The Hub kernel fine-grained FP8's matmul is loaded from, and the call (`{"repo": ..., "call": ...}`), else
    null.

    Null while the FP8 matmul is a Triton kernel inside integrations/finegrained_fp8.py (to 5.3; the CUTLASS
    Hub kernel of 5.1-5.3 is optional: a failure falls back to that in-file kernel). From 5.4 the file calls
    `get_kernel("kernels-community/finegrained-fp8")`, from 5.5 `lazy_load_kernel("finegrained-fp8")`; both
    raise without the `kernels` package. The line cited is that call."""
    lines = (r.text(FP8) or "").splitlines()
    for number, line in enumerate(lines, start=1):
        direct = re.search(r'get_kernel\(\s*"(kernels-community/finegrained-fp8)"', line)
        if direct:
            return fact({"repo": direct.group(1), "call": "get_kernel"}, FP8, number)
        if f'lazy_load_kernel("{FP8_KERNEL}")' in line:
            entry = _hub_kernel_entry(r, FP8_KERNEL)
            repo = _dict_get(entry[0], "repo_id") if entry else None
            assert repo, f"{r.version}: lazy_load_kernel({FP8_KERNEL!r}) without a _HUB_KERNEL_MAPPING entry"
            return fact({"repo": repo, "call": "lazy_load_kernel"}, FP8, number)
    return fact(None, FP8, None)


def fp8_kernel_version(r: Release) -> Fact:
    """The major version of the FP8 Hub kernel transformers asks `kernels` for (`_HUB_KERNEL_MAPPING`
    "finegrained-fp8" "version": kernels loads the repo's `v<N>` branch); null where no version is pinned (5.4
    calls get_kernel without one) or no Hub kernel is used."""
    entry = _hub_kernel_entry(r, FP8_KERNEL)
    if entry is None or fp8_hub_kernel(r)["value"] is None:
        return fact(None, HUB_KERNELS, None)
    return fact(_dict_get(entry[0], "version"), HUB_KERNELS, entry[1])


# On-the-fly quantization: the method keys of data/quant_methods.json (bitsandbytes split into its two quantizers)
# and the quantizer file each loads with.
QUANTIZERS = {
    "bitsandbytes_8bit": "transformers/quantizers/quantizer_bnb_8bit.py",
    "bitsandbytes_4bit": "transformers/quantizers/quantizer_bnb_4bit.py",
    "quanto": "transformers/quantizers/quantizer_quanto.py",
    "hqq": "transformers/quantizers/quantizer_hqq.py",
    "fp8": "transformers/quantizers/quantizer_finegrained_fp8.py",
    "fbgemm_fp8": "transformers/quantizers/quantizer_fbgemm_fp8.py",
    "torchao": "transformers/quantizers/quantizer_torchao.py",
}
CORE_LOADING = "transformers/core_model_loading.py"
QUANTIZER_BASE = "transformers/quantizers/base.py"


def _per_release(item: Fact, release: Release) -> Fact:
    """Mark a fact whose line moves from release to release: `runs` keeps every release's line in `lines`."""
    item["by_release"] = (release.version, item["line"])
    return item


def quantize_ops_call(r: Release) -> Fact:
    """How a weight is quantized while it loads: "get_quantize_ops" where core_model_loading.py (5.x) asks the
    quantizer for its ops on every parameter that `param_needs_quantization` when the checkpoint is not
    pre-quantized; "create_quantized_param" where modeling_utils.py (4.x) calls the quantizer's method directly."""
    for number, line in enumerate((r.text(CORE_LOADING) or "").splitlines(), start=1):
        if "hf_quantizer.get_quantize_ops()" in line:
            return _per_release(fact("get_quantize_ops", CORE_LOADING, number), r)
    for number, line in enumerate((r.text(MODELING_UTILS) or "").splitlines(), start=1):
        if "hf_quantizer.create_quantized_param(" in line:
            return _per_release(fact("create_quantized_param", MODELING_UTILS, number), r)
    return _per_release(fact(None, CORE_LOADING, None), r)


def quantize_ops_base(r: Release) -> Fact:
    """"NotImplementedError" where `HfQuantizer.get_quantize_ops` (quantizers/base.py) raises for a quantizer that
    does not override it (5.x: "... is not available yet and will be supported soon."), else null."""
    fn = _function(r, QUANTIZER_BASE, "get_quantize_ops")
    if fn is not None and any(isinstance(n, ast.Raise) for n in ast.walk(fn)):
        return _per_release(fact("NotImplementedError", QUANTIZER_BASE, fn.lineno), r)
    return _per_release(fact(None, QUANTIZER_BASE, None), r)


def _quantizer_method(r: Release, path: str, name: str) -> tuple[str, int] | None:
    """(file, line) of `def name` in the quantizer class of `path` or a base it inherits from other than
    HfQuantizer (a class of the same file, or one imported from a sibling quantizer module)."""
    tree = r.tree(path)
    if tree is None:
        return None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    imported = {a.asname or a.name: n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module
                and n.level == 1 and n.module.startswith("quantizer_") for a in n.names}
    main = next((c for c in classes.values() if c.name.endswith("Quantizer")), None)
    todo, seen = [(path, main)] if main else [], set()
    while todo:
        where, cls = todo.pop(0)
        if cls is None or (where, cls.name) in seen:
            continue
        seen.add((where, cls.name))
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return where, node.lineno
        for base in cls.bases:
            if not isinstance(base, ast.Name) or base.id == "HfQuantizer":
                continue
            if base.id in classes:
                todo.append((where, classes[base.id]))
            elif base.id in imported:
                other = f"transformers/quantizers/{imported[base.id]}.py"
                other_tree = r.tree(other)
                found = next((n for n in (other_tree.body if other_tree else []) if isinstance(n, ast.ClassDef)
                              and n.name == base.id), None)
                todo.append((other, found))
    return None


def _onthefly(key: str) -> Callable[[Release], Fact]:
    path = QUANTIZERS[key]

    def extract(r: Release) -> Fact:
        """Whether this release can quantize `key` on the fly: "get_quantize_ops" (5.x: the quantizer defines
        the ops core_model_loading.py asks for), null (5.x: it does not, and HfQuantizer's default raises
        NotImplementedError), "create_quantized_param" (4.x: the old path; the line is the quantizer's method,
        null where the quantizer relies on the loader's default), false (no such quantizer file in the release)."""
        if r.text(path) is None:
            return _per_release(fact(False, path, None), r)
        if quantize_ops_call(r)["value"] == "get_quantize_ops":
            found = _quantizer_method(r, path, "get_quantize_ops")
            return _per_release(fact("get_quantize_ops", found[0], found[1]) if found else fact(None, path, None), r)
        found = _quantizer_method(r, path, "create_quantized_param")
        return _per_release(fact("create_quantized_param", found[0] if found else path, found[1] if found else None), r)

    extract.__name__ = f"onthefly_{key}"
    return extract


def distributed_config(r: Release) -> Fact:
    """Issue 30: the line of `class DistributedConfig` (distributed/configuration_utils.py), the way to ask
    from_pretrained for tensor parallelism (`distributed_config=DistributedConfig(tp_size=N, tp_plan="auto")`);
    null where the release has no such class."""
    tree = r.tree(DIST_CONFIG)
    found = next((n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef) and n.name == "DistributedConfig"),
                 None)
    return fact(True if found else None, DIST_CONFIG, found.lineno if found else None)


def tp_plan_kwarg(r: Release) -> Fact:
    """Issue 30: the line where from_pretrained pops `tp_plan` (the older way to ask for tensor parallelism,
    deprecated in 5.x in favour of `distributed_config`); null where the kwarg is not read."""
    fn = _from_pretrained(r)
    line = _kwarg_pop(fn, "tp_plan") if fn is not None else None
    return fact(True if line else None, MODELING_UTILS, line)


def _local_tp_line(r: Release, path: str) -> Fact:
    for number, line in enumerate((r.text(path) or "").splitlines(), start=1):
        if "_hf_quantized_needs_local_tp = True" in line:
            return fact(True, path, number)
    return fact(None, path, None)


def tp_quant_fp8(r: Release) -> Fact:
    """Issue 30: fine-grained FP8 modules marked `_hf_quantized_needs_local_tp` (tensor parallel shards them on
    the local path); null where no quantized module is marked, so TP over that method is unproven."""
    return _local_tp_line(r, FP8)


def tp_quant_torchao(r: Release) -> Fact:
    """Issue 30: torchao modules marked `_hf_quantized_needs_local_tp`, as for fine-grained FP8."""
    return _local_tp_line(r, TORCHAO)


EXTRACTORS: dict[str, Callable[[Release], Fact]] = {
    "torch_floor": torch_floor,
    "torch_requirement": torch_requirement,
    "sdpa_torch_min": sdpa_torch_min,
    "flex_torch_min": flex_torch_min,
    "flash_attn_min": flash_attn_min,
    "flash_cc_gates": flash_cc_gates,
    "flash_devices": flash_devices,
    "kernels_window": kernels_window,
    "kernel_fallback": kernel_fallback,
    "accelerate_min": accelerate_min,
    "bitsandbytes_min": bitsandbytes_min,
    "attn_names": attn_names,
    "paged_prefix": paged_prefix,
    "hub_kernel_pattern": hub_kernel_pattern,
    "load_in_kwargs": load_in_kwargs,
    "dtype_kwarg": dtype_kwarg,
    "dtype_default": dtype_default,
    "right_padding": right_padding,
    "use_kernels_default": use_kernels_default,
    "hub_kernels_env": hub_kernels_env,
    "kernels_required": kernels_required,
    "fp8_hub_kernel": fp8_hub_kernel,
    "fp8_kernel_version": fp8_kernel_version,
    "quantize_ops_call": quantize_ops_call,
    "quantize_ops_base": quantize_ops_base,
    **{f"onthefly_{key}": _onthefly(key) for key in QUANTIZERS},
    "distributed_config": distributed_config,
    "tp_plan_kwarg": tp_plan_kwarg,
    "tp_quant_fp8": tp_quant_fp8,
    "tp_quant_torchao": tp_quant_torchao,
}


def runs(per_release: list[tuple[str, Fact]]) -> list[dict[str, Any]]:
    """Merge consecutive releases with equal values; each run cites its first release."""
    merged: list[dict[str, Any]] = []
    for release, item in per_release:
        own = {item["by_release"][0]: item["by_release"][1]} if item.get("by_release", (0, None))[1] else {}
        same_file = "by_release" not in item or merged and merged[-1]["file"] == item["file"]
        if merged and merged[-1]["value"] == item["value"] and same_file:
            merged[-1]["to"] = release
            if own:  # a per-release fact: every release's own line (its value and file are the run's)
                merged[-1].setdefault("lines", {}).update(own)
            continue
        lines = item.get("lines", own if "by_release" in item and own else None)
        merged.append({"from": release, "to": release, "value": item["value"], "release": release,
                       "file": item["file"], "line": item["line"], **({"lines": lines} if lines is not None else {})})
    return merged


def read_facts(release: Release) -> dict[str, Fact]:
    """Every fact of one release (`{"value", "file", "line"}`, plus `by_release` for per-release lines)."""
    return {name: extract(release) for name, extract in EXTRACTORS.items()}
