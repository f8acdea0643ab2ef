"""The remote-code policy: only the user's flag may let transformers run or fetch code; no file can.

Issue 15: a model folder whose config.json had an `auto_map` on a native model_type (llama), smoke-tested with a
`--config` file holding `"trust_remote_code": true`, executed the folder's modeling file, because the child passed
the file's kwargs to from_pretrained. The rules, checked against transformers 5.24:

- `trust_remote_code` in from_pretrained kwargs makes `_BaseAutoModelClass.from_pretrained` import the class named by
  config.json `auto_map` (models/auto/auto_factory.py: `if has_remote_code and trust_remote_code and not
  explicit_local_code: get_class_from_dynamic_module(...)`), even for a model_type transformers implements itself,
  and makes `GenerationMixin._load_custom_generate` run the folder's `custom_generate/generate.py`
  (generation/utils.py, `if hasattr(self, "load_custom_generate") and trust_remote_code`).
- `code_revision` picks which revision of that code `get_class_from_dynamic_module` fetches; `revision` picks the
  repository state config, weights and code are read from (auto_factory.py `hub_kwargs`); `custom_generate` names a
  repository whose `custom_generate/generate.py` `generate()` downloads and runs (generation/utils.py).
- tokenizer_config.json `auto_map` makes `AutoTokenizer.from_pretrained` import the folder's tokenizer class when
  trust_remote_code is true (models/auto/tokenization_auto.py, `if has_remote_code and trust_remote_code`).
- generation_config.json `custom_generate` / `trust_remote_code` are stored as plain attributes by 5.24's
  GenerationConfig and never read back, but they say the author wants code run; refused all the same.
- With `trust_remote_code=None` and code but no native class, `resolve_trust_remote_code` asks on stdin
  (dynamic_module_utils.py); so every from_pretrained here passes an explicit bool, never None.

So: a file may never carry these keys (`refuse_code_keys`, exit 2); a model folder that asks for code is refused
unless the user passed the flag (`check_model_folder`); and the worker children build their kwargs with
`child_kwargs`, which sets `trust_remote_code` from the flag alone.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advisor.errors import RemoteCodeError

__all__ = ["CODE_KEYS", "check_model_folder", "child_kwargs", "refuse_code_keys"]

# Keys that make transformers execute or fetch code; none of them may come from a file.
CODE_KEYS = ("trust_remote_code", "custom_generate", "code_revision", "revision")
_FLAG = "--trust-remote-code (trust_remote_code=True in Python)"
_MAX_SIDE_FILE = 16 * 1024 * 1024  # tokenizer_config.json / generation_config.json are read only up to this size


def _asks(key: str, value: Any) -> bool:
    """`"trust_remote_code": false` and `null` values ask for nothing (the advisor's own JSON has the former)."""
    return value is not None and value is not False


def refuse_code_keys(data: Any, *, source: str) -> None:
    """Raise RemoteCodeError on the first code key (at any depth) with a value that asks for something.

    Iterative, so hostile nesting cannot raise RecursionError here.
    """
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                path = f"{where}.{key}" if where else str(key)
                if key in CODE_KEYS and _asks(str(key), value):
                    raise RemoteCodeError(
                        f"{source} sets `{path}`, which would let transformers run or fetch code; the advisor takes "
                        f"that only from the command line: remove the key, and pass {_FLAG} if you trust the code"
                    )
                stack.append((value, path))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))


def _read_side_file(path: Path) -> dict[str, Any] | None:
    """A JSON object from a regular file of sane size, else None (transformers reports a broken one on load)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_SIDE_FILE:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def check_model_folder(
    config: Mapping[str, Any], folder: Path | None, *, name: str, native: bool, trust_remote_code: bool
) -> None:
    """Refuse, without the flag, a model whose files ask transformers for code.

    config.json `auto_map` on a model_type transformers implements (`native`) is allowed: loaded with an explicit
    `trust_remote_code=False`, `from_pretrained` takes the native class and never imports the mapped module
    (auto_factory.py, `elif has_local_code`); checkpoints such as tiiuae/falcon-7b still carry such an auto_map.
    """
    if trust_remote_code:
        return
    fix = f"re-run with {_FLAG} only if you trust that code"
    if "trust_remote_code" in config and _asks("trust_remote_code", config["trust_remote_code"]):
        raise RemoteCodeError(f"{name}: config.json sets `trust_remote_code`; a model cannot grant itself trust: {fix}")
    if config.get("auto_map") and not native:
        raise RemoteCodeError(f"{name} needs custom code from its repository (config.json has auto_map); {fix}")
    if folder is None:
        return
    tokenizer = _read_side_file(folder / "tokenizer_config.json")
    if tokenizer is not None and tokenizer.get("auto_map"):
        raise RemoteCodeError(
            f"{name}: tokenizer_config.json has auto_map, which asks to import the folder's tokenizer code; {fix}, "
            "or remove auto_map to use the tokenizer_class transformers ships"
        )
    generation = _read_side_file(folder / "generation_config.json")
    if generation is not None:
        for key in ("custom_generate", "trust_remote_code"):
            if _asks(key, generation.get(key)):
                raise RemoteCodeError(f"{name}: generation_config.json sets `{key}`, which asks to run generation code; {fix}")


def child_kwargs(from_pretrained: Mapping[str, Any], *, trust_remote_code: bool) -> dict[str, Any]:
    """The from_pretrained JSON kwargs a worker may use: no code key from the request, the flag's bool added.

    The parent already refused such keys; this is the children's own guard, so no path around the parent can
    hand them a `trust_remote_code` (issue 15).
    """
    refuse_code_keys(dict(from_pretrained), source="the from_pretrained kwargs")
    kwargs = {k: v for k, v in from_pretrained.items() if k not in CODE_KEYS}
    kwargs["trust_remote_code"] = bool(trust_remote_code)
    return kwargs
