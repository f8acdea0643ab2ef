"""The simulated step against a real `generate()` (issue 13): the same live-bytes tracker over a real CPU
generate() of tiny models, with the workload `advisor bench` and `smoke` run (greedy, min_new_tokens =
max_new_tokens), must see the peak the fake prefill + decode step predicts. The models have a large vocabulary
and a tiny body, so the peak is the logits processing: a fake step without generate()'s logits processors
(MinLength / MinNewTokensLength each clone the batch x vocabulary scores) sees half of it and fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from advisor.estimate import simulate as sim
from advisor.estimate.tracker import LiveBytes

CPU = {"device": "cpu", "capability": (0, 0), "usable": frozenset({"flash", "math"})}
VOCAB, BATCH, PROMPT, NEW = 32000, 16, 8, 3
MODELS = {
    "bart": ("BartForConditionalGeneration", "BartConfig", {
        "d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
        "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "max_position_embeddings": 64}),
    "t5": ("T5ForConditionalGeneration", "T5Config", {
        "d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "decoder_start_token_id": 0}),
    "llama": ("LlamaForCausalLM", "LlamaConfig", {
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
        "max_position_embeddings": 64}),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def tiny_vocab_heavy(request: Any, tmp_path_factory: Any) -> tuple[Path, str]:
    arch, config_cls, kwargs = MODELS[request.param]
    folder = tmp_path_factory.mktemp(f"gen-{request.param}")
    torch.manual_seed(0)
    getattr(transformers, arch)(getattr(transformers, config_cls)(vocab_size=VOCAB, **kwargs)).save_pretrained(folder)
    return folder, arch


def test_fake_step_predicts_the_peak_of_a_real_generate(tiny_vocab_heavy: tuple[Path, str]) -> None:
    folder, arch = tiny_vocab_heavy
    model = getattr(transformers, arch).from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa").eval()
    ids = torch.randint(3, VOCAB - 1, (BATCH, PROMPT), generator=torch.Generator().manual_seed(0))
    tracker = LiveBytes()
    with torch.no_grad(), tracker:
        model.generate(ids, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, num_beams=1, pad_token_id=0)
    config = json.loads((folder / "config.json").read_text())
    _, prefill, decode, _, _, _ = sim._simulate_layers(config, arch, None, dtype="float32", attn="sdpa",
                                                       quantization="none", batch=BATCH, prompt=PROMPT,
                                                       seq_len=PROMPT + NEW, padded=False, target=CPU)
    one_scores = BATCH * VOCAB * 4  # one fp32 copy of the step's scores
    assert tracker.peak >= 5 * one_scores  # the processors' copies are most of the peak (without them: about 3)
    assert abs(max(prefill, decode) - tracker.peak) <= 1e-3 * tracker.peak
