"""Tables read as streams: CSV, JSONL and Parquet rows one at a time, and column types decided by a scan that
keeps a few counters per column instead of the values.

``rows()`` yields ``(header, line, values)``; ``scan()`` validates a whole file with memory bounded by its
widest row (what an upload needs: its row count, columns and types, or the first error); ``ColumnScan`` is the
one place that decides a column's type and its first error, for the scan and for ``files.load_table`` alike.

Column types are decided by majority: a column whose values are mostly numbers is numeric, and the first value
that is not a number (or is missing, or not finite) is reported as the error.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiaas.errors import InvalidInput, PayloadTooLarge
from aiaas.training.uploadcheck import UploadLimits

PARQUET_HINT = "reading Parquet needs pyarrow, which is not installed: pip install 'aiaas[parquet]' (or pyarrow)"
PARQUET_BATCH = 65_536  # rows decoded at a time
_TOO_DEEP = object()  # a JSONL line deeper than the parser's recursion limit

Row = tuple[list[str], int, list[Any]]  # (column names, line or row number, values in column order)


def to_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def is_int(v: str) -> bool:
    return v.lstrip("+-").isdigit()


class ColumnScan:
    """Counters of one column, fed value by value; ``kind()`` is its type or the error of its first bad value."""

    __slots__ = ("all_int", "bad", "name", "nested", "numeric", "present")

    def __init__(self, name: str) -> None:
        self.name = name
        self.present = self.numeric = 0
        self.all_int = True
        self.bad: tuple[int, str, Any] | None = None  # first value a numeric column cannot hold: (line, why, value)
        self.nested: int | None = None  # first line whose value is a list or an object

    def add(self, v: Any, line: int) -> None:
        if v is None or (isinstance(v, str) and v == ""):
            if self.bad is None:
                self.bad = (line, "missing", v)
            self.all_int = False
            return
        self.present += 1
        p = to_number(v)
        if p is None:
            if self.bad is None:
                self.bad = (line, "nan", v)
            if self.nested is None and isinstance(v, dict | list):
                self.nested = line
        else:
            self.numeric += 1
            if self.bad is None and not math.isfinite(p):
                self.bad = (line, "inf", v)
        if self.all_int and not (isinstance(v, int) or (isinstance(v, str) and is_int(v))):
            self.all_int = False

    def kind(self, path: Path, unit: str = "line") -> str:
        """int64 | float64 | string, or InvalidInput naming the first value that does not fit."""

        def where(line: int) -> str:
            return f"{path.name}: {unit} {line}, column {self.name!r}: "

        if self.present and self.numeric * 2 > self.present:
            if self.bad is not None:
                line, why, v = self.bad
                shown = repr(str(v)[:40])
                text = {
                    "missing": "missing value (missing values are not supported; fill or drop the row)",
                    "nan": f"{shown} is not a number",
                    "inf": f"{shown} is not a finite number",
                }[why]
                raise InvalidInput(where(line) + text)
            return "int64" if self.all_int else "float64"
        if self.nested is not None:
            raise InvalidInput(where(self.nested) + "nested values are not supported")
        return "string"


def scan(path: Path, fmt: str, limits: UploadLimits) -> tuple[int, list[str], dict[str, str]]:
    """Validate a table file as a stream: (rows, columns, column types), or the first error."""
    columns: list[ColumnScan] | None = None
    header: list[str] = []
    n = 0
    for header, line, values in rows(path, fmt, limits):
        if columns is None:
            columns = [ColumnScan(h) for h in header]
        for col, v in zip(columns, values, strict=True):
            col.add(v, line)
        n += 1
    unit = "row" if fmt == "parquet" else "line"
    assert columns is not None  # rows() raises on a file without rows
    return n, header, {c.name: c.kind(path, unit) for c in columns}


def rows(path: Path, fmt: str, limits: UploadLimits) -> Iterator[Row]:
    if fmt == "csv":
        return _csv_rows(path, limits)
    if fmt == "jsonl":
        return _jsonl_rows(path, limits)
    if fmt == "parquet":
        return _parquet_rows(path, limits)
    raise InvalidInput(
        f"{path.name}: a {fmt} file holds arrays, not a table with named columns; use CSV, JSONL or Parquet"
    )


def check_columns(path: Path, n: int, limits: UploadLimits) -> None:
    if n > limits.max_columns:
        raise InvalidInput(f"{path.name}: {n} columns; at most {limits.max_columns} are allowed (max_upload_columns)")


def _text_lines(path: Path, newline: str | None) -> Iterator[str]:
    """The file's lines decoded as UTF-8 (a BOM is dropped); a clear error naming the line and byte if not."""
    try:
        with open(path, encoding="utf-8-sig", newline=newline) as f:
            yield from f
    except UnicodeDecodeError:
        raise _utf8_error(path) from None


