"""The mechanisms behind issue 13's H100 misses, each checked where a CPU can show it: torch's CUDA SDPA gates as
pure logic on meta tensors, bitsandbytes 8-bit allocations op for op, buffers counted with the weights, and meta
scalars that know an all-ones mask (real CPU forward against the fake run, under the same tracker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from advisor.estimate import simulate as sim  # noqa: E402
from advisor.estimate.bnb import quantized_forward  # noqa: E402
from advisor.estimate.sdpa import SdpaRouter, SdpaTarget, _preprocess_mask, choose_backend  # noqa: E402
from advisor.estimate.tracker import LiveBytes  # noqa: E402

H100 = SdpaTarget(device="cuda", capability=(9, 0))
CPU = {"device": "cpu", "capability": (0, 0), "usable": frozenset({"flash", "math"})}
BF16 = torch.bfloat16


def _meta(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=dtype)


# --- SDPA backend choice on CUDA (sdp_utils.cpp gates) ---------------------------------------------------------

def test_multi_query_heads_without_enable_gqa_run_math_on_cuda() -> None:
    """Falcon-7B passes K/V with one head and no `enable_gqa`: no fused kernel takes unequal head counts."""
    q, kv = _meta(1, 71, 2048, 64), _meta(1, 1, 2048, 64)
    mask = _meta(1, 1, 2048, 2048, dtype=torch.bool)
    assert choose_backend(H100, q, kv, kv, mask, False, False) == "math"
    assert choose_backend(H100, q, kv, kv, None, True, False) == "math"
    assert choose_backend(H100, q, kv, kv, None, True, True) == "flash"  # the same heads with enable_gqa
    assert choose_backend(H100, q, q, q, mask, False, False) == "efficient"  # equal heads, a mask


def test_a_mask_whose_last_dimension_is_strided_rules_out_the_fused_kernels_on_cuda_only() -> None:
    """T5's relative-position bias is (q, k, heads) permuted to (1, heads, q, k): stride(-1) = heads."""
    q = _meta(1, 12, 4096, 64)
    bias = _meta(4096, 4096, 12).permute(2, 0, 1).unsqueeze(0)
    assert bias.stride(-1) == 12
    assert choose_backend(H100, q, q, q, bias, False, False) == "math"
    assert choose_backend(H100, q, q, q, bias.contiguous(), False, False) == "efficient"  # transformers 5.24
    cpu = SdpaTarget(**CPU)
    assert choose_backend(cpu, q, q, q, bias, False, False) == "flash"  # torch's CPU chooser skips the stride check


def test_memory_efficient_needs_aligned_storage_offsets_on_sm80() -> None:
    base = _meta(1, 8, 128, 64 * 3 + 1)
    q, k, v = (base[..., 1 + i * 64: 1 + (i + 1) * 64] for i in range(3))  # offset 1 element: not 16-byte aligned
    mask = _meta(1, 1, 128, 128)
    assert choose_backend(H100, q, k, v, mask, False, False) == "math"
    aligned = _meta(1, 8, 128, 64 * 3)
    q, k, v = (aligned[..., i * 64: (i + 1) * 64] for i in range(3))
    assert choose_backend(H100, q, k, v, mask, False, False) == "efficient"


def test_preprocess_mask_pads_a_misaligned_mask_before_expanding_it() -> None:
    """attention.cpp `preprocess_mask`: an aligned mask is used as is; otherwise `pad_bias<8>` copies it to a width
    rounded up by `8 - width % 8`, then slices back; the expand to (B, H, L, S) is a view either way."""
    aligned = _meta(2, 1, 5, 136)
    assert _preprocess_mask(aligned) is aligned
    odd = _meta(2, 1, 5, 130)
    padded = _preprocess_mask(odd)
    assert padded.shape == odd.shape and padded.untyped_storage().nbytes() == 2 * 5 * 136 * 2
    tracker = LiveBytes()
    q, kv = _meta(2, 4, 5, 64), _meta(2, 4, 130, 64)
    with SdpaRouter(H100), tracker:
        torch.nn.functional.scaled_dot_product_attention(q, kv, kv, attn_mask=odd)
    # the padded copy of the (2, 1, 5, 130) mask, not of its (2, 4, 5, 130) expansion, is alive beside the output
    assert tracker.peak < 2 * 1 * 5 * 136 * 2 + 2 * 4 * 5 * 64 * 2 + 2 * 4 * 5 * 4 + 4096


