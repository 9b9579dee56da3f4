"""/metrics: Prometheus text with requests by model/version/outcome, latency, batch size, queue depth, state."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from v2kit import AUTH, json_input


def scrape(c: TestClient, headers: dict[str, str] | None = None) -> dict[tuple[str, frozenset], float]:
    r = c.get("/metrics", headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_after_traffic(fresh) -> None:
    c = fresh()
    x = {"inputs": [json_input("x", np.ones((3, 4), np.float32))]}
    for _ in range(2):
        assert c.post("/v2/models/mlp/infer", json=x, headers=AUTH).status_code == 200
    bad = {"inputs": [json_input("x", np.ones((3, 4), np.float64))]}
    assert c.post("/v2/models/mlp/infer", json=bad, headers=AUTH).status_code == 400
    m = scrape(c)

    assert value(m, "aiaas_requests_total", model="mlp", version="1", outcome="success") == 2
    assert value(m, "aiaas_requests_total", model="mlp", version="1", outcome="400") == 1
    assert value(m, "aiaas_request_duration_seconds_count", model="mlp") == 3
    assert value(m, "aiaas_request_duration_seconds_sum", model="mlp") > 0
    assert value(m, "aiaas_request_duration_seconds_bucket", model="mlp", le="+Inf") == 3
    assert value(m, "aiaas_queue_duration_seconds_count", model="mlp") == 2  # only requests that ran
    assert 1 <= value(m, "aiaas_compute_duration_seconds_count", model="mlp") <= 2
    # batch size histogram: every execution here had 3 rows, or 6 when both were batched together
    executions = value(m, "aiaas_batch_size_count", model="mlp")
    assert 1 <= executions <= 2 and value(m, "aiaas_batch_size_sum", model="mlp") == 6
    assert value(m, "aiaas_batch_size_bucket", model="mlp", le="2.0") == 0
    assert value(m, "aiaas_batch_size_bucket", model="mlp", le="+Inf") == executions
    assert ("aiaas_queue_depth", frozenset({("model", "mlp")})) in m
    assert value(m, "aiaas_queue_depth", model="mlp") == 0
    assert value(m, "aiaas_model_state", model="mlp", version="1", state="READY") == 1
    assert value(m, "aiaas_model_state", model="mlp", version="1", state="LOADING") == 0


def test_model_state_follows_unload_and_broken_models(fresh) -> None:
    c = fresh()
    m = scrape(c)
    assert value(m, "aiaas_model_state", model="corrupt", version="1", state="UNAVAILABLE") == 1
    assert value(m, "aiaas_model_state", model="upper", version="1", state="READY") == 1
    c.post("/v2/repository/models/upper/unload", headers=AUTH)
    m = scrape(c)
    assert value(m, "aiaas_model_state", model="upper", version="1", state="READY") == 0
    assert value(m, "aiaas_model_state", model="upper", version="1", state="UNAVAILABLE") == 1


def test_pipeline_requests_are_counted_for_the_pipeline_and_its_steps(fresh) -> None:
    c = fresh()
    r = c.post("/v2/models/pipe/infer", json={"inputs": [json_input("x", np.ones((1, 2), np.float32))]}, headers=AUTH)
    assert r.status_code == 200
    m = scrape(c)
    assert value(m, "aiaas_requests_total", model="pipe", version="1", outcome="success") == 1
    assert value(m, "aiaas_batch_size_count", model="double") == 1
    assert value(m, "aiaas_batch_size_count", model="triple") == 1


def test_unauthenticated_requests_do_not_create_series(fresh) -> None:
    c = fresh()
    c.post("/v2/models/mlp/infer", json={"inputs": []})
    c.post("/v2/models/nope/infer", json={"inputs": []}, headers=AUTH)
    m = scrape(c)
    assert not any(name == "aiaas_requests_total" for name, _ in m)


def test_metrics_with_required_key(fresh) -> None:
    c = fresh(metrics_require_key=True)
    assert c.get("/metrics").status_code == 401
    assert value(scrape(c, AUTH), "aiaas_model_state", model="mlp", version="1", state="READY") == 1
