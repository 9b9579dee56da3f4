from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiaas.errors import InvalidInput
from aiaas.training import files
from aiaas.training.files import load_table, validate_file

from .conftest import blobs_csv


def test_csv_summary(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("age,name,score\n31,ann,0.5\n42,bob,1.25\n")
    s = validate_file(p)
    assert (s.format, s.rows, s.columns) == ("csv", 2, ["age", "name", "score"])
    assert s.dtypes == {"age": "int64", "name": "string", "score": "float64"}
    assert len(s.sha256) == 64 and s.bytes == p.stat().st_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age,score\n1,2\n2,3\nabc,4\n", "line 4, column 'age': 'abc' is not a number"),
        ("age,score\n1,2\n2\n", "line 3: 1 fields, but the header has 2 columns"),
        ("age,score\n1,2\n,3\n", "line 3, column 'age': missing value"),
        ("age,age\n1,2\n", "column name 'age' appears twice"),
        ("age,score\n1,nan\n2,3\n", "line 2, column 'score': 'nan' is not a finite number"),
        ("age,score\n", "no data rows"),
    ],
)
def test_csv_errors_name_line_and_column(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InvalidInput, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate_file(p)


def test_csv_line_numbers_in_a_longer_file(tmp_path: Path) -> None:
    p = blobs_csv(tmp_path / "b.csv", 50, bad_line=17)
    with pytest.raises(InvalidInput, match="line 17, column 'b': 'abc' is not a number"):
        validate_file(p)


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b\n1,2\n\xff\xfe,3\n")
    with pytest.raises(InvalidInput, match="line 3 is not UTF-8"):
        validate_file(p)


def test_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(json.dumps({"x": i, "text": f"t{i}"}) for i in range(5)) + "\n")
    s = validate_file(p)
    assert (s.rows, s.dtypes) == (5, {"x": "int64", "text": "string"})
    p.write_text('{"x": 1}\n{"x": 2\n')
    with pytest.raises(InvalidInput, match="line 2: not valid JSON"):
        validate_file(p)
    p.write_text('{"x": 1}\n{"y": 2}\n')
    with pytest.raises(InvalidInput, match=r"line 2: fields differ.*missing \['x'\].*unexpected \['y'\]"):
        validate_file(p)
    p.write_text('{"x": 1}\n[1]\n')
    with pytest.raises(InvalidInput, match="line 2: expected a JSON object"):
        validate_file(p)


def test_npz(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((6, 8, 8), np.uint8), y=np.arange(6))
    s = validate_file(p)
    assert s.rows == 6 and s.shapes["x"] == [6, 8, 8] and s.dtypes["x"] == "uint8"
    np.savez(p, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InvalidInput, match="Python objects"):
        validate_file(p)
    p.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InvalidInput, match="not a readable NPZ"):
        validate_file(p)
    np.savez(p, x=np.array([[1.0], [np.nan]], np.float32))
    with pytest.raises(InvalidInput, match="array 'x', row 1: NaN"):
        validate_file(p)


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "t.parquet"
    p.write_bytes(b"PAR1....PAR1")
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if not installed
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    with pytest.raises(InvalidInput, match=r"aiaas\[parquet\]"):
        validate_file(p)
    assert "pyarrow" in files.PARQUET_HINT


def test_unknown_extension_and_empty(tmp_path: Path) -> None:
    p = tmp_path / "t.xlsx"
    p.write_text("x")
    with pytest.raises(InvalidInput, match="cannot tell the format"):
        validate_file(p)
    e = tmp_path / "e.csv"
    e.write_text("")
    with pytest.raises(InvalidInput, match="empty"):
        validate_file(e)


def test_table_columns_are_typed(tmp_path: Path) -> None:
    t = load_table(blobs_csv(tmp_path / "b.csv", 10))
    assert t.columns["a"].dtype == np.float64 and t.columns["label"].dtype == np.int64 and t.rows == 10
