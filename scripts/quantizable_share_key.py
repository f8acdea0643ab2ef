"""Structure keys: when a model type's quantizable share in one transformers release equals another's (issue 17).

Why: reading the share table builds every model type (~570) on the meta device, 4-22 minutes per release; doing
that for all 47 stored releases takes ~10 hours. A type's share only changes when something that decides its
module tree, its head class or the replacement rule changes, so `scripts/generate_quantizable_share.py` builds a
(type, release) only when its key was never built before and reuses the row otherwise.

The key is computed from the release's files alone (a wheel read as a zip, or a folder), no import. It hashes:
- the replacement rule: its `mode` (`advisor.knowledge.quantizable_share.read_rule`) and the source of the skip-list functions
  the advisor calls (`get_keys_to_not_convert`, `get_modules_to_not_convert`, `should_convert_module`);
- the code (`code_digest`: no docstrings, comment lines or blank lines) of every `modeling_*.py` and
  `configuration_*.py` of the type's `models/<dir>` (TF and Flax files excluded: never built), and, transitively, of every model directory those files import (`from ..llama.modeling_llama import`);
- for a composite (its files import `..auto`): the directories of every model type named as a string in its
  configuration files (the default sub-configs: `CONFIG_MAPPING["llama"]`, `SubConfigSpec(model_type="llama")`);
- the lines of `models/auto/*.py` naming the type or a sub-type (its config class and the head classes the generator picks from);
- of every shared file those files import (`pytorch_utils.py` for Conv1D, `activations.py`, `integrations/*.py`,
  `modeling_layers.py` ...), the definitions of the imported names and of the file's own names they use
  (the whole file where a name is re-exported), one level deep, except the files that define no parameters (`utils/`,
  `generation/`, outputs, caches, masks: `NO_PARAMETERS`); and of `modeling_utils.py` / `configuration_utils.py`,
  which change every release, only the functions that tie weights or name the embeddings (`BASE_FUNCTIONS`),
  the ones that decide which parameters are shared and which modules are skipped.

`scripts/check_share_reuse.py` proves the key on releases it was not written against (docs/quantizable-share.md).
"""

from __future__ import annotations

import ast
import hashlib
import re
import zipfile
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from pathlib import Path

__all__ = ["KEY_DEFINITION", "KEY_VERSION", "config_mapping", "read_folder", "read_wheel", "rule_digest",
           "structure_keys"]

KEY_VERSION = 1
# Shared files (relative to `transformers/`) that define no parameters: imported by every modeling file and
# changed by most releases, they would make every key new without changing any module tree.
NO_PARAMETERS = (
    "utils/", "generation/", "modeling_outputs.py", "processing_utils.py", "cache_utils.py", "masking_utils.py",
    "modeling_attn_mask_utils.py", "modeling_flash_attention_utils.py", "file_utils.py", "dynamic_module_utils.py",
    "tokenization_", "image_", "feature_extraction_", "audio_utils.py", "video_", "modeling_tf_", "modeling_flax_",
    "tf_utils.py", "__init__.py", "dependency_versions", "models/__init__.py",
)
# Changed by every release: only these functions of them enter the key (weight tying, embeddings).
BASE_FILES = ("modeling_utils.py", "configuration_utils.py")
BASE_FUNCTIONS = re.compile(r"(?:^|_)tied?(?:_|$)|^get_(?:input|output)_embeddings$")
# The skip-list functions `advisor.model.quantizable.breakdown` calls, wherever the release defines them.
SKIP_FUNCTIONS = ("get_keys_to_not_convert", "get_modules_to_not_convert", "should_convert_module")
SKIP_FILES = ("integrations/bitsandbytes.py", "quantizers/base.py", "quantizers/quantizers_utils.py")
KEY_DEFINITION = (
    f"structure key v{KEY_VERSION} (scripts/quantizable_share_key.py): sha256 of the replacement rule (mode + "
    "skip-list function sources), the modeling_*/configuration_* files of the type's model directory and of every "
    "model directory they import (transitively; a composite's default sub-config types too), the auto-mapping "
    "lines naming those types, the shared files they import except those without parameters, and the "
    "tie/embedding functions of modeling_utils.py and configuration_utils.py"
)

