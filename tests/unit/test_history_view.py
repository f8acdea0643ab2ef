"""`advisor matrix --history` and `--full`: first-support releases and cell verdicts, on the shipped data.

The first-support releases asserted here are the ones the release history stores (each release's own
`_supports_*` flags, see test_history.py): gpt2 declares flash_attention_2 from 4.40 and sdpa from 4.42,
bert sdpa from 4.41; llama's sdpa predates the first stored release (4.36.2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from advisor.errors import UsageError
from advisor.knowledge import load_knowledge
from advisor.knowledge.history import HISTORY_IMPLS, load_history
from advisor.matrix.history import FullMatrix, ImplHistory, full_matrix, gpu_generations, history_report
from advisor.render import OutputFormat, render


def _impls(model_type: str) -> dict[str, ImplHistory]:
    return {i.impl: i for i in history_report(model_type).implementations}


@pytest.fixture(scope="module")
def matrix() -> FullMatrix:
    return full_matrix("5.24.0")


# -- history ---------------------------------------------------------------------------------------


def test_gpt2_first_support() -> None:
    impls = _impls("gpt2")
    assert impls["sdpa"].first_release == "4.42.4" and impls["sdpa"].last_without == "4.41.2"
    assert impls["flash_attention_2"].first_release == "4.40.2"
    assert impls["flash_attention_2"].last_without == "4.39.3"
    assert impls["flex_attention"].first_release is None and not impls["flex_attention"].supported_in_latest
    assert not impls["sdpa"].first_stored and impls["sdpa"].dropped_in is None


def test_bert_first_support() -> None:
    impls = _impls("bert")
    assert impls["sdpa"].first_release == "4.41.2" and impls["sdpa"].last_without == "4.40.2"
    assert impls["flash_attention_2"].first_release == "5.0.0"


def test_llama_sdpa_is_marked_as_first_stored_release() -> None:
    report = history_report("llama")
    impls = {i.impl: i for i in report.implementations}
    sdpa = impls["sdpa"]
    assert sdpa.first_release == "4.36.2" and sdpa.first_stored and sdpa.last_without is None
    assert "first stored release" in sdpa.note and "may be older" in sdpa.note
    assert impls["flash_attention_2"].first_stored
    assert impls["flex_attention"].first_release == "4.48.3" and not impls["flex_attention"].first_stored
    assert report.releases_first == "4.36.2" and report.releases_count == len(load_history().releases)
    assert report.class_names == ["LlamaModel"]


def test_report_matches_the_flag_strings_for_every_stored_model_type() -> None:
    """The report is a view, not a second opinion: its first release is the first '1' of every flag string."""
    history = load_history()
    for model_type in ("llama", "gpt2", "bert", "mistral", "t5", "falcon"):
        row = history.architectures[model_type]
        impls = _impls(model_type)
        for impl in HISTORY_IMPLS:
            index = row.flags(impl).find("1")
            assert impls[impl].first_release == (history.releases[index] if index >= 0 else None), (
                model_type,
                impl,
            )


def test_bettertransformer_coverage_and_removal() -> None:
    gpt2 = history_report("gpt2").bettertransformer
    assert gpt2.converted and gpt2.removed_in["transformers"] == "5.0.0" and "sdpa" in gpt2.note
    llama = history_report("llama").bettertransformer
    assert not llama.converted and llama.dropped_in_optimum == "1.16.0"


def test_rename_is_reported() -> None:
    report = history_report("llava-next-video")
    assert report.absent_from == "4.45.2" and report.renamed_to == "llava_next_video"


def test_unimportable_releases_are_not_counted_as_absent() -> None:
    report = history_report("sam3")
    sdpa = {i.impl: i for i in report.implementations}["sdpa"]
    assert report.unreadable_in and report.unreadable_in[0] == report.present_from
    assert sdpa.last_without is None and "could not be imported" in sdpa.note


def test_report_is_json_serialisable_and_frozen() -> None:
    report = history_report("gpt2")
    data = json.loads(report.model_dump_json())
    assert data["schema_version"] == 1 and data["model_type"] == "gpt2"
    with pytest.raises(ValidationError):
        report.model_type = "bert"


def test_case_and_dash_are_forgiven() -> None:
    assert history_report("GPT2").model_type == "gpt2"
    assert history_report("gpt-bigcode").model_type == "gpt_bigcode"


def test_unknown_model_type_suggests_close_matches() -> None:
    with pytest.raises(UsageError) as info:
        history_report("lama")
    message = str(info.value)
    assert "\n" not in message and "llama" in message and "did you mean" in message


# -- full matrix -----------------------------------------------------------------------------------


def test_generations_come_from_the_gpu_table() -> None:
    knowledge = load_knowledge()
    gens = {g.id: g for g in gpu_generations(knowledge)}
    table_ccs = {f"cc{row.compute_capability}" for row in knowledge.gpus.rows if row.compute_capability}
    table_gfx = {row.gfx_arch for row in knowledge.gpus.rows if row.gfx_arch}
    assert set(gens) == {"cpu"} | table_ccs | table_gfx
    assert gens["cc7.5"].name == "Turing" and "T4" in gens["cc7.5"].examples
    assert "bfloat16" not in gens["cc7.5"].native_dtypes and "bfloat16" in gens["cc8.0"].native_dtypes
    assert gens["gfx942"].vendor == "amd" and "MI300X" in gens["gfx942"].examples


def test_t4_flash_attention_2_is_refused_for_compute_capability(matrix: FullMatrix) -> None:
    cell = matrix.cell("llama", "flash_attention_2", "T4", "float16")
    assert cell.status == "no"
    assert cell.reason == "flash_attention_2 needs compute capability >= 8.0; Turing (T4) has 7.5"


def test_a100_flash_attention_2_bf16_llama_is_ok(matrix: FullMatrix) -> None:
    cell = matrix.cell("llama", "flash_attention_2", "A100-80GB", "bfloat16")
    assert cell.status == "ok" and cell.reason == "ok" and cell.generation == "cc8.0"
    assert cell.requires and "flash-attn" in cell.requires


def test_flash_attention_2_never_runs_in_float32(matrix: FullMatrix) -> None:
    for gen in matrix.generations:
        cell = matrix.cell("llama", "flash_attention_2", gen.id, "float32")
        assert cell.status == "no" and "runs only in float16, bfloat16" in cell.reason, gen.id


def test_cpu_refuses_flash_attention_2_but_runs_sdpa(matrix: FullMatrix) -> None:
    for dtype in matrix.dtypes:
        cell = matrix.cell("llama", "flash_attention_2", "cpu", dtype)
        assert cell.status == "no" and "does not run on the CPU" in cell.reason
    assert matrix.cell("llama", "sdpa", "cpu", "float32").reason == "ok"
    half = matrix.cell("llama", "sdpa", "cpu", "bfloat16")
    assert half.status == "ok" and half.reason.startswith("ok, but")


def test_bf16_on_turing_and_undeclared_impls(matrix: FullMatrix) -> None:
    cell = matrix.cell("llama", "sdpa", "T4", "bfloat16")
    assert cell.status == "no" and cell.reason == "bfloat16 is not native on Turing (T4)"
    flex = matrix.cell("gpt2", "flex_attention", "H100", "float16")
    assert (
        flex.status == "no"
        and flex.reason == "GPT2Model does not declare flex_attention in transformers 5.24.0"
    )


def test_fa3_runs_on_ampere_and_hopper_not_blackwell_or_rocm(matrix: FullMatrix) -> None:
    """flash-attention hopper/ builds SM80 and SM90a only (hopper/setup.py, flash_api.cpp major >= 8)."""
    assert matrix.cell("llama", "flash_attention_3", "H100", "bfloat16").status == "ok"
    assert matrix.cell("llama", "flash_attention_3", "A100-80GB", "bfloat16").status == "ok"
    assert "compute capability 8.0 to 9.0" in matrix.cell("llama", "flash_attention_3", "B200", "bfloat16").reason
    assert "ROCm" in matrix.cell("llama", "flash_attention_3", "MI300X", "bfloat16").reason
    assert matrix.cell("llama", "flash_attention_2", "MI300X", "bfloat16").status == "ok"


def test_verdicts_follow_the_requirement_table(matrix: FullMatrix) -> None:
    """No hardware fact is written in the view: each refusal follows from the knowledge tables."""
    knowledge = load_knowledge()
    for v in matrix.hardware:
        req = knowledge.attention_requirement(v.impl)
        assert req is not None
        if v.dtype not in req.dtypes or (v.generation == "cpu" and not req.cpu):
            assert not v.ok, v
    assert len(matrix.hardware) == len(matrix.impls) * len(matrix.generations) * len(matrix.dtypes)


def test_past_release_matrix_says_what_did_not_exist_yet() -> None:
    old = full_matrix("4.40.2")
    assert old.transformers == "4.40.2" and "attention_history" in old.source
    assert "predates flash_attention_3" in old.cell("llama", "flash_attention_3", "H100", "bfloat16").reason
    assert old.cell("gpt2", "sdpa", "A100-80GB", "float16").status == "no"  # gpt2 sdpa arrived in 4.42
    with pytest.raises(UsageError):
        full_matrix("4.20.0")
    with pytest.raises(UsageError):
        full_matrix("not-a-version")


def test_page_data_is_compact(matrix: FullMatrix) -> None:
    data = matrix.page_data()
    assert len(data["archs"]) == len(matrix.architectures)
    assert len(data["hw"]) == len(matrix.hardware)
    assert len(json.dumps(data)) < 120_000


def test_markdown_and_text_render(matrix: FullMatrix) -> None:
    md = render(matrix, OutputFormat.MARKDOWN)
    assert (
        "| Turing 7.5 |" in md
        and "flash_attention_2 needs compute capability >= 8.0; Turing (T4) has 7.5" in md
    )
    assert md.count("\n| llama | LlamaModel |") == 1 and md.endswith("\n") and len(md) < 200_000
    text = render(matrix, OutputFormat.TEXT)
    assert "Turing 7.5" in text and "llama" in text


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_history_json(cli: Any) -> None:
    code, out, err = cli("matrix", "--history", "gpt2", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    first = {i["impl"]: i["first_release"] for i in data["implementations"]}
    assert first["sdpa"] == "4.42.4" and first["flash_attention_2"] == "4.40.2"


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_cli_history_formats(cli: Any, fmt: str) -> None:
    code, out, err = cli("matrix", "--history", "bert", "--format", fmt)
    assert code == 0, err
    assert "4.41.2" in out and "BertModel" in out


def test_cli_history_unknown_is_one_line_exit_2(cli: Any) -> None:
    code, out, err = cli("matrix", "--history", "gpt3")
    assert code == 2 and out == "" and err.count("\n") == 1 and "gpt2" in err


def test_cli_past_release_json(cli: Any) -> None:
    code, out, err = cli("matrix", "--transformers", "4.40.2", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    rows = {a["model_type"]: a for a in data["architectures"]}
    assert data["transformers"] == "4.40.2"
    assert rows["gpt2"]["flash_attention_2"] and not rows["gpt2"]["sdpa"]


def test_cli_full_html(cli: Any, tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    code, _, err = cli("matrix", "--full", "--format", "html", "-o", str(page))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and 'id="reason"' in html and 'id="search"' in html
    assert "http://" not in html and "https://" not in html  # nothing fetched: the page works offline
    assert len(html) < 250_000


def test_cli_full_json(cli: Any) -> None:
    code, out, err = cli("matrix", "--full", "--transformers", "4.42.4", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["transformers"] == "4.42.4" and data["schema_version"] == 1


def test_history_and_full_together_is_a_usage_error(cli: Any) -> None:
    code, _, err = cli("matrix", "--history", "gpt2", "--full")
    assert code == 2 and "different views" in err


def test_html_escapes_table_data(matrix: FullMatrix) -> None:
    """Class names reach the page inside a <script> block: they must not be able to close it."""
    evil = "</script><script>alert(1)</script>"
    row = matrix.architectures[0].model_copy(update={"class_name": evil})
    tampered = matrix.model_copy(update={"architectures": [row, *matrix.architectures[1:]], "source": evil})
    html = render(tampered, OutputFormat.HTML)
    assert evil not in html and "alert(1)" in html
