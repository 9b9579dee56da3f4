"""``aiaas.client.Client`` end to end against the app in-process: inference in both encodings, repository,
statistics, and errors as ``ClientError`` with the HTTP status."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from models import identity, mlp_reference
from v2kit import AppTransport

from aiaas.client import Client, ClientError

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)


def test_health_and_readiness(v2: Client) -> None:
    assert v2.live() and v2.ready()
    assert v2.model_ready("mlp") and v2.model_ready("mlp", "1")
    assert not v2.model_ready("mlp", "2")
    assert not v2.model_ready("nope")


def test_metadata(v2: Client) -> None:
    meta = v2.metadata("mlp")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert v2.metadata("mlp", "1")["versions"] == ["1"]


@pytest.mark.parametrize("binary", [False, True])
def test_infer_numeric(v2: Client, binary: bool) -> None:
    out = v2.infer("mlp", {"x": X}, binary=binary)
    assert set(out) == {"y"} and out["y"].dtype == np.float32
    np.testing.assert_allclose(out["y"], mlp_reference(X), rtol=1e-5)


@pytest.mark.parametrize("binary", [False, True])
def test_infer_with_requested_outputs_and_version(v2: Client, binary: bool) -> None:
    out = v2.infer("mlp", {"x": X}, version="1", outputs=["y"], binary=binary)
    np.testing.assert_allclose(out["y"], mlp_reference(X), rtol=1e-5)


@pytest.mark.parametrize("binary", [False, True])
def test_infer_bytes(v2: Client, binary: bool) -> None:
    text = np.array([b"abc", b"", "é".encode()], dtype=object)
    out = v2.infer("upper", {"text": text}, binary=binary)
    assert out["upper"].tolist() == [b"ABC!", b"!", "é".encode().upper() + b"!"]
    assert out["length"].tolist() == [3, 0, 2] and out["length"].dtype == np.int32


def test_infer_python_strings_and_parameters(v2: Client) -> None:
    out = v2.infer("upper", {"text": np.array(["hi", "yo"])}, outputs=["upper"], parameters={"suffix": "?"})
    assert set(out) == {"upper"} and out["upper"].tolist() == [b"HI?", b"YO?"]
    out = v2.infer("upper", {"text": np.array(["hi"])}, binary=True, parameters={"suffix": "."})
    assert out["upper"].tolist() == [b"HI."]


def test_repository_and_statistics(v2: Client) -> None:
    v2.infer("mlp", {"x": X})
    rows = {r["name"]: r for r in v2.repository_index()}
    assert rows["mlp"]["state"] == "READY" and rows["upper"]["state"] == "READY"
    (stats,) = v2.statistics("mlp")["model_stats"]
    assert stats["inference_count"] == 3
    assert {r["name"] for r in v2.statistics()["model_stats"]} == {"mlp", "upper"}

    v2.unload_model("mlp")
    assert not v2.model_ready("mlp")
    assert [r["name"] for r in v2.repository_index(ready=True)] == ["upper"]
    with pytest.raises(ClientError) as e:
        v2.infer("mlp", {"x": X})
    assert e.value.status_code == 503
    v2.load_model("mlp")
    np.testing.assert_allclose(v2.infer("mlp", {"x": X})["y"], mlp_reference(X), rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "status", "mention"),
    [
        (lambda c: c.infer("mlp", {"x": X.astype(np.float64)}), 400, "FP32"),
        (lambda c: c.infer("mlp", {"x": X}, binary=True, outputs=["nope"]), 400, "nope"),
        (lambda c: c.infer("mlp", {"z": X}), 400, "'z'"),
        (lambda c: c.infer("nope", {"x": X}), 404, "nope"),
        (lambda c: c.infer("mlp", {"x": X}, version="9"), 404, "9"),
        (lambda c: c.metadata("nope"), 404, "nope"),
        (lambda c: c.load_model("nope"), 404, "nope"),
        (lambda c: c.statistics("nope"), 404, "nope"),
    ],
)
def test_errors_carry_status_and_message(v2: Client, call, status: int, mention: str) -> None:
    with pytest.raises(ClientError) as e:
        call(v2)
    assert e.value.status_code == status
    assert mention in str(e.value) and str(e.value).startswith(f"HTTP {status}: ")


def test_wrong_key_is_401(app_client: TestClient) -> None:
    with Client("http://testserver", api_key="wrong", transport=AppTransport(app_client)) as c:
        assert c.live()  # open
        with pytest.raises(ClientError) as e:
            c.metadata("mlp")
        assert e.value.status_code == 401 and "invalid API key" in str(e.value)
    with (
        Client("http://testserver", transport=AppTransport(app_client)) as c,
        pytest.raises(ClientError) as e,
    ):
        c.repository_index()
    assert e.value.status_code == 401


def test_error_from_a_non_v2_route_is_readable(v2: Client) -> None:
    """The structured (non-V2) error shape is unwrapped too, not printed as a dict."""
    with pytest.raises(ClientError) as e:
        v2._check(v2.http.get("/not/a/route"))
    assert e.value.status_code == 404 and str(e.value) == "HTTP 404: no route GET /not/a/route"


DTYPES = [
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
]


@pytest.fixture
def identities(make_settings, repo, tmp_path) -> Iterator[Client]:
    """One identity model per numeric datatype."""
    from onnx import helper
    from v2kit import ADMIN_KEY

    from aiaas.registry.onnx_import import import_onnx
    from aiaas.server.app import create_app

    for dt in DTYPES:
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
        import_onnx(repo, identity(tmp_path / f"{dt}.onnx", elem), f"id-{dt}")
    app = create_app(make_settings(governance="off"))
    with (
        TestClient(app, raise_server_exceptions=False) as tc,
        Client("http://testserver", api_key=ADMIN_KEY, transport=AppTransport(tc)) as c,
    ):
        yield c


def test_every_numeric_datatype_round_trips(identities: Client) -> None:
    rng = np.random.default_rng(0)
    for dt, binary in [(dt, binary) for dt in DTYPES for binary in (False, True)]:
        if dt == "bool":
            arr = rng.integers(0, 2, (2, 3)).astype(bool)
        elif np.dtype(dt).kind == "f":
            arr = rng.standard_normal((2, 3)).astype(dt)
        else:
            info = np.iinfo(dt)
            arr = np.array([[info.min, info.max, 0], [1, 2, 3]], dtype=dt)
        out = identities.infer(f"id-{dt}", {"inp": arr}, binary=binary)["out"]
        assert out.dtype == arr.dtype, (dt, binary)
        np.testing.assert_array_equal(out, arr, err_msg=f"{dt} binary={binary}")