_CONFIG_PAIR = re.compile(r"""["']([\w\-.]+)["']\s*[,:]\s*["'](\w+Config)["']""")
_MAPPING_FILES = ("auto_mappings.py", "configuration_auto.py")
_CLASS = re.compile(r"^class (\w+)\(", re.MULTILINE)
# `from ..llama.modeling_llama import (A, B)`, `from ...pytorch_utils import Conv1D`, `from transformers.x import y`:
# (leading dots, module, imported names); a regex, not ast: it is read for ~1,000 files per release.
_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.MULTILINE)
_QUOTED = re.compile(r'"([\w\-.]+)"')
_DEFINES = re.compile(r"^(?:def|class)\s+(\w+)|^(\w+)\s*[:=]", re.MULTILINE)
_STRING = re.compile(r"""["']([\w\-.]+)["']""")


def read_wheel(wheel: Path) -> dict[str, bytes]:
    """The `.py` files of a transformers wheel, by path relative to `transformers/` (no extraction, no import)."""
    with zipfile.ZipFile(wheel) as zf:
        return {n.removeprefix("transformers/"): zf.read(n) for n in zf.namelist()
                if n.startswith("transformers/") and n.endswith(".py")}


def read_folder(root: Path) -> dict[str, bytes]:
    """The `.py` files under a `transformers/` package folder, by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.py"))}


def config_mapping(files: Mapping[str, bytes]) -> dict[str, str]:
    """model type -> config class, read from the text of `models/auto/configuration_auto.py` (and
    `auto_mappings.py`, where later 5.x moved the table) in every form used from 4.36 to 5.24:
    `("llama", "LlamaConfig")` tuples and `"llama": "LlamaConfig"` items."""
    text = b"\n".join(files.get(f"models/auto/{name}", b"") for name in _MAPPING_FILES).decode("utf-8")
    return {t: c for t, c in _CONFIG_PAIR.findall(text) if c != "AutoConfig"}  # `__all__ = ["CONFIG_MAPPING", "AutoConfig"]`


@lru_cache(maxsize=256)
def _functions(source: bytes, wanted: re.Pattern[str] | tuple[str, ...]) -> list[str]:
    """Sources of the functions (module level or methods) whose name matches `wanted`, sorted (memoized by
    content: modeling_utils.py is large and often unchanged between patch releases)."""
    text = source.decode("utf-8")
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            hit = node.name in wanted if isinstance(wanted, tuple) else bool(wanted.search(node.name))
            if hit:
                out.append(f"{node.name}:{ast.get_source_segment(text, node)}")
    return sorted(out)


def rule_digest(mode: str, files: Mapping[str, bytes]) -> str:
    """The replacement rule's part of every key: `mode` plus the skip-list functions' source."""
    h = hashlib.sha256(f"mode={mode}\n".encode())
    for rel in SKIP_FILES:
        if rel in files:
            for source in _functions(files[rel], SKIP_FUNCTIONS):
                h.update(f"{rel}\n{source}\n".encode())
    return h.hexdigest()


_DIGESTS: dict[bytes, str] = {}
# The opening quotes of a triple-quoted string (any prefix) that begins a line (its closing quotes end the drop).
_LINE_STRING = re.compile(r'''[rRuUbBfF]{0,2}("""|\'\'\')''')


def code_digest(source: bytes) -> str:
    """sha256 of a file's code without docstrings, comment lines or blank lines: a release that only rewrites
    docstrings (4.42 did, for every configuration file) does not make its keys new. Text only (an ast parse of
    ~1,300 files per release took a minute): dropped are lines that are only a comment and every triple-quoted
    string that begins a line (a docstring, or a docstring argument such as `add_start_docstrings(\n  \"\"\"..`);
    a string after `=` or `(` on its line is kept. Memoized by content: a file unchanged across releases is read
    once."""
    raw = hashlib.sha256(source).digest()
    if raw not in _DIGESTS:
        kept: list[str] = []
        closing: str | None = None  # the quotes that end the string being dropped
        for line in source.decode("utf-8", "replace").splitlines():
            stripped = line.strip()
            if closing is not None:
                if closing in stripped:
                    closing = None
                continue
            opening = _LINE_STRING.match(stripped)
            if opening:
                rest = stripped[opening.end():]
                if opening.group(1) not in rest:
                    closing = opening.group(1)
                continue
            if stripped and not stripped.startswith("#"):
                kept.append(line.rstrip())
        _DIGESTS[raw] = hashlib.sha256("\n".join(kept).encode()).hexdigest()
    return _DIGESTS[raw]


