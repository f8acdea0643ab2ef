"""Turn a chosen candidate into from_pretrained arguments, in the spelling the target's transformers expects.

`dtype=` replaced `torch_dtype=` in transformers 4.56; `load_in_4bit=` kwargs were removed in 5.0, so
quantization always goes through `quantization_config` (a `BitsAndBytesConfig.to_dict()` mapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment as Jinja
from jinja2 import PackageLoader, StrictUndefined

from advisor.candidate import Candidate
from advisor.knowledge import version_matches

__all__ = ["dtype_key", "from_pretrained_json", "to_kwargs", "python_snippet", "bnb_config", "quantization_of"]


def dtype_key(transformers_version: str | None) -> str:
    """`dtype` from transformers 4.56 on (and when unknown: the current spelling), else `torch_dtype`."""
    if transformers_version is None or version_matches(transformers_version, ">=4.56"):
        return "dtype"
    return "torch_dtype"


def quantization_of(kwargs: Mapping[str, Any]) -> str:
    """"8bit", "4bit" or "none", read back from from_pretrained kwargs: a quantization_config mapping, or the
    top-level `load_in_*` flags of transformers before 5.0."""
    qc = kwargs.get("quantization_config")
    flags: Mapping[str, Any] = qc if isinstance(qc, Mapping) else {}
    method = str(flags.get("quant_method", ""))
    if method and method != "bitsandbytes":  # another method planned under its candidate key (issue 17)
        from advisor.knowledge.quant_methods import load_methods

        for m in load_methods():
            c = m.candidate
            if c is not None and c.quantization_config["quant_method"] == method and all(
                    flags.get(k, v) == v for k, v in c.quantization_config.items()):
                return c.key
    if flags.get("load_in_8bit") or kwargs.get("load_in_8bit"):
        return "8bit"
    if flags.get("load_in_4bit") or kwargs.get("load_in_4bit"):
        return "4bit"
    return "none"


def bnb_config(quantization: str, compute_dtype: str) -> dict[str, Any]:
    """The smallest BitsAndBytesConfig mapping for our choice: `quant_method`, the `load_in_*` flag, and only the
    keys that differ from the library defaults. 4-bit is NF4 + double quant + a half-precision compute dtype, not
    the defaults (FP4 with float32 compute, slow and less accurate); 8-bit is LLM.int8 with its defaults.

    NOTE: issue 14 item 8 - the 8-bit config used to carry bnb_4bit_quant_type="fp4" and a float32 compute
    dtype, which read as if the 8-bit plan were 4-bit. transformers reads this mapping back to the same
    BitsAndBytesConfig (tests/unit/test_report14.py checks it).
    """
    config: dict[str, Any] = {"quant_method": "bitsandbytes"}
    if quantization == "8bit":
        config["load_in_8bit"] = True
    elif quantization == "4bit":
        config.update({
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": compute_dtype,
        })
    else:
        raise ValueError(f"no bitsandbytes config for quantization {quantization!r}")
    return config


def from_pretrained_json(
    candidate: Candidate, *, transformers_version: str | None, max_memory: dict[int, str] | None = None,
    use_kernels: bool | None = None,
) -> dict[str, Any]:
    """The kwargs as JSON-safe values (dtype names as strings, max_memory keys as strings). `use_kernels`: the
    Hub-kernel switch where the plan sets it (issue 24, advisor/rules/kernelization.py), else left to the release."""
    kwargs: dict[str, Any] = {dtype_key(transformers_version): candidate.dtype, "attn_implementation": candidate.attn}
    if candidate.placement == "gpu":
        kwargs["device_map"] = "cuda:0"
    elif candidate.placement == "multi-gpu":
        kwargs["device_map"] = "auto"
        kwargs["max_memory"] = {str(k): v for k, v in (max_memory or {}).items()}
    if candidate.quantization in ("8bit", "4bit"):
        kwargs["quantization_config"] = bnb_config(candidate.quantization, candidate.dtype)
    elif candidate.quantization != "none":
        from advisor.knowledge.quant_methods import method_for

        method = method_for(candidate.quantization)
        assert method is not None and method.candidate is not None, candidate.quantization
        kwargs["quantization_config"] = dict(method.candidate.quantization_config)
    if use_kernels is not None:
        kwargs["use_kernels"] = use_kernels
    return kwargs


def to_kwargs(json_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same kwargs as live objects: torch dtypes, a BitsAndBytesConfig, integer GPU keys."""
    import torch

    kwargs = dict(json_kwargs)
    for key in ("dtype", "torch_dtype"):
        if isinstance(kwargs.get(key), str) and kwargs[key] != "auto":
            kwargs[key] = getattr(torch, kwargs[key])
    if "max_memory" in kwargs:
        kwargs["max_memory"] = {(int(k) if str(k).isdigit() else k): v for k, v in kwargs["max_memory"].items()}
    qc = kwargs.get("quantization_config")
    if isinstance(qc, dict) and qc.get("quant_method", "bitsandbytes") != "bitsandbytes":
        from transformers.quantizers.auto import AutoQuantizationConfig  # quanto, hqq, fp8 ... (issue 17)

        kwargs["quantization_config"] = AutoQuantizationConfig.from_dict(dict(qc))
    elif isinstance(qc, dict):
        from transformers import BitsAndBytesConfig

        config = {k: v for k, v in qc.items() if k != "quant_method" and not k.startswith("_")}
        kwargs["quantization_config"] = BitsAndBytesConfig(**config)
    return kwargs


_TEMPLATES = Jinja(
    loader=PackageLoader("advisor", "render/templates"),
    undefined=StrictUndefined,
    autoescape=False,  # Python source, not HTML
    keep_trailing_newline=True,
)


def python_snippet(
    *, model_name: str, auto_class: str, kwargs: dict[str, Any], tokenizer: dict[str, Any], generative: bool,
    tokenizer_files: bool = True,
) -> str:
    """A runnable script that loads the model exactly as planned. `tokenizer_files=False` (a folder without
    them, as smoke detects): token ids stand in for text, since AutoTokenizer would fail there (issue 31)."""
    bnb = kwargs.get("quantization_config")
    bnb_args = {}
    method = ""
    if bnb and bnb.get("quant_method", "bitsandbytes") != "bitsandbytes":
        from advisor.knowledge.quant_methods import load_methods

        method = next((m.candidate.python for m in load_methods()
                       if m.candidate and m.candidate.quantization_config == bnb), "")
        bnb = None
    if bnb:
        keep = ("load_in_8bit", "load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype")
        bnb_args = {k: bnb[k] for k in keep if k in bnb and (bnb[k] or k.startswith("load_in") and bnb[k])}
    return _TEMPLATES.get_template("load.py.j2").render(
        model=model_name,
        auto_class=auto_class,
        kwargs={k: v for k, v in kwargs.items() if k != "quantization_config"},
        bnb=bnb_args,
        method=method,
        tokenizer=tokenizer,
        tokenizer_files=tokenizer_files,
        generative=generative,
    )
