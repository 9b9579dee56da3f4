"""The issue's "done when" on a catalog model: quick-build ``fashion-cnn`` (a python model running an ONNX
CNN), optimize it with its own held-out set (the Fashion-MNIST test images) in one request, and serve the
accepted version through V2 with the image decoding of the python model unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aiaas.catalog.builder import build
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository
from aiaas.server.app import create_app
from aiaas.settings import Settings

from .svc import FAST, wait

pytestmark = pytest.mark.slow
KEY = "optimize-catalog-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def test_fashion_cnn_is_optimized_on_its_test_images_and_served(tmp_path: Path) -> None:
    spec = all_specs()["fashion-cnn"]
    missing = spec.requires.missing()
    if missing:
        pytest.skip(f"needs: {missing}")
    home = tmp_path / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    assert build(spec, repo, quick=True, progress=lambda f, m: None).state == "built"
    settings = Settings(home=home, admin_key=KEY, catalog="none", training_cores=2, optimize_min_speedup=0)
    with TestClient(create_app(settings)) as client:
        body = {
            "model": "fashion-cnn",
            "passes": ["graph", "quantize-dynamic"],
            "evaluation": {"rows": 2000},
            "workload": {**FAST, "batch_sizes": [1, 32]},
        }
        r = client.post("/v1/optimizations", json=body, headers=AUTH)
        assert r.status_code == 201, r.text
        assert r.json()["evaluation"]["name"].startswith("Fashion-MNIST test set")
        job = wait(client, AUTH, r.json()["id"], timeout=300)
        assert job["status"] == "succeeded" and job["accepted"] and job["model_version"] == 2, job["decision"]
        assert job["report"]["baseline"]["metric"]["rows"] == 2000
        version = home / "models" / "fashion-cnn" / "2"
        assert sorted(p.name for p in version.iterdir()) == ["model.onnx", "optimization.json"]
        config = repo.read("fashion-cnn").config
        assert config is not None and config.backend == "python"  # the served class is unchanged
        assert config.card.extra["optimization"]["version"] == 2 and "catalog" in config.card.extra
        pixels = np.zeros((1, 28, 28), np.uint8)
        pixels[0, 4:24, 9:19] = 200  # a bright block, roughly trouser-shaped
        infer = {
            "inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8", "data": pixels.ravel().tolist()}]
        }
        r = client.post("/v2/models/fashion-cnn/versions/2/infer", json=infer, headers=AUTH)
        assert r.status_code == 200, r.text
        outputs = {o["name"]: o for o in r.json()["outputs"]}
        assert set(outputs) == {"label", "score", "probabilities"}
        assert abs(sum(outputs["probabilities"]["data"]) - 1.0) < 1e-3