@lru_cache(maxsize=512)
def _top_level(source: bytes) -> dict[str, str] | None:
    """name -> source of each module-level definition of a shared file (inside top-level if/try too);
    None when it does not parse. Memoized by content."""
    text = source.decode("utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    lines = text.splitlines()
    out: dict[str, str] = {}
    body = list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, (ast.If, ast.Try)):
            body.extend([*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                         *(n for h in getattr(node, "handlers", []) for n in h.body)])
            continue
        names: list[str] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        for name in names:
            out[name] = out.get(name, "") + "\n".join(lines[node.lineno - 1:node.end_lineno]) + "\n"
    return out


class _Release:
    """One release's files with the lookups the key needs, computed once."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files
        self.mapping = config_mapping(files)
        self.config_dir: dict[str, str] = {}
        for path, data in files.items():
            parts = path.split("/")
            if len(parts) == 3 and parts[0] == "models" and parts[2].startswith("configuration_"):
                for name in _CLASS.findall(data.decode("utf-8")):
                    self.config_dir.setdefault(name, parts[1])
        self.dir_files: dict[str, list[str]] = {}
        for path in files:
            parts = path.split("/")
            if len(parts) == 3 and parts[0] == "models" and parts[2].startswith(("modeling_", "configuration_")) \
                    and not parts[2].startswith(("modeling_tf_", "modeling_flax_")):
                self.dir_files.setdefault(parts[1], []).append(path)
        self.auto_lines: dict[str, list[str]] = {}  # quoted name -> the lines of models/auto/*.py naming it
        for rel in sorted(files):
            if rel.startswith("models/auto/"):
                for line in files[rel].decode("utf-8").splitlines():
                    for name in set(_QUOTED.findall(line)):
                        self.auto_lines.setdefault(name, []).append(line.strip())
        self._imports: dict[str, tuple[set[str], dict[str, set[str]], bool]] = {}
        base = hashlib.sha256()
        for rel in BASE_FILES:
            if rel in files:
                for source in _functions(files[rel], BASE_FUNCTIONS):
                    base.update(f"{rel}\n{source}\n".encode())
        self.base = base.hexdigest()

    def directory(self, model_type: str) -> str | None:
        return self.config_dir.get(self.mapping.get(model_type, ""))

    def imports(self, path: str) -> tuple[set[str], dict[str, set[str]], bool]:
        """(model dirs, {shared file: names imported from it}, uses auto) that `path` imports."""
        if path in self._imports:
            return self._imports[path]
        dirs: set[str] = set()
        shared: dict[str, set[str]] = {}
        auto = False
        package = path.split("/")[:-1]
        for dots, module, imported in _IMPORT.findall(self.files[path].decode("utf-8")):
            if not dots:
                if not module.startswith("transformers"):
                    continue
                parts = module.split(".")[1:]
            else:
                keep = len(package) - (len(dots) - 1)
                if keep < 0:
                    continue
                parts = package[:keep] + (module.split(".") if module else [])
            names = [n.split()[0] for n in re.sub(r"#[^\n]*", "", imported).strip("()\n ").split(",") if n.strip()]
            if parts[:1] == ["models"]:
                targets = [parts[1]] if len(parts) > 1 else names
                for d in targets:
                    if d == "auto":
                        auto = True
                    elif d in self.dir_files:
                        dirs.add(d)
                continue
            for rel, used in self._module_files(parts, names).items():
                if not rel.startswith(NO_PARAMETERS) and rel not in BASE_FILES:
                    shared.setdefault(rel, set()).update(used)
        result = (dirs, shared, auto)
        self._imports[path] = result
        return result

    def _module_files(self, parts: list[str], names: list[str]) -> dict[str, set[str]]:
        """{file: names} an import of `names` from the module `parts` reads (for a package: the defining files;
        a whole submodule imported by name is `{file: {"*"}}`)."""
        stem = "/".join(parts)
        if f"{stem}.py" in self.files:
            return {f"{stem}.py": set(names)}
        prefix = f"{stem}/" if stem else ""
        out: dict[str, set[str]] = {}
        for name in names:
            if f"{prefix}{name}.py" in self.files:
                out.setdefault(f"{prefix}{name}.py", set()).add("*")
                continue
            for rel in self._package(prefix).get(name, ()):
                out.setdefault(rel, set()).add(name)
        return out

    def _top_level(self, rel: str) -> dict[str, str] | None:
        return _top_level(self.files[rel])

    def _definitions(self, rel: str, names: set[str]) -> str:
        """What of shared file `rel` the imported `names` are: their definitions and, transitively, the file's own
        definitions they name (ACT2FN -> ClassInstantier, ACT2CLS -> every activation class). The whole file when
        a name is not defined there (a re-export) or a whole submodule is imported."""
        defs = self._top_level(rel)
        if defs is None or "*" in names or not names <= defs.keys():
            return hashlib.sha256(self.files[rel]).hexdigest()
        done: set[str] = set()
        todo = sorted(names)
        while todo:
            name = todo.pop()
            if name in done:
                continue
            done.add(name)
            todo.extend(w for w in set(re.findall(r"\w+", defs[name])) if w in defs and w not in done)
        return hashlib.sha256("".join(f"{n}\n{defs[n]}" for n in sorted(done)).encode()).hexdigest()

    @cache  # noqa: B019 - as above
    def _package(self, prefix: str) -> dict[str, list[str]]:
        """name -> the modules directly in a package that define it at the top of a line (`__init__.py` aside:
        lazy lists, not definitions)."""
        out: dict[str, list[str]] = {}
        for rel, data in self.files.items():
            if rel.startswith(prefix) and "/" not in rel[len(prefix):] and not rel.endswith("__init__.py"):
                for d, v in _DEFINES.findall(data.decode("utf-8", "replace")):
                    out.setdefault(d or v, []).append(rel)
        return out

    def key(self, model_type: str, rule: str) -> str | None:
        """The structure key of `model_type`, or None when its directory cannot be found (then always built)."""
        start = self.directory(model_type)
        if start is None:
            return None
        types = {model_type}
        seen: set[str] = set()
        shared: dict[str, set[str]] = {}
        queue = [start]
        while queue:
            d = queue.pop()
            if d in seen:
                continue
            seen.add(d)
            for path in self.dir_files.get(d, []):
                dirs, files, auto = self.imports(path)
                for rel, names in files.items():
                    shared.setdefault(rel, set()).update(names)
                queue.extend(dirs - seen)
                if auto or "configuration_" in path:
                    for sub in self._named_types(path):
                        types.add(sub)
                        sub_dir = self.directory(sub)
                        if auto and sub_dir and sub_dir not in seen:
                            queue.append(sub_dir)
        # The type itself: the types of one directory (aimv2, aimv2_text_model) share every file and sub-type.
        h = hashlib.sha256(f"v{KEY_VERSION}\ntarget={model_type}\nrule={rule}\nbase={self.base}\n".encode())
        for path in sorted(p for d in seen for p in self.dir_files.get(d, [])):
            h.update(f"{path}:{code_digest(self.files[path])}\n".encode())
        for rel in sorted(shared):
            h.update(f"{rel}[{','.join(sorted(shared[rel]))}]:{self._definitions(rel, shared[rel])}\n".encode())
        for t in sorted(types):
            h.update(f"type={t}\n".encode())
            h.update("\n".join(self.auto_lines.get(t, [])).encode())
        return h.hexdigest()

    @cache  # noqa: B019 - one _Release per release, alive while its keys are computed
    def _named_types(self, path: str) -> set[str]:
        """Model types named as string constants in `path` (a composite's default sub-configs)."""
        return {s for s in _STRING.findall(self.files[path].decode("utf-8")) if s in self.mapping}


def structure_keys(files: Mapping[str, bytes], rule: str, types: Iterable[str] | None = None) -> dict[str, str | None]:
    """The key of every model type of a release (`types`: those only); `rule` is `rule_digest(...)`."""
    release = _Release(files)
    return {t: release.key(t, rule) for t in sorted(types if types is not None else release.mapping)}
