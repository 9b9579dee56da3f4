"""Bounds on what validating an uploaded training file may cost, and the NPZ check that never trusts a header.

An NPZ file is a zip of NPY members; each member's header declares a dtype and a shape. ``inspect_npz`` reads
the headers, refuses a file whose arrays would decompress past the upload limit *before* inflating anything
(a 4 MB NPZ can inflate to 4 GiB), then streams each member in bounded chunks to check that the bytes present
match the declared shape and that floats are finite. Memory stays at one chunk whatever the file declares.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from aiaas.errors import InvalidInput, PayloadTooLarge

CHUNK_BYTES = 4 << 20  # NPZ members are checked this many bytes at a time
MAX_NPY_HEADER = 10_000  # bytes of an NPY header (numpy's own default bound)


@dataclass
class UploadLimits:
    """What one upload's validation may take (Settings: max_upload_bytes, max_upload_columns,
    max_upload_nesting, upload_validation_s)."""

    max_bytes: int = 1 << 30  # decompressed size of the data (NPZ arrays), as for the upload itself
    max_columns: int = 10_000  # columns of a table, arrays of an NPZ
    max_nesting: int = 32  # JSONL: deepest nesting of a value
    seconds: float = 600.0  # CPU time budget of the validation
    started: float = field(default_factory=time.thread_time)

    def check_time(self, path: Path) -> None:
        """Refuse the file once its validation has used up its CPU-time budget (called between chunks)."""
        if time.thread_time() - self.started > self.seconds:
            raise InvalidInput(
                f"{path.name}: validating this file took more than {self.seconds:g} s of CPU time "
                "(upload_validation_s); split it into smaller files"
            )


def inspect_npz(path: Path, limits: UploadLimits) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Each array's dtype and shape, after checking every member against the limits and its own header."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InvalidInput(f"{path.name}: not a readable NPZ file (np.savez output expected): {e}") from None
    with zf:
        members = [i for i in zf.infolist() if not i.is_dir()]
        if not members:
            raise InvalidInput(f"{path.name}: the NPZ file holds no arrays")
        if len(members) > limits.max_columns:
            raise InvalidInput(
                f"{path.name}: {len(members)} arrays; at most {limits.max_columns} are allowed (max_upload_columns)"
            )
        out: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        total = 0
        for info in members:
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with zf.open(info) as f:
                    dtype, shape = _header(path, key, f)
                    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    total += need
                    if total > limits.max_bytes:
                        raise PayloadTooLarge(
                            f"{path.name}: array {key[:80]!r} declares shape {list(shape)[:8]} of {dtype} ({need} "
                            "bytes); "
                            f"the arrays would take more than the upload limit of {limits.max_bytes} bytes "
                            "(max_upload_bytes)"
                        )
                    _stream_data(path, key, f, dtype, shape, limits)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise InvalidInput(f"{path.name}: array {key[:80]!r} is not readable: {e}") from None
            out[key] = (dtype, shape)
        return out


def _header(path: Path, key: str, f: IO[bytes]) -> tuple[np.dtype, tuple[int, ...]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=MAX_NPY_HEADER)
        else:
            shape, _fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=MAX_NPY_HEADER)
    except ValueError as e:
        raise InvalidInput(f"{path.name}: array {key[:80]!r} has no valid NPY header: {str(e)[:200]}") from None
    if dtype.hasobject:
        raise InvalidInput(f"{path.name}: an array holds Python objects (pickled); save numeric arrays only")
    if dtype.kind not in "biuf":
        raise InvalidInput(f"{path.name}: array {key[:80]!r} has dtype {dtype}; only numeric arrays are supported")
    if len(shape) > 32:
        raise InvalidInput(f"{path.name}: array {key[:80]!r} has {len(shape)} dimensions; at most 32 are allowed")
    return dtype, tuple(shape)


def _stream_data(
    path: Path, key: str, f: IO[bytes], dtype: np.dtype, shape: tuple[int, ...], limits: UploadLimits
) -> None:
    """Read exactly the bytes ``shape`` needs, in bounded chunks (refusing short or long data, non-finite floats)."""
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    per_row = max(1, int(np.prod(shape[1:], dtype=object))) if shape else 1
    step = max(dtype.itemsize, CHUNK_BYTES - CHUNK_BYTES % dtype.itemsize)
    seen = 0
    while seen < need:
        chunk = f.read(min(step, need - seen))
        if not chunk:
            raise InvalidInput(
                f"{path.name}: array {key[:80]!r} holds {seen} bytes of data, but its shape needs {need}"
            )
        if dtype.kind == "f":
            usable = len(chunk) - len(chunk) % dtype.itemsize
            values = np.frombuffer(chunk[:usable], dtype=dtype)
            if not np.isfinite(values).all():
                bad = (seen // dtype.itemsize) + int(np.argwhere(~np.isfinite(values))[0][0])
                raise InvalidInput(f"{path.name}: array {key[:80]!r}, row {bad // per_row}: NaN or infinite value")
        seen += len(chunk)
        limits.check_time(path)
    if f.read(1):
        raise InvalidInput(f"{path.name}: array {key[:80]!r} holds more data than its shape declares")
