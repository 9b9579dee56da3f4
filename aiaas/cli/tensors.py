"""``aiaas run``'s two halves: build a model's input tensors from plain arguments, print its outputs readably.

The input comes from the model's metadata (``GET /v2/models/NAME``): text goes to the model's text input,
an image or audio file to its ``image`` / ``audio`` input, a CSV file's rows to ``rows`` (one JSON object per
row, as the tabular models take), numbers to its numeric input reshaped to one batch row. ``NAME=VALUE``
names the input explicitly. Outputs print one line per tensor and row; audio and images are saved to files.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from aiaas.errors import InvalidInput

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac"}
TEXT_NAMES = ("text", "prompt", "input", "request", "fen", "rows", "label")
NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
MAGIC = (
    (b"\x89PNG", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF8", "gif"),
    (b"BM", "bmp"),
    (b"fLaC", "flac"),
    (b"OggS", "ogg"),
    (b"ID3", "mp3"),
    (b"\xff\xfb", "mp3"),
)


@dataclass
class Item:
    """One argument, read: what kind of thing it is and its content."""

    kind: str  # image | audio | csv | text | bytes
    data: bytes | str


def sniff(data: bytes) -> str | None:
    """The file type of some bytes from their magic number, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    return next((ext for magic, ext in MAGIC if data.startswith(magic)), None)


def read_arg(arg: str, stdin: BinaryIO | None = None) -> Item:
    """``-`` reads stdin; an existing file path reads the file; anything else is text."""
    if arg == "-":
        if stdin is None:
            raise InvalidInput("'-' reads standard input, but there is none")
        return _item(stdin.read(), "")
    path = Path(arg)
    if len(arg) < 4096 and path.is_file():
        try:
            return _item(path.read_bytes(), path.suffix.lower())
        except OSError as e:
            raise InvalidInput(f"cannot read {arg}: {e.strerror}") from None
    return Item("text", arg)


def _item(data: bytes, suffix: str) -> Item:
    kind = sniff(data)
    if suffix in IMAGE_EXT or kind in ("png", "jpg", "gif", "bmp"):
        return Item("image", data)
    if suffix in AUDIO_EXT or kind in ("wav", "flac", "ogg", "mp3"):
        return Item("audio", data)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return Item("bytes", data)
    return Item("csv" if suffix in (".csv", ".tsv") else "text", text.rstrip("\n") if suffix != ".csv" else text)


def csv_rows(text: str) -> list[str]:
    """A CSV with a header line -> one JSON object per data row (numbers as numbers, empty cells left out)."""
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if text.count("\t") > text.count(",") else ",")
    rows = []
    for row in reader:
        obj: dict[str, Any] = {}
        for k, v in row.items():
            if k is None or v is None or v.strip() == "":
                continue
            try:
                num = float(v)
                obj[k.strip()] = num if math.isfinite(num) else v
            except ValueError:
                obj[k.strip()] = v.strip()
        rows.append(json.dumps(obj))
    if not rows:
        raise InvalidInput("the CSV file has no data rows under its header line")
    return rows


def numbers(text: str, spec: dict[str, Any]) -> np.ndarray:
    """Text as a tensor of ``spec``: a JSON (nested) list or numbers separated by commas/spaces; one batch row
    is added when the numbers fill exactly one row of the shape."""
    try:
        value = (
            json.loads(text) if text.lstrip().startswith("[") else [float(t) for t in text.replace(",", " ").split()]
        )
        arr: np.ndarray = np.asarray(value, dtype=NUMPY[spec["datatype"]])
    except (ValueError, TypeError):
        raise InvalidInput(
            f"input {spec['name']!r} ({spec['datatype']} {spec['shape']}) needs numbers; got {text[:60]!r}"
        ) from None
    row = list(spec["shape"])[1:]
    if arr.ndim >= len(spec["shape"]):
        return arr
    if arr.ndim == len(row) and all(d in (-1, n) for d, n in zip(row, arr.shape, strict=True)):
        return arr[None]
    try:
        return arr.reshape([1, *row])
    except ValueError:
        raise InvalidInput(f"input {spec['name']!r} takes rows of shape {row}; got {arr.size} number(s)") from None


def _pick(meta: dict[str, Any], kind: str) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = meta["inputs"]
    optional = set((meta.get("parameters") or {}).get("optional_inputs") or [])
    by_name = {t["name"]: t for t in inputs}
    wanted = {"image": ("image",), "audio": ("audio",), "csv": ("rows",)}.get(kind, ())
    for name in wanted:
        if name in by_name:
            return by_name[name]
    texts = [t for t in inputs if t["datatype"] == "BYTES"]
    required = [t for t in texts if t["name"] not in optional]
    named = [by_name[n] for n in TEXT_NAMES if n in by_name and by_name[n]["datatype"] == "BYTES"]
    choice = (required or named or texts) if kind != "csv" else []
    if choice:
        return choice[0]
    numeric = [t for t in inputs if t["datatype"] != "BYTES"]
    if numeric and kind in ("text", "csv"):
        return ([t for t in numeric if t["name"] not in optional] or numeric)[0]
    names = ", ".join(f"{t['name']} ({t['datatype']} {t['shape']})" for t in inputs)
    raise InvalidInput(
        f"model {meta['name']!r} has no input for {kind} (its inputs: {names}); name one with NAME=VALUE"
    )


