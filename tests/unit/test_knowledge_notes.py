"""Every data/ table is read through advisor.knowledge (issue 26): the small tables are typed, a bad one is a
DataTableError naming the file, and no module outside knowledge/ opens a table itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from advisor.errors import DataTableError
from advisor.knowledge import data_dir
from advisor.knowledge.notes import flex_cpu_records, fp16_overflow_models, quantization_table

PACKAGE = Path(__file__).resolve().parents[2] / "advisor"


def test_the_shipped_small_tables_read() -> None:
    assert "t5" in fp16_overflow_models(str(data_dir()))
    table = quantization_table()
    assert {row.quantization for row in table.rows} >= {"8bit", "4bit"}
    assert set(table.dtype_short) == {"float32", "float16", "bfloat16"}
    assert "2.13.0" in flex_cpu_records(data_dir())


def test_a_bad_model_notes_table_is_a_data_table_error(tmp_path: Path) -> None:
    (tmp_path / "model_notes.json").write_text(json.dumps({"schema_version": 1, "description": "",
                                                           "fp16_overflow": [{"model_type": "t5", "verified": False}]}))
    with pytest.raises(DataTableError, match="model_notes.json.*source"):
        fp16_overflow_models(str(tmp_path))


def test_a_bad_flex_cpu_record_is_a_data_table_error(tmp_path: Path) -> None:
    (tmp_path / "flex_cpu").mkdir()
    (tmp_path / "flex_cpu" / "torch-2.13.0.json").write_text('{"compiles": true}')
    with pytest.raises(DataTableError, match="torch-2.13.0.json"):
        flex_cpu_records(tmp_path)


def test_no_module_outside_knowledge_opens_a_table() -> None:
    readers = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "knowledge":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"data_dir\(\)\s*/|knowledge\.root\s*/", text) and re.search(r"json\.loads?\(|safe_load\(", text):
            readers.append(path.relative_to(PACKAGE).as_posix())
    assert readers == []
