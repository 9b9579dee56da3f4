"""/metrics: the client library's process collectors and refusals counted by reason, model and tenant."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from models import mlp
from prometheus_client.parser import text_string_to_metric_families
from v2kit import ADMIN_KEY

from aiaas.errors import PaymentRequired, RateLimited
from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.service.governance import AdminKeyGovernance
from aiaas.settings import Settings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def zoo_settings(home: Path, **kw: object) -> Settings:
    return Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off", **kw)  # type: ignore[arg-type]


ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


class Refusing(AdminKeyGovernance):
    """Admits the first request, then refuses: 429, then 402, then admits again."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.answers = [None, RateLimited("rate limit exceeded"), PaymentRequired("budget exhausted"), None]

    async def admit(self, principal, model, endpoint, units=None):  # type: ignore[no-untyped-def]
        refusal = self.answers.pop(0) if self.answers else None
        if refusal is not None:
            raise refusal
        return await super().admit(principal, model, endpoint, units)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_process_metrics_and_refusals_by_reason(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "home" / "models")
    repo.ensure()
    import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "mlp", max_batch_size=8)
    app = create_app(zoo_settings(tmp_path / "home"), governance=Refusing(ADMIN_KEY))
    with TestClient(app) as c:
        codes = [c.post("/v2/models/mlp/infer", json=ROW, headers=AUTH).status_code for _ in range(4)]
        assert codes == [200, 429, 402, 200]
        got = samples(c.get("/metrics").text)
    refusals = {dict(labels)["reason"]: v for (name, labels), v in got.items() if name == "aiaas_refusals_total"}
    assert refusals == {"rate_limit": 1.0, "budget": 1.0}
    assert all(
        dict(labels)["model"] == "mlp" and dict(labels)["tenant"]
        for (name, labels), _ in got.items()
        if name == "aiaas_refusals_total"
    )
    names = {name for name, _ in got}
    assert {
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "python_gc_objects_collected_total",
        "python_info",
    } <= names
    assert got[("process_resident_memory_bytes", ())] > 10_000_000
