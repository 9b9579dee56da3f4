"""``AIAAS_STRICT_READINESS=1``: the server is ready only when every configured model is READY (Triton's
``--strict-readiness``); by default it is ready once started, whatever its models' states."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from models import mlp
from v2kit import ADMIN_KEY

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.settings import Settings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def zoo_settings(home: Path, **kw: object) -> Settings:
    return Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off", **kw)  # type: ignore[arg-type]


def test_strict_readiness_waits_for_every_model(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "mlp", max_batch_size=8)
    (home / "models" / "broken" / "1").mkdir(parents=True)
    (home / "models" / "broken" / "model.yaml").write_text("backend: [onnx\n")
    with TestClient(create_app(zoo_settings(home))) as lax:
        assert lax.get("/v2/health/ready").status_code == 200  # default: started is ready
    with TestClient(create_app(zoo_settings(home, strict_readiness=True))) as strict:
        r = strict.get("/v2/health/ready")
        assert r.status_code == 503 and r.json()["models"] == ["broken"]
        (home / "models" / "broken" / "model.yaml").unlink()
        import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "broken", max_batch_size=8)
        assert strict.post("/v2/repository/models/broken/load", headers=AUTH).status_code == 200
        assert strict.get("/v2/health/ready").json() == {"ready": True}
        strict.post("/v2/repository/models/mlp/unload", headers=AUTH)  # unloaded on purpose: not waited for
        assert strict.get("/v2/health/ready").status_code == 200
