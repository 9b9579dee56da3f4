"""Synchronous KServe V2 client over httpx (JSON or the binary tensor extension)."""

from __future__ import annotations

import struct
from typing import Any

import httpx
import numpy as np
import orjson

from aiaas.errors import AiaasError
from aiaas.types.datatypes import NUMPY_V2_NAMES, V2_NUMPY_NAMES


class ClientError(AiaasError):
    """An error answer from the server, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status


def _datatype(arr: np.ndarray) -> str:
    if arr.dtype.kind in ("O", "S", "U"):
        return "BYTES"
    return NUMPY_V2_NAMES[arr.dtype.name]


def _bytes_blob(arr: np.ndarray) -> bytes:
    out = []
    for v in arr.reshape(-1):
        b = v if isinstance(v, bytes) else str(v).encode()
        out += [struct.pack("<I", len(b)), b]
    return b"".join(out)


def _parse_bytes(buf: bytes) -> list[bytes]:
    items, pos = [], 0
    while pos < len(buf):
        (n,) = struct.unpack_from("<I", buf, pos)
        items.append(buf[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return items


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            try:
                err = r.json().get("error")
                msg = err.get("message") if isinstance(err, dict) else str(err)
            except ValueError:
                msg = r.text[:500]
            raise ClientError(r.status_code, f"HTTP {r.status_code}: {msg}")
        return r

    # -- health, metadata, repository -----------------------------------------------------------
    def live(self) -> bool:
        return self.http.get("/v2/health/live").status_code == 200

    def ready(self) -> bool:
        return self.http.get("/v2/health/ready").status_code == 200

    def model_ready(self, name: str, version: str | None = None) -> bool:
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/ready"
        return self.http.get(path).status_code == 200

    def metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
        return self._check(self.http.get(path)).json()

    def repository_index(self, ready: bool = False) -> list[dict[str, Any]]:
        return self._check(self.http.post("/v2/repository/index", json={"ready": ready})).json()

    def load_model(self, name: str) -> None:
        self._check(self.http.post(f"/v2/repository/models/{name}/load"))

    def unload_model(self, name: str) -> None:
        self._check(self.http.post(f"/v2/repository/models/{name}/unload"))

    def statistics(self, name: str | None = None) -> dict[str, Any]:
        path = f"/v2/models/{name}/stats" if name else "/v2/models/stats"
        return self._check(self.http.get(path)).json()

    # -- inference ------------------------------------------------------------------------------
    def infer(
        self,
        name: str,
        inputs: dict[str, Any],
        version: str | None = None,
        outputs: list[str] | None = None,
        binary: bool = False,
        parameters: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run a model; inputs are numpy arrays (lists are converted). ``binary`` uses the binary extension."""
        entries, blobs = [], []
        for key, value in inputs.items():
            arr = np.asarray(value)
            if arr.dtype.kind == "U":
                arr = np.vectorize(lambda s: s.encode(), otypes=[object])(arr)
            dt = _datatype(arr)
            entry: dict[str, Any] = {"name": key, "shape": list(arr.shape), "datatype": dt}
            if binary:
                blob = _bytes_blob(arr) if dt == "BYTES" else np.ascontiguousarray(arr).tobytes()
                entry["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                entry["data"] = [v.decode() for v in arr.reshape(-1)] if dt == "BYTES" else arr.reshape(-1)
            entries.append(entry)
        doc: dict[str, Any] = {"inputs": entries}
        if outputs is not None:
            doc["outputs"] = [{"name": o, "parameters": {"binary_data": binary}} for o in outputs]
        if parameters or (binary and outputs is None):
            doc["parameters"] = {**(parameters or {}), **({"binary_data_output": True} if binary else {})}
        head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"Content-Type": "application/json"}
        if blobs:
            headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
        r = self._check(self.http.post(path, content=head + b"".join(blobs), headers=headers))
        return self._decode(r)

    @staticmethod
    def _decode(r: httpx.Response) -> dict[str, np.ndarray]:
        body = r.content
        hlen = r.headers.get("inference-header-content-length")
        head = orjson.loads(body[: int(hlen)] if hlen else body)
        offset = int(hlen) if hlen else 0
        result: dict[str, np.ndarray] = {}
        for o in head["outputs"]:
            dt, shape = o["datatype"], o["shape"]
            size = (o.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                raw = body[offset : offset + size]
                offset += size
                if dt == "BYTES":
                    result[o["name"]] = np.array(_parse_bytes(raw), dtype=object).reshape(shape)
                else:
                    result[o["name"]] = np.frombuffer(raw, dtype=V2_NUMPY_NAMES[dt]).reshape(shape)
            elif dt == "BYTES":
                result[o["name"]] = np.array([s.encode() for s in o["data"]], dtype=object).reshape(shape)
            else:
                result[o["name"]] = np.asarray(o["data"], dtype=V2_NUMPY_NAMES[dt]).reshape(shape)
        return result