# --- bitsandbytes 8-bit: the allocations of MatMul8bitLt, in order ----------------------------------------------

def _int8_peak(rows: int, in_f: int, out_f: int, outliers: int) -> int:
    layer = torch.nn.Linear(in_f, out_f, bias=False, device="meta", dtype=BF16)
    quantized_forward(layer, "8bit", lambda _rows, _in: outliers)
    tracker = LiveBytes()
    x = _meta(rows, in_f)
    with tracker:
        layer(x)
    return tracker.peak


@pytest.mark.parametrize(("rows", "in_f", "out_f"), [(64, 256, 1024), (64, 1024, 128)], ids=["wide-out", "wide-in"])
def test_int8_matmul_peak_follows_bitsandbytes_order(rows: int, in_f: int, out_f: int) -> None:
    """bitsandbytes 0.50.2: while quantizing, the fp16 copy of A, out_row (int8), row_stats (fp32), A.abs() (fp16)
    and its >= 6 mask (bool) are alive; at the dequantization, CA and SCA, the int32 product, its fp16 dequant and
    the cast to the input dtype all are (`int8_mm_dequant` returns `out.to(dtype)` while the caller holds the
    int32 result)."""
    quantize = rows * 4 + rows * in_f * (2 + 1 + 2 + 1)
    dequant = rows * 4 + rows * in_f + rows * out_f * (4 + 2 + 2)
    assert _int8_peak(rows, in_f, out_f, 0) == max(quantize, dequant)


def test_int8_outlier_columns_add_the_dequantized_weight_slice() -> None:
    """With n outlier columns: subA (rows x n, input dtype) and CB[:, cols] (int8) with its two float32 products
    (`A * stats.view(-1, 1) * 7.874e-3`) alive at once, on top of CA, SCA and the column index."""
    rows, in_f, out_f, n = 64, 256, 1024, 100
    base = rows * 4 + rows * in_f + n * 8
    weight_slice = base + rows * n * 2 + out_f * n * (1 + 4 + 4)
    assert _int8_peak(rows, in_f, out_f, n) == max(weight_slice, _int8_peak(rows, in_f, out_f, 0) + n * 8 + rows * n * 2
                                                   + out_f * n * 2)


def test_int8_outliers_reach_the_simulation_by_module_and_rows() -> None:
    config = transformers.MistralConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=1000).to_dict()
    common = dict(architecture="MistralForCausalLM", dtype="bfloat16", attn="sdpa", quantization="8bit", batch=2,
                  prompt_len=64, seq_len=66)
    plain = sim.simulate(config, **common)
    assert sim.simulate(config, **common, int8_outliers={}) == plain
    down = {f"model.layers.{i}.mlp.down_proj": {128: 1024} for i in range(2)}
    with_outliers = sim.simulate(config, **common, int8_outliers=down)
    assert with_outliers.peak_bytes - plain.peak_bytes >= 256 * 1024 * (1 + 4 + 4) - 128 * 1024 * 8
    other_rows = {name: {7: 1024} for name in down}  # counts for another row count: not this prefill's
    assert sim.simulate(config, **common, int8_outliers=other_rows).prefill_peak_bytes == plain.prefill_peak_bytes


# --- weights: buffers are on the device too ---------------------------------------------------------------------

def test_weights_count_buffers_like_gpt_bigcodes_causal_mask() -> None:
    config = transformers.GPTBigCodeConfig(n_embd=64, n_layer=2, n_head=4, multi_query=True, n_positions=512,
                                           vocab_size=1000)
    real = transformers.GPTBigCodeForCausalLM(config)
    params = {id(p): p.numel() * p.element_size() for p in real.parameters()}
    buffers = {id(b): b.numel() * b.element_size() for b in real.buffers()}
    assert max(buffers.values()) == 512 * 512  # the boolean n_positions² mask
    result = sim.simulate({**config.to_dict(), "architectures": ["GPTBigCodeForCausalLM"]},
                          architecture="GPTBigCodeForCausalLM", dtype="float32", attn="sdpa", prompt_len=8,
                          device="cpu")  # tensor bytes (a CUDA target counts allocator blocks: test_allocator.py)
    assert result.weights_bytes == sum(params.values()) + sum(buffers.values())


