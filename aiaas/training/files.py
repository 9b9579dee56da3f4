"""Validation and loading of training data files: CSV, JSONL, NPZ, Parquet.

Validation is a full parse, done once at upload so a job never starts on a file that cannot be read; every error
names the line (or row) and the column that is wrong, because "could not convert string to float" on a 2 GB file
is useless. The same parser loads the data in the workers, so what was validated is what is trained on.

Column types are decided by majority: a column whose values are mostly numbers is numeric, and the first value
that is not a number is reported as the error (rather than silently turning the column into text).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput, PayloadTooLarge
from aiaas.training.uploadcheck import UploadLimits, inspect_npz

FORMATS = ("csv", "jsonl", "npz", "parquet")
_EXT = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_HINT = "reading Parquet needs pyarrow, which is not installed: pip install 'aiaas[parquet]' (or pyarrow)"


@dataclass
class FileSummary:
    format: str
    rows: int
    columns: list[str]
    dtypes: dict[str, str]  # column (or NPZ array) -> int64 | float64 | string | bool | <numpy dtype>
    sha256: str
    bytes: int
    shapes: dict[str, list[int]] = field(default_factory=dict)  # NPZ arrays only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Table:
    """Columns of equal length: numeric columns as int64/float64 arrays, text as object arrays of str."""

    columns: dict[str, np.ndarray]
    rows: int
    lines: list[int]  # source line (CSV/JSONL) or row number (Parquet) of each row, for error messages

    def dtypes(self) -> dict[str, str]:
        return {k: ("string" if v.dtype == object else str(v.dtype)) for k, v in self.columns.items()}


def detect_format(path: Path, declared: str | None = None) -> str:
    if declared:
        fmt = declared.lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise InvalidInput(f"unsupported file format {declared!r}; use one of {', '.join(FORMATS)}")
        return fmt
    found = _EXT.get(path.suffix.lower())
    if found is None:
        raise InvalidInput(f"cannot tell the format of {path.name!r} from its extension; use .csv, .jsonl, .npz or .parquet")
    return found


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def validate_file(path: Path, declared_format: str | None = None, limits: UploadLimits | None = None) -> FileSummary:
    """Parse the whole file; raises InvalidInput naming the line/column that is wrong. ``limits`` bound what the
    file may declare (NPZ shapes, columns, nesting) and the CPU time its validation may take."""
    path = Path(path)
    limits = limits or UploadLimits()
    if not path.is_file():
        raise InvalidInput(f"file {path.name!r} does not exist")
    fmt = detect_format(path, declared_format)
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput(f"{path.name}: the file is empty")
    digest = sha256_file(path)
    if fmt == "npz":  # streamed: headers checked against the limits before anything is inflated
        arrays = inspect_npz(path, limits)
        rows = {shape[0] if shape else 1 for _, shape in arrays.values()}
        return FileSummary(
            "npz", max(rows), list(arrays), {k: str(dt) for k, (dt, _) in arrays.items()}, digest, size,
            {k: list(shape) for k, (_, shape) in arrays.items()},
        )  # fmt: skip
    table = load_table(path, fmt, limits)
    return FileSummary(fmt, table.rows, list(table.columns), table.dtypes(), digest, size)


# -- tables -------------------------------------------------------------------------------------
def load_table(path: Path, fmt: str | None = None, limits: UploadLimits | None = None) -> Table:
    fmt = fmt or detect_format(path)
    limits = limits or UploadLimits()
    if fmt == "csv":
        return _load_csv(path, limits)
    if fmt == "jsonl":
        return _load_jsonl(path, limits)
    if fmt == "parquet":
        return _load_parquet(path, limits)
    raise InvalidInput(f"{path.name}: a {fmt} file holds arrays, not a table with named columns; use CSV, JSONL or Parquet")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InvalidInput(f"{path.name}: line {line} is not UTF-8 text (byte {e.start}); save the file as UTF-8") from None


def _load_csv(path: Path, limits: UploadLimits) -> Table:
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{path.name}: the file is empty") from None
    except csv.Error as e:
        raise InvalidInput(f"{path.name}: line 1: {e}") from None
    header = [h.strip() for h in header]
    _check_columns(path, len(header), limits)
    _check_header(path, header)
    raw: list[list[str]] = [[] for _ in header]
    lines: list[int] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                raise InvalidInput(
                    f"{path.name}: line {reader.line_num}: {len(row)} fields, but the header has {len(header)} columns"
                )
            for i, v in enumerate(row):
                raw[i].append(v.strip())
            lines.append(reader.line_num)
            if len(lines) % 4096 == 0:
                limits.check_time(path)
    except csv.Error as e:
        raise InvalidInput(f"{path.name}: line {reader.line_num}: {e}") from None
    if not lines:
        raise InvalidInput(f"{path.name}: no data rows after the header")
    cols = {name: _typed_column(path, name, values, lines) for name, values in zip(header, raw, strict=True)}
    return Table(cols, len(lines), lines)


_TOO_DEEP = object()  # a JSONL line deeper than the parser's recursion limit


def _check_columns(path: Path, n: int, limits: UploadLimits) -> None:
    if n > limits.max_columns:
        raise InvalidInput(f"{path.name}: {n} columns; at most {limits.max_columns} are allowed (max_upload_columns)")


def _depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests lists and objects (stops counting past ``limit``)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        nxt: list[Any] = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        if not nxt:
            break
        depth += 1
        level = nxt
    return depth


def _check_header(path: Path, header: list[str]) -> None:
    for i, h in enumerate(header):
        if not h:
            raise InvalidInput(f"{path.name}: line 1: column {i + 1} has an empty name; the first line must be a header")
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise InvalidInput(f"{path.name}: line 1: column name {h!r} appears twice")
        seen.add(h)


def _to_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _typed_column(path: Path, name: str, values: list[Any], lines: list[int], unit: str = "line") -> np.ndarray:
    """Numeric when most non-empty values are numbers; the first one that is not is the error."""
    parsed = [_to_number(v) for v in values]
    present = [v for v in values if v not in ("", None)]
    n_num = sum(p is not None for p in parsed)
    if present and n_num * 2 > len(present):
        for v, p, line in zip(values, parsed, lines, strict=True):
            if v in ("", None):
                raise InvalidInput(
                    f"{path.name}: {unit} {line}, column {name!r}: missing value (missing values are not supported; fill or drop the row)"
                )
            if p is None:
                raise InvalidInput(f"{path.name}: {unit} {line}, column {name!r}: {str(v)[:40]!r} is not a number")
            if not math.isfinite(p):
                raise InvalidInput(f"{path.name}: {unit} {line}, column {name!r}: {str(v)[:40]!r} is not a finite number")
        arr = np.asarray(parsed, dtype=np.float64)
        if all(isinstance(v, int) or (isinstance(v, str) and _is_int(v)) for v in values):
            return arr.astype(np.int64)
        return arr
    for v, line in zip(values, lines, strict=True):
        if isinstance(v, dict | list):
            raise InvalidInput(f"{path.name}: {unit} {line}, column {name!r}: nested values are not supported")
    return np.asarray(["" if v is None else str(v) for v in values], dtype=object)


def _is_int(v: str) -> bool:
    s = v.lstrip("+-")
    return s.isdigit()


def _load_jsonl(path: Path, limits: UploadLimits) -> Table:
    text = _read_text(path)
    keys: list[str] | None = None
    raw: dict[str, list[Any]] = {}
    lines: list[int] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{path.name}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            obj = _TOO_DEEP
        if obj is _TOO_DEEP or _depth(obj, limits.max_nesting) > limits.max_nesting:
            raise InvalidInput(
                f"{path.name}: line {n}: a value is nested more than {limits.max_nesting} levels deep (max_upload_nesting)"
            )
        if n % 4096 == 0:
            limits.check_time(path)
        if not isinstance(obj, dict):
            raise InvalidInput(f"{path.name}: line {n}: expected a JSON object like {{\"x\": 1, \"label\": 0}}, got {type(obj).__name__}")
        if keys is None:
            keys = list(obj)
            if not keys:
                raise InvalidInput(f"{path.name}: line {n}: the object has no fields")
            _check_columns(path, len(keys), limits)
            raw = {k: [] for k in keys}
        elif set(obj) != set(keys):
            missing = sorted(set(keys) - set(obj))
            extra = sorted(set(obj) - set(keys))
            detail = ", ".join(x for x in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "") if x)
            raise InvalidInput(f"{path.name}: line {n}: fields differ from the first line ({detail})")
        for k in keys:
            raw[k].append(obj[k])
        lines.append(n)
    if keys is None:
        raise InvalidInput(f"{path.name}: no JSON objects in the file")
    cols = {k: _typed_column(path, k, raw[k], lines) for k in keys}
    return Table(cols, len(lines), lines)


def _load_parquet(path: Path, limits: UploadLimits) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput(PARQUET_HINT) from None
    try:
        meta = pq.read_metadata(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends
        raise InvalidInput(f"{path.name}: not a readable Parquet file: {e}") from None
    _check_columns(path, meta.num_columns, limits)
    # the row count is declared in the footer: a few KB can claim billions of rows. No file may hold more cells
    # than a CSV of the upload limit could (two bytes a cell, "0,"), checked before anything is decoded.
    if meta.num_rows * max(1, meta.num_columns) > limits.max_bytes // 2:
        raise PayloadTooLarge(
            f"{path.name}: declares {meta.num_rows} rows x {meta.num_columns} columns; at most "
            f"{limits.max_bytes // 2} cells are allowed (half of max_upload_bytes)"
        )
    try:
        t = pq.read_table(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends
        raise InvalidInput(f"{path.name}: not a readable Parquet file: {e}") from None
    if t.num_rows == 0:
        raise InvalidInput(f"{path.name}: no rows")
    rows = list(range(1, t.num_rows + 1))
    cols = {name: _typed_column(path, name, t.column(name).to_pylist(), rows, unit="row") for name in t.column_names}
    return Table(cols, t.num_rows, rows)


# -- arrays -------------------------------------------------------------------------------------
def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise InvalidInput(f"{path.name}: an array holds Python objects (pickled); save numeric arrays only") from None
        raise InvalidInput(f"{path.name}: not a readable NPZ file: {e}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InvalidInput(f"{path.name}: not a readable NPZ file (np.savez output expected): {e}") from None
    if not arrays:
        raise InvalidInput(f"{path.name}: the NPZ file holds no arrays")
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise InvalidInput(f"{path.name}: array {k!r} has dtype {a.dtype}; only numeric arrays are supported")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = int(np.argwhere(~np.isfinite(a))[0][0])
            raise InvalidInput(f"{path.name}: array {k!r}, row {bad}: NaN or infinite value")
    return arrays
