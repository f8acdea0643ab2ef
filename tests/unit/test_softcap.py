"""ATTN015 (issue 28's audit, "silent numerical changes"): Gemma-2's attention softcapping with a flash-attn that
lacks `softcap` (before 2.6.0) raises, is refused, or is silently dropped, per transformers release; a real tiny
Gemma-2 written with save_pretrained, hardware and packages as snapshot data (--gpu, --assume)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advisor.knowledge.softcap import softcap_table


@pytest.fixture(scope="module")
def tiny_gemma2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = pytest.importorskip("transformers")
    config = transformers.Gemma2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                       attn_logit_softcapping=50.0)
    folder = tmp_path_factory.mktemp("tiny_gemma2")
    transformers.Gemma2ForCausalLM(config).save_pretrained(folder)
    return folder


def _attn015(cli: Any, model: Path, *assume: str) -> list[dict[str, Any]]:
    _, out, _ = cli("check", str(model), "--gpu", "A100-80GB", "--attn", "flash_attention_2", "--dtype", "bfloat16",
                    "--format", "json", *(a for v in assume for a in ("--assume", v)))
    result = json.loads(out)
    return [f for f in result["failures"] + result["warnings"] if f["code"] == "ATTN015"]


@pytest.mark.parametrize(("release", "says"), [("4.46.3", "silently differ"), ("4.50.3", "TypeError"),
                                               ("5.17.0", "silently differ"), ("5.25.0", "ValueError")])
def test_old_flash_attn_with_softcapping_per_release(cli: Any, tiny_gemma2: Path, release: str, says: str) -> None:
    found = _attn015(cli, tiny_gemma2, "flash-attn==2.5.9", f"transformers=={release}")
    assert [f["severity"] for f in found] == ["fail"] and says in found[0]["message"], found
    # executed with a flash-attn 2.5.9 stand-in on the CPU (issue 28), so the finding cites the run
    assert "executed: docs/knowledge/softcap-flash-attn-2.5.9.json" in found[0]["message"]
    assert "unverified" not in found[0]["message"]


def test_every_row_is_what_its_cited_run_showed() -> None:
    """Each row's behaviour is the verdict the run recorded for every release it executed in the row's range."""
    table = softcap_table()
    ran = json.loads((Path(__file__).resolve().parents[2] / "docs/knowledge/softcap-flash-attn-2.5.9.json")
                     .read_text())["results"]
    verdict = {"raises": {"raises", "fails"}, "drops": {"drops"}, "refuses": {"refuses"}}
    for row in table.rows:
        assert row.reproduction is not None and row.verified
        inside = [r for r in ran if table.at(r["release"]) == row]
        assert inside and all(r["verdict"] in verdict[row.behaviour] for r in inside), (row.covers, inside)


def test_flash_attn_2_6_has_softcap(cli: Any, tiny_gemma2: Path) -> None:
    assert _attn015(cli, tiny_gemma2, "flash-attn==2.6.3", "transformers==5.17.0") == []


def test_a_model_without_softcapping_is_not_affected(cli: Any, tiny_llama: Path) -> None:
    assert _attn015(cli, tiny_llama, "flash-attn==2.5.9", "transformers==5.17.0") == []


def test_the_table_covers_the_releases_that_have_the_code() -> None:
    table = softcap_table()
    assert [table.at(v).behaviour for v in ("4.43.4", "4.46.3", "4.47.1", "4.48.3", "4.54.1", "4.55.4", "5.20.2",
                                            "5.21.1", "5.25.0")] == [
        "drops", "drops", "raises", "raises", "raises", "drops", "drops", "refuses", "refuses"]
    assert table.at("4.42.4") is None and table.at("5.26.0") is None  # no claim outside what was read