# --- meta scalars: a mask of ones the model builds itself --------------------------------------------------------

def test_meta_scalars_know_values_of_all_ones() -> None:
    with LiveBytes(meta_scalars=True):
        ones = torch.ones(4, 6, device="meta")
        as_bool = ones.to(torch.bool)
        assert bool(as_bool.all()) is True
        assert bool(as_bool.sum() == as_bool.numel()) is True  # masking_utils' `fast_all`
        assert bool(torch.empty(4, 6, device="meta", dtype=torch.bool).all()) is False  # unknown values
        ones[0, 0] = 0
        assert bool(ones.to(torch.bool).all()) is False  # written in place: unknown again


@pytest.fixture(scope="module")
def tiny_opt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OPT builds `attention_mask = torch.ones(...)` itself when given none (transformers 5.17)."""
    torch.manual_seed(0)
    config = transformers.OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                                    word_embed_proj_dim=64, vocab_size=1000, max_position_embeddings=256,
                                    pad_token_id=1)
    folder = tmp_path_factory.mktemp("tiny_opt")
    transformers.OPTForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_falcon_mqa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Falcon-7B's layout: multi-query (one K/V head), parallel attention, a materialised causal mask."""
    torch.manual_seed(0)
    config = transformers.FalconConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
                                       new_decoder_architecture=False, parallel_attn=True, bias=False,
                                       vocab_size=1000, alibi=False)
    folder = tmp_path_factory.mktemp("tiny_falcon")
    transformers.FalconForCausalLM(config).save_pretrained(folder)
    return folder


def _real_and_fake(folder: Path, **shape: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    config = dict(json.loads((folder / "config.json").read_text()))
    arch = config["architectures"][0]
    model = getattr(transformers, arch).from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa").eval()
    real = sim.run_tracked(model, generative=True, tracker=LiveBytes(), **shape)
    out = sim._simulate_layers(config, arch, None, dtype="float32", attn="sdpa", quantization="none", target=CPU,
                               **shape)
    return (out[1], out[2], out[3]), real


@pytest.mark.parametrize("padded", [False, True], ids=["own-mask-of-ones", "padded"])
def test_fake_run_matches_a_real_forward_of_a_model_that_builds_its_own_mask(tiny_opt: Path, padded: bool) -> None:
    fake, real = _real_and_fake(tiny_opt, batch=2, prompt=24, seq_len=30, padded=padded)
    assert fake == real


def test_fake_run_matches_a_real_forward_of_falcon_multi_query(tiny_falcon_mqa: Path) -> None:
    fake, real = _real_and_fake(tiny_falcon_mqa, batch=2, prompt=24, seq_len=30, padded=False)
    assert fake == real


# --- generate() decodes MoE experts with batched_mm on a GPU ----------------------------------------------------

def test_moe_decode_step_gathers_expert_weights_on_a_gpu_target() -> None:
    """generate() wraps decoding in `_optimize_model_for_decode`, which switches grouped_mm experts to batched_mm on
    any non-CPU device; batched_mm copies each selected expert's weights per token (gate_up and down)."""
    config = transformers.Qwen2MoeConfig(hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                                         shared_expert_intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, num_experts=8,
                                         num_experts_per_tok=2, vocab_size=1000).to_dict()
    batch, rows = 4, 4 * 2
    gathered = rows * (2 * 32 * 64 + 64 * 32) * 2  # bf16 gate_up and down slices of the selected experts
    args = dict(dtype="bfloat16", attn="sdpa", quantization="none", batch=batch, prompt=16, seq_len=20, padded=False)
    gpu = sim._simulate_layers(config, "Qwen2MoeForCausalLM", None, **args,
                               target={"device": "cuda", "capability": (9, 0), "usable": frozenset({"flash", "math"})})
    cpu = sim._simulate_layers(config, "Qwen2MoeForCausalLM", None, **args, target=CPU)
    assert cpu[2] < gathered <= gpu[2]
