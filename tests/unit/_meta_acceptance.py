"""What the installed transformers itself accepts, per model type and attention implementation.

The oracle for tests/unit/test_matrix_acceptance.py, kept apart from advisor/knowledge so that the test
compares two different computations. Each model type's class is built on the meta device from its default
config with `_from_config(config, attn_implementation=...)`: the `PreTrainedModel.__init__` path that
`from_pretrained` runs too (`_check_and_adjust_attn_implementation` with `is_init_check=True`, on the model
and on every sub-model whose config received the request). That answers eager, sdpa and flex_attention.

flash_attention_2/3 cannot be built here: flash-attn is not installed, and `_flash_attn_can_dispatch`
raises ImportError for the missing package right after its architecture check (`if not
self._supports_flash_attn: raise ValueError(...)`), so the first sub-model that passes stops the build
before the others are checked. For those two, the model as built for sdpa (else flex, else eager) is
taken, and the same
`_check_and_adjust_attn_implementation` runs on each PreTrainedModel in the built tree whose config
received the request: a ValueError is the architecture refusing, an ImportError naming the flash package
(or `kernels`, for a class that redirects flash requests to a Hub kernel) is the architecture accepting:
only the missing package is left. A ValueError that is not "does not support" (hrm_text refuses flash only
with `prefix_lm=True`) depends on the config, not the architecture, and stays undecided. A model type whose default config cannot be
built (missing optional package, required arguments) is undecided, and so is every cell of it.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

BUILT = ("eager", "sdpa", "flex_attention")
FLASH = ("flash_attention_2", "flash_attention_3")


def _configs(config: Any) -> list[Any]:
    """The config and every sub-config the `_attn_implementation` setter forwards a request to."""
    found, todo = [], [config]
    while todo:
        current = todo.pop()
        found.append(current)
        for key in getattr(current, "sub_configs", {}) or {}:
            sub = getattr(current, key, None)
            if sub is not None and hasattr(sub, "sub_configs"):
                todo.append(sub)
    return found


def _flash_decision(model: Any, config: Any, impl: str) -> bool | str:
    from transformers import PreTrainedModel

    receiving = {id(c) for c in _configs(config)}
    for module in model.modules():
        if not isinstance(module, PreTrainedModel) or id(module.config) not in receiving:
            continue
        try:
            module._check_and_adjust_attn_implementation(impl, is_init_check=True)
        except ValueError as exc:
            if "does not support" in str(exc):
                return False
            if "Kernel repository" in str(exc) or "not available in the local cache" in str(exc):
                # the class redirects flash requests to a Hub kernel (`_compatible_flash_implementations`) and
                # `kernels` (a dependency from 5.25) failed to fetch it offline: the architecture accepted
                continue
            return f"ValueError: {exc}"[:200]
        except ImportError as exc:
            # the flash package, or `kernels` for a Hub kernel the class redirects flash requests to
            # (`_compatible_flash_implementations`): the architecture accepted, only a package is missing
            if "flash" not in str(exc).lower() and "`kernels`" not in str(exc):
                return f"ImportError: {exc}"[:200]
    return True


def decide(model_type: str, class_name: str) -> dict[str, bool | str]:
    """impl -> True/False where transformers decides, or the reason (a str) it could not be built."""
    import torch
    import transformers
    from transformers import AutoConfig

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    out: dict[str, bool | str] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for impl in ("sdpa", "flex_attention", "eager"):
            if impl == "eager" and FLASH[0] in out:
                # NOTE: eager has no dispatch check in 5.24 (`get_correct_attn_implementation` checks only flash,
                # flex and sdpa), so a type that built with sdpa or flex builds with eager: one build saved per type.
                out[impl] = True
                continue
            try:
                cls = getattr(transformers, class_name)
                config = AutoConfig.for_model(model_type)
                with torch.device("meta"):
                    model = cls._from_config(config, attn_implementation=impl)
            except ValueError as exc:
                out[impl] = False if "does not support" in str(exc) else f"ValueError: {exc}"[:200]
                continue
            except Exception as exc:
                out[impl] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            out[impl] = True
            if FLASH[0] not in out:  # the first tree that builds answers the flash cells
                for fa in FLASH:
                    out[fa] = _flash_decision(model, config, fa)
    for fa in FLASH:
        out.setdefault(fa, f"undecided: no build succeeded ({out['eager']})")
    return out


def _decide_many(rows: list[tuple[str, str]]) -> dict[str, dict[str, bool | str]]:
    os.environ["HF_HUB_OFFLINE"] = "1"  # a worker never reaches the Hub (a redirected Hub kernel is looked up)
    return {model_type: decide(model_type, class_name) for model_type, class_name in rows}


def decide_all(rows: list[tuple[str, str]], workers: int | None = None) -> dict[str, dict[str, bool | str]]:
    """Every (model_type, class) in fresh worker processes, split round-robin over the CPU cores."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    chunks = [rows[i::workers] for i in range(workers)]
    result: dict[str, dict[str, bool | str]] = {}
    # spawn: fresh interpreters, not forks of a pytest process that already holds threads and torch state
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for part in pool.map(_decide_many, chunks):
            result.update(part)
    return result
