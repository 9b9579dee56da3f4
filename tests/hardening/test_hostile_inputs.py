"""Hostile and careless inputs, in process: each class answers the right 4xx with a message that names the
field and what is allowed, before anything expensive happens. Memory is measured on a real server in
``test_server_under_attack.py``."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import AUTH, LIMITS, dumps, message
from fastapi.testclient import TestClient

INFER = LIMITS["max_request_bytes"]
# every route family with a body, by the setting that limits it
ROUTES_BY_SETTING = {
    "max_control_request_bytes": [
        ("POST", "/v1/tenants"),
        ("POST", "/v1/keys"),
        ("PUT", "/v1/limits/tenant/acme"),
        ("PUT", "/v1/budgets/tenant/acme"),
        ("PUT", "/v1/models/mlp/owner"),
        ("POST", "/v1/training/jobs"),
        ("POST", "/v1/optimizations"),
        ("POST", "/v2/repository/index"),
    ],
    "max_openai_request_bytes": [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/audio/speech"),
    ],
}
BODY_ROUTES = [(m, p, LIMITS[setting], setting) for setting, routes in ROUTES_BY_SETTING.items() for m, p in routes]
X = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}


def _chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"[" * min(size, total - sent)
        sent += size


# -- class 1: body limits on every route, before parsing and before the key ---------------------------
@pytest.mark.parametrize(("method", "path", "limit", "setting"), BODY_ROUTES)
def test_body_over_the_limit_is_413_without_a_key(
    app_client: TestClient, method: str, path: str, limit: int, setting: str
) -> None:
    r = app_client.request(method, path, content=b"{" * (limit + 1), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert setting in message(r) and str(limit) in message(r)
    chunked = app_client.request(
        method, path, content=_chunks(limit + 10), headers={"Content-Type": "application/json"}
    )
    if path.startswith("/v2/repository"):  # authenticates before it reads a byte of its (optional) body
        assert chunked.status_code == 401, chunked.text
    else:
        assert chunked.status_code == 413, chunked.text
        assert setting in message(chunked)


@pytest.mark.parametrize(("method", "path", "limit", "setting"), BODY_ROUTES)
def test_no_key_never_sees_a_validation_error(
    app_client: TestClient, method: str, path: str, limit: int, setting: str
) -> None:
    for body in (b"{not json", b'{"bogus": [1, 2, 3]}', b"[" * 3000 + b"]" * 3000, b"\xff\xfe"):
        r = app_client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 401, (path, body[:20], r.text)
        assert "key" in message(r).lower() and "json" not in message(r).lower()


@pytest.mark.parametrize("path", ["/v2/models/mlp/infer", "/v2/models/no-such-model/versions/1/infer"])
def test_infer_body_over_the_limit_is_413(app_client: TestClient, path: str) -> None:
    r = app_client.post(path, content=b" " * (INFER + 1), headers=AUTH)
    assert r.status_code == 413 and str(INFER) in message(r)
    r = app_client.post(path, content=_chunks(INFER + 10), headers=AUTH)
    assert r.status_code == 413
    assert app_client.post(path, content=b" " * (INFER + 1)).status_code == 401  # no key: not even read


# -- class 1: declared sizes are checked against the bytes present -----------------------------------
def _binary(entries: list[dict[str, Any]], blob: bytes) -> tuple[bytes, dict[str, str]]:
    head = dumps({"inputs": entries})
    return head + blob, {**AUTH, "Inference-Header-Content-Length": str(len(head))}


@pytest.mark.parametrize("model", ["strings", "no-such-model"])
def test_declared_sizes_are_not_trusted(app_client: TestClient, model: str) -> None:
    url = f"/v2/models/{model}/infer"
    cases: list[tuple[bytes, dict[str, str], str]] = []
    # a ~100-byte request declaring 2^26 BYTES elements (used to allocate ~1 GB before looking at the data)
    body, headers = _binary(
        [{"name": "inp", "shape": [1, 1 << 26], "datatype": "BYTES", "parameters": {"binary_data_size": 4}}],
        b"\0\0\0\0",
    )
    cases.append((body, headers, "elements"))
    body, headers = _binary(
        [{"name": "inp", "shape": [1, 20_000], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}],
        struct.pack("<I", 0) * 2,
    )
    cases.append((body, headers, "holds at most 2"))
    body, headers = _binary(
        [{"name": "inp", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 10**12}}], b"\0" * 16
    )
    cases.append((body, headers, "binary_data_size"))
    body, headers = _binary(
        [{"name": "inp", "shape": [1, 8], "datatype": "FP32", "parameters": {"binary_data_size": 16}}], b"\0" * 16
    )
    cases.append((body, headers, "needs 32 bytes"))
    cases.append(
        (
            dumps({"inputs": [{"name": "inp", "shape": [10**9, 10**9], "datatype": "BYTES", "data": ["a"]}]}),
            AUTH,
            "100000 elements",
        )
    )
    cases.append(
        (dumps({"inputs": [{"name": "inp", "shape": [1] * 40, "datatype": "FP32", "data": [1.0]}]}), AUTH, "dimensions")
    )
    cases.append(
        (dumps({"inputs": [{"name": "inp", "shape": [2**70], "datatype": "FP32", "data": [1.0]}]}), AUTH, "shape")
    )
    for body, headers, mention in cases:
        r = app_client.post(url, content=body, headers=headers)
        assert r.status_code == 400, (mention, r.text)
        assert mention in message(r) and "'inp'" in message(r), message(r)


# -- class 2: a client's mistake is a 4xx naming the field --------------------------------------------
FP_RANGE = [("FP32", 1e41), ("FP32", -3.5e38), ("FP16", 70000.0), ("FP16", -1e5)]


@pytest.mark.parametrize(("datatype", "value"), FP_RANGE)
def test_float_out_of_range_is_400(app_client: TestClient, datatype: str, value: float) -> None:
    doc = {"inputs": [{**X, "datatype": datatype, "data": [value, 1.0, 2.0, 3.0]}]}
    r = app_client.post("/v2/models/mlp/infer", content=dumps(doc), headers=AUTH)
    assert r.status_code == 400 and "outside the range of " + datatype in message(r), r.text


@pytest.mark.parametrize(
    ("body", "mention"),
    [
        (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1e400, 1, 2, 3]}]}', "JSON"),
        (dumps({"inputs": [{**X, "datatype": "INT8", "data": [300, 1, 2, 3]}]}), "INT8"),
        (dumps({"inputs": [{**X, "datatype": "UINT64", "data": [-1, 1, 2, 3]}]}), "UINT64"),
        (dumps({"inputs": [{**X, "datatype": "INT64", "data": [2**70, 1, 2, 3]}]}), "INT64"),
    ],
)
def test_numbers_outside_the_datatype_are_400(app_client: TestClient, body: bytes, mention: str) -> None:
    r = app_client.post("/v2/models/mlp/infer", content=body, headers=AUTH)
    assert r.status_code == 400 and mention in message(r), r.text


BAD_VERSIONS = ["\u0661", "\u00b2", "+1", "1_0", "-1", "1.0", "9" * 5000, "\uff11", "0x1", "1e3"]


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_versions_that_are_not_small_integers_are_400(app_client: TestClient, version: str) -> None:
    for method, suffix in (("POST", "/infer"), ("GET", "/ready"), ("GET", "")):
        body = dumps({"inputs": [X]}) if method == "POST" else None
        r = app_client.request(method, f"/v2/models/mlp/versions/{version}{suffix}", content=body, headers=AUTH)
        assert r.status_code == 400, (version[:10], suffix, r.text[:200])
        assert "version" in message(r) and "9 digits" in message(r)


@pytest.mark.parametrize("value", ["abc", "9" * 5000, "\u00b9\u00b2", "-1", "99999999999999999999", "1e3", " "])
def test_bad_inference_header_content_length_is_400(app_client: TestClient, value: str) -> None:
    headers: dict[str, Any] = {**AUTH, "Inference-Header-Content-Length": value.encode("latin-1")}
    r = app_client.post("/v2/models/mlp/infer", content=dumps({"inputs": [X]}), headers=headers)
    assert r.status_code == 400 and "Inference-Header-Content-Length" in message(r), r.text


def test_deep_nesting_in_any_field_is_400(app_client: TestClient) -> None:
    deep = "[" * 3000 + "]" * 3000  # deeper than orjson (1024) and Python (1000) recurse; under 8 KB
    shallow_but_deep = "[" * 900 + "1.0" + "]" * 900
    head = '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": '
    text = '{"inputs": [{"name": "inp", "shape": [1, 1], "datatype": "BYTES", "data": '
    cases = [
        ("/v2/models/mlp/infer", head + deep + "}]}"),
        ("/v2/models/mlp/infer", head + shallow_but_deep + "}]}"),
        ("/v2/models/strings/infer", text + shallow_but_deep + "}]}"),
        ("/v2/models/mlp/infer", '{"inputs": [' + json.dumps(X) + '], "parameters": {"a": ' + deep + "}}"),
        ("/v1/tenants", '{"name": ' + deep + "}"),
        ("/v1/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": ' + deep + "}]}"),
        ("/v1/optimizations", '{"model": "mlp", "passes": ' + '{"a":' * 800 + "1" + "}" * 800 + "}"),
        ("/v1/training/jobs", '{"recipe": ' + deep + "}"),
    ]
    for path, body in cases:
        r = app_client.post(path, content=body.encode(), headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 400, (path, r.text[:300])
        message(r)


def test_non_utf8_bytes_to_a_text_model_is_400(app_client: TestClient) -> None:
    blob = struct.pack("<I", 2) + b"\xff\xfe"
    body, headers = _binary(
        [{"name": "inp", "shape": [1, 1], "datatype": "BYTES", "parameters": {"binary_data_size": len(blob)}}], blob
    )
    r = app_client.post("/v2/models/strings/infer", content=body, headers=headers)
    assert r.status_code == 400 and "'inp'" in message(r) and "UTF-8" in message(r), r.text
    ok = app_client.post(
        "/v2/models/strings/infer",
        content=dumps({"inputs": [{"name": "inp", "shape": [1, 1], "datatype": "BYTES", "data": ["caf\u00e9"]}]}),
        headers=AUTH,
    )
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == ["caf\u00e9"]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/usage?start=99999-01-01", "start"),
        ("/v1/usage?end=0000-01-01", "end"),
        ("/v1/usage?start=2025-13-01", "start"),
        ("/v1/usage?start=" + "9" * 5000, "start"),
        ("/v1/audit?start=99999-01-01T00:00:00Z", "start"),
        ("/v1/audit?end=-2025-01-01", "end"),
        ("/v1/audit?limit=99999999999999999999", "limit"),
        ("/v1/audit?limit=-1", "limit"),
        ("/v1/usage?group_by=" + "x" * 5000, "group_by"),
        ("/v1/keys?tenant=" + "\u0661" * 300, "tenant"),
    ],
)
def test_filters_out_of_range_are_400(app_client: TestClient, path: str, param: str) -> None:
    r = app_client.get(path, headers=AUTH)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["param"] == param and param in message(r)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/limits/tenant/acme", {"requests_per_minute": 2**63}, "requests_per_minute"),
        ("/v1/limits/tenant/acme", {"requests_per_minute": 10**30}, "requests_per_minute"),
        ("/v1/limits/tenant/acme", {"concurrency": 2**64}, "concurrency"),
        ("/v1/limits/tenant/acme", {"units_per_minute": 1e308}, "units_per_minute"),
        ("/v1/limits/tenant/acme", {"requests_per_minute": "5"}, "requests_per_minute"),
        ("/v1/budgets/tenant/acme", {"limit": 1e308}, "limit"),
        ("/v1/budgets/tenant/acme", {"limit": 10**40}, "limit"),
        ("/v1/keys", {"tenant": "acme", "expires_days": 1e300}, "expires_days"),
        ("/v1/tenants", {"name": "x" * 5000}, "name"),
        ("/v1/models/mlp/owner", {"public": 0}, "public"),
    ],
)
def test_numbers_too_large_for_the_database_are_400(
    app_client: TestClient, path: str, body: dict[str, Any], param: str
) -> None:
    method = "POST" if path in ("/v1/keys", "/v1/tenants") else "PUT"
    r = app_client.request(method, path, json=body, headers=AUTH)
    assert r.status_code == 400, r.text[:300]
    assert param in message(r)


@pytest.mark.parametrize(("field", "value"), [("priority", 2**63), ("priority", 2**31), ("seed", 2**70), ("seed", -1)])
def test_job_integers_beyond_their_column_are_400(app_client: TestClient, field: str, value: int) -> None:
    job = {"recipe": "tabular", "training_file": "file-x", "model": "m", field: value}
    r = app_client.post("/v1/training/jobs", json=job, headers=AUTH)
    assert r.status_code == 400 and field in message(r), r.text[:300]


JOB_PAGING = [  # (query, the parameter the message must name)
    ("events?after=99999999999999999999999", "after"),
    ("events?limit=-1", "limit"),
    ("logs?rank=99999999999999999999", "rank"),
    ("logs?tail=99999999999999999999", "tail"),
]


@pytest.mark.parametrize(("query", "param"), JOB_PAGING)
def test_job_paging_beyond_a_64_bit_column_is_400(app_client: TestClient, query: str, param: str) -> None:
    r = app_client.get(f"/v1/training/jobs/job-x/{query}", headers=AUTH)
    assert r.status_code == 400, r.text[:300]
    assert param in message(r)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files?limit=10000000000000000000000",
        "/v1/files?after=" + "z" * 5000,
        "/v1/training/jobs?limit=-5",
        "/v1/optimizations?limit=99999999999999999999999",
    ],
)
def test_paging_cursors_out_of_range_are_4xx(app_client: TestClient, path: str) -> None:
    r = app_client.get(path, headers=AUTH)
    assert r.status_code in (400, 404), r.text[:300]
    message(r)


def test_long_strings_are_cut_in_messages(app_client: TestClient) -> None:
    name = "m" * 20_000
    for r in (
        app_client.post(f"/v2/models/{name}/infer", content=dumps({"inputs": [X]}), headers=AUTH),
        app_client.get(f"/v2/models/{name}", headers=AUTH),
        app_client.get(f"/v1/tenants/{name}", headers=AUTH),
        app_client.post(
            "/v2/models/mlp/infer", content=dumps({"inputs": [{**X, "datatype": "D" * 10_000}]}), headers=AUTH
        ),
        app_client.post("/v2/models/mlp/infer", content=dumps({"inputs": [{**X, "name": "n" * 10_000}]}), headers=AUTH),
    ):
        assert 400 <= r.status_code < 500, r.text[:200]
        message(r)  # asserts the length bound


# -- class 1: uploads are validated as streams with bounded memory ------------------------------------
def _npz_member(name: str, shape: tuple[int, ...], data: bytes, dtype: str = "<f4") -> tuple[str, bytes]:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return name + ".npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def _npz(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def _upload(client: TestClient, filename: str, content: bytes) -> Any:
    return client.post("/v1/files", files={"file": (filename, content)}, data={"purpose": "training"}, headers=AUTH)


def test_npz_bombs_are_refused_from_their_headers(app_client: TestClient) -> None:
    # inflates past max_upload_bytes (1 MiB): 4 MiB of zeros compress to ~4 KB
    r = _upload(app_client, "bomb.npz", _npz(_npz_member("x", (1 << 20,), b"\0" * (4 << 20))))
    assert r.status_code == 413 and "max_upload_bytes" in message(r), r.text
    # a header that claims 2^40 elements over 16 bytes of data
    r = _upload(app_client, "liar.npz", _npz(_npz_member("x", (1 << 40,), b"\0" * 16)))
    assert r.status_code == 413 and "max_upload_bytes" in message(r), r.text
    # a header that claims more data than is present (within the limit)
    r = _upload(app_client, "short.npz", _npz(_npz_member("x", (1000,), b"\0" * 16)))
    assert r.status_code == 400 and "holds 16 bytes" in message(r), r.text
    # more data than the shape declares
    r = _upload(app_client, "long.npz", _npz(_npz_member("x", (2,), b"\0" * 16)))
    assert r.status_code == 400 and "more data" in message(r), r.text
    # a header that is not a header
    r = _upload(app_client, "junk.npz", _npz(("x.npy", b"\x93NUMPY\x01\x00" + b"\xff" * 100)))
    assert r.status_code == 400 and "'x'" in message(r), r.text
    ok = io.BytesIO()
    np.savez_compressed(ok, x=np.zeros((10, 3), np.float32), y=np.arange(10))
    r = _upload(app_client, "good.npz", ok.getvalue())
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 10


def test_pathological_tables_are_refused_clearly(app_client: TestClient) -> None:
    wide = ",".join(f"c{i}" for i in range(101)) + "\n" + ",".join("1" for _ in range(101)) + "\n"
    r = _upload(app_client, "wide.csv", wide.encode())
    assert r.status_code == 400 and "101 columns" in message(r) and "max_upload_columns" in message(r), r.text
    r = _upload(app_client, "wide.jsonl", (json.dumps({f"c{i}": 1 for i in range(101)}) + "\n").encode())
    assert r.status_code == 400 and "max_upload_columns" in message(r), r.text
    deep = '{"x": ' + "[" * 100_000 + "]" * 100_000 + ', "y": 1}\n'
    r = _upload(app_client, "deep.jsonl", deep.encode())
    assert r.status_code == 400 and "max_upload_nesting" in message(r), r.text
    nested = '{"x": ' + "[" * 9 + "]" * 9 + ', "y": 1}\n'
    r = _upload(app_client, "nested.jsonl", nested.encode())
    assert r.status_code == 400 and "line 1" in message(r), r.text
    assert app_client.get("/v2/health/live").status_code == 200


def test_parquet_declared_rows_are_bounded(app_client: TestClient, tmp_path: Any) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    # 600k rows of one constant compress to a few KB; the declared cells exceed half of max_upload_bytes
    path = tmp_path / "tall.parquet"
    pq.write_table(pa.table({"x": pa.array(np.zeros(600_000, np.int8))}), path)
    r = _upload(app_client, "tall.parquet", path.read_bytes())
    assert r.status_code == 413 and "rows" in message(r), r.text


def _validation_peak(path: Any, rows: int) -> int:
    """Peak Python memory (tracemalloc) of validating a CSV of ``rows`` rows."""
    import tracemalloc

    from aiaas.training.files import validate_file

    with open(path, "w") as f:
        f.write("a,b,c,label\n")
        f.writelines(f"{i},{i * 0.5},x{i % 7},{i % 2}\n" for i in range(rows))
    tracemalloc.start()
    try:
        summary = validate_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.rows == rows and summary.dtypes == {"a": "int64", "b": "float64", "c": "string", "label": "int64"}
    return int(peak)


def test_table_validation_is_streamed(tmp_path: Any) -> None:
    # a whole-file parse grows with the file (the text and every value); the scan holds a row and counters
    small, large = _validation_peak(tmp_path / "small.csv", 4_000), _validation_peak(tmp_path / "large.csv", 16_000)
    assert large < small * 1.25 + (64 << 10), (
        f"validation peak grew with the file: {small >> 10} KB -> {large >> 10} KB"
    )
