"""``/v1/files``: uploads validated line by line, the size limit, tenancy (404 for other tenants' files)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from jobkit import assert_hidden_like_missing
from sqlalchemy import func, select

from aiaas.store.jobs import FileRow

from .conftest import BACKENDS, ROOT, World, blobs_csv, upload

LIMIT = 20_000


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, world_factory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with world_factory(request.param, max_upload_bytes=LIMIT) as w:
        yield w


def _stored(w: World) -> tuple[int, list[Path]]:
    """Rows in the files table and files on disk (staging files included)."""
    with w.services.store.session() as s:
        rows = int(s.scalar(select(func.count()).select_from(FileRow)) or 0)
    root = w.home / "files"
    return rows, sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_upload_list_get_delete(world: World) -> None:
    acme = world.key("acme", "developer")
    r = upload(world.client, acme, "train.csv", blobs_csv(40))
    assert r.status_code == 201, r.text
    f = r.json()
    assert (f["format"], f["rows"], f["owner"], f["filename"]) == ("csv", 40, "acme", "train.csv")
    assert f["columns"] == ["a", "b", "c", "d", "label"] and f["dtypes"]["label"] == "int64"
    assert (world.home / "files" / "acme" / f"{f['id']}.csv").read_bytes() == blobs_csv(40)

    jl = upload(world.client, acme, "rows.jsonl", b'{"x": 1.5, "y": "a"}\n{"x": 2, "y": "b"}\n')
    assert jl.status_code == 201, jl.text
    assert jl.json()["dtypes"] == {"x": "float64", "y": "string"}
    buf = io.BytesIO()
    np.savez(buf, images=np.zeros((3, 1, 4, 4), np.float32), labels=np.arange(3))
    npz = upload(world.client, acme, "imgs.npz", buf.getvalue())
    assert npz.status_code == 201, npz.text
    assert npz.json()["shapes"] == {"images": [3, 1, 4, 4], "labels": [3]}

    page = world.client.get("/v1/files?limit=2", headers=acme.headers).json()
    assert [x["id"] for x in page["data"]] == [npz.json()["id"], jl.json()["id"]] and page["has_more"]
    rest = world.client.get(f"/v1/files?limit=2&after={jl.json()['id']}", headers=acme.headers).json()
    assert [x["id"] for x in rest["data"]] == [f["id"]] and not rest["has_more"]
    assert world.client.get(f"/v1/files/{f['id']}", headers=acme.headers).json()["sha256"] == f["sha256"]

    r = world.client.delete(f"/v1/files/{f['id']}", headers=acme.headers)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert world.client.get(f"/v1/files/{f['id']}", headers=acme.headers).status_code == 404
    assert not (world.home / "files" / "acme" / f"{f['id']}.csv").exists()
    audit = world.client.get("/v1/audit?tenant=acme", headers=ROOT).json()["data"]
    assert {(a["action"], a["target"]) for a in audit} >= {("file.upload", f["id"]), ("file.delete", f["id"])}


BAD = [
    ("bad.csv", blobs_csv(30, bad_line=17), "bad.csv: line 17, column 'b': 'abc' is not a number"),
    ("short.csv", b"a,b,label\n1,2,0\n3,4\n", "short.csv: line 3: 2 fields, but the header has 3 columns"),
    (
        "bad.jsonl",
        b'{"a": 1}\n{"a": 2 "b"}\n',
        "bad.jsonl: line 2: not valid JSON (Expecting ',' delimiter at column 9)",
    ),
    (
        "bad.jsonl",
        b'{"x": 1}\n{"x": 2}\n{"x": "seven"}\n{"x": 4}\n',
        "bad.jsonl: line 3, column 'x': 'seven' is not a number",
    ),
    ("model.pkl", b"abc", "cannot tell the format of 'model.pkl'"),
    ("empty.csv", b"", "empty.csv: the file is empty"),
    ("broken.npz", b"PK\x03\x04garbage", "broken.npz: not a readable NPZ file"),
]


def test_bad_content_is_refused_with_its_line_and_nothing_is_stored(world: World) -> None:
    acme = world.key("acme", "developer")
    for name, content, expected in BAD:
        r = upload(world.client, acme, name, content)
        assert r.status_code == 400, (name, r.text)
        message = r.json()["error"]["message"]
        assert expected in message, (name, message)
        assert ".upload-" not in message  # the user's file name, not the staging file's
        assert _stored(world) == (0, []), name


def test_over_the_limit_is_413_and_nothing_is_stored(world: World) -> None:
    acme = world.key("acme", "developer")
    big = blobs_csv(3000)
    assert len(big) > LIMIT + 64 * 1024  # refused from its Content-Length, before the body is read
    r = upload(world.client, acme, "big.csv", big)  # Content-Length known
    assert r.status_code == 413, r.text
    assert "max_upload_bytes" in r.json()["error"]["message"]
    assert _stored(world) == (0, [])

    # chunked (no Content-Length): refused while streaming, once the file part crosses the limit
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'.encode()

    def body() -> Iterator[bytes]:
        yield head
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]
        yield f"\r\n--{boundary}--\r\n".encode()

    r = world.client.post(
        "/v1/files",
        content=body(),
        headers={**acme.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413, r.text
    assert _stored(world) == (0, [])
    # just under the limit is fine
    ok = upload(world.client, acme, "fits.csv", big[: big.rfind(b"\n", 0, LIMIT - 100) + 1])
    assert ok.status_code == 201, ok.text


def test_other_tenants_files_answer_404_like_missing_ones(world: World) -> None:
    acme, globex = world.key("acme", "developer"), world.key("globex", "developer")
    fid = upload(world.client, acme, "t.csv", blobs_csv(20)).json()["id"]
    missing = "file-000000000000000000000000"
    assert_hidden_like_missing(world.client, globex.headers, "/v1/files", fid, missing, [("GET", ""), ("DELETE", "")])
    assert world.client.get("/v1/files", headers=globex.headers).json()["data"] == []
    assert [f["id"] for f in world.client.get("/v1/files", headers=ROOT).json()["data"]] == [fid]  # admin sees all
    assert world.client.get(f"/v1/files/{fid}", headers=acme.headers).status_code == 200  # still there


def test_roles_and_auth(world: World) -> None:
    user = world.key("acme", "user")
    r = upload(world.client, user, "t.csv", blobs_csv(10))
    assert r.status_code == 403 and "role" in r.json()["error"]["message"]
    assert world.client.get("/v1/files", headers=user.headers).status_code == 403
    assert upload(world.client, {}, "t.csv", blobs_csv(10)).status_code == 401
    r = world.client.post("/v1/files", json={"file": "x"}, headers=world.key("acme", "developer").headers)
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]
    assert _stored(world) == (0, [])
