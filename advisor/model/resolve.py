"""Resolve a MODEL argument offline and describe its shape, without loading any weights.

Order: a local folder or config.json, then the local Hugging Face cache, then a config shipped in
`data/models/`; the network only with `allow_download`. No file from a model folder is executed unless
the user passes `trust_remote_code`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from advisor import env as envvars
from advisor.errors import ModelResolutionError
from advisor.io.read_input import CONFIG_MAX_BYTES, path_kind, printable, read_json_file
from advisor.knowledge import Knowledge, load_knowledge
from advisor.model.config_bounds import check_shape, meta_build_refusal, validate_config
from advisor.model.meta import count_on_meta
from advisor.model.prequantized import read_checkpoint_quantization
from advisor.model.remote_code import check_model_folder
from advisor.model.spec import WEIGHT_FILES, ModelSpec

__all__ = ["describe_config", "resolve_model"]

_GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSpeechSeq2Seq")


# multi-head latent attention (DeepSeek-V2/V3, GLM-4.7-Flash, Kimi-Linear) sizes its heads with these, never
# hidden_size / heads: GLM-4.7-Flash has 20 heads over a hidden size of 2048 (stop 39, found measuring it)
_MLA_HEAD_DIMS = ("qk_nope_head_dim", "qk_head_dim", "v_head_dim")

def _hf_cache_dirs() -> list[Path]:
    dirs = []
    for var in (envvars.HF_HUB_CACHE, envvars.HUGGINGFACE_HUB_CACHE):
        value = envvars.read(var)
        if value:
            dirs.append(Path(value))
    hf_home = Path(envvars.read(envvars.HF_HOME) or Path.home() / ".cache" / "huggingface")
    dirs.append(hf_home / "hub")
    return dirs


def _from_hf_cache(repo_id: str) -> Path | None:
    """The newest cached snapshot folder of `repo_id` that has a config.json."""
    if repo_id.count("/") != 1:
        return None
    folder = "models--" + repo_id.replace("/", "--")
    if len(folder) > 255:  # longer than any file name: Path.is_dir() would raise ENAMETOOLONG
        return None
    for cache in _hf_cache_dirs():
        snapshots = cache / folder / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = cache / folder / "refs" / "main"
        if ref.is_file() and (snapshots / ref.read_text().strip() / "config.json").is_file():
            return snapshots / ref.read_text().strip()
        candidates = sorted((p for p in snapshots.iterdir() if (p / "config.json").is_file()), key=lambda p: p.stat().st_mtime)
        if candidates:
            return candidates[-1]
    return None


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelResolutionError("--allow-download needs huggingface_hub: `pip install huggingface_hub`") from None
    from advisor.io.hub_reach import check_hub_reachable

    check_hub_reachable(repo_id)  # one bounded attempt instead of huggingface_hub's retries (issue 14)
    try:
        return Path(hf_hub_download(repo_id, "config.json")).parent
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise ModelResolutionError(f"could not download the config of {repo_id!r}: {type(exc).__name__}: {detail}") from None


def _read_config(path: Path) -> dict[str, Any]:
    data = read_json_file(path, what="config.json", limit=CONFIG_MAX_BYTES)
    if not isinstance(data, dict) or "model_type" not in data:
        raise ModelResolutionError(f"{printable(path)} has no `model_type`: it is not a transformers config.json")
    validate_config(data, f"config.json {printable(path)}")
    return data


def resolve_model(
    name: str,
    *,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    knowledge: Knowledge | None = None,
    cache: bool = True,
) -> ModelSpec:
    """Find MODEL offline and describe it; raise ModelResolutionError with the fix when it cannot. `cache=False`
    (--no-cache, or a `knowledge` loaded with it): the user's analysis cache is neither read nor written."""
    knowledge = knowledge or load_knowledge(cache=cache)
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # `~user` for a user that does not exist
        path = Path(name)
    source: Literal["folder", "config-file", "hf-cache", "shipped", "download"]
    folder: Path | None = None
    kind = path_kind(path)
    if kind == "dir":
        if path_kind(path / "config.json") == "missing":
            raise ModelResolutionError(f"{printable(path)} has no config.json: point MODEL at a saved transformers model folder")
        config, folder, source = _read_config(path / "config.json"), path, "folder"
    elif kind in ("file", "other"):  # "other" (a FIFO, a device) is refused by the reader with its reason
        config, source = _read_config(path), "config-file"
        folder = path.parent if path.name == "config.json" else None
    elif (cached := _from_hf_cache(name)) is not None:
        config, folder, source = _read_config(cached / "config.json"), cached, "hf-cache"
    elif (shipped := knowledge.shipped_model(name)) is not None:
        config, source = dict(shipped.config), "shipped"
        name = shipped.hub_id
    elif allow_download:
        folder = _download(name)
        config, source = _read_config(folder / "config.json"), "download"
    else:
        looks_like_path = os.sep in name and not (name.count("/") == 1 and not name.startswith((".", "/", "~")))
        if looks_like_path:
            raise ModelResolutionError(f"model path {printable(name)!r} does not exist")
        shipped_ids = ", ".join(m.hub_id for m in knowledge.models)
        raise ModelResolutionError(
            f"model {printable(name)!r} is not a local folder, not in the Hugging Face cache and not shipped "
            f"(shipped: {shipped_ids}); pass a local path, or --allow-download to fetch its config"
        )
    # `native` only matters for an auto_map; asking transformers costs an import the fast path avoids (issue 14)
    native = not config.get("auto_map") or _native(str(config["model_type"]), knowledge)
    check_model_folder(config, folder, name=name, trust_remote_code=trust_remote_code,
                       native=native)  # advisor/model/remote_code.py: issue 15
    has_weights = folder is not None and any((folder / f).is_file() for f in WEIGHT_FILES)
    return describe_config(
        config,
        name=name,
        source=source,
        path=str(folder) if folder is not None else None,
        has_weights=has_weights,
        trust_remote_code=trust_remote_code,
        cache=knowledge.cache,
    )


