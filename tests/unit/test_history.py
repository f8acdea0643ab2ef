"""The attention-support history (data/attention_history.json) and its accessors, on the real data file.

Facts asserted here were checked against each release's own wheel (the `_supports_*` lines of its
modeling files), not taken from docs: e.g. gpt2 declares `_supports_flash_attn_2` from 4.40 and
`_supports_sdpa` from 4.42; bert's `_supports_sdpa` appears in 4.41.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.knowledge.history import (
    HISTORY_IMPLS,
    ArchitectureHistory,
    AttentionHistory,
    bettertransformer_supported,
    default_history_path,
    first_support,
    load_history,
    releases,
    support_at,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "attention_history.json"

# The user's guide (perf_infer_gpu_one, 4.40-4.42 era): its FlashAttention-2 list, as model types.
GUIDE_FLASH_ATTENTION_2 = [
    "bark",  # Bark
    "bart",  # Bart
    "cohere",  # Cohere
    "dbrx",  # Dbrx
    "distilbert",  # DistilBert
    "gemma",  # Gemma
    "gpt2",  # GPT2
    "gpt_bigcode",  # GPTBigCode
    "gpt_neo",  # GPTNeo
    "gpt_neox",  # GPTNeoX
    "gptj",  # GPT-J
    "idefics2",  # Idefics2
    "falcon",  # Falcon
    "jetmoe",  # JetMoe
    "jamba",  # Jamba
    "llama",  # Llama
    "llava",  # Llava
    "llava_next",  # Llava-NeXT
    "vipllava",  # VipLlava
    "video_llava",  # VideoLlava
    "m2m_100",  # M2M100
    "mbart",  # MBart
    "mistral",  # Mistral
    "mixtral",  # Mixtral
    "musicgen",  # Musicgen
    "musicgen_melody",  # MusicGen Melody
    "m2m_100",  # NLLB (dense NLLB checkpoints are the m2m_100 architecture)
    "olmo",  # OLMo
    "opt",  # OPT
    "phi",  # Phi
    "phi3",  # Phi3
    "stablelm",  # StableLm
    "starcoder2",  # Starcoder2
    "qwen2",  # Qwen2
    "qwen2_moe",  # Qwen2MoE
    "whisper",  # Whisper
    "wav2vec2",  # Wav2Vec2
    "hubert",  # Hubert
    "data2vec-audio",  # data2vec_audio
    "sew",  # Sew
    "unispeech",  # UniSpeech
    "unispeech-sat",  # unispeech_sat
]

# The guide's SDPA list, as model types.
GUIDE_SDPA = [
    "audio-spectrogram-transformer",  # Audio Spectrogram Transformer
    "bart",  # Bart
    "bert",  # Bert
    "cohere",  # Cohere
    "dbrx",  # Dbrx
    "deit",  # DeiT
    "dpr",  # Dpr
    "falcon",  # Falcon
    "gemma",  # Gemma
    "gpt_bigcode",  # GPTBigCode
    "jetmoe",  # JetMoe
    "jamba",  # Jamba
    "llama",  # Llama
    "olmo",  # OLMo
    "paligemma",  # PaliGemma
    "phi",  # Phi
    "idefics",  # Idefics
    "whisper",  # Whisper
    "mistral",  # Mistral
    "mixtral",  # Mixtral
    "stablelm",  # StableLm
    "starcoder2",  # Starcoder2
    "qwen2",  # Qwen2
    "qwen2_moe",  # Qwen2MoE
    "musicgen",  # Musicgen
    "musicgen_melody",  # MusicGen Melody
    "vit",  # ViT
    "vit_hybrid",  # ViTHybrid
    "vit_mae",  # ViTMAE
    "vit_msn",  # ViTMSN
    "videomae",  # VideoMAE
    "wav2vec2",  # wav2vec2
    "hubert",  # Hubert
    "data2vec-audio",  # data2vec_audio
    "sew",  # Sew
    "unispeech",  # UniSpeech
    "unispeech-sat",  # unispeech_sat
    "yolos",  # YOLOS
]

# Releases of the guide's era in which every listed architecture declares the listed support.
GUIDE_RELEASES = ("4.41.2", "4.42.4")

# Listed architectures that no release of the era declares support for, with the reason. Empty: every one
# holds in GUIDE_RELEASES. (Checked, not assumed: see test_guide_lists_hold_in_its_era.)
GUIDE_KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

# Composites with no base-model class in MODEL_MAPPING_NAMES in the guide's era: the table reads their
# ...ForConditionalGeneration class instead (their `_supports_sdpa` was then a property delegating to the
# language model, evaluated on the default config: llama / gemma).
GUIDE_COMPOSITES = {
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "vipllava": "VipLlavaForConditionalGeneration",
    "video_llava": "VideoLlavaForConditionalGeneration",
    "paligemma": "PaliGemmaForConditionalGeneration",
}


@pytest.fixture(scope="module")
def history() -> AttentionHistory:
    return load_history(DATA)


def _index(history: AttentionHistory, release: str) -> int:
    return history.releases.index(release)


def test_file_is_compact_and_covers_every_minor(history: AttentionHistory) -> None:
    assert DATA.stat().st_size < 1_000_000
    raw = json.loads(DATA.read_text())
    assert raw["generated_by"].startswith("python scripts/generate_attention_history.py")  # then matrix_from_acceptance
    minors = {tuple(int(p) for p in r.split(".")[:2]) for r in history.releases}
    assert {(4, m) for m in range(36, 58)} <= minors, "one release per minor 4.36 .. 4.57"
    assert (5, 0) in minors and history.releases[-1].startswith("5.")
    assert history.releases[0] == "4.36.2"
    assert not history.failures, history.failures


def test_default_path_is_the_repo_data_file() -> None:
    assert default_history_path() == DATA.resolve()
    assert releases() == load_history().releases


def test_llama_supported_since_first_stored_release(history: AttentionHistory) -> None:
    llama = first_support("llama", history)
    assert llama.first["sdpa"] == "4.36.2"
    assert llama.first["flash_attention_2"] == "4.36.2"
    assert set(llama.since_first_stored) >= {"sdpa", "flash_attention_2"}  # may be older than the table
    assert llama.first["flex_attention"] == "4.48.3"  # _supports_flex_attn appeared in 4.48
    assert llama.dropped == {} and llama.absent_from is None


def test_gpt2_sdpa_arrived_after_flash_attention_2(history: AttentionHistory) -> None:
    # 4.40.2 modeling_gpt2.py: `_supports_flash_attn_2 = True` only; 4.42.4 adds `_supports_sdpa = True`.
    gpt2 = first_support("gpt2", history)
    assert gpt2.first["flash_attention_2"] == "4.40.2"
    assert gpt2.first["sdpa"] == "4.42.4"
    assert support_at("4.41.2", history)["gpt2"]["sdpa"] is False


def test_bert_and_mistral_and_whisper(history: AttentionHistory) -> None:
    bert = first_support("bert", history)
    assert bert.first["sdpa"] == "4.41.2"  # 4.40.2 modeling_bert.py has no _supports_sdpa; 4.41.2 does
    assert bert.first["flash_attention_2"] == bert.first["flex_attention"] == "5.0.0"  # v5 attention refactor
    mistral = first_support("mistral", history)
    assert mistral.first["flash_attention_2"] == "4.36.2"
    assert mistral.first["sdpa"] == "4.37.2"  # 4.36.2 modeling_mistral.py has no _supports_sdpa
    whisper = first_support("whisper", history)
    assert whisper.first["sdpa"] == whisper.first["flash_attention_2"] == "4.36.2"
    assert whisper.first["flex_attention"] == "4.53.3"


def test_flags_follow_the_flag_renames(history: AttentionHistory) -> None:
    llama = history.architectures["llama"]
    # flash_attention_3 was only declared via _supports_flash_attn_3 (4.53) or _supports_flash_attn (4.54+)
    for release, flag in zip(history.releases, llama.flash_attention_3):
        if tuple(int(p) for p in release.split(".")[:2]) < (4, 53):
            assert flag == "0", release
    assert llama.flash_attention_3[_index(history, "4.54.1")] == "1"
    # no flex_attention before 4.47 (the name is not accepted); 4.47.1 accepts it for gpt_neox only (executed)
    first = _index(history, "4.47.1")
    assert all(set(row.flex_attention[:first]) <= {"0", "-", "?"} for row in history.architectures.values())
    assert {mt for mt, row in history.architectures.items() if row.flex_attention[first] == "1"} == {"gpt_neox"}


@pytest.mark.parametrize("release", GUIDE_RELEASES)
def test_guide_lists_hold_in_its_era(history: AttentionHistory, release: str) -> None:
    at = support_at(release, history)
    assert at.match == "exact"
    for impl, listed in (("flash_attention_2", GUIDE_FLASH_ATTENTION_2), ("sdpa", GUIDE_SDPA)):
        missing = [m for m in dict.fromkeys(listed) if not (m in at and at[m][impl])]
        unexplained = [m for m in missing if (m, impl) not in GUIDE_KNOWN_EXCEPTIONS]
        assert unexplained == [], (
            f"{release}: guide lists {impl} for {unexplained} but the classes do not declare it"
        )
    for model_type, class_name in GUIDE_COMPOSITES.items():
        row = history.architectures[model_type]
        assert dict(row.class_history)[_first_release_of(row, class_name)] == class_name


def _first_release_of(row: ArchitectureHistory, class_name: str) -> str:
    return next(release for release, name in row.class_history if name == class_name)


def test_guide_predates_4_40(history: AttentionHistory) -> None:
    # The lists are not all true in 4.40.2: e.g. wav2vec2's FA2/SDPA and bert's SDPA came in 4.41.
    at = support_at("4.40.2", history)
    assert at["wav2vec2"]["flash_attention_2"] is False and at["bert"]["sdpa"] is False
    assert "jetmoe" not in at  # added in 4.41


def test_guide_lists_are_complete() -> None:
    assert len(GUIDE_FLASH_ATTENTION_2) == 42 and len(set(GUIDE_FLASH_ATTENTION_2)) == 41  # NLLB = m2m_100
    assert len(GUIDE_SDPA) == 38 and len(set(GUIDE_SDPA)) == 38


def test_guide_architectures_removed_in_v5(history: AttentionHistory) -> None:
    v5 = _index(history, "5.0.0")
    listed = set(GUIDE_FLASH_ATTENTION_2) | set(GUIDE_SDPA)
    removed = {m for m in listed if history.architectures[m].sdpa[v5:] == "-" * (len(history.releases) - v5)}
    assert removed == GUIDE_REMOVED_IN_V5
    for model_type in removed:
        info = first_support(model_type, history)
        assert info.absent_from == "5.0.0" and info.renamed_to is None
        assert model_type not in support_at("5.0.0", history)
        assert model_type in support_at("4.57.6", history)


# Guide architectures whose model type no 5.x release has (removed in transformers v5).
GUIDE_REMOVED_IN_V5 = {"vit_hybrid"}


def test_support_at_between_stored_releases(history: AttentionHistory) -> None:
    same_minor = support_at("4.42.0", history)  # only the latest patch of each minor is stored
    assert same_minor.release == "4.42.4" and same_minor.match == "same_minor"
    assert same_minor["gpt2"]["sdpa"] is True
    exact = support_at("4.42.4", history)
    assert exact.match == "exact" and exact.architectures == same_minor.architectures
    with pytest.raises(ValueError, match="newer than the newest stored release"):  # never the newest one's flags
        support_at("99.0", history)
    older = support_at("4.43.9", history)  # a patch of a stored minor, past its stored patch
    assert older.release == "4.43.4" and older.match == "same_minor"
    with pytest.raises(ValueError, match="older than the first stored release"):
        support_at("4.30.0", history)
    with pytest.raises(ValueError, match="not a version"):
        support_at("latest", history)


def test_unknown_model_type(history: AttentionHistory) -> None:
    with pytest.raises(KeyError, match="no stored transformers release.*llama"):
        first_support("lama", history)
    assert "no-such-model" not in support_at("5.24.0", history)
    assert bettertransformer_supported("no-such-model", history=history) is False


def test_rename_is_told_apart_from_removal(history: AttentionHistory) -> None:
    old = first_support("llava-next-video", history)
    assert old.renamed_to == "llava_next_video"
    assert first_support("llava_next_video", history).renamed_from == "llava-next-video"


def test_rows_are_consistent(history: AttentionHistory) -> None:
    for model_type, row in history.architectures.items():
        presence = row.presence()
        for impl in HISTORY_IMPLS:
            flags = row.flags(impl)
            assert [c == "-" for c in flags] == [c == "-" for c in presence], (model_type, impl)


def test_bettertransformer(history: AttentionHistory) -> None:
    bt = history.bettertransformer
    assert bt.optimum == "1.27.0" and "MODEL_MAPPING" in bt.source
    assert bt.removed_in == {"optimum": "2.0.0", "transformers": "5.0.0"}
    assert bt.last_with == {"optimum": "1.27.0", "transformers": "4.57.6"}  # adjacent: the removal is exact
    assert {"bert", "gpt2", "wav2vec2", "vit", "t5", "opt"} <= set(bt.model_types)
    # optimum 1.16.0 refuses these ("Transformers now supports natively ... scaled_dot_product_attention")
    assert bt.dropped_earlier == dict.fromkeys(["falcon", "gpt_bigcode", "llama", "whisper"], "1.16.0")
    assert bettertransformer_supported("bert", history=history)
    assert bettertransformer_supported("bert", "4.40.2", "1.19.0", history=history)
    assert not bettertransformer_supported("bert", "5.0.0", history=history)  # to_bettertransformer() removed
    assert not bettertransformer_supported("bert", "4.57.6", "2.0.0", history=history)  # optimum 2 has no BT
    assert not bettertransformer_supported("qwen2", history=history)
    assert not bettertransformer_supported("llama", "4.40.2", history=history)
    assert bettertransformer_supported("llama", "4.35.0", "1.15.0", history=history)


def test_to_bettertransformer_presence_matches_removed_in(history: AttentionHistory) -> None:
    # removed_in.transformers is computed from each release's modeling_utils.py, not typed in
    assert history.bettertransformer.removed_in["transformers"] == "5.0.0"
    assert "4.57.6" in history.releases and "5.0.0" in history.releases


def test_table_at_gives_the_per_release_table_shape(history: AttentionHistory) -> None:
    # advisor.api.matrix(transformers_version=...) and advisor.model.attention_support use these methods
    table = history.table_at("4.40.0")
    assert table.transformers == "4.40.2"
    rows = {row.model_type: row for row in table.architectures}
    assert rows["llava"].class_name == "LlavaForConditionalGeneration"  # the class read in 4.40.2
    assert rows["gpt2"].flash_attention_2 and not rows["gpt2"].sdpa
    assert history.table_at("5.24.0").architectures[0].eager
    assert {r.model_type for r in history.table_at("5.24.0").architectures} >= {"llava", "gpt2"}
    assert history.support_at("4.42.4").release == "4.42.4"
    assert dict(history.support_at("4.42.4")["gpt2"])["sdpa"] is True