def tensor(spec: dict[str, Any], items: list[Item]) -> np.ndarray:
    """The values of ``items`` as one tensor for input ``spec`` (each item one batch row)."""
    if spec["datatype"] == "BYTES":
        values: list[Any] = []
        for it in items:
            if it.kind == "csv" and spec["name"] == "rows":
                values += csv_rows(str(it.data))
            else:
                values.append(it.data.encode() if isinstance(it.data, str) else it.data)
        arr = np.empty(len(values), dtype=object)
        arr[:] = [v.encode() if isinstance(v, str) else v for v in values]
        return arr.reshape([len(values)] + [1] * (len(spec["shape"]) - 1))
    rows: list[np.ndarray] = []
    for it in items:
        if not isinstance(it.data, str):
            raise InvalidInput(f"input {spec['name']!r} takes numbers ({spec['datatype']}), not a {it.kind} file")
        if it.kind == "csv":
            lines = [ln for ln in it.data.splitlines() if ln.strip()]
            body = lines[1:] if lines and any(c.isalpha() for c in lines[0]) else lines
            rows += [numbers(ln, spec) for ln in body]
        else:
            rows.append(numbers(it.data, spec))
    return np.concatenate(rows) if len(rows) > 1 else rows[0]


def build_inputs(meta: dict[str, Any], args: list[str], stdin: BinaryIO | None = None) -> dict[str, np.ndarray]:
    """The input tensors for ``aiaas run MODEL ARGS...``."""
    by_name = {t["name"]: t for t in meta["inputs"]}
    named: dict[str, list[Item]] = {}
    positional: list[Item] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key in by_name:
            named.setdefault(key, []).append(read_arg(value, stdin))
        else:
            positional.append(read_arg(arg, stdin))
    if positional:
        kinds = {it.kind for it in positional}
        if len(kinds) > 1:
            raise InvalidInput(f"mixed inputs ({', '.join(sorted(kinds))}): name each with NAME=VALUE")
        spec = _pick(meta, kinds.pop())
        if spec["name"] in named:
            raise InvalidInput(f"input {spec['name']!r} given both by name and by position")
        named[spec["name"]] = positional
    if not named:
        raise InvalidInput(f"give an input for {meta['name']!r}: text, a file path, '-' for stdin, or NAME=VALUE")
    return {name: tensor(by_name[name], items) for name, items in named.items()}


# -- output ---------------------------------------------------------------------------------------
HIDDEN_WITH = {"probabilities": "label", "scores": "label", "contributions": "explanation", "image_b64": "image"}


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        try:
            v = v.decode()
        except UnicodeDecodeError:
            return f"<{len(v)} bytes>"
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.dumps(json.loads(v), ensure_ascii=False)
        except ValueError:
            pass
    return str(v)


def _row(arr: np.ndarray, i: int) -> Any:
    return arr[i] if arr.ndim and arr.shape[0] > i else arr


def render(outputs: dict[str, np.ndarray], save_dir: Path, stem: str) -> list[str]:
    """Readable lines: ``label  (score 0.97)``, text as text, numbers rounded; audio and images saved."""
    rows = max((a.shape[0] for a in outputs.values() if a.ndim), default=1)
    lines: list[str] = []
    for i in range(rows):
        prefix = f"[{i}] " if rows > 1 else ""
        for name, arr in outputs.items():
            if (HIDDEN_WITH.get(name) in outputs) or (name == "score" and "label" in outputs):
                continue
            value = _row(arr, i)
            if arr.dtype == object:
                flat = list(np.asarray(value, dtype=object).reshape(-1))
                ext = sniff(flat[0]) if len(flat) == 1 and isinstance(flat[0], bytes) else None
                if ext is not None:
                    path = save_dir / f"{stem}{'-' + str(i) if rows > 1 else ''}.{ext}"
                    path.write_bytes(flat[0])
                    lines.append(f"{prefix}{name}: saved {len(flat[0])} bytes to {path}")
                    continue
                text = " | ".join(_text(v) for v in flat)
            else:
                text = np.array2string(np.asarray(value), precision=4, threshold=16, suppress_small=True)
            if name == "label" and "score" in outputs:
                text += f"  (score {float(np.asarray(_row(outputs['score'], i)).reshape(-1)[0]):.4f})"
            lines.append(f"{prefix}{name}: {text}")
    return lines