def _native(model_type: str, knowledge: Knowledge) -> bool:
    """True when transformers implements `model_type` itself, so an `auto_map` is ignored without consent."""
    from advisor.knowledge.model_types import model_type_known

    known = model_type_known(model_type, None, cache=knowledge.cache).known  # the installed release's auto mapping, cached per release
    if known is not None:
        return known
    return any(row.model_type == model_type for t in knowledge.shipped_attention_tables() for row in t.architectures)


def _first(config: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        value = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
        if value is not None:
            return value
    return default


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs keep the language model's shape in `text_config`."""
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else config


def _estimate(c: dict[str, Any], layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int, vocab: int) -> tuple[int, int]:
    """Closed-form count for the usual decoder shape when torch/transformers are not installed."""
    inter = int(_first(c, "intermediate_size", "ffn_dim", "n_inner", "d_ff", default=0) or 4 * hidden)
    gated = str(_first(c, "hidden_act", "activation_function", default="")).lower() in ("silu", "swiglu", "gelu_pytorch_tanh")
    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    mlp = (3 if gated else 2) * hidden * inter
    per_layer = attn + mlp
    embeddings = vocab * hidden * (1 if _first(c, "tie_word_embeddings", default=True) else 2)
    return layers * per_layer + embeddings, layers * per_layer


def _table_share(model_type: str, total: int, quantizable: int, cache: bool = True) -> tuple[int, int, str | None]:
    """Without torch: where data/quantizable_share.json says bitsandbytes replaces little, apply its share."""
    from advisor.model.quantizable import share_row

    row = share_row(model_type, cache=cache)
    if row is None or row.reason is None:
        return total, quantizable, None
    return total, min(quantizable, int(total * row.share)), row.reason


def _release() -> str | None:
    from advisor.knowledge.installed import installed_version

    return installed_version()  # from its metadata: no import on the fast path (issue 14)


def _table_release() -> str | None:
    from advisor.knowledge.quantizable_share import default_release

    return default_release()  # the installed release where the table covers it, else its newest


def describe_config(
    config: dict[str, Any],
    *,
    name: str,
    source: Literal["folder", "config-file", "hf-cache", "shipped", "download"],
    path: str | None = None,
    has_weights: bool = False,
    trust_remote_code: bool = False,
    cache: bool = True,
) -> ModelSpec:
    label = f"config.json {printable(name)}" if name.endswith(".json") else f"config.json of {printable(name)}"
    validate_config(config, label)
    c = _text_config(config)
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures else None
    hidden = int(_first(c, "hidden_size", "d_model", "n_embd", "dim", default=0))
    heads = int(_first(c, "num_attention_heads", "n_head", "num_heads", "decoder_attention_heads", "n_heads", default=1))
    kv_heads = int(_first(c, "num_key_value_heads", "num_kv_heads", "n_head_kv", default=0) or 0)
    if not kv_heads:
        kv_heads = 1 if c.get("multi_query") else heads
    head_dim = int(_first(c, "head_dim", "d_kv", default=0) or (hidden // heads if heads else 0))
    layers = int(_first(c, "num_hidden_layers", "n_layer", "num_layers", "decoder_layers", "n_layers", default=0))
    if config.get("is_encoder_decoder"):
        layers = int(_first(c, "decoder_layers", "num_decoder_layers", default=layers) or layers)
    vocab = int(_first(c, "vocab_size", "n_vocab", default=0))
    intermediate = int(_first(c, "intermediate_size", "ffn_dim", "decoder_ffn_dim", "n_inner", "d_ff", "ffn_hidden_size", default=0) or 4 * hidden)
    check_shape(label, hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                head_dim_given=_first(c, "head_dim", "d_kv", *_MLA_HEAD_DIMS) is not None, num_layers=layers, vocab_size=vocab,
                intermediate_size=intermediate)
    estimated = _estimate(c, layers, hidden, heads, kv_heads, head_dim, vocab)
    note = meta_build_refusal(config, layers=layers, estimated_params=estimated[0])
    from advisor.model.analysis import (
        counts_and_origin,  # the counts without a meta build when known (issue 14)
    )

    counted, origin = (None, "computed") if note is not None else counts_and_origin(
        config, architecture, trust_remote_code, count_on_meta, cache=cache)
    analysed_now = origin == "computed" and counted is not None
    method: Literal["meta-device", "formula", "estimate"] = "formula" if origin == "formula" else "meta-device"
    if counted is None:
        counted, method = _table_share(str(config["model_type"]), *estimated, cache), "estimate"
    dtype = _first(config, "dtype", "torch_dtype") or _first(c, "dtype", "torch_dtype")
    max_pos = _first(c, "max_position_embeddings", "n_positions", "max_target_positions", "n_ctx", "max_sequence_length")
    generative = bool(architecture and architecture.endswith(_GENERATIVE_SUFFIXES)) or (
        architecture is None and bool(config.get("is_decoder") or config.get("is_encoder_decoder"))
    )
    return ModelSpec(
        name=name,
        source=source,
        path=path,
        has_weights=has_weights,
        model_type=str(config["model_type"]),
        architecture=architecture,
        param_count=int(counted[0]),
        quantizable_param_count=int(counted[1]),
        param_count_method=method,
        param_count_note=note,
        num_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        hidden_size=hidden,
        intermediate_size=intermediate,
        vocab_size=vocab,
        stored_dtype=str(dtype) if dtype else None,
        max_positions=int(max_pos) if isinstance(max_pos, int) else None,
        is_encoder_decoder=bool(config.get("is_encoder_decoder")),
        generative=generative,
        sliding_window=c.get("sliding_window") if isinstance(c.get("sliding_window"), int) else None,
        alibi=bool(c.get("alibi")) or config["model_type"] in ("bloom", "mpt"),
        trust_remote_code=trust_remote_code,
        quantizable_note=counted[2],
        quantizable_release=_release() if method == "meta-device" else _table_release(),
        checkpoint_quantization=read_checkpoint_quantization(config),
        config=config,
        analysed_now=analysed_now,
    )
