"""/metrics shows a model's name only to a scraper who may see the model: anonymous scrapes see public models,
a tenant's key its own, an admin key all; the rest is summed under model="_private" (totals stay whole)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from security.kit import ROOT, X, make_world


def scrape(client, headers: dict[str, str] | None = None) -> dict[tuple[str, frozenset], float]:  # type: ignore[no-untyped-def, type-arg]
    r = client.get("/metrics", headers=headers or {})
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def models_in(samples: dict) -> set[str]:  # type: ignore[type-arg]
    return {dict(labels)["model"] for _, labels in samples if "model" in dict(labels)}


def requests(samples: dict, model: str) -> float:  # type: ignore[type-arg]
    return samples.get(
        ("aiaas_requests_total", frozenset({("model", model), ("version", "1"), ("outcome", "success")})), 0
    )


def test_private_model_names_need_a_key_that_sees_them(tmp_path: Path) -> None:
    with make_world(tmp_path / "home", tmp_path / "src", None) as w:
        acme, globex = w.key("acme"), w.key("globex")
        for _ in range(2):
            assert w.client.post("/v2/models/secret/infer", json=X, headers=acme.headers).status_code == 200
        assert w.client.post("/v2/models/pub/infer", json=X, headers=acme.headers).status_code == 200

        anonymous = scrape(w.client)
        assert "secret" not in models_in(anonymous) and "gate" in models_in(anonymous)
        assert requests(anonymous, "_private") == 2 and requests(anonymous, "pub") == 1
        assert "secret" not in models_in(scrape(w.client, globex.headers))
        for who in (acme.headers, ROOT):
            seen = scrape(w.client, who)
            assert requests(seen, "secret") == 2 and "_private" not in models_in(seen)
        # histograms stay consistent when summed: +Inf bucket == count
        bucket = ("aiaas_request_duration_seconds_bucket", frozenset({("model", "_private"), ("le", "+Inf")}))
        assert (
            anonymous[bucket]
            == anonymous[("aiaas_request_duration_seconds_count", frozenset({("model", "_private")}))]
            == 2
        )
        assert w.client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_metrics_require_key(tmp_path: Path) -> None:
    with make_world(tmp_path / "home", tmp_path / "src", None, metrics_require_key=True) as w:
        assert w.client.get("/metrics").status_code == 401
        assert "secret" in models_in(scrape(w.client, ROOT))
