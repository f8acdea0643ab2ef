"""Shared fixtures: tiny real models written by save_pretrained, built offline once per session.

Each fixture returns the model folder. They need torch and transformers; tests using them are skipped
where those are not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

WORDS = (
    "the quick brown fox jumps over lazy dog because it was a warm day and asleep in sun while looked for "
    "something to eat tall grass near old wooden fence hello world"
).split()


def _word_tokenizer() -> Any:
    """A WordLevel tokenizer over a few words, built offline (no hub download), with pad/unk/bos/eos."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "<s>", "</s>"]
    vocab = {word: i for i, word in enumerate(specials + sorted(set(WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>"
    )


def _save(folder: Path, model: Any, tokenizer: Any | None) -> Path:
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama-like decoder (GQA: 4 heads, 2 KV heads; vocab 1000) with a word-level tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=1000, max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    model = transformers.LlamaForCausalLM(config)
    return _save(tmp_path_factory.mktemp("tiny_llama"), model, _word_tokenizer())


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT encoder with a 3-label classification head and a word-level tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=1000,
        max_position_embeddings=128, num_labels=3, pad_token_id=0,
    )
    model = transformers.BertForSequenceClassification(config)
    return _save(tmp_path_factory.mktemp("tiny_bert"), model, _word_tokenizer())


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2+2-layer T5 encoder-decoder, saved without a tokenizer (callers use synthetic token ids)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.T5Config(
        d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2, num_heads=4, vocab_size=1000,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    model = transformers.T5ForConditionalGeneration(config)
    return _save(tmp_path_factory.mktemp("tiny_t5"), model, None)


_TINY_FAMILIES = {
    # name: (config class, model class, config kwargs); 2 layers, vocab 1000
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256}),
    "bert_mlm": ("BertConfig", "BertForMaskedLM", {"hidden_size": 64, "intermediate_size": 128,
                                                   "num_hidden_layers": 2, "num_attention_heads": 4}),
    "mqa": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", {"n_embd": 64, "n_layer": 2, "n_head": 4,
                                                         "multi_query": True, "n_positions": 256}),
    "bloom": ("BloomConfig", "BloomForCausalLM", {"hidden_size": 64, "n_layer": 2, "n_head": 4}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"hidden_size": 64, "intermediate_size": 128,
                                                       "num_hidden_layers": 2, "num_attention_heads": 4,
                                                       "num_key_value_heads": 1, "sliding_window": 16}),
}


@pytest.fixture(scope="session", params=sorted(_TINY_FAMILIES))
def tiny_family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random models of other families (GPT-2, a BERT masked-LM head, multi-query attention, ALiBi, a sliding
    window), saved without a tokenizer: the memory simulator is checked against each one's real forward."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config_cls, model_cls, kwargs = _TINY_FAMILIES[request.param]
    config = getattr(transformers, config_cls)(vocab_size=1000, pad_token_id=0, **kwargs)
    model = getattr(transformers, model_cls)(config)
    return _save(tmp_path_factory.mktemp(f"tiny_{request.param}"), model, None)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `advisor ARGV...` in-process: returns (exit code, stdout, stderr); usage errors included."""
    from advisor.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(autouse=True, scope="session")
def _private_analysis_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Tests never read or write the user's analysis cache (issue 14): one private folder per session."""
    import os

    old = os.environ.get("ADVISOR_CACHE_DIR")
    os.environ["ADVISOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("analysis_cache"))
    yield
    if old is None:
        os.environ.pop("ADVISOR_CACHE_DIR", None)
    else:
        os.environ["ADVISOR_CACHE_DIR"] = old
