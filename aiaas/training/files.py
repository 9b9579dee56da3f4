"""Validation and loading of training data files: CSV, JSONL, NPZ, Parquet.

Validation is a full parse, done once at upload so a job never starts on a file that cannot be read; every error
names the line (or row) and the column that is wrong, because "could not convert string to float" on a 2 GB file
is useless. The same parser loads the data in the workers, so what was validated is what is trained on.

Column types are decided by majority: a column whose values are mostly numbers is numeric, and the first value
that is not a number is reported as the error (rather than silently turning the column into text).
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.training.tablescan import PARQUET_HINT, ColumnScan, rows, scan, to_number
from aiaas.training.uploadcheck import UploadLimits, inspect_npz

__all__ = ["PARQUET_HINT", "FileSummary", "Table", "detect_format", "load_npz", "load_table", "validate_file"]

FORMATS = ("csv", "jsonl", "npz", "parquet")
_EXT = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}


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
        raise InvalidInput(
            f"cannot tell the format of {path.name!r} from its extension; use .csv, .jsonl, .npz or .parquet"
        )
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
            "npz",
            max(rows),
            list(arrays),
            {k: str(dt) for k, (dt, _) in arrays.items()},
            digest,
            size,
            {k: list(shape) for k, (_, shape) in arrays.items()},
        )
    n, columns, dtypes = scan(path, fmt, limits)  # streamed: memory bounded by the widest row
    return FileSummary(fmt, n, columns, dtypes, digest, size)


# -- tables -------------------------------------------------------------------------------------
def load_table(path: Path, fmt: str | None = None, limits: UploadLimits | None = None) -> Table:
    """The whole table in memory (what training reads); rows streamed by ``tablescan.rows``."""
    fmt = fmt or detect_format(path)
    limits = limits or UploadLimits()
    header: list[str] = []
    raw: list[list[Any]] = []
    lines: list[int] = []
    for header, line, values in rows(path, fmt, limits):
        if not raw:
            raw = [[] for _ in header]
        for column, v in zip(raw, values, strict=True):
            column.append(v)
        lines.append(line)
    unit = "row" if fmt == "parquet" else "line"
    cols = {name: _typed_column(path, name, values, lines, unit) for name, values in zip(header, raw, strict=True)}
    return Table(cols, len(lines), lines)


def _typed_column(path: Path, name: str, values: list[Any], lines: list[int], unit: str = "line") -> np.ndarray:
    """Numeric when most non-empty values are numbers; the first one that is not is the error."""
    column = ColumnScan(name)
    for v, line in zip(values, lines, strict=True):
        column.add(v, line)
    kind = column.kind(path, unit)
    if kind == "string":
        return np.asarray(["" if v is None else str(v) for v in values], dtype=object)
    arr = np.asarray([to_number(v) for v in values], dtype=np.float64)
    return arr.astype(np.int64) if kind == "int64" else arr


# -- arrays -------------------------------------------------------------------------------------
def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise InvalidInput(
                f"{path.name}: an array holds Python objects (pickled); save numeric arrays only"
            ) from None
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