def _utf8_error(path: Path) -> InvalidInput:
    """Where the first byte that is not UTF-8 is (line and offset), found in bounded chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, newlines = 0, 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                start = offset - pending + e.start
                newlines += chunk[: max(0, start - offset)].count(b"\n")
                return InvalidInput(
                    f"{path.name}: line {newlines + 1} is not UTF-8 text (byte {start}); save the file as UTF-8"
                )
            newlines += chunk.count(b"\n")
            offset += len(chunk)
    return InvalidInput(f"{path.name}: the file ends inside a UTF-8 character; save the file as UTF-8")


def _csv_rows(path: Path, limits: UploadLimits) -> Iterator[Row]:
    reader = csv.reader(_text_lines(path, ""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{path.name}: the file is empty") from None
    except csv.Error as e:
        raise InvalidInput(f"{path.name}: line 1: {e}") from None
    header = [h.strip() for h in header]
    check_columns(path, len(header), limits)
    _check_header(path, header)
    count = 0
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                raise InvalidInput(
                    f"{path.name}: line {reader.line_num}: {len(row)} fields, but the header has {len(header)} columns"
                )
            yield header, reader.line_num, [v.strip() for v in row]
            count += 1
            if count % 4096 == 0:
                limits.check_time(path)
    except csv.Error as e:
        raise InvalidInput(f"{path.name}: line {reader.line_num}: {e}") from None
    if not count:
        raise InvalidInput(f"{path.name}: no data rows after the header")


def _check_header(path: Path, header: list[str]) -> None:
    for i, h in enumerate(header):
        if not h:
            raise InvalidInput(
                f"{path.name}: line 1: column {i + 1} has an empty name; the first line must be a header"
            )
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise InvalidInput(f"{path.name}: line 1: column name {h!r} appears twice")
        seen.add(h)


def depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests lists and objects (stops counting past ``limit``)."""
    level, found = [value], 0
    while level and found <= limit:
        nxt: list[Any] = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        if not nxt:
            break
        found += 1
        level = nxt
    return found


def _jsonl_rows(path: Path, limits: UploadLimits) -> Iterator[Row]:
    keys: list[str] | None = None
    for n, line in enumerate(_text_lines(path, None), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{path.name}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            obj = _TOO_DEEP
        if obj is _TOO_DEEP or depth(obj, limits.max_nesting) > limits.max_nesting:
            raise InvalidInput(
                f"{path.name}: line {n}: a value is nested more than {limits.max_nesting} levels deep "
                "(max_upload_nesting)"
            )
        if n % 4096 == 0:
            limits.check_time(path)
        if not isinstance(obj, dict):
            raise InvalidInput(
                f'{path.name}: line {n}: expected a JSON object like {{"x": 1, "label": 0}}, got {type(obj).__name__}'
            )
        if keys is None:
            keys = list(obj)
            if not keys:
                raise InvalidInput(f"{path.name}: line {n}: the object has no fields")
            check_columns(path, len(keys), limits)
        elif obj.keys() != set(keys):
            missing = sorted(set(keys) - set(obj))
            extra = sorted(set(obj) - set(keys))
            detail = ", ".join(
                x for x in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "") if x
            )
            raise InvalidInput(f"{path.name}: line {n}: fields differ from the first line ({detail})")
        yield keys, n, [obj[k] for k in keys]
    if keys is None:
        raise InvalidInput(f"{path.name}: no JSON objects in the file")


def _parquet_rows(path: Path, limits: UploadLimits) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput(PARQUET_HINT) from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends
        raise InvalidInput(f"{path.name}: not a readable Parquet file: {e}") from None
    meta = pf.metadata
    check_columns(path, meta.num_columns, limits)
    # the row count is declared in the footer: a few KB can claim billions of rows. No file may hold more cells
    # than a CSV of the upload limit could (two bytes a cell, "0,"), checked before anything is decoded.
    if meta.num_rows * max(1, meta.num_columns) > limits.max_bytes // 2:
        raise PayloadTooLarge(
            f"{path.name}: declares {meta.num_rows} rows x {meta.num_columns} columns; at most "
            f"{limits.max_bytes // 2} cells are allowed (half of max_upload_bytes)"
        )
    names = list(pf.schema_arrow.names)
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for values in zip(*columns, strict=True):
                row += 1
                yield names, row, list(values)
            limits.check_time(path)
    except InvalidInput:
        raise
    except Exception as e:  # pyarrow raises ArrowInvalid and friends
        raise InvalidInput(f"{path.name}: not a readable Parquet file: {e}") from None
    if row == 0:
        raise InvalidInput(f"{path.name}: no rows")
