"""Every environment variable the advisor reads, in one place: its name, what it does, and the one function that
reads it (`read`), so a grep for `advisor.env` finds them all. The library's own switches (ADVISOR_*), the
conventions it honours (NO_COLOR, GITHUB_STEP_SUMMARY, XDG_CACHE_HOME), and the Hugging Face, CUDA,
bitsandbytes and torch launcher variables whose value it must know to judge the machine as those libraries will.

A vocabulary module: standard library only, imported by workers before anything heavy.
"""

from __future__ import annotations

import os

__all__ = ["VARIABLES", "read"]

# the advisor's own switches
CACHE_DIR = "ADVISOR_CACHE_DIR"  # the cache folder (analysis cache and measurement store); io/cache_root.py
DATA_DIR = "ADVISOR_DATA_DIR"  # a maintainer's copy of data/ (knowledge/loader.py)
NO_CACHE = "ADVISOR_NO_CACHE"  # neither read nor write the analysis cache (also --no-cache)
DEBUG = "ADVISOR_DEBUG"  # an internal error shows its traceback (cli/parser.py)
PROGRESS = "ADVISOR_PROGRESS"  # bench draws its progress bar off a terminal too (cli/bench.py)
OUTPUT_WAIT = "ADVISOR_OUTPUT_WAIT"  # seconds -o waits for a busy output file (io/write_output.py)
WRITE_PAUSE = "ADVISOR_WRITE_PAUSE"  # tests: a pause inside a write, to race it (io/write_output.py)
PARENT_PID = "ADVISOR_PARENT_PID"  # set for a worker: the advisor it dies with (isolation/lifeline.py)
SMOKE_FAULT = "ADVISOR_SMOKE_FAULT"  # tests: a fault the smoke worker injects (prove/smoke_worker.py)
FIT_INLINE = "ADVISOR_FIT_INLINE"  # tests: fit memory formulas before exit, not in a detached child (estimate/formula_store.py)
# conventions the advisor honours
NO_COLOR = "NO_COLOR"  # no colour in text output (cli/output.py)
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"  # check --format github appends its table there (cli/check.py)
XDG_CACHE_HOME = "XDG_CACHE_HOME"  # the cache folder's parent without platformdirs (io/cache_root.py)
# other libraries' variables, read to judge the machine as they will
HF_HOME = "HF_HOME"  # the Hugging Face cache (model/resolve.py)
HF_HUB_CACHE = "HF_HUB_CACHE"
HUGGINGFACE_HUB_CACHE = "HUGGINGFACE_HUB_CACHE"
HF_HUB_OFFLINE = "HF_HUB_OFFLINE"  # offline as huggingface_hub reads it (io/offline.py, probe/hub_access.py)
TRANSFORMERS_OFFLINE = "TRANSFORMERS_OFFLINE"
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"  # part of the torch probe's cache key (probe/__init__.py)
BNB_CUDA_VERSION = "BNB_CUDA_VERSION"  # the bitsandbytes binary it loads (probe/packages.py)
BNB_ROCM_VERSION = "BNB_ROCM_VERSION"
RANK = "RANK"  # torch's launcher: this process's tensor-parallel rank (prove/tp_worker.py)
USE_HUB_KERNELS = "USE_HUB_KERNELS"  # read by transformers 5.0-5.24 at import: kernel layers are read in-process only when unset (model/kernel_layers.py)

VARIABLES = (
    CACHE_DIR, DATA_DIR, NO_CACHE, DEBUG, PROGRESS, OUTPUT_WAIT, WRITE_PAUSE, PARENT_PID, SMOKE_FAULT, FIT_INLINE,
    NO_COLOR, GITHUB_STEP_SUMMARY, XDG_CACHE_HOME, HF_HOME, HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HUB_OFFLINE,
    TRANSFORMERS_OFFLINE, CUDA_VISIBLE_DEVICES, BNB_CUDA_VERSION, BNB_ROCM_VERSION, RANK, USE_HUB_KERNELS,
)


def read(name: str) -> str | None:
    """The variable's value now (None when unset); only the names above are read."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not an environment variable the advisor reads; list it in advisor/env.py")
    return os.environ.get(name)
