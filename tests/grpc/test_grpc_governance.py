"""The same governance as REST over gRPC: keys in the authorization metadata, roles, tenant visibility (another
tenant's private model is NOT_FOUND exactly like a missing one), request limits (RESOURCE_EXHAUSTED with the
retry delay in the message and the trailing metadata) and metering of gRPC requests."""

from __future__ import annotations

import time
import uuid

import grpc
import httpx
import numpy as np
import pytest
from conftest import Served
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pbg
from v2kit import ADMIN_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _admin(served: Served, method: str, path: str, **json: object) -> dict:
    r = httpx.request(method, f"http://127.0.0.1:{served.http_port}/v1{path}", headers=ADMIN, json=json or None)
    assert r.status_code < 300, r.text
    return r.json()


def _key(served: Served, tenant: str, role: str = "user") -> str:
    return _admin(served, "POST", "/keys", tenant=tenant, role=role)["key"]


@pytest.fixture(scope="module")
def stub(served: Served) -> pbg.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(served.grpc_url)
    yield pbg.GRPCInferenceServiceStub(channel)
    channel.close()


def _infer(
    stub: pbg.GRPCInferenceServiceStub, key: str | None, model: str = "mlp"
) -> grpc.RpcError | pb.ModelInferResponse:
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(np.zeros((1, 4), np.float32).tobytes())
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    try:
        return stub.ModelInfer(req, metadata=metadata)
    except grpc.RpcError as e:
        return e


def test_keys_and_roles(served: Served, stub: pbg.GRPCInferenceServiceStub) -> None:
    for key in (None, "not-a-key"):
        err = _infer(stub, key)
        assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.UNAUTHENTICATED
    tenant = f"t{uuid.uuid4().hex[:8]}"
    _admin(served, "POST", "/tenants", name=tenant)
    user = _key(served, tenant)
    assert isinstance(_infer(stub, user), pb.ModelInferResponse)
    with pytest.raises(grpc.RpcError) as e:  # a user key may infer but not unload
        stub.RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(model_name="mlp"), metadata=(("authorization", f"Bearer {user}"),)
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "role" in e.value.details()


def test_private_model_of_another_tenant_is_not_found(served: Served, stub: pbg.GRPCInferenceServiceStub) -> None:
    owner, other = f"o{uuid.uuid4().hex[:8]}", f"x{uuid.uuid4().hex[:8]}"
    for t in (owner, other):
        _admin(served, "POST", "/tenants", name=t)
    _admin(served, "PUT", "/models/sleepy/owner", owner=owner, public=False)
    try:
        owner_key, other_key = _key(served, owner), _key(served, other)
        md = (("authorization", f"Bearer {other_key}"),)
        hidden = _infer(stub, other_key, "sleepy")
        missing = _infer(stub, other_key, "no-such-model")
        assert isinstance(hidden, grpc.RpcError) and isinstance(missing, grpc.RpcError)
        assert hidden.code() == missing.code() == grpc.StatusCode.NOT_FOUND
        assert hidden.details().replace("sleepy", "M") == missing.details().replace("no-such-model", "M")
        for rpc, request in (
            (stub.ModelMetadata, pb.ModelMetadataRequest(name="sleepy")),
            (stub.ModelReady, pb.ModelReadyRequest(name="sleepy")),
        ):
            with pytest.raises(grpc.RpcError) as e:
                rpc(request, metadata=md)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=md)
        assert "sleepy" not in {m.name for m in index.models} and "mlp" in {m.name for m in index.models}
        ready = stub.ModelReady(
            pb.ModelReadyRequest(name="sleepy"), metadata=(("authorization", f"Bearer {owner_key}"),)
        )
        assert ready.ready
    finally:
        _admin(served, "PUT", "/models/sleepy/owner", owner=None, public=False)


def test_request_limit_is_resource_exhausted_with_retry(served: Served, stub: pbg.GRPCInferenceServiceStub) -> None:
    tenant = f"l{uuid.uuid4().hex[:8]}"
    _admin(served, "POST", "/tenants", name=tenant)
    _admin(served, "PUT", f"/limits/tenant/{tenant}", requests_per_minute=2)
    key = _key(served, tenant)
    results = [_infer(stub, key) for _ in range(3)]
    assert all(isinstance(r, pb.ModelInferResponse) for r in results[:2])
    refused = results[2]
    assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(refused.trailing_metadata())
    assert int(trailers["retry-after"]) >= 1 and "retry after" in refused.details().lower()
    assert trailers["x-ratelimit-limit-requests"] == "2"
    # metered like REST: the two gRPC successes are in the tenant's usage
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = _admin(served, "GET", f"/usage?tenant={tenant}&group_by=model").get("data", [])
        if any(r.get("model") == "mlp" and r.get("requests", 0) >= 2 for r in rows):
            break
        time.sleep(0.5)
    assert any(r.get("model") == "mlp" and r.get("requests", 0) >= 2 for r in rows), rows
