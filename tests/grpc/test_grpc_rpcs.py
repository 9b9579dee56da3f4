"""Every RPC of inference.GRPCInferenceService through ``tritonclient.grpc`` (sync), every datatype both as
raw and as typed contents, a 64 MB tensor, errors as status codes, deadlines, health checking and reflection."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from conftest import Served
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from models import mlp_reference
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pbg
from tritonclient.utils import InferenceServerException
from v2kit import ADMIN_KEY

H = {"authorization": f"Bearer {ADMIN_KEY}"}
X = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)

# every V2 datatype; FP16 only travels raw (the proto has no typed field for it)
SAMPLES = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], np.uint8),
    "UINT16": np.array([[0, 7, 65535]], np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], np.uint64),
    "INT8": np.array([[-128, 0, 127]], np.int8),
    "INT16": np.array([[-32768, 0, 32767]], np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], np.int64),
    "FP16": np.array([[-1.5, 0.0, 65504.0]], np.float16),
    "FP32": np.array([[-1.5, 0.0, 3.25]], np.float32),
    "FP64": np.array([[-1.5, 0.0, 1e300]], np.float64),
    "BYTES": np.array([[b"", b"\x00\xffbin", "héllo".encode()]], dtype=object),
}


@pytest.fixture(scope="module")
def client(served: Served) -> tg.InferenceServerClient:
    c = tg.InferenceServerClient(served.grpc_url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(served: Served) -> pbg.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(served.grpc_url)
    yield pbg.GRPCInferenceServiceStub(channel)
    channel.close()


def _error(fn, *args, **kw) -> InferenceServerException:  # type: ignore[no-untyped-def]
    with pytest.raises(InferenceServerException) as e:
        fn(*args, **kw)
    return e.value


def test_health_metadata_config(client: tg.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()  # no key needed, as on REST
    meta = client.get_server_metadata(headers=H, as_json=True)
    assert meta["name"] == "aiaas" and "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("mlp", headers=H, as_json=True)
    assert model["platform"] == "onnxruntime_onnx" and model["versions"] == ["1"]
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert client.is_model_ready("mlp", headers=H) and client.is_model_ready("mlp", "1", headers=H)
    config = client.get_model_config("mlp", headers=H, as_json=True)["config"]
    assert config["max_batch_size"] == 32 and config["input"][0] == {
        "name": "x",
        "data_type": "TYPE_FP32",
        "dims": ["4"],
    }
    e = _error(client.get_model_metadata, "nope", headers=H)
    assert e.status() == "StatusCode.NOT_FOUND" and "nope" in e.message()


@pytest.mark.parametrize("version", ["", "1"])
def test_infer_fp32(client: tg.InferenceServerClient, version: str) -> None:
    inp = tg.InferInput("x", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    result = client.infer(
        "mlp", [inp], model_version=version, request_id="r-1", headers=H, outputs=[tg.InferRequestedOutput("y")]
    )
    np.testing.assert_allclose(result.as_numpy("y"), mlp_reference(X), rtol=1e-5)
    response = result.get_response()
    assert response.id == "r-1" and response.model_version == "1"


def test_every_datatype_raw(client: tg.InferenceServerClient) -> None:
    inputs = []
    for dt, arr in SAMPLES.items():
        inp = tg.InferInput(f"t_{dt}", list(arr.shape), dt)
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    result = client.infer("echo", inputs, headers=H)
    for dt, arr in SAMPLES.items():
        got = result.as_numpy(f"out_t_{dt}")
        assert got.shape == arr.shape and got.tolist() == arr.tolist(), dt
        assert result.get_output(f"out_t_{dt}").datatype == dt


def _typed(arr: np.ndarray, dt: str) -> pb.InferTensorContents:
    from aiaas.codecs.grpc import CONTENTS_FIELD

    contents = pb.InferTensorContents()
    getattr(contents, CONTENTS_FIELD[dt]).extend(arr.reshape(-1).tolist())
    return contents


def test_every_datatype_typed_contents(stub: pbg.GRPCInferenceServiceStub) -> None:
    req = pb.ModelInferRequest(model_name="echo", id="typed")
    typed = {dt: a for dt, a in SAMPLES.items() if dt != "FP16"}
    for dt, arr in typed.items():
        req.inputs.add(name=f"t_{dt}", datatype=dt, shape=arr.shape, contents=_typed(arr, dt))
    resp = stub.ModelInfer(req, metadata=tuple(H.items()))
    assert resp.id == "typed" and len(resp.raw_output_contents) == len(typed)  # answered raw
    result = tg.InferResult(resp)
    for dt, arr in typed.items():
        assert result.as_numpy(f"out_t_{dt}").tolist() == arr.tolist(), dt


def test_typed_contents_errors_name_the_tensor(stub: pbg.GRPCInferenceServiceStub) -> None:
    def call(req: pb.ModelInferRequest) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, metadata=tuple(H.items()))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return e.value

    req = pb.ModelInferRequest(model_name="echo")
    req.inputs.add(name="small", datatype="INT8", shape=[1], contents=pb.InferTensorContents(int_contents=[300]))
    assert "'small'" in call(req).details() and "range of INT8" in call(req).details()
    req = pb.ModelInferRequest(model_name="echo")
    req.inputs.add(name="half", datatype="FP16", shape=[1])
    assert "'half'" in call(req).details() and "raw_input_contents" in call(req).details()
    req = pb.ModelInferRequest(model_name="echo")
    req.inputs.add(name="short", datatype="FP32", shape=[3], contents=pb.InferTensorContents(fp32_contents=[1.0]))
    assert "'short'" in call(req).details() and "needs 3 elements" in call(req).details()


def test_invalid_input_names_the_tensor(client: tg.InferenceServerClient) -> None:
    inp = tg.InferInput("x", [2, 5], "FP32")
    inp.set_data_from_numpy(np.zeros((2, 5), np.float32))
    e = _error(client.infer, "mlp", [inp], headers=H)
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "'x'" in e.message() and "[-1, 4]" in e.message()
    inp = tg.InferInput("z", [1, 4], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 4), np.float32))
    assert "'z'" in _error(client.infer, "mlp", [inp], headers=H).message()


def test_64_mb_tensor(client: tg.InferenceServerClient) -> None:
    big = np.frombuffer(np.random.default_rng(0).bytes(64_000_000), dtype=np.uint8).reshape(1, -1)
    inp = tg.InferInput("blob", list(big.shape), "UINT8")
    inp.set_data_from_numpy(big)
    out = client.infer("echo", [inp], headers=H).as_numpy("out_blob")
    assert out.shape == big.shape and np.array_equal(out, big)


def test_message_over_the_limit_is_refused(served: Served) -> None:
    limit = served.services.settings.max_request_bytes + (1 << 20)
    with tg.InferenceServerClient(served.grpc_url) as c:
        inp = tg.InferInput("blob", [1, limit + 1], "UINT8")
        inp.set_data_from_numpy(np.zeros((1, limit + 1), np.uint8))
        assert _error(c.infer, "echo", [inp], headers=H).status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_client_deadline(client: tg.InferenceServerClient) -> None:
    inp = tg.InferInput("x", [1], "FP32")
    inp.set_data_from_numpy(np.zeros(1, np.float32))
    e = _error(client.infer, "sleepy", [inp], headers=H, client_timeout=0.2)
    assert e.status() == "StatusCode.DEADLINE_EXCEEDED"


def test_statistics_and_repository(client: tg.InferenceServerClient) -> None:
    stats = client.get_inference_statistics("mlp", headers=H, as_json=True)["model_stats"][0]
    assert stats["name"] == "mlp" and int(stats["inference_count"]) >= 1
    assert int(stats["inference_stats"]["success"]["count"]) >= 1
    names = {m["name"] for m in client.get_model_repository_index(headers=H, as_json=True)["models"]}
    assert {"mlp", "echo", "spare"} <= names
    client.unload_model("spare", headers=H)
    assert not client.is_model_ready("spare", headers=H)
    client.load_model("spare", headers=H)
    assert client.is_model_ready("spare", headers=H)
    e = _error(client.load_model, "spare", headers=H, config='{"max_batch_size": 2}')
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "not supported" in e.message()
    assert _error(client.unload_model, "nope", headers=H).status() == "StatusCode.NOT_FOUND"


def test_health_checking(served: Served) -> None:
    with grpc.insecure_channel(served.grpc_url) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for service in ("", "inference.GRPCInferenceService"):
            assert (
                check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING
            )
        with pytest.raises(grpc.RpcError) as e:
            check(health_pb2.HealthCheckRequest(service="no.Such"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_service(served: Served) -> None:
    with grpc.insecure_channel(served.grpc_url) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
        service = descriptor_pool.DescriptorPool(db).FindServiceByName("inference.GRPCInferenceService")
        methods = set(service.methods_by_name)
        assert len(methods) >= 11 and {"ModelInfer", "ModelStreamInfer", "RepositoryModelLoad"} <= methods
